"""One loader for every YAML config (build, training, translator): a mapping becomes a dataclass, checked.

- `load_yaml(path)`: the file's top-level mapping; errors name the file and what to do.
- `apply_overrides(mapping, ["seed=3", "translator.model=M"])`: command-line `key=value` overrides, dotted
  keys reach into sections, values read as YAML (numbers, booleans, null, lists).
- `from_mapping(cls, mapping, where)`: the dataclass `cls` from a mapping. Unknown keys are refused with
  the known ones; a field whose type is a dataclass is read from a nested mapping the same way; a string
  given to a number field is read as a number, since YAML reads `2e-5` (no dot) as a string.

Every problem is a `ConfigError` whose message starts with where the value came from.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from qilin_med_vl.errors import QilinError


class ConfigError(QilinError):
    """A configuration file or `key=value` override is invalid."""


def load_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist; the shipped ones are in configs/")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def parse_value(text: str) -> Any:
    """An override's value the way YAML would read it."""
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(mapping: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `mapping` with `key=value` / `section.key=value` overrides applied."""
    merged = yaml.safe_load(yaml.safe_dump(mapping)) or {}
    for item in overrides:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value (e.g. seed=3 or translator.model=gpt-4o)")
        target = merged
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {item!r}: {parent} is not a section")
        target[leaf] = parse_value(value)
    return merged


def _number_types(hint: Any) -> tuple[type, ...]:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return tuple(kind for kind in allowed if kind in (int, float))


def _nested_dataclass(hint: Any) -> type | None:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return next((kind for kind in allowed if dataclasses.is_dataclass(kind)), None)


def from_mapping(cls: type, mapping: Any, where: str) -> Any:
    """`cls(**mapping)`, checked and with number strings read as numbers (see the module docstring)."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {mapping!r}")
    known = [item.name for item in dataclasses.fields(cls)]
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in mapping.items():
        nested = _nested_dataclass(hints[name])
        numbers = _number_types(hints[name])
        if nested is not None and isinstance(value, dict):
            value = from_mapping(nested, value, f"{where}: {name}")
        elif isinstance(value, str) and numbers:
            try:
                value = float(value) if float in numbers else int(value)
            except ValueError:
                raise ConfigError(f"{where}: {name}={value!r} is not a number") from None
        values[name] = value
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{where}: {error}") from error
