"""YAML configs read into typed, frozen dataclasses.

A config file is read with ``yaml.safe_load`` and checked field by field against a dataclass: an unknown
field, a missing required field or a value of the wrong type is a :class:`ConfigError` that names the field
and the file. CLI overrides are ``dotted.key=value`` strings whose value is parsed as YAML.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union

import yaml

T = TypeVar("T")

__all__ = ["ConfigError", "load_config", "from_dict", "apply_overrides", "to_dict", "parse_budget", "budget_label"]


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the field."""


def load_config(path: str | Path, cls: type[T], overrides: Sequence[str] = ()) -> T:
    """Read ``path`` (YAML) into dataclass ``cls``, after applying ``key.path=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields, got {type(data).__name__}")
    data = apply_overrides(data, overrides)
    return from_dict(cls, data, source=str(path))


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``dotted.key=value`` override set (value parsed as YAML)."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected the form dotted.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return result


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<dict>") -> T:
    """Build dataclass ``cls`` from a mapping, checking names and types; errors name ``source``."""
    return _build(cls, data, source, prefix="")


def to_dict(obj: Any) -> Any:
    """A dataclass config as plain YAML/JSON-serialisable data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    where = prefix.rstrip(".") or "<top level>"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: field '{where}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(f"'{prefix}{name}'" for name in unknown)
        raise ConfigError(f"{source}: unknown field {names}; known fields of '{where}': {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], source, f"{prefix}{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: required field '{prefix}{name}' is missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: section '{where}': {exc}") from exc


def _coerce(tp: Any, value: Any, source: str, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, source, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{source}: field '{name}': {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: field '{name}': {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, source, prefix=f"{name}.")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: field '{name}': expected a list, got {value!r}")
        item_types = args[:1] if origin is list or (len(args) == 2 and args[1] is Ellipsis) else args
        if origin is tuple and item_types is args and len(args) != len(value):
            raise ConfigError(f"{source}: field '{name}': expected {len(args)} items, got {len(value)}")
        items = [
            _coerce(item_types[i] if len(item_types) > 1 else (item_types[0] if item_types else Any), v, source, f"{name}[{i}]")
            for i, v in enumerate(value)
        ]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: field '{name}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: field '{name}': expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: field '{name}': expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: field '{name}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: field '{name}': expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: field '{name}': expected a path string, got {value!r}")
        return Path(value)
    raise TypeError(f"config type {tp!r} of field '{name}' is not supported")


def parse_budget(value: Union[float, str]) -> float:
    """``0.0157``, ``"4/255"`` or ``"0.5"`` → a positive float."""
    try:
        budget = float(Fraction(str(value).replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"budget {value!r} is not a number or a fraction like 4/255") from None
    if budget <= 0:
        raise ValueError(f"budgets must be positive, got {value!r}")
    return budget


def budget_label(value: Union[float, str]) -> str:
    """How a budget is shown: as written (``4/255``) or as a short number."""
    return str(value).replace(" ", "") if isinstance(value, str) else f"{value:g}"
