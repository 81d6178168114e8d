"""Apps and skills: registration, input schemas, and what a skill does as seen over HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import msgspec
import pytest

from skillwire.protocol import NotFound
from skillwire.server import App, Context, SkillError
from skillwire.server.engine import Registry, load_app
from tests.conftest import RunningServer, start_server
from tests.server.conftest import UNLIMITED, assert_error, events_of, finished


class Document(msgspec.Struct):
    title: str
    pages: Annotated[int, msgspec.Meta(ge=1, le=500)] = 1
    tags: list[str] = []


def lab_app() -> App:
    """A test app exercising every way a skill can be written."""
    lab = App("lab", "Skills for the engine tests")

    @lab.skill(description="Summarise a document.")
    async def summarise(doc: Document) -> dict[str, Any]:
        return {"type": "summary", "title": doc.title, "pages": doc.pages, "tags": doc.tags}

    @lab.skill()
    async def constrained(
        name: Annotated[str, msgspec.Meta(min_length=2, max_length=5, pattern="^[a-z]+$")],
        count: Annotated[int, msgspec.Meta(ge=0, le=3)] = 1,
    ) -> dict[str, Any]:
        """Repeat a short lowercase name.

        A second paragraph that is not part of the description.
        """
        return {"type": "text", "text": name * count}

    @lab.skill(mode="long")
    async def stream(ctx: Context, n: int = 3) -> AsyncIterator[dict[str, Any]]:
        for i in range(n):
            await ctx.progress((i + 1) / n, f"step {i + 1}")
            yield {"type": "chunk", "i": i, "task": ctx.task_id, "index": ctx.index}

    @lab.skill()
    async def emits(ctx: Context) -> dict[str, Any]:
        await ctx.output({"type": "early"})
        await ctx.progress(7, "clamped")
        return {"type": "returned", "principal": ctx.principal, "where": f"{ctx.app}/{ctx.skill}"}

    @lab.skill()
    async def nothing() -> None:
        return None

    @lab.skill()
    async def mine(code: str) -> None:
        raise SkillError("my own failure", code=code, details={"hint": "try again"})

    @lab.skill()
    async def crash(ctx: Context) -> None:
        await ctx.output({"type": "before-crash"})
        raise ValueError("secret internals: token=abc123")

    @lab.skill()
    async def maybe(text: str, crash: bool = False) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        if crash:
            raise RuntimeError("crashed on purpose")
        return {"type": "text", "text": text}

    @lab.skill(timeout=0.2)
    async def slow(seconds: float = 30.0) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"type": "slept"}

    @lab.skill()
    async def configured(seconds: float = 30.0) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"type": "slept"}

    @lab.skill(max_requests=2)
    async def pair(text: str) -> dict[str, Any]:
        return {"type": "text", "text": text}

    return lab


@pytest.fixture(scope="module")
def lab_server() -> Iterator[RunningServer]:
    """One server with the lab app for this module (its tests only create tasks)."""
    server = start_server(
        {"skill_timeouts": {"lab.configured": 0.2}, **UNLIMITED}, apps=[lab_app()]
    )
    yield server
    server.stop()


def call(server: RunningServer, skill: str, requests: list[Any], **kwargs: Any) -> Any:
    with server.client() as client:
        response = client.post(
            f"/api/v1/apps/lab/{skill}",
            json={"requests": requests},
            headers={"Prefer": "wait=10"},
            **kwargs,
        )
    return response


# -- registration (no server) ------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "Bad", "has space", "x" * 65, "dot.ted", "ü"])
def test_app_name_must_be_a_slug(name: str) -> None:
    """An app name outside [a-z0-9_-]{1,64} is refused."""
    with pytest.raises(ValueError, match="app name"):
        App(name)


def test_skill_name_must_be_a_slug() -> None:
    """A skill name outside [a-z0-9_-]{1,64} is refused."""
    app = App("a")
    with pytest.raises(ValueError, match="skill name"):

        @app.skill("Not-A-Slug")
        async def s() -> None: ...


def test_skill_must_be_async() -> None:
    """A plain (sync) function cannot be a skill."""
    app = App("a")
    with pytest.raises(TypeError, match="must be async"):

        @app.skill()
        def sync(text: str) -> None: ...


def test_varargs_are_refused() -> None:
    """*args and **kwargs cannot describe an input schema."""
    app = App("a")
    with pytest.raises(TypeError, match=r"\*args"):

        @app.skill()
        async def star(*texts: str) -> None: ...


def test_struct_and_plain_params_do_not_mix() -> None:
    """A skill takes one Struct parameter or plain parameters, not both."""
    app = App("a")
    with pytest.raises(TypeError, match="one Struct"):

        @app.skill()
        async def both(doc: Document, extra: int) -> None: ...


def test_unknown_mode_is_refused() -> None:
    """mode is quick or long."""
    with pytest.raises(ValueError, match="fast"):

        @App("a").skill(mode="fast")
        async def s() -> None: ...


def test_registration_keeps_the_function() -> None:
    """The decorator returns the function itself, still callable."""
    app = App("a")

    async def f(text: str) -> str:
        return text

    assert app.skill()(f) is f
    assert asyncio.run(f("x")) == "x"


def test_decorator_without_parentheses_registers_the_skill() -> None:
    """@app.skill, written without parentheses, registers like @app.skill() and keeps the
    function."""
    app = App("a")

    @app.skill
    async def shout(text: str) -> dict[str, Any]:
        """Shout the text."""
        return {"type": "text", "text": text.upper()}

    spec = app.skills["shout"]
    assert spec.fn is shout
    assert (spec.description, spec.mode.value) == ("Shout the text.", "quick")
    assert spec.input_schema["required"] == ["text"]
    assert asyncio.run(shout("x")) == {"type": "text", "text": "X"}


def test_decorator_without_parentheses_still_checks_the_function() -> None:
    """@app.skill on a plain def fails at import time, as @app.skill() does."""
    app = App("a")
    with pytest.raises(TypeError, match="must be async"):

        @app.skill
        def sync(text: str) -> None: ...


def test_skill_name_must_be_a_string() -> None:
    """A name that is neither a string nor the decorated function is refused at once."""
    with pytest.raises(TypeError, match="a skill name is a string"):
        App("a").skill(42)  # type: ignore[call-overload]


def test_struct_parameter_is_the_input_schema() -> None:
    """A single msgspec.Struct parameter is the input schema, constraints included."""
    spec = lab_app().skills["summarise"]
    assert spec.input_type is Document
    schema = spec.input_schema
    assert schema["type"] == "object"
    assert schema["required"] == ["title"]
    assert schema["properties"]["pages"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 500,
        "default": 1,
    }
    assert schema["properties"]["tags"]["type"] == "array"
    assert spec.description == "Summarise a document."


def test_annotated_parameters_are_the_input_schema() -> None:
    """Plain parameters become the schema; msgspec.Meta constraints and defaults show in it."""
    spec = lab_app().skills["constrained"]
    schema = spec.input_schema
    assert schema["required"] == ["name"]
    assert schema["properties"]["name"] == {
        "type": "string",
        "minLength": 2,
        "maxLength": 5,
        "pattern": "^[a-z]+$",
    }
    assert schema["properties"]["count"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 3,
        "default": 1,
    }
    assert spec.description == "Repeat a short lowercase name."  # the docstring's first paragraph
    assert spec.mode == "quick"


def test_context_parameter_is_not_input() -> None:
    """A parameter annotated Context receives the context and is not part of the schema."""
    spec = lab_app().skills["stream"]
    assert spec.context_param == "ctx"
    assert list(spec.input_schema["properties"]) == ["n"]
    assert spec.is_generator
    assert spec.mode == "long"
    assert lab_app().skills["nothing"].input_schema["properties"] == {}


def test_registry_refuses_two_apps_of_one_name() -> None:
    """Two different apps with the same name cannot be loaded together."""
    with pytest.raises(ValueError, match="two apps"):
        Registry([App("same"), App("same")], max_requests=5)


def test_registry_lookup() -> None:
    """The registry finds a skill by app and name; anything else is NotFound."""
    registry = Registry([lab_app()], max_requests=5)
    assert registry.get("lab", "pair").name == "pair"
    assert registry.max_requests(registry.get("lab", "pair")) == 2
    assert registry.max_requests(registry.get("lab", "nothing")) == 5
    with pytest.raises(NotFound):
        registry.get("lab", "missing")
    with pytest.raises(NotFound):
        registry.get("missing", "pair")


def test_load_app_by_path() -> None:
    """load_app imports "module:attr" and checks that it is an App."""
    app = load_app("tests.server.sample_apps:sample")
    assert app.name == "sample"
    with pytest.raises(ValueError, match="module:attr"):
        load_app("tests.server.sample_apps")
    with pytest.raises(TypeError, match="not a skillwire App"):
        load_app("tests.server.sample_apps:not_an_app")
    with pytest.raises(ModuleNotFoundError):
        load_app("tests.server.no_such_module:app")


# -- over HTTP ---------------------------------------------------------------------------
def test_custom_app_is_listed_with_its_schemas(lab_server: RunningServer) -> None:
    """A registered app appears in /api/v1/apps beside demo, with mode, schema and limits."""
    with lab_server.client() as client:
        apps = client.get("/api/v1/apps").json()["items"]
        skill = client.get("/api/v1/apps/lab/constrained").json()
        pair = client.get("/api/v1/apps/lab/pair").json()
    assert [a["app"] for a in apps] == ["demo", "lab"]
    lab = next(a for a in apps if a["app"] == "lab")
    assert {s["skill"] for s in lab["skills"]} == set(lab_app().skills)
    assert skill["input_schema"]["properties"]["count"]["maximum"] == 3
    assert skill["input_schema"]["properties"]["name"]["pattern"] == "^[a-z]+$"
    assert skill["mode"] == "quick"
    assert skill["max_requests"] == 5
    assert pair["max_requests"] == 2
    assert next(s for s in lab["skills"] if s["skill"] == "stream")["mode"] == "long"


def test_struct_input_reaches_the_skill(lab_server: RunningServer) -> None:
    """A Struct-typed skill gets the decoded Struct, defaults filled in."""
    response = call(lab_server, "summarise", [{"title": "A", "pages": 3}, {"title": "B"}])
    assert response.status_code == 200
    assert response.json()["previews"] == [
        {"type": "summary", "title": "A", "pages": 3, "tags": []},
        {"type": "summary", "title": "B", "pages": 1, "tags": []},
    ]


@pytest.mark.parametrize(
    ("skill", "request_", "field"),
    [
        ("summarise", {"title": "A", "pages": 0}, "requests[0].pages"),
        ("summarise", {"title": "A", "pages": 501}, "requests[0].pages"),
        ("summarise", {"title": "A", "tags": "x"}, "requests[0].tags"),
        ("constrained", {"name": "a"}, "requests[0].name"),
        ("constrained", {"name": "abcdef"}, "requests[0].name"),
        ("constrained", {"name": "ABC"}, "requests[0].name"),
        ("constrained", {"name": "abc", "count": 4}, "requests[0].count"),
        ("constrained", {"name": "abc", "count": 1.5}, "requests[0].count"),
    ],
)
def test_constraints_are_enforced_with_422(
    lab_server: RunningServer, skill: str, request_: dict[str, Any], field: str
) -> None:
    """A request breaking a Meta constraint answers 422 naming the field and constraint."""
    error = assert_error(call(lab_server, skill, [request_]), 422, "VALIDATION_ERROR")
    assert error["details"]["field"] == field
    assert error["details"]["constraint"]


def test_max_requests_per_skill(lab_server: RunningServer) -> None:
    """A skill's own max_requests caps the call: three requests to a pair skill answer 422."""
    error = assert_error(
        call(lab_server, "pair", [{"text": "a"}, {"text": "b"}, {"text": "c"}]),
        422,
        "VALIDATION_ERROR",
    )
    assert error["details"]["field"] == "requests"
    assert call(lab_server, "pair", [{"text": "a"}, {"text": "b"}]).status_code == 200


def test_async_generator_streams_outputs_with_progress(lab_server: RunningServer) -> None:
    """An async generator's items are outputs, in order, each after its progress event."""
    response = call(lab_server, "stream", [{"n": 3}, {"n": 2}])
    assert response.status_code == 200
    task = response.json()
    task_id = task["task_id"]
    assert task["previews"] == [
        {"type": "chunk", "i": 0, "task": task_id, "index": 0},
        {"type": "chunk", "i": 1, "task": task_id, "index": 0},
        {"type": "chunk", "i": 2, "task": task_id, "index": 0},
        {"type": "chunk", "i": 0, "task": task_id, "index": 1},
        {"type": "chunk", "i": 1, "task": task_id, "index": 1},
    ]
    first = [e for e in events_of(lab_server, task_id) if e.get("index") == 0]
    assert [e["type"] for e in first] == [
        "request.started",
        *["request.progress", "request.output"] * 3,
        "request.completed",
    ]
    assert [e["data"]["message"] for e in first if e["type"] == "request.progress"] == [
        "step 1",
        "step 2",
        "step 3",
    ]
    assert task["requests"][0]["progress"] == 1.0


def test_context_output_and_return_value(lab_server: RunningServer) -> None:
    """ctx.output emits at once, the return value is one more output; progress is clamped."""
    response = call(lab_server, "emits", [{}])
    task = response.json()
    assert task["previews"] == [
        {"type": "early"},
        {"type": "returned", "principal": "admin", "where": "lab/emits"},
    ]
    events = events_of(lab_server, task["task_id"])
    progress = [e for e in events if e["type"] == "request.progress"]
    assert progress[0]["data"] == {"progress": 1.0, "message": "clamped"}


def test_returning_none_is_no_output(lab_server: RunningServer) -> None:
    """A skill that returns None completes with no output."""
    task = call(lab_server, "nothing", [{}]).json()
    assert task["status"] == "completed"
    assert task["previews"] == []
    assert task["requests"][0]["output"] == []


def test_skill_error_code_reaches_the_client(lab_server: RunningServer) -> None:
    """A SkillError's own code, message and details become request.failed."""
    task = call(lab_server, "mine", [{"code": "MY_CODE"}]).json()
    assert task["status"] == "failed"
    assert task["requests"][0]["error"] == {
        "code": "MY_CODE",
        "message": "my own failure",
        "details": {"hint": "try again"},
    }
    failed = [e for e in events_of(lab_server, task["task_id"]) if e["type"] == "request.failed"]
    assert failed[0]["data"]["error"]["code"] == "MY_CODE"


def test_unexpected_exception_is_internal_error(
    lab_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Any other exception fails the request with INTERNAL_ERROR, a generic message, a log line."""
    caplog.set_level(logging.ERROR)
    response = call(lab_server, "crash", [{}])
    task = response.json()
    error = task["requests"][0]["error"]
    assert error["code"] == "INTERNAL_ERROR"
    assert error["message"] == "the skill raised an unexpected error"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert "ValueError" not in response.text
    assert task["previews"] == [{"type": "before-crash"}]  # what it emitted before is kept
    assert "secret internals" in caplog.text  # the traceback is in the log
    assert task["task_id"] in caplog.text


def test_failing_sibling_does_not_stop_the_others(lab_server: RunningServer) -> None:
    """One request raising does not stop its siblings: the task ends partial."""
    task = call(
        lab_server, "maybe", [{"text": "a"}, {"text": "b", "crash": True}, {"text": "c"}]
    ).json()
    assert task["status"] == "partial"
    assert [r["status"] for r in task["requests"]] == ["completed", "failed", "completed"]
    assert task["requests"][1]["error"]["code"] == "INTERNAL_ERROR"
    assert task["previews"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "c"}]


def test_per_skill_timeout(lab_server: RunningServer) -> None:
    """A skill past its own timeout (App.skill(timeout=0.2)) fails with TIMEOUT."""
    task = call(lab_server, "slow", [{}]).json()
    assert task["status"] == "failed"
    error = task["requests"][0]["error"]
    assert error["code"] == "TIMEOUT"
    assert "0.2" in error["message"]


def test_skill_timeouts_config_key(lab_server: RunningServer) -> None:
    """skill_timeouts["app.skill"] in the config sets a skill's timeout."""
    task = call(lab_server, "configured", [{}, {"seconds": 0}]).json()
    assert task["status"] == "partial"
    assert task["requests"][0]["error"]["code"] == "TIMEOUT"
    assert task["requests"][1]["status"] == "completed"


@pytest.mark.parametrize("backbone", ["memory"])
def test_skill_timeouts_config_overrides_the_decorator(
    server_factory: Callable[..., RunningServer],
) -> None:
    """skill_timeouts beats App.skill(timeout=...): a longer configured timeout lets it finish."""
    server = server_factory({"skill_timeouts": {"lab.slow": 30}}, apps=[lab_app()])
    task = call(server, "slow", [{"seconds": 0.3}]).json()
    assert task["status"] == "completed"


@pytest.mark.parametrize("backbone", ["memory"])
def test_default_skill_timeout(server_factory: Callable[..., RunningServer]) -> None:
    """skill_timeout sets the timeout of every skill that names none."""
    server = server_factory({"skill_timeout": 0.2}, apps=[lab_app()])
    task = call(server, "configured", [{}]).json()
    assert task["requests"][0]["error"]["code"] == "TIMEOUT"


@pytest.mark.parametrize("backbone", ["memory"])
def test_apps_by_path_and_without_demo(server_factory: Callable[..., RunningServer]) -> None:
    """create_app loads "module:attr" apps, from its argument or config.apps; demo can be off."""
    by_argument = server_factory({"demo": False}, apps=["tests.server.sample_apps:sample"])
    by_config = server_factory({"apps": ["tests.server.sample_apps:sample"]})
    with by_argument.client() as client:
        assert [a["app"] for a in client.get("/api/v1/apps").json()["items"]] == ["sample"]
        shout = client.post("/api/v1/apps/sample/shout", json={"requests": [{"text": "hey"}]})
        assert shout.json()["previews"] == [{"type": "text", "text": "HEY"}]
        missing = client.post("/api/v1/apps/demo/echo", json={"requests": [{"text": "a"}]})
        assert_error(missing, 404, "NOT_FOUND")
    with by_config.client() as client:
        names = [a["app"] for a in client.get("/api/v1/apps").json()["items"]]
    assert names == ["demo", "sample"]


@pytest.mark.parametrize("backbone", ["memory"])
def test_quick_call_over_the_quick_wait_is_202(
    server_factory: Callable[..., RunningServer],
) -> None:
    """A quick skill still running after quick_wait answers 202 with Location."""
    server = server_factory({"quick_wait": 0.2}, apps=[lab_app()])
    with server.client() as client:
        response = client.post("/api/v1/apps/lab/configured", json={"requests": [{"seconds": 30}]})
        assert response.status_code == 202
        assert response.headers["location"] == response.json()["links"]["self"]
        client.delete(response.headers["location"])
        assert finished(client, response.json()["task_id"])["status"] == "cancelled"
