"""Apps and skills: plain async functions registered with a decorator.

    demo = App("demo")

    @demo.skill(mode="quick", description="Echo the text back")
    async def echo(text: str, fail: bool = False) -> dict:
        return {"type": "text", "text": text}

The input schema comes from the types: a single ``msgspec.Struct`` parameter, or the
function's own keyword parameters (``Annotated`` with ``msgspec.Meta`` for constraints). A
returned value is one output; an async generator streams outputs; a parameter annotated
``Context`` receives the context for progress reports.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints, overload

import msgspec

from skillwire.protocol import Skill, SkillMode

from ._context import Context

__all__ = ["App", "SkillSpec"]

_SLUG = re.compile(r"^[a-z0-9_-]{1,64}$")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class SkillSpec:
    """A registered skill and how to call it."""

    app: str
    name: str
    description: str
    mode: SkillMode
    fn: Callable[..., Any]
    input_type: type[msgspec.Struct]
    input_schema: dict[str, Any]
    spread: bool  # call fn(**fields) instead of fn(struct)
    context_param: str | None
    is_generator: bool
    max_requests: int | None
    timeout: float | None
    provider: str | None
    model: str | None
    # A skill served by remote workers: its calls are checked by ``check(request, field)``
    # (the declared JSON Schema) and the raw input goes to ``fn`` unconverted.
    remote: bool = False
    check: Callable[[Any, str], None] | None = None
    # ``fn`` appends ``request.started`` itself, once a remote worker takes the work: a
    # sub-request handed to another process's queue is then started once, where it runs.
    starts_itself: bool = False

    def describe(self, default_max_requests: int) -> Skill:
        return Skill(
            app=self.app,
            skill=self.name,
            description=self.description,
            mode=self.mode,
            input_schema=self.input_schema,
            max_requests=self.max_requests or default_max_requests,
            remote=self.remote,
        )

    def call(self, ctx: Context, value: msgspec.Struct) -> Any:
        kwargs: dict[str, Any] = {}
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        if self.spread:
            kwargs.update(msgspec.structs.asdict(value))
            return self.fn(**kwargs)
        return self.fn(value, **kwargs)


def _inline_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    (ref,), components = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")
    name = ref["$ref"].rsplit("/", 1)[-1]
    schema = dict(components.pop(name))
    if components:
        schema["$defs"] = components
    return schema


def _input_type(
    fn: Callable[..., Any], app: str, name: str
) -> tuple[type[msgspec.Struct], bool, str | None]:
    hints = get_type_hints(fn, include_extras=True)
    signature = inspect.signature(fn)
    context_param: str | None = None
    fields: list[tuple[str, Any, Any]] = []
    struct_params: list[type[msgspec.Struct]] = []
    for param in signature.parameters.values():
        hint = hints.get(param.name, Any)
        if hint is Context:
            context_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"skill {app}/{name}: *args and **kwargs are not supported")
        if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
            struct_params.append(hint)
            continue
        if param.default is inspect.Parameter.empty:
            fields.append((param.name, hint, msgspec.NODEFAULT))
        else:
            fields.append((param.name, hint, param.default))
    if struct_params:
        if len(struct_params) > 1 or fields:
            raise TypeError(f"skill {app}/{name}: take one Struct parameter or plain parameters")
        return struct_params[0], False, context_param
    required = [(n, t) for n, t, d in fields if d is msgspec.NODEFAULT]
    optional = [(n, t, d) for n, t, d in fields if d is not msgspec.NODEFAULT]
    struct = msgspec.defstruct(
        f"{app.title().replace('-', '').replace('_', '')}{name.title().replace('_', '')}Input",
        [*required, *optional],
        kw_only=True,
    )
    return struct, True, context_param


class App:
    """A named group of skills, addressed as ``{app}/{skill}``."""

    def __init__(self, name: str, description: str = "") -> None:
        if not _SLUG.match(name):
            raise ValueError(f"app name {name!r} must match [a-z0-9_-]{{1,64}}")
        self.name = name
        self.description = description
        self.skills: dict[str, SkillSpec] = {}

    @overload
    def skill(self, name: F, /) -> F: ...

    @overload
    def skill(
        self,
        name: str | None = None,
        *,
        mode: SkillMode | str = SkillMode.QUICK,
        description: str | None = None,
        max_requests: int | None = None,
        timeout: float | None = None,
        provider: str | None = None,
        model: str | None = None,
    ) -> Callable[[F], F]: ...

    def skill(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        mode: SkillMode | str = SkillMode.QUICK,
        description: str | None = None,
        max_requests: int | None = None,
        timeout: float | None = None,
        provider: str | None = None,
        model: str | None = None,
    ) -> Any:
        """Register an async function (or async generator) as a skill of this app, as
        ``@app.skill(...)`` or, with no arguments, ``@app.skill`` (FastAPI's habit)."""
        if callable(name):  # @app.skill without parentheses: name is the function itself
            return self.skill(
                mode=mode,
                description=description,
                max_requests=max_requests,
                timeout=timeout,
                provider=provider,
                model=model,
            )(name)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a skill name is a string, not {type(name).__name__}")
        given_name = name

        def register(fn: F) -> F:
            skill_name = given_name or fn.__name__
            if not _SLUG.match(skill_name):
                raise ValueError(f"skill name {skill_name!r} must match [a-z0-9_-]{{1,64}}")
            is_generator = inspect.isasyncgenfunction(fn)
            if not (is_generator or inspect.iscoroutinefunction(fn)):
                raise TypeError(f"skill {self.name}/{skill_name} must be async")
            input_type, spread, context_param = _input_type(fn, self.name, skill_name)
            doc = inspect.getdoc(fn) or ""
            self.skills[skill_name] = SkillSpec(
                app=self.name,
                name=skill_name,
                description=description if description is not None else doc.split("\n\n")[0],
                mode=SkillMode(mode),
                fn=fn,
                input_type=input_type,
                input_schema=_inline_schema(input_type),
                spread=spread,
                context_param=context_param,
                is_generator=is_generator,
                max_requests=max_requests,
                timeout=timeout,
                provider=provider,
                model=model,
            )
            return fn

        return register
