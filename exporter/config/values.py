"""The building blocks of the file models: :class:`Section` for mappings, ``${VAR}``, annotated value types.

A :class:`Section` reports unknown keys with a "did you mean" hint (and then
not the key meant as missing).  A value type validates one value with a
message of its own, expands ``${VAR}`` and quotes a value only as written;
null means unset (the default).  A value type is ``Annotated[T | None, Parsed(parse, schema)]``:
the type checker sees ``T | None``, pydantic the parse function and the JSON Schema.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails

from exporter.config.errors import bad, custom, did_you_mean, fmt_seconds, raise_all, show, suggest, typename


class Section(BaseModel):
    """A mapping of the configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @classmethod
    def file_keys(cls) -> dict[str, str]:
        """Key in the file → field name."""
        return {(f.alias or name): name for name, f in cls.model_fields.items()}

    @classmethod
    def unknown_key(cls, key: str) -> str:
        return "unknown key" + did_you_mean(key, cls.file_keys())

    @classmethod
    def not_a_mapping(cls, data: Any) -> str:
        return "required" if data is None else f"must be a mapping, got {typename(data)}"

    @model_validator(mode="wrap")
    @classmethod
    def _check_keys(cls, data: Any, handler: ModelWrapValidatorHandler[Section]) -> Any:
        if isinstance(data, BaseModel):
            return handler(data)
        if not isinstance(data, dict):
            bad(cls.not_a_mapping(data))
        keys = cls.file_keys()
        errors: list[ErrorDetails] = []
        meant: set[str | None] = set()
        for key in data:
            if not isinstance(key, str):
                errors.append(custom((), f"keys must be strings, got {typename(key)} key {show(key)}"))
            elif key not in keys:
                errors.append(custom((key,), cls.unknown_key(key)))
                meant.add(suggest(key, keys))
        # A required key left out is null, for its own validator to say what it needs ("required (a list of
        # ...)"); unless a mistyped key meant it: 'nmae: unknown key (did you mean "name"?)' says it all.
        left_out = {
            k: None
            for k, name in keys.items()
            if k not in data and k not in meant and cls.model_fields[name].is_required()
        }
        try:
            result = handler({k: v for k, v in data.items() if k in keys} | left_out)
        except ValidationError as e:
            result = None
            errors += [entry for entry in e.errors(include_url=False) if entry["type"] != "missing"]
        raise_all(errors)
        return result


# -- values ------------------------------------------------------------------

_DOLLAR_RE = re.compile(r"\$(\$|\{[^}]*\}?|.?)", re.DOTALL)
_REF_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def expand(raw: str, info: ValidationInfo) -> str:
    """*raw* with ``${VAR}`` (an error when unset), ``${VAR:-default}`` (when unset or empty) and ``$$`` replaced.

    ``$NAME`` without braces is an error (a likely typo), any other ``$`` is
    kept.  The environment is the context's ``env``; messages never show a value.
    """
    env = (info.context or {}).get("env", os.environ)

    def one(m: re.Match[str]) -> str:
        token = m.group(1)
        if token == "$":
            return "$"
        if not token.startswith("{"):
            if token.isalpha() or token == "_":
                bad("use ${VAR} to reference an environment variable (write $$ for a literal $)")
            return "$" + token
        if not token.endswith("}"):
            bad("unterminated ${ (write $$ for a literal $)")
        ref = _REF_RE.fullmatch(token[1:-1]) or bad(f"invalid environment reference {show('$' + token)}")
        name, default = ref.groups()
        value: str | None = env.get(name)
        if value is None or (default is not None and value == ""):
            return bad(f"environment variable {name} is not set") if default is None else default
        return value

    return _DOLLAR_RE.sub(one, raw) if "$" in raw else raw


Parse = Callable[[Any, ValidationInfo], Any]
JsonSchema = dict[str, Any]


class Parsed:
    """The metadata of a value type: *parse* turns a raw value (never None) into the value; None means unset.

    Validators that check the parsed value (:func:`rule`) follow it in the ``Annotated``, or come as *then*.
    Pydantic unpacks it into its validators and JSON Schema: it is an ``annotated_types.GroupedMetadata``
    (a protocol: the marker property and ``__iter__``).
    """

    @property
    def __is_annotated_types_grouped_metadata__(self) -> Literal[True]:
        return True

    def __init__(self, parse: Parse, schema: JsonSchema, *, required: bool = False, then: tuple[Any, ...] = ()):
        def validate(raw: Any, info: ValidationInfo) -> Any:
            return parse(raw, info) if raw is not None else bad("required") if required else None

        if not required:
            schema = {"anyOf": [*(schema["anyOf"] if set(schema) == {"anyOf"} else [schema]), {"type": "null"}]}
        self._items = (BeforeValidator(validate), WithJsonSchema(schema), *then)

    def __iter__(self) -> Iterator[object]:
        return iter(self._items)


def text_value(raw: Any, info: ValidationInfo) -> str:
    if not isinstance(raw, str):
        bad(f"must be a string, got {typename(raw)}" + (" (quote it in YAML)" if isinstance(raw, (int, float)) else ""))
    return expand(raw, info)


ENV_STRING = {"type": "string", "pattern": r"\$\{"}


def value_type(py_type: Any, parse: Parse, schema: JsonSchema, *, required: bool = False) -> Any:
    """The annotated type of a field made at run time (``create_model``): *py_type* parsed by *parse*."""
    return Annotated[py_type if required else py_type | None, Parsed(parse, schema, required=required)]


def choose(allowed: tuple[str, ...], what: str) -> Callable[[Any, ValidationInfo], str]:
    """A parser of one of *allowed* (after ``${VAR}`` expansion), with a "did you mean" hint."""

    def parse(raw: Any, info: ValidationInfo) -> str:
        value = text_value(raw, info)
        if value not in allowed:
            hint = suggest(value, allowed)
            options = ", ".join(f'"{a}"' for a in allowed)
            bad(f"unknown {what} {show(raw)} (allowed: {options})" + (f'; did you mean "{hint}"?' if hint else ""))
        return value

    return parse


def choice(allowed: tuple[str, ...], what: str, *, required: bool = False) -> Parsed:
    """One of *allowed*: ``Annotated[str | None, choice(...)]``."""
    return Parsed(choose(allowed, what), {"anyOf": [{"enum": list(allowed)}, ENV_STRING]}, required=required)


_PLAIN_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def number_value(raw: Any, info: ValidationInfo) -> float:
    """A plain number; a string only through ``${VAR}``."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        bad(f"must be a number, got {typename(raw)}")
    if isinstance(raw, str):
        text = expand(raw, info).strip() if "${" in raw else bad(f"must be a number, got string {show(raw)}")
        if not _PLAIN_NUMBER_RE.fullmatch(text):
            bad(f"must be a number ({show(raw)} did not expand to a number)")
        raw = text
    number = float(str(raw))  # a huge integer becomes inf, not an OverflowError
    return number if math.isfinite(number) else bad("must be a finite number")


Number = Annotated[float | None, Parsed(number_value, {"anyOf": [{"type": "number"}, ENV_STRING]})]
_DURATION_RE = re.compile("".join(rf"(?:(\d+(?:\.\d+)?|\.\d+){unit})?" for unit in ("h", "m", "s", "ms")))


def parse_duration(text: str) -> float:
    """``"90s"``, ``"5m"``, ``"1h30m"``, ``"250ms"`` or ``"60"`` in seconds; raises ValueError."""
    s = text.strip()
    if _PLAIN_NUMBER_RE.fullmatch(s):
        if not math.isfinite(float(s)):
            raise ValueError("duration must be finite")
        return float(s)
    m = _DURATION_RE.fullmatch(s)
    if not s or not m:
        raise ValueError("malformed duration: units in the order h, m, s, ms, each at most once")
    return sum(float(n) * size for n, size in zip(m.groups(), (3600, 60, 1, 0.001), strict=True) if n)


def duration_value(raw: Any, info: ValidationInfo) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        bad(f"must be a duration (e.g. 90s, 5m, 1h30m or a number of seconds), got {typename(raw)}")
    if not isinstance(raw, str):
        seconds = float(str(raw))  # a huge integer becomes inf, not an OverflowError
        return seconds if math.isfinite(seconds) else bad("must be a finite duration")
    text = expand(raw, info)
    try:
        return parse_duration(text)
    except ValueError:
        bad(f"invalid duration {show(raw)} (use e.g. 90s, 5m, 1h30m, 500ms or a number of seconds)")


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*((\d+(\.\d+)?|\.\d+)(h|m|s|ms))+\s*$|^\s*(\d+(\.\d*)?|\.\d+)\s*$|\$\{"},
    ]
}
Duration = Annotated[float | None, Parsed(duration_value, _DURATION_SCHEMA)]


# -- checks on a parsed value (None: unset, nothing to check) ----------------


def rule(ok: Callable[[Any], bool], message: str, fmt: Callable[[Any], str] = fmt_seconds) -> AfterValidator:
    """Refuse a set value for which *ok* is false; *message* may show it as ``{got}``."""
    return AfterValidator(lambda v: v if v is None or ok(v) else bad(message.format(got=fmt(v))))


def between(lo: float, hi: float) -> AfterValidator:
    return rule(lambda v: lo <= v <= hi, f"must be between {fmt_seconds(lo)} and {fmt_seconds(hi)}, got {{got}}")


NotNegative = rule(lambda v: v >= 0, "must not be negative, got {got}")


def check_qps(v: Any) -> Any:
    return v if v is None or 0 < v <= 1000 else bad(f"must be greater than 0 and at most 1000, got {v:g}")


QPS_RULE = AfterValidator(check_qps)
Qps = Annotated[Number, QPS_RULE]


def whole_number(lo: int, hi: int, low_text: str) -> Parsed:
    """A whole number from *lo* to *hi* (a number, or a string through ``${VAR}``): ``Annotated[float | None, ...]``.

    Parsed as a float (so that 2.5 gets this message, not pydantic's), then made an int.
    """
    ok = rule(
        lambda v: float(v).is_integer() and lo <= v <= hi,
        f"must be a whole number from {low_text} to {hi}, got {{got}}",
        "{:g}".format,
    )
    schema = {"anyOf": [{"type": "integer", "minimum": lo, "maximum": hi}, ENV_STRING]}
    return Parsed(number_value, schema, then=(ok, AfterValidator(lambda v: v if v is None else int(v))))
