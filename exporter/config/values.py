"""The configuration's values with rules of their own: names, URLs, labels, phone numbers, limits."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationInfo
from pydantic_core import PydanticCustomError

from exporter.config import env as envvars
from exporter.config.errors import bad, custom, raise_all, show, typename
from exporter.config.types import ENV_STRING, QPS_RULE, ctx_of, number_value, text_value, value_type

# -- names, labels, phone numbers --------------------------------------------

NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _account_name(raw: Any, info: ValidationInfo) -> str:
    value = text_value(raw, info)
    if not NAME_RE.fullmatch(value):
        bad(f"invalid account name {show(raw)} (1-64 characters from A-Z a-z 0-9 _ . : -)")
    return value


AccountName = value_type(str, _account_name, {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,64}$|\$\{"},
                         required=True)


def _unit_id(raw: Any, info: ValidationInfo) -> str:
    value = text_value(raw, info).strip()
    if not value:
        bad("must not be empty")
    return value


UnitId = value_type(str, _unit_id, {"type": "string", "minLength": 1}, required=True)

_PHONE_RE = re.compile(r"\+?[0-9]{6,20}")
_PHONE_NOISE = re.compile(r"[\s\-()]")


def _phone_list(raw: Any, info: ValidationInfo) -> tuple[str, ...]:
    """Phone numbers with country code, as digits (an optional leading + is dropped); linear time."""
    if not isinstance(raw, list) or not raw:
        bad("must be a non-empty list of phone numbers with country code")
    out: dict[str, None] = {}
    errors = []
    for i, item in enumerate(raw):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            errors.append(custom((i,), f"must be a phone number string, got {typename(item)}"))
            continue
        try:
            value = _PHONE_NOISE.sub("", text_value(item, info) if isinstance(item, str) else str(item))
        except PydanticCustomError as e:  # an environment reference that does not expand
            errors.append(custom((i,), e.message()))
            continue
        if not _PHONE_RE.fullmatch(value):
            errors.append(custom((i,), f'invalid phone number {show(item)} (digits with country code, e.g. "+8613800000000")'))
        elif value.lstrip("+") in out:
            errors.append(custom((i,), f"duplicate phone number {show(item)}"))
        else:
            out[value.lstrip("+")] = None
    raise_all(errors)
    return tuple(out)


PhoneList = value_type(tuple[str, ...], _phone_list, {"type": "array", "minItems": 1, "items": {
    "anyOf": [{"type": "string"}, {"type": "integer"}]}})

LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def label_map(reserved: frozenset[str]) -> Any:
    """Static labels: name → value; *reserved* names are the exporter's own."""
    def parse(raw: Any, info: ValidationInfo) -> dict[str, str]:
        if not isinstance(raw, dict):
            bad(f"must be a mapping, got {typename(raw)}")
        labels, errors = {}, []
        for key, value in raw.items():
            if not isinstance(key, str):
                errors.append(custom((), f"label names must be strings, got {typename(key)} {show(key)}"))
                continue
            if not LABEL_NAME_RE.fullmatch(key):
                problem = f"invalid label name {show(key)} (must match [a-zA-Z_][a-zA-Z0-9_]*)"
            elif key.startswith("__"):
                problem = f'label name {show(key)} must not start with "__" (reserved by Prometheus)'
            elif key in reserved:
                problem = f'label name "{key}" is reserved (used by the exporter itself)'
            elif not isinstance(value, str):
                hint = " (quote it in YAML)" if isinstance(value, (bool, int, float)) else ""
                problem = f"label value must be a string, got {typename(value)}{hint}"
            else:
                try:
                    labels[key] = envvars.expand(value, ctx_of(info).env)
                    continue
                except envvars.EnvError as e:
                    problem = str(e)
            errors.append(custom((key,), problem))
        raise_all(errors)
        return labels

    return value_type(dict[str, str], parse, {
        "type": "object", "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
        "additionalProperties": {"type": "string"}})


def _action_limits(raw: Any, info: ValidationInfo) -> dict[str, float]:
    if not isinstance(raw, dict):
        bad(f"must be a mapping, got {typename(raw)}")
    limits, errors = {}, []
    for action, value in raw.items():
        if not isinstance(action, str) or not action:
            errors.append(custom((), f"action names must be strings, got {typename(action)} {show(action)}"))
            continue
        try:
            limits[action] = QPS_RULE.func(number_value(value, info))
        except PydanticCustomError as e:
            errors.append(custom((action,), e.message()))
    raise_all(errors)
    return limits


ActionLimits = value_type(dict[str, float], _action_limits, {
    "type": "object", "additionalProperties": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, ENV_STRING]}})


def _endpoint(raw: Any, info: ValidationInfo) -> str:
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
    if parts.scheme.lower() not in ("http", "https"):
        bad(f'scheme must be http or https, got "{parts.scheme}"')
    if parts.username is not None or parts.password is not None:
        bad("must not contain user information (credentials belong under credentials)")
    if not parts.hostname:
        bad(f"must have a host, {example}")
    if parts.path not in ("", "/"):
        bad("must not have a path (only scheme, host and optional port)")
    if parts.query or parts.fragment or value.rstrip("/").endswith(("?", "#")):
        bad("must not have a query or fragment")
    return value.rstrip("/")


Endpoint = value_type(str, _endpoint, {"type": "string", "pattern": "^https?://"})


def _graph_version(raw: Any, info: ValidationInfo) -> str:
    value = text_value(raw, info).strip()
    if not re.fullmatch(r"v[0-9]{1,3}\.[0-9]{1,2}", value):
        bad(f'invalid Graph API version {show(raw)} (e.g. "v24.0")')
    return value


GraphVersion = value_type(str, _graph_version, {"type": "string", "pattern": r"^v[0-9]{1,3}\.[0-9]{1,2}$"})
