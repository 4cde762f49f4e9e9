"""The file's schema: pydantic models of exporter-toolkit's keys, each problem one line."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, model_validator
from pydantic_core import ErrorDetails

from exporter.config.errors import bad, custom, raise_all, show, typename
from exporter.config.values import Parsed, Section, parse_duration
from exporter.webconfig.model import (
    _BCRYPT_RE,
    CIPHER_SUITES,
    CLIENT_AUTH_TYPES,
    CURVES,
    HEADERS,
    TLS13_SUITES,
    TLS_VERSIONS,
    RateLimit,
    _fail,
)


def _a(value: Any) -> str:
    """The type name with an article: "an integer", "a list", "nothing (null)"."""
    name = typename(value)
    if name == "null":
        return "nothing (null)"
    if name in ("boolean", "number", "string", "list", "mapping"):
        return f"a {name}"
    return "an integer" if name == "integer" else name


class _Section(Section):
    @classmethod
    def unknown_key(cls, key: str) -> str:
        return f"unknown key; expected one of {', '.join(cls.file_keys())}"

    @classmethod
    def not_a_mapping(cls, data: Any) -> str:
        return f"must be a mapping, got {_a(data)}"


def _string(raw: Any, info: ValidationInfo) -> str | None:
    if not isinstance(raw, str):
        bad(f"must be a string, got {_a(raw)}")
    return raw or None


def _strings(raw: Any, info: ValidationInfo) -> tuple[str, ...]:
    if not isinstance(raw, list):
        bad(f"must be a list of strings, got {_a(raw)}")
    raise_all(
        [
            custom((i,), f"must be a non-empty string, got {_a(item)}")
            for i, item in enumerate(raw)
            if not isinstance(item, str) or not item
        ]
    )
    return tuple(raw)


def _flag(raw: Any, info: ValidationInfo) -> bool:
    if not isinstance(raw, bool):
        bad(f"must be true or false, got {_a(raw)}")
    return raw


def _one_of(allowed: Mapping[str, Any], what: str) -> Parsed:
    def parse(raw: Any, info: ValidationInfo) -> str | None:
        value = _string(raw, info)
        if value is not None and value not in allowed:
            bad(f"unknown {what} {show(value)}; expected one of {', '.join(allowed)}")
        return value

    return Parsed(parse, {"enum": list(allowed)})


Str = Annotated[str | None, Parsed(_string, {"type": "string"})]
Strings = Annotated[
    tuple[str, ...] | None, Parsed(_strings, {"type": "array", "items": {"type": "string", "minLength": 1}})
]
Flag = Annotated[bool | None, Parsed(_flag, {"type": "boolean"})]


class TLSServerConfig(_Section):
    cert_file: Str = None
    key_file: Str = None
    cert: Str = Field(None, repr=False)
    key: Str = Field(None, repr=False)
    client_ca_file: Str = None
    client_ca: Str = None
    client_auth_type: Annotated[str | None, _one_of(CLIENT_AUTH_TYPES, "client auth type")] = None
    client_allowed_sans: Strings = None
    min_version: Annotated[str | None, _one_of(TLS_VERSIONS, "TLS version")] = None
    max_version: Annotated[str | None, _one_of(TLS_VERSIONS, "TLS version")] = None
    cipher_suites: Strings = None
    prefer_server_cipher_suites: Flag = None
    curve_preferences: Strings = None

    @model_validator(mode="after")
    def _known_names(self) -> TLSServerConfig:
        raise_all(
            [
                custom(("cipher_suites", i), f"unknown or insecure cipher suite {show(name)}")
                for i, name in enumerate(self.cipher_suites or ())
                if name not in CIPHER_SUITES | dict.fromkeys(TLS13_SUITES)
            ]
            + [
                custom(
                    ("curve_preferences", i), f"unknown curve {show(name)}; expected one of {', '.join(sorted(CURVES))}"
                )
                for i, name in enumerate(self.curve_preferences or ())
                if name not in CURVES
            ]
        )
        return self


class HTTPServerConfig(_Section):
    http2: Flag = None
    headers: Annotated[
        tuple[tuple[str, str], ...] | None,
        Parsed(
            lambda raw, info: _headers(raw),
            {
                "type": "object",
                "properties": {name: {"type": "string"} for name in HEADERS},
                "additionalProperties": False,
            },
        ),
    ] = None


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        bad(f"must be a mapping, got {_a(raw)}")
    canonical = {name.lower(): name for name in HEADERS}
    out: list[tuple[str, str]] = []
    errors: list[ErrorDetails] = []
    for name, value in raw.items():
        if not isinstance(name, str) or name.lower() not in canonical:
            errors.append(custom((name,), f"unsupported header; expected one of {', '.join(HEADERS)}"))
            continue
        name = canonical[name.lower()]
        allowed = HEADERS[name]
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            problem = f"must be a string, got {_a(value)}"
        elif any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            problem = "must not contain control characters (line breaks would split the response)"
        elif allowed is not None and value.lower() not in allowed:
            problem = f"invalid value {show(value)}; expected one of {', '.join(allowed)}"
        else:
            out.append((name, value))
            continue
        errors.append(custom((name,), problem))
    raise_all(errors)
    return tuple(out)


def _users(raw: Any, info: ValidationInfo) -> dict[str, bytes]:
    if not isinstance(raw, dict):
        bad(f"must be a mapping of user name to bcrypt hash, got {_a(raw)}")
    users: dict[str, bytes] = {}
    errors: list[ErrorDetails] = []
    for user, hashed in raw.items():
        # The value is a secret: never quote it, not even its type's repr.
        data = hashed.strip().encode("utf-8", "replace") if isinstance(hashed, str) else b""
        m = _BCRYPT_RE.fullmatch(data)
        if not isinstance(user, str):
            problem = f"user name must be a string, got {_a(user)}"
        elif ":" in user:
            problem = "user name must not contain ':' (basic auth cannot carry it)"
        elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in user):
            problem = "user name must not contain control characters"
        elif not isinstance(hashed, str):
            problem = f"must be a bcrypt hash string, got {_a(hashed)}"
        elif not m:
            problem = (
                "not a bcrypt hash (expected $2a$, $2b$ or $2y$, a two-digit cost and 53 characters; "
                "make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')"
            )
        elif not 4 <= int(m.group(1)) <= 31:
            problem = f"bcrypt cost {int(m.group(1))} is out of range 4-31"
        else:
            users[user] = data
            continue
        errors.append(custom((user,), problem))
    raise_all(errors)
    return users


def _interval(raw: Any, info: ValidationInfo) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        bad(f"must be a duration such as 100ms or 1s, got {_a(raw)}")
    try:
        interval = parse_duration(raw) if isinstance(raw, str) else float(str(raw))  # a huge integer: inf
    except ValueError:
        bad(f"malformed duration {show(raw)}; expected e.g. 100ms, 1s or 1m")
    if not math.isfinite(interval) or interval < 0:
        bad("must be a finite duration ≥ 0")
    return interval


def _burst(raw: Any, info: ValidationInfo) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        bad(f"must be an integer, got {_a(raw)}")
    return raw


class RateLimitConfig(_Section):
    interval: Annotated[
        float | None, Parsed(_interval, {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]})
    ] = None
    burst: Annotated[int | None, Parsed(_burst, {"type": "integer", "minimum": 0})] = None

    def limit(self) -> RateLimit | None:
        if not self.interval:
            return None  # exporter-toolkit: an interval of 0 disables the limiter
        burst = self.burst or 0
        if burst < 1:
            _fail("rate_limit.burst", "must be at least 1 when interval is set (0 would refuse every request)")
        return RateLimit(interval=self.interval, burst=burst)


class WebConfigFile(_Section):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig | None = None
    basic_auth_users: Annotated[
        dict[str, bytes] | None, Parsed(_users, {"type": "object", "additionalProperties": {"type": "string"}})
    ] = Field(None, repr=False)
    rate_limit: RateLimitConfig | None = None
