"""JSON values checked against a dataclass's field types: a wrong type is named, never silently cast or cut."""

from __future__ import annotations

import math
from dataclasses import fields

from cifar_core.errors import LabError


class FieldError(LabError):
    """A value that does not fit its field; the message names the field and the value."""


def typed_fields(raw: dict, cls, where: str) -> dict:
    """The values of `raw` that are fields of `cls`, each checked against the field's type annotation."""
    out = {}
    for f in fields(cls):
        if f.name in raw:
            value = raw[f.name]
            try:
                out[f.name] = cast(value, str(f.type))
            except (TypeError, ValueError, OverflowError):
                raise FieldError(f"In {where}, {f.name}={value!r} is not a valid {f.type}.") from None
    return out


def cast(value, type_name: str):
    """`value` as `type_name` ('int', 'float', 'bool', 'str', 'tuple[int, ...]', or 'X | None')."""
    if type_name.endswith(" | None"):
        return None if value is None else cast(value, type_name.removesuffix(" | None"))
    if type_name == "tuple[int, ...]":
        if not isinstance(value, list | tuple):
            raise TypeError
        return tuple(cast(v, "int") for v in value)
    if type_name in ("bool", "str"):
        if type(value).__name__ != type_name:
            raise TypeError
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError
    if type_name == "int":
        if value != int(value):
            raise ValueError
        return int(value)
    if type_name == "float":
        return float(value)
    raise TypeError(f"unsupported field type {type_name}")
