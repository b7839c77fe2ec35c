"""The shape of every PATCH body, stated in its JSON schema as well as enforced.

Only the fields sent change, at least one must be sent, and a field is null only where
null means something (`clearable`: e.g. a customer's email, cleared). The schema says
the same (`minProperties: 1`, no `null` outside `clearable`), so a client generated
from the OpenAPI document cannot build a body the route refuses.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator


def _state_rules(schema: dict[str, Any], model: type[BaseModel]) -> None:
    clearable: frozenset[str] = getattr(model, "clearable", frozenset())
    schema["minProperties"] = 1
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if name in clearable or not options:
            continue
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            prop.pop("anyOf")
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept
        if prop.get("default", "") is None:
            prop.pop("default")


class PatchBody(BaseModel):
    """Base of PATCH bodies: at least one field, and null only for `clearable` fields."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_state_rules)
    clearable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _sent_and_not_null(self) -> Self:
        if not self.model_fields_set:
            raise ValueError(f"send at least one of: {', '.join(type(self).model_fields)}")
        for name in sorted(self.model_fields_set - self.clearable):
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self
