"""Skills declared by a JSON Schema (remote workers' and HTTP skills): their requests are
checked against it with a well-kept validator (jsonschema) instead of a msgspec type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec

from skillwire.protocol import SkillDeclaration, ValidationError

__all__ = ["RawInput", "check_schema", "schema_checker"]


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
