"""Agent answers into dataclasses, checked field by field where they cross the wire.

The agent writes JSON; the host reads it once, here, against the dataclass's own type
hints, so that the rest of the host indexes typed fields instead of dictionary keys and a
malformed answer is one sentence naming the key, not a KeyError three modules later.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from edgekit.errors import DeviceError

T = TypeVar("T")


def parse(cls: type[T], data: Any, what: str) -> T:
    """``data`` as a ``cls``; ``what`` names the answer in the error ("the device's build answer")."""
    return typing.cast(T, _value(cls, data, what, ""))


def _value(kind: Any, value: Any, what: str, key: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _value(inner, value, what, key)
    if dataclasses.is_dataclass(kind):
        return _dataclass(typing.cast(type, kind), _checked(value, dict, what, key), what, key)
    if origin is list:
        return [
            _value(args[0], item, what, f"{key}[{index}]")
            for index, item in enumerate(_checked(value, list, what, key))
        ]
    if origin is dict:
        mapping = _checked(value, dict, what, key)
        return {name: _value(args[1], item, what, f"{key}.{name}") for name, item in mapping.items()}
    if kind is float:
        # JSON has no int/float split: a whole-number float may arrive as an int.
        return float(_checked(value, (int, float), what, key))
    return _checked(value, kind, what, key)


def _dataclass(cls: type, data: dict[str, Any], what: str, key: str) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        path = f"{key}.{field.name}" if key else field.name
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        if field.name not in data and has_default:
            continue
        values[field.name] = _value(hints[field.name], data.get(field.name), what, path)
    return cls(**values)


def _checked(value: Any, kind: type | tuple[type, ...], what: str, key: str) -> Any:
    # bool is an int to isinstance, but never a number in an answer.
    if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
        return value
    name = kind.__name__ if isinstance(kind, type) else "number"
    raise DeviceError(
        f"{what[:1].upper()}{what[1:]} has {key or 'no answer'} = {value!r}, not {_article(name)} {name}; "
        "the agent on the device may be of another edgekit, re-run edgekit provision."
    )


def _article(name: str) -> str:
    return "an" if name[:1] in "aeiou" else "a"
