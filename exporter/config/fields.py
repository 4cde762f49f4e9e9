"""Value types of names, ids, phone numbers, labels, per-action limits and URLs (see :mod:`~exporter.config.values`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import ValidationInfo

from exporter.config.errors import bad, each, show, typename
from exporter.config.values import ENV_STRING, Parsed, check_qps, expand, number_value, text_value

# -- names, ids, phone numbers, labels, limits, URLs ---------------------------


def matching(pattern: str, problem: str, *, strip: bool = False, required: bool = False) -> Parsed:
    """A string (after ``${VAR}``) matching *pattern*; *problem* shows the raw value as ``{}``."""

    def parse(raw: Any, info: ValidationInfo) -> str:
        value = text_value(raw, info).strip() if strip else text_value(raw, info)
        return value if re.fullmatch(pattern, value) else bad(problem.format(show(raw)))

    return Parsed(parse, {"type": "string", "pattern": f"^{pattern}$|\\$\\{{"}, required=required)


AccountName = Annotated[
    str,
    matching(
        r"[A-Za-z0-9_.:-]{1,64}", "invalid account name {} (1-64 characters from A-Z a-z 0-9 _ . : -)", required=True
    ),
]
GraphVersion = Annotated[
    str | None, matching(r"v[0-9]{1,3}\.[0-9]{1,2}", 'invalid Graph API version {} (e.g. "v24.0")', strip=True)
]


def unit_id_value(raw: Any, info: ValidationInfo) -> str:
    return text_value(raw, info).strip() or bad("must not be empty")


UnitId = Annotated[str, Parsed(unit_id_value, {"type": "string", "minLength": 1}, required=True)]


def number_list(items: str, one: str, short: str, read: Callable[[str, Any], str]) -> Parsed:
    """A non-empty list of *items*, each *one* given as a string or an integer, with spaces, dashes and
    brackets dropped, then checked by *read* (the value and the raw item → the value kept, or ``bad()``);
    a *short* seen twice (a leading + aside) is a duplicate.  Parsed in linear time, as digits (+ dropped)."""

    def parse(raw: Any, info: ValidationInfo) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            bad(f"must be a non-empty list of {items}")
        seen: dict[str, int] = {}

        def check(i: int, item: Any) -> None:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                bad(f"must be a {one} string, got {typename(item)}")
            value = read(re.sub(r"[\s\-()]", "", expand(item, info) if isinstance(item, str) else str(item)), item)
            if seen.setdefault(value.lstrip("+"), i) != i:
                bad(f"duplicate {short} {show(item)}")

        each(enumerate(raw), check)
        return tuple(seen)

    return Parsed(
        parse, {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}
    )


def _phone_number(value: str, item: Any) -> str:
    if not re.fullmatch(r"\+?[0-9]{6,20}", value):
        bad(f'invalid phone number {show(item)} (digits with country code, e.g. "+8613800000000")')
    return value


def _sender(value: str, item: Any) -> str:
    """Twilio senders: sender SIDs (``XE`` + 32 hex) or phone numbers with country code (kept as digits)."""
    if value.lower().startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    if not (re.fullmatch(r"XE[0-9a-fA-F]{32}", value) or re.fullmatch(r"\+?[0-9]{6,20}", value)):
        bad(
            f'invalid sender {show(item)} (a sender SID "XE" + 32 hex characters, or a phone number '
            f'with country code such as "+14155550100")'
        )
    return value


PhoneList = Annotated[
    tuple[str, ...] | None,
    number_list("phone numbers with country code", "phone number", "phone number", _phone_number),
]
SenderList = Annotated[
    tuple[str, ...] | None,
    number_list(
        "sender SIDs (XE...) or phone numbers with country code", "sender SID or phone number", "sender", _sender
    ),
]


def listed(raw: Any, noun: str, hint: str, kind: str = "") -> list[Any]:
    """*raw*, a non-empty list of *noun* (*hint* follows "required", *kind* "must be a list")."""
    if raw is None:
        bad(f"required ({hint})")
    if not isinstance(raw, list):
        bad(f"must be a list{kind}, got {typename(raw)}")
    return raw or bad(f"must contain at least one {noun}")


def _mapping(raw: Any) -> dict[Any, Any]:
    return raw if isinstance(raw, dict) else bad(f"must be a mapping, got {typename(raw)}")


def label_map(reserved: frozenset[str]) -> Parsed:
    """Static labels: name → value (``Annotated[dict[str, str] | None, ...]``); *reserved* names are the exporter's."""

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

    return Parsed(
        parse,
        {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
        },
    )


def action_limits_value(raw: Any, info: ValidationInfo) -> dict[str, float]:
    def check(action: Any, value: Any) -> tuple[str, float]:
        if not isinstance(action, str) or not action:
            bad(f"action names must be strings, got {typename(action)} {show(action)}")
        return action, check_qps(number_value(value, info))

    return dict(each(_mapping(raw).items(), check, at=lambda key: (key,) if isinstance(key, str) and key else ()))


ActionLimits = Annotated[
    dict[str, float] | None,
    Parsed(
        action_limits_value,
        {"type": "object", "additionalProperties": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, ENV_STRING]}},
    ),
]


def endpoint_value(raw: Any, info: ValidationInfo) -> str:
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
        (
            parts.username is not None or parts.password is not None,
            "must not contain user information (credentials belong under credentials)",
        ),
        (not parts.hostname, f"must have a host, {example}"),
        (parts.path not in ("", "/"), "must not have a path (only scheme, host and optional port)"),
        (parts.query or parts.fragment or value.rstrip("/").endswith(("?", "#")), "must not have a query or fragment"),
    ):
        if broken:
            bad(problem)
    return value.rstrip("/")


Endpoint = Annotated[str | None, Parsed(endpoint_value, {"type": "string", "pattern": "^https?://"})]
