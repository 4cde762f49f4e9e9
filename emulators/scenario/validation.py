"""Fault kinds, the scenario error and the small validation helpers of the scenario loader."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

FAULT_KINDS = (
    "error",
    "delay",
    "malformed",
    "html",
    "reset",
    "truncate",
    "oversize",
    "refuse",
    "unknown_enum",
    "null_fields",
    "duplicate_numbers",
    "hang",
)


#: faults that alter the content of a successful answer (only actions that list numbers)
DATA_FAULT_KINDS = frozenset({"unknown_enum", "null_fields", "duplicate_numbers"})


#: faults that alter the emulator's outgoing webhooks, never an answer (see the module docstring)
WEBHOOK_FAULT_KINDS = ("webhook_bad_signature", "webhook_drop")


MAX_OVERSIZE_MEGABYTES = 1024


_ATTR_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ScenarioError(ValueError):
    """A scenario is invalid; ``path`` names the offending key (e.g. ``spaces[0].numbers[1].status``)."""

    def __init__(self, path: str, message: str, source: str | None = None):
        self.path = path or "<root>"
        self.message = message
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{self.path}: {message}")


# ---------------------------------------------------------------------------
# small validation helpers


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(path, f"expected a mapping, got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ScenarioError(path, f"keys must be strings, got {key!r}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScenarioError(path, f"expected a list, got {_type_name(value)}")
    return value


def _check_keys(value: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    allowed = set(allowed)
    for key in value:
        if key not in allowed:
            raise ScenarioError(_join(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")


@overload
def _string(value: Any, path: str, *, required: Literal[True] = True, allow_empty: bool = False) -> str: ...


@overload
def _string(value: Any, path: str, *, required: bool, allow_empty: bool = False) -> str | None: ...


def _string(value: Any, path: str, *, required: bool = True, allow_empty: bool = False) -> str | None:
    if value is None:
        if required:
            raise ScenarioError(path, "is required")
        return None
    if not isinstance(value, str):
        hint = " (quote it in YAML)" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise ScenarioError(path, f"expected a string, got {_type_name(value)} {value!r}{hint}")
    if not value and not allow_empty:
        raise ScenarioError(path, "must not be empty")
    return value


def _bool(value: Any, path: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ScenarioError(path, f"expected true or false, got {_type_name(value)} {value!r}")
    return value


@overload
def _int(
    value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None, nullable: Literal[False]
) -> int: ...


@overload
def _int(
    value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None, nullable: bool = True
) -> int | None: ...


def _int(
    value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None, nullable: bool = True
) -> int | None:
    if value is None:
        if nullable:
            return None
        raise ScenarioError(path, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(path, f"expected an integer, got {_type_name(value)} {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(path, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ScenarioError(path, f"must be <= {maximum}, got {value}")
    return value


def parse_duration(value: Any, path: str = "duration") -> float:
    """Seconds from a number or a string like ``"90s"``, ``"5m"``, ``"1m30s"``, ``"250ms"``."""
    if isinstance(value, bool) or value is None:
        raise ScenarioError(path, f"expected a duration, got {_type_name(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ScenarioError(
                    path, f"invalid duration {value!r} (use seconds or e.g. '90s', '5m', '1h', '1m30s')"
                ) from None
    else:
        raise ScenarioError(path, f"expected a duration, got {_type_name(value)}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ScenarioError(path, f"must be a finite duration >= 0, got {value!r}")
    return seconds


def _json_like(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ScenarioError(path, "NaN and infinity cannot be sent as JSON")
        return value
    if isinstance(value, list):
        return [_json_like(v, _join(path, i)) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _json_like(v, _join(path, k)) for k, v in _mapping(value, path).items()}
    raise ScenarioError(path, f"unsupported value of type {type(value).__name__} (dates must be quoted)")


def _attributes(raw: Mapping[str, Any], reserved: Iterable[str], path: str) -> dict[str, Any]:
    """Attribute keys are snake_case; values are JSON-like; ``present`` must be a boolean."""
    reserved = set(reserved)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in reserved:
            continue
        kpath = _join(path, key)
        if not _ATTR_NAME.match(key):
            raise ScenarioError(kpath, "attribute names must be snake_case ([a-z][a-z0-9_]*)")
        if key == "present":
            out[key] = _bool(value, kpath, True)
        elif key == "wire_extra":
            out[key] = _json_like(_mapping(value, kpath), kpath) if value is not None else None
        else:
            out[key] = _json_like(value, kpath)
    return out
