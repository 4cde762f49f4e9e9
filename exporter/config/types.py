"""The building blocks of the configuration's pydantic models.

:class:`Section` is the base of every mapping in the file: unknown keys are
reported with a "did you mean" hint, a key mistyped does not also report the
key it was meant to be as missing, and pydantic's errors become one-line
messages.  The annotated types below validate one value each; they expand
``${VAR}`` (with the :class:`Ctx` given as validation context) and quote a
value only as written in the file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, ClassVar, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, \
    WithJsonSchema, model_validator

from exporter.config import env as envvars
from exporter.config.errors import bad, custom, fmt_seconds, raise_all, show, suggest, typename

__all__ = ["Ctx", "Section", "parse_duration"]


@dataclass(frozen=True)
class Ctx:
    """What validators need beyond the value: the environment, the base of relative paths, where we are."""

    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    base_dir: str = ""
    #: the path of the account being validated, for messages that point at a sibling ("also accounts[0].spaces[1]")
    path: str = ""


def ctx_of(info: ValidationInfo) -> Ctx:
    return info.context if isinstance(info.context, Ctx) else Ctx()


class Section(BaseModel):
    """A mapping of the configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    #: per field: the hint after "required"
    required_hints: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def file_keys(cls) -> dict[str, str]:
        """Key in the file → field name."""
        return {(f.alias or name): name for name, f in cls.model_fields.items()}

    @classmethod
    def required_hint(cls, key: str) -> str | None:
        return cls.required_hints.get(key)

    @classmethod
    def unknown_key(cls, key: str) -> str:
        hint = suggest(key, cls.file_keys())
        return f'unknown key (did you mean "{hint}"?)' if hint else "unknown key"

    @classmethod
    def not_a_mapping(cls, data: Any) -> str:
        return "required" if data is None else f"must be a mapping, got {typename(data)}"

    @model_validator(mode="wrap")
    @classmethod
    def _check_keys(cls, data: Any, handler: Callable) -> Any:
        if isinstance(data, BaseModel):
            return handler(data)
        if not isinstance(data, dict):
            bad(cls.not_a_mapping(data))
        keys = cls.file_keys()
        errors: list[dict] = []
        meant: set[str | None] = set()
        for key in data:
            if not isinstance(key, str):
                errors.append(custom((), f"keys must be strings, got {typename(key)} key {show(key)}"))
            elif key not in keys:
                errors.append(custom((key,), cls.unknown_key(key)))
                meant.add(suggest(key, keys))
        clean = {k: v for k, v in data.items() if k in keys} if errors else data
        try:
            result = handler(clean)
        except ValidationError as e:
            for entry in e.errors(include_url=False):
                loc = entry["loc"]
                if entry["type"] == "missing" and len(loc) == 1:
                    if loc[0] in meant:
                        continue  # "nmae: unknown key (did you mean "name"?)" says it all
                    hint = cls.required_hint(str(loc[0]))
                    entry = custom(loc, f"required ({hint})" if hint else "required")
                errors.append(entry)
            result = None
        raise_all(errors)
        return result


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------

def _expand(raw: str, info: ValidationInfo) -> str:
    try:
        return envvars.expand(raw, ctx_of(info).env)
    except envvars.EnvError as e:
        bad(str(e))


def text_value(raw: Any, info: ValidationInfo) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        hint = " (quote it in YAML)" if isinstance(raw, (bool, int, float)) else ""
        bad(f"must be a string, got {typename(raw)}{hint}")
    return _expand(raw, info)


def _required(value: Any) -> Any:
    if value is None:
        bad("required")
    return value


ENV_REF_PATTERN = r"\$\{"
ENV_STRING = {"type": "string", "pattern": ENV_REF_PATTERN}


def _nullable(schema: dict) -> dict:
    variants = schema["anyOf"] if set(schema) == {"anyOf"} else [schema]
    return {"anyOf": [*variants, {"type": "null"}]}


def value_type(py_type: Any, parse: Callable, schema: dict, *, required: bool = False) -> Any:
    """An annotated type: *parse* turns the raw value (never None) into *py_type*; None means unset."""
    def validate(raw: Any, info: ValidationInfo) -> Any:
        if raw is None:
            return _required(raw) if required else None
        return parse(raw, info)

    return Annotated[py_type if required else Optional[py_type], BeforeValidator(validate),
                     WithJsonSchema(schema if required else _nullable(schema))]


Text = value_type(str, text_value, {"type": "string"}, required=True)


def choice(allowed: tuple[str, ...], what: str, *, required: bool = False) -> Any:
    """One of *allowed* (after ``${VAR}`` expansion), with a "did you mean" hint."""
    def parse(raw: Any, info: ValidationInfo) -> str:
        value = text_value(raw, info)
        if value not in allowed:
            hint = suggest(value, allowed)
            options = ", ".join(f'"{a}"' for a in allowed)
            bad(f"unknown {what} {show(raw)} (allowed: {options})" + (f'; did you mean "{hint}"?' if hint else ""))
        return value

    return value_type(str, parse, {"anyOf": [{"enum": list(allowed)}, ENV_STRING]}, required=required)


_PLAIN_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def number_value(raw: Any, info: ValidationInfo) -> float:
    """A plain number; a string only through ``${VAR}``."""
    if isinstance(raw, bool):
        bad("must be a number, got boolean")
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str) and "${" in raw:
        text = _expand(raw, info).strip()
        if not _PLAIN_NUMBER_RE.fullmatch(text):
            bad(f"must be a number ({show(raw)} did not expand to a number)")
        value = float(text)
    elif isinstance(raw, str):
        bad(f"must be a number, got string {show(raw)}")
    else:
        bad(f"must be a number, got {typename(raw)}")
    if not math.isfinite(value):
        bad("must be a finite number")
    return value


Number = value_type(float, number_value, {"anyOf": [{"type": "number"}, ENV_STRING]})

_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_ORDER = ("h", "m", "s", "ms")
DURATION_PATTERN = r"^\s*((\d+(\.\d+)?|\.\d+)(h|m|s|ms))+\s*$|^\s*(\d+(\.\d*)?|\.\d+)\s*$|\$\{"
_DURATION_HELP = "use e.g. 90s, 5m, 1h30m, 500ms or a number of seconds"


def parse_duration(text: str) -> float:
    """``"90s"``, ``"5m"``, ``"1h30m"``, ``"250ms"`` or ``"60"`` in seconds; raises ValueError."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    if _PLAIN_NUMBER_RE.fullmatch(s):
        value = float(s)
        if not math.isfinite(value):
            raise ValueError("duration must be finite")
        return value
    pos, total, last_rank = 0, 0.0, -1
    for m in _DURATION_PART_RE.finditer(s):
        if m.start() != pos:
            raise ValueError("malformed duration")
        rank = _DURATION_ORDER.index(m.group(2))
        if rank <= last_rank:
            raise ValueError("duration units must be in the order h, m, s, ms, each at most once")
        last_rank = rank
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or last_rank < 0:
        raise ValueError("malformed duration")
    return total


def _duration(raw: Any, info: ValidationInfo) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        bad(f"must be a duration (e.g. 90s, 5m, 1h30m or a number of seconds), got {typename(raw)}")
    if not isinstance(raw, str):
        if not math.isfinite(raw):
            bad("must be a finite duration")
        return float(raw)
    text = _expand(raw, info)
    try:
        return parse_duration(text)
    except ValueError:
        bad(f"invalid duration {show(raw)} ({_DURATION_HELP})")


Duration = value_type(float, _duration, {"anyOf": [{"type": "number", "minimum": 0},
                                                  {"type": "string", "pattern": DURATION_PATTERN}]})


# -- checks on a parsed value (None: unset, nothing to check) ----------------

def rule(ok: Callable[[Any], bool], message: str, fmt: Callable[[Any], str] = fmt_seconds) -> AfterValidator:
    """Refuse a set value for which *ok* is false; *message* may show it as ``{got}``."""
    def check(value: Any) -> Any:
        if value is not None and not ok(value):
            bad(message.format(got=fmt(value)))
        return value
    return AfterValidator(check)


def between(lo: float, hi: float) -> AfterValidator:
    return rule(lambda v: lo <= v <= hi, f"must be between {fmt_seconds(lo)} and {fmt_seconds(hi)}, got {{got}}")


NotNegative = rule(lambda v: v >= 0, "must not be negative, got {got}")
QPS_MAX = 1000.0
QPS_RULE = rule(lambda v: 0 < v <= QPS_MAX, f"must be greater than 0 and at most {QPS_MAX:g}, got {{got}}", "{:g}".format)
Qps = Annotated[Number, QPS_RULE]


def whole_number(lo: int, hi: int, low_text: str) -> Any:
    """A whole number from *lo* to *hi* (a number, or a string through ``${VAR}``)."""
    schema = {"anyOf": [{"type": "integer", "minimum": lo, "maximum": hi}, ENV_STRING]}
    ok = rule(lambda v: float(v).is_integer() and lo <= v <= hi,
              f"must be a whole number from {low_text} to {hi}, got {{got}}", "{:g}".format)
    return Annotated[value_type(float, number_value, schema), ok, AfterValidator(lambda v: v if v is None else int(v))]
