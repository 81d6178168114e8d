"""Skills declared by a JSON Schema (remote workers' and HTTP skills): their requests are
checked against it with a well-kept validator (jsonschema) instead of a msgspec type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jsonschema  # type: ignore[import-untyped]
import msgspec

from skillwire.protocol import SkillDeclaration, SkillMode, ValidationError

from ._app import SkillSpec

__all__ = ["Declared", "RawInput", "check_schema", "declared_skill", "schema_checker"]


class RawInput(msgspec.Struct):
    """Stands for the input type of a skill declared by a JSON Schema (remote and HTTP
    skills): its requests are checked against the schema instead, and passed on as they came."""


def schema_checker(schema: dict[str, Any]) -> Callable[[Any, str], None]:
    """A request check against a declared JSON Schema (422 naming the field and constraint)."""
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)

    def check(value: Any, field: str) -> None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        name = f"{field}{path}"
        constraint = f"{error.validator}: {error.message}"
        raise ValidationError(
            f"invalid `{name}`: {error.message}", details={"field": name, "constraint": constraint}
        )

    return check


def check_schema(declaration: SkillDeclaration) -> None:
    """Raise ``ValidationError`` for an input schema that is not a valid JSON Schema."""
    try:
        jsonschema.validators.validator_for(declaration.input_schema).check_schema(
            declaration.input_schema
        )
    except jsonschema.exceptions.SchemaError as exc:
        raise ValidationError(
            f"skill {declaration.key}: input_schema is not a valid JSON Schema: {exc.message}",
            details={"field": "input_schema", "constraint": exc.message, "skill": declaration.key},
        ) from None


class Declared(Protocol):
    """What a skill declared by a JSON Schema says of itself (a remote worker's declaration, an
    ``[[http_skills]]`` entry)."""

    @property
    def app(self) -> str: ...
    @property
    def skill(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def input_schema(self) -> dict[str, Any]: ...
    @property
    def max_requests(self) -> int | None: ...
    @property
    def timeout(self) -> float | None: ...


def declared_skill(
    declared: Declared, fn: Callable[..., Any], *, starts_itself: bool = False
) -> SkillSpec:
    """The spec of a skill run elsewhere: ``fn(ctx, request)`` gets each request as it came,
    checked against the declared schema."""
    return SkillSpec(
        app=declared.app,
        name=declared.skill,
        description=declared.description,
        mode=SkillMode(declared.mode),
        fn=fn,
        input_type=RawInput,
        input_schema=declared.input_schema,
        spread=False,
        context_param="ctx",
        is_generator=False,
        max_requests=declared.max_requests,
        timeout=declared.timeout,
        provider=None,
        model=None,
        remote=True,
        check=schema_checker(declared.input_schema),
        starts_itself=starts_itself,
    )
