"""The building blocks of the file models: :class:`Section` for mappings, ``${VAR}``, annotated value types.

A :class:`Section` reports unknown keys with a "did you mean" hint (and then
not the key meant as missing).  A value type validates one value with a
message of its own, expands ``${VAR}`` and quotes a value only as written;
null means unset (the default).
"""

from __future__ import annotations

import math
import os
import re
from typing import Annotated, Any, Callable, Optional
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, \
    WithJsonSchema, model_validator

from exporter.config.errors import bad, custom, did_you_mean, each, fmt_seconds, raise_all, show, suggest, typename


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
    def _check_keys(cls, data: Any, handler: Callable) -> Any:
        if isinstance(data, BaseModel):
            return handler(data)
        if not isinstance(data, dict):
            bad(cls.not_a_mapping(data))
        keys = cls.file_keys()
        errors, meant = [], set()
        for key in data:
            if not isinstance(key, str):
                errors.append(custom((), f"keys must be strings, got {typename(key)} key {show(key)}"))
            elif key not in keys:
                errors.append(custom((key,), cls.unknown_key(key)))
                meant.add(suggest(key, keys))
        # A required key left out is null, for its own validator to say what it needs ("required (a list of
        # ...)"); unless a mistyped key meant it: 'nmae: unknown key (did you mean "name"?)' says it all.
        left_out = {k: None for k, name in keys.items()
                    if k not in data and k not in meant and cls.model_fields[name].is_required()}
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

    def one(m: re.Match) -> str:
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
        value = env.get(name)
        if value is None or (default is not None and value == ""):
            return bad(f"environment variable {name} is not set") if default is None else default
        return value

    return _DOLLAR_RE.sub(one, raw) if "$" in raw else raw


def text_value(raw: Any, info: ValidationInfo) -> str:
    if not isinstance(raw, str):
        bad(f"must be a string, got {typename(raw)}" + (" (quote it in YAML)" if isinstance(raw, (int, float)) else ""))
    return expand(raw, info)


ENV_STRING = {"type": "string", "pattern": r"\$\{"}


def value_type(py_type: Any, parse: Callable, schema: dict, *, required: bool = False) -> Any:
    """An annotated type: *parse* turns a raw value (never None) into *py_type*; None means unset."""
    def validate(raw: Any, info: ValidationInfo) -> Any:
        return parse(raw, info) if raw is not None else bad("required") if required else None

    if not required:
        schema = {"anyOf": [*(schema["anyOf"] if set(schema) == {"anyOf"} else [schema]), {"type": "null"}]}
    return Annotated[py_type if required else Optional[py_type], BeforeValidator(validate), WithJsonSchema(schema)]


def as_type(py_type: Any, schema: dict, *, required: bool = False) -> Callable[[Callable], Any]:
    """A decorator: the parse function becomes its :func:`value_type`."""
    return lambda parse: value_type(py_type, parse, schema, required=required)


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


def choice(allowed: tuple[str, ...], what: str, *, required: bool = False) -> Any:
    return value_type(str, choose(allowed, what), {"anyOf": [{"enum": list(allowed)}, ENV_STRING]}, required=required)


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


Number = value_type(float, number_value, {"anyOf": [{"type": "number"}, ENV_STRING]})
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
    return sum(float(n) * size for n, size in zip(m.groups(), (3600, 60, 1, 0.001)) if n)


@as_type(float, {"anyOf": [{"type": "number", "minimum": 0}, {
    "type": "string", "pattern": r"^\s*((\d+(\.\d+)?|\.\d+)(h|m|s|ms))+\s*$|^\s*(\d+(\.\d*)?|\.\d+)\s*$|\$\{"}]})
def Duration(raw: Any, info: ValidationInfo) -> float:
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


# -- checks on a parsed value (None: unset, nothing to check) ----------------

def rule(ok: Callable[[Any], bool], message: str, fmt: Callable[[Any], str] = fmt_seconds) -> AfterValidator:
    """Refuse a set value for which *ok* is false; *message* may show it as ``{got}``."""
    return AfterValidator(lambda v: v if v is None or ok(v) else bad(message.format(got=fmt(v))))


def between(lo: float, hi: float) -> AfterValidator:
    return rule(lambda v: lo <= v <= hi, f"must be between {fmt_seconds(lo)} and {fmt_seconds(hi)}, got {{got}}")


NotNegative = rule(lambda v: v >= 0, "must not be negative, got {got}")
QPS_RULE = rule(lambda v: 0 < v <= 1000, "must be greater than 0 and at most 1000, got {got}", "{:g}".format)
Qps = Annotated[Number, QPS_RULE]


def whole_number(lo: int, hi: int, low_text: str) -> Any:
    """A whole number from *lo* to *hi* (a number, or a string through ``${VAR}``)."""
    ok = rule(lambda v: float(v).is_integer() and lo <= v <= hi,
              f"must be a whole number from {low_text} to {hi}, got {{got}}", "{:g}".format)
    schema = {"anyOf": [{"type": "integer", "minimum": lo, "maximum": hi}, ENV_STRING]}
    return Annotated[value_type(float, number_value, schema), ok, AfterValidator(lambda v: v if v is None else int(v))]


# -- names, ids, phone numbers, labels, limits, URLs ---------------------------

def matching(pattern: str, problem: str, *, strip: bool = False, required: bool = False) -> Any:
    """A string (after ``${VAR}``) matching *pattern*; *problem* shows the raw value as ``{}``."""
    def parse(raw: Any, info: ValidationInfo) -> str:
        value = text_value(raw, info).strip() if strip else text_value(raw, info)
        return value if re.fullmatch(pattern, value) else bad(problem.format(show(raw)))

    return value_type(str, parse, {"type": "string", "pattern": f"^{pattern}$|\\$\\{{"}, required=required)


AccountName = matching(r"[A-Za-z0-9_.:-]{1,64}", "invalid account name {} (1-64 characters from A-Z a-z 0-9 _ . : -)",
                       required=True)
GraphVersion = matching(r"v[0-9]{1,3}\.[0-9]{1,2}", 'invalid Graph API version {} (e.g. "v24.0")', strip=True)


@as_type(str, {"type": "string", "minLength": 1}, required=True)
def UnitId(raw: Any, info: ValidationInfo) -> str:
    return text_value(raw, info).strip() or bad("must not be empty")


@as_type(tuple[str, ...], {"type": "array", "minItems": 1,
                           "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}})
def PhoneList(raw: Any, info: ValidationInfo) -> tuple[str, ...]:
    """Phone numbers with country code, as digits (a leading + dropped), in linear time."""
    if not isinstance(raw, list) or not raw:
        bad("must be a non-empty list of phone numbers with country code")
    seen: dict[str, int] = {}

    def check(i: int, item: Any) -> None:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            bad(f"must be a phone number string, got {typename(item)}")
        value = re.sub(r"[\s\-()]", "", expand(item, info) if isinstance(item, str) else str(item))
        if not re.fullmatch(r"\+?[0-9]{6,20}", value):
            bad(f'invalid phone number {show(item)} (digits with country code, e.g. "+8613800000000")')
        if seen.setdefault(value.lstrip("+"), i) != i:
            bad(f"duplicate phone number {show(item)}")

    each(enumerate(raw), check)
    return tuple(seen)


@as_type(tuple[str, ...], {"type": "array", "minItems": 1,
                           "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}})
def SenderList(raw: Any, info: ValidationInfo) -> tuple[str, ...]:
    """Twilio senders: sender SIDs (``XE`` + 32 hex) or phone numbers with country code (kept as digits)."""
    if not isinstance(raw, list) or not raw:
        bad("must be a non-empty list of sender SIDs (XE...) or phone numbers with country code")
    seen: dict[str, int] = {}

    def check(i: int, item: Any) -> None:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            bad(f"must be a sender SID or phone number string, got {typename(item)}")
        value = re.sub(r"[\s\-()]", "", expand(item, info) if isinstance(item, str) else str(item))
        if value.lower().startswith("whatsapp:"):
            value = value[len("whatsapp:"):]
        if not (re.fullmatch(r"XE[0-9a-fA-F]{32}", value) or re.fullmatch(r"\+?[0-9]{6,20}", value)):
            bad(f'invalid sender {show(item)} (a sender SID "XE" + 32 hex characters, or a phone number '
                f'with country code such as "+14155550100")')
        if seen.setdefault(value.lstrip("+"), i) != i:
            bad(f"duplicate sender {show(item)}")

    each(enumerate(raw), check)
    return tuple(seen)


def listed(raw: Any, noun: str, hint: str, kind: str = "") -> list:
    """*raw*, a non-empty list of *noun* (*hint* follows "required", *kind* "must be a list")."""
    if raw is None:
        bad(f"required ({hint})")
    if not isinstance(raw, list):
        bad(f"must be a list{kind}, got {typename(raw)}")
    return raw or bad(f"must contain at least one {noun}")


def _mapping(raw: Any) -> dict:
    return raw if isinstance(raw, dict) else bad(f"must be a mapping, got {typename(raw)}")


def label_map(reserved: frozenset[str]) -> Any:
    """Static labels: name → value; *reserved* names are the exporter's own."""
    def parse(raw: Any, info: ValidationInfo) -> dict[str, str]:
        def check(key: Any, value: Any) -> tuple[str, str]:
            if not isinstance(key, str):
                bad(f"label names must be strings, got {typename(key)} {show(key)}")
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key):
                bad(f"invalid label name {show(key)} (must match [a-zA-Z_][a-zA-Z0-9_]*)")
            if key.startswith("__"):
                bad(f'label name {show(key)} must not start with "__" (reserved by Prometheus)')
            if key in reserved:
                bad(f'label name "{key}" is reserved (used by the exporter itself)')
            if not isinstance(value, str):
                hint = " (quote it in YAML)" if isinstance(value, (bool, int, float)) else ""
                bad(f"label value must be a string, got {typename(value)}{hint}")
            return key, expand(value, info)

        return dict(each(_mapping(raw).items(), check, at=lambda key: (key,) if isinstance(key, str) else ()))

    return value_type(dict[str, str], parse, {"type": "object", "additionalProperties": {"type": "string"},
                                              "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}})


@as_type(dict[str, float], {"type": "object", "additionalProperties": {
    "anyOf": [{"type": "number", "exclusiveMinimum": 0}, ENV_STRING]}})
def ActionLimits(raw: Any, info: ValidationInfo) -> dict[str, float]:
    def check(action: Any, value: Any) -> tuple[str, float]:
        if not isinstance(action, str) or not action:
            bad(f"action names must be strings, got {typename(action)} {show(action)}")
        return action, QPS_RULE.func(number_value(value, info))

    return dict(each(_mapping(raw).items(), check, at=lambda key: (key,) if isinstance(key, str) and key else ()))


@as_type(str, {"type": "string", "pattern": "^https?://"})
def Endpoint(raw: Any, info: ValidationInfo) -> str:
    """An http(s) base URL; never quoted in messages (a URL could carry userinfo)."""
    value = text_value(raw, info)
    example = "e.g. https://cams.ap-southeast-1.aliyuncs.com"
    if not value or any(c.isspace() for c in value):
        bad(f"must be an http(s) URL without spaces, {example}")
    if "://" not in value:
        bad(f"must be an http(s) URL with a scheme, {example}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - validates the port
    except ValueError as e:
        bad(f"invalid URL ({e})")
    for broken, problem in (
            (parts.scheme.lower() not in ("http", "https"), f'scheme must be http or https, got "{parts.scheme}"'),
            (parts.username is not None or parts.password is not None,
             "must not contain user information (credentials belong under credentials)"),
            (not parts.hostname, f"must have a host, {example}"),
            (parts.path not in ("", "/"), "must not have a path (only scheme, host and optional port)"),
            (parts.query or parts.fragment or value.rstrip("/").endswith(("?", "#")),
             "must not have a query or fragment")):
        if broken:
            bad(problem)
    return value.rstrip("/")
