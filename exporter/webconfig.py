"""The ``--web.config.file``: TLS and basic auth in the Prometheus exporter-toolkit format.

The schema is exporter-toolkit's ``docs/web-configuration.md``, so an operator
can reuse the web-config file of any Go exporter::

    tls_server_config:
      cert_file: server.crt          # relative paths: against this file's directory
      key_file: server.key
      min_version: TLS12             # TLS10 | TLS11 | TLS12 (default) | TLS13
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
    http_server_config:
      headers: {X-Content-Type-Options: nosniff}
    basic_auth_users:
      prometheus: $2b$10$...         # bcrypt hash
    rate_limit: {interval: 100ms, burst: 20}

Everything is validated once, when the file is loaded; the file and the
certificates are not re-read while the exporter runs (restart it to pick up a
renewed certificate).  The keys are checked by pydantic models (the ones of
:mod:`exporter.config`), so every problem of the file is reported at once, each
as one line ``"<key path>: <problem>"`` of a :class:`WebConfigError`.  Messages
never quote a password hash, a password, or the contents of a certificate or
key file.  Files are read as the configuration is: regular files only, capped,
never blocking.

Where Python's ``ssl`` module cannot do what Go's ``crypto/tls`` does, the
setting is either mapped to the nearest *stricter* behaviour or accepted and
ignored; each such case adds a line to :attr:`WebConfig.notes`, which the
command line logs at startup:

* ``client_auth_type: RequestClientCert`` behaves as ``NoClientCert`` (the
  certificate would never be used), and ``RequireAnyClientCert`` as
  ``RequireAndVerifyClientCert`` (OpenSSL cannot require a certificate without
  verifying it), so it needs ``client_ca_file``.
* ``cipher_suites`` are mapped from their IANA/Go names to OpenSSL's; TLS 1.3
  suite names are accepted and ignored (Go ignores them too).
* ``curve_preferences`` is validated and ignored (OpenSSL's defaults are used).
* ``http_server_config.http2`` is accepted and ignored: the server speaks HTTP/1.1.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import ssl
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

from pydantic import Field, ValidationInfo, model_validator
from pydantic_core import ErrorDetails

from exporter import yamlfile
from exporter.config.errors import ConfigError, bad, custom, load_yaml, raise_all, read_file, show, typename, validate
from exporter.config.values import Parsed, Section, parse_duration

__all__ = ["RateLimit", "TLSConfig", "WebConfig", "WebConfigError", "load_web_config", "parse_web_config"]


class WebConfigError(ConfigError):
    """An invalid web configuration: one or more one-line problems ``"<key path>: <problem>"``."""


def _fail(path: str, message: str) -> NoReturn:
    raise WebConfigError(path, message)


# --------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

#: Go's ``tls.ClientAuthType`` names → (OpenSSL verify mode, needs client_ca_file).
CLIENT_AUTH_TYPES = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_NONE, False),
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, True),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}

#: The TLS ≤ 1.2 suites of Go's ``tls.CipherSuites()`` (and the legacy alias
#: names Go accepts), by IANA name → OpenSSL name.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
CURVES = {"CurveP256", "CurveP384", "CurveP521", "X25519", "X25519MLKEM768"}

#: The response headers exporter-toolkit allows, and the values it accepts (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}

PEM_FILE_MAX_BYTES = 1024 * 1024
_BCRYPT_RE = re.compile(rb"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class TLSConfig:
    cert_file: str | None
    key_file: str | None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()
    #: the server-side context, built and loaded while validating
    context: ssl.SSLContext = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def allowed_san(self, peer_cert: Mapping[str, Any] | None) -> bool:
        """Whether a verified client certificate carries one of ``client_allowed_sans``."""
        if not self.client_allowed_sans:
            return True
        if not peer_cert:
            return False
        wanted_ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        for want in self.client_allowed_sans:
            with contextlib.suppress(ValueError):
                wanted_ips.add(ipaddress.ip_address(want))
        for kind, value in peer_cert.get("subjectAltName", ()):
            value = value.strip()
            if kind == "IP Address":
                try:
                    if ipaddress.ip_address(value) in wanted_ips:
                        return True
                except ValueError:
                    continue
            elif value in self.client_allowed_sans:
                return True
        return False


@dataclass(frozen=True)
class RateLimit:
    interval: float  # seconds between two requests, once the burst is used up
    burst: int


@dataclass(frozen=True)
class WebConfig:
    source: str | None = None
    tls: TLSConfig | None = None
    #: user name → bcrypt hash; never printed
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    http2: bool = True
    rate_limit: RateLimit | None = None
    #: settings that were accepted but mapped or ignored; logged at startup
    notes: tuple[str, ...] = ()

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context if self.tls else None

    def describe(self) -> str:
        parts = [
            f"TLS on (min {self.tls.min_version}, client auth {self.tls.client_auth_type})" if self.tls else "TLS off"
        ]
        parts.append(f"{len(self.users)} basic-auth user(s)" if self.users else "no basic auth")
        if self.rate_limit:
            parts.append(f"rate limit {self.rate_limit.interval:g}s burst {self.rate_limit.burst}")
        return ", ".join(parts)


# --------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def load_web_config(path: str) -> WebConfig:
    """Read and validate the web config at *path*; relative paths in it resolve against its directory."""
    path = os.fspath(path)
    return parse_web_config(read_file(path, "web config file", WebConfigError), source=path)


def parse_web_config(text: str, source: str | None = None, base_dir: str | None = None) -> WebConfig:
    root_name = source or "<web config>"
    if base_dir is None:
        base_dir = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
    doc = load_yaml(text, root_name, WebConfigError)
    if doc is None:
        return WebConfig(source=source)
    if not isinstance(doc, dict):
        _fail(root_name, f"the web config must be a mapping, got {_a(doc)}")
    parsed = validate(WebConfigFile, doc, root_name, error=WebConfigError)
    notes: list[str] = []
    tls = _tls(parsed.tls_server_config, base_dir, notes) if parsed.tls_server_config else None
    http = parsed.http_server_config or HTTPServerConfig()
    return WebConfig(
        source=source,
        tls=tls,
        users=parsed.basic_auth_users or {},
        headers=http.headers or (),
        http2=True if http.http2 is None else http.http2,
        rate_limit=parsed.rate_limit.limit() if parsed.rate_limit else None,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------
# tls_server_config: the rules between its keys, and the SSL context
# --------------------------------------------------------------------------


def _tls(raw: TLSServerConfig, base_dir: str, notes: list[str]) -> TLSConfig | None:
    P = "tls_server_config"
    if not raw.model_dump(exclude_none=True):
        return None

    def s(key: str) -> str | None:
        value: str | None = getattr(raw, key)
        return value

    cert_file, key_file, cert, key = s("cert_file"), s("key_file"), s("cert"), s("key")
    if cert_file and cert:
        _fail(f"{P}.cert", "set either cert or cert_file, not both")
    if key_file and key:
        _fail(f"{P}.key", "set either key or key_file, not both")
    if not cert_file and not cert:
        _fail(f"{P}.cert_file", "required (or cert) when tls_server_config is set")
    if not key_file and not key:
        _fail(f"{P}.key_file", "required (or key) when cert_file or cert is set")

    min_version, max_version = s("min_version") or "TLS12", s("max_version") or "TLS13"
    if TLS_VERSIONS[max_version] < TLS_VERSIONS[min_version]:
        _fail(f"{P}.max_version", f"{max_version} is lower than min_version {min_version}")

    client_auth_type = s("client_auth_type") or "NoClientCert"
    verify_mode, needs_ca = CLIENT_AUTH_TYPES[client_auth_type]
    client_ca_file, client_ca = s("client_ca_file"), s("client_ca")
    if client_ca_file and client_ca:
        _fail(f"{P}.client_ca", "set either client_ca or client_ca_file, not both")
    has_ca = bool(client_ca_file or client_ca)
    if needs_ca and not has_ca:
        _fail(f"{P}.client_ca_file", f"required when client_auth_type is {client_auth_type}")
    if has_ca and client_auth_type in ("NoClientCert", "RequestClientCert"):
        _fail(
            f"{P}.client_auth_type",
            f"client_ca_file is set but client_auth_type is {client_auth_type}; use RequireAndVerifyClientCert",
        )
    if client_auth_type == "RequestClientCert":
        notes.append(
            "tls_server_config.client_auth_type: RequestClientCert behaves as NoClientCert "
            "(a requested certificate would never be used)"
        )
    if client_auth_type == "RequireAnyClientCert":
        notes.append(
            "tls_server_config.client_auth_type: RequireAnyClientCert is enforced as "
            "RequireAndVerifyClientCert (OpenSSL verifies every certificate it requires)"
        )

    sans = raw.client_allowed_sans or ()
    if sans and verify_mode != ssl.CERT_REQUIRED:
        _fail(f"{P}.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert (or RequireAnyClientCert)")

    suites = raw.cipher_suites or ()
    openssl_suites = [CIPHER_SUITES[name] for name in suites if name in CIPHER_SUITES]
    notes.extend(
        f"tls_server_config.cipher_suites[{i}]: {name} is a TLS 1.3 suite; TLS 1.3 suites are not "
        "configurable and it is ignored"
        for i, name in enumerate(suites)
        if name in TLS13_SUITES
    )
    prefer = True if raw.prefer_server_cipher_suites is None else raw.prefer_server_cipher_suites
    curves = raw.curve_preferences or ()
    if curves:
        notes.append("tls_server_config.curve_preferences is accepted and ignored: OpenSSL's default groups are used")

    # Build the context.  Files are resolved against the web config's directory.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # Python warns when TLS 1.0/1.1 are allowed; that is the operator's choice
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = TLS_VERSIONS[min_version]
        if max_version != "TLS13":
            ctx.maximum_version = TLS_VERSIONS[max_version]
    if prefer:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= ssl.OP_NO_COMPRESSION
    with contextlib.suppress(NotImplementedError):  # OpenSSL without ALPN
        ctx.set_alpn_protocols(["http/1.1"])
    if openssl_suites:
        try:
            ctx.set_ciphers(":".join(openssl_suites))
        except ssl.SSLError:
            _fail(f"{P}.cipher_suites", "none of the listed cipher suites is available in this OpenSSL build")

    cert_path = _resolve(cert_file, base_dir) if cert_file else None
    key_path = _resolve(key_file, base_dir) if key_file else None
    if cert_path:
        _readable(cert_path, f"{P}.cert_file")
    if key_path:
        _readable(key_path, f"{P}.key_file")
    cert_where = f"{P}.cert_file" if cert_path else f"{P}.cert"
    key_where = f"{P}.key_file" if key_path else f"{P}.key"
    with _pem_files(cert_path, cert, key_path, key) as (cpath, kpath):
        _check_certificates(cpath, cert_where)
        _check_key(kpath, key_where)
        try:
            ctx.load_cert_chain(cpath, kpath, password=_no_password)
        except ssl.SSLError as e:
            reason = getattr(e, "reason", None) or ""
            if reason == "KEY_VALUES_MISMATCH":
                _fail(key_where, "the private key does not match the certificate")
            _fail(key_where, f"cannot load the certificate and key ({_ssl_reason(e)})")
        except _PasswordNeeded:
            _fail(key_where, "the private key is encrypted; give an unencrypted key")

    if has_ca:
        ca_where = f"{P}.client_ca_file" if client_ca_file else f"{P}.client_ca"
        try:
            if client_ca_file:
                ca_path = _resolve(client_ca_file, base_dir)
                _readable(ca_path, ca_where)
                _check_certificates(ca_path, ca_where)
                ctx.load_verify_locations(cafile=ca_path)
            else:
                if "-----BEGIN CERTIFICATE-----" not in (client_ca or ""):
                    _fail(ca_where, "no PEM certificate found")
                ctx.load_verify_locations(cadata=client_ca)
        except ssl.SSLError as e:
            _fail(ca_where, f"cannot load the CA certificates ({_ssl_reason(e)})")
        ctx.verify_mode = verify_mode
    else:
        ctx.verify_mode = ssl.CERT_NONE

    return TLSConfig(
        cert_file=cert_path,
        key_file=key_path,
        min_version=min_version,
        max_version=max_version,
        client_auth_type=client_auth_type,
        client_ca_file=_resolve(client_ca_file, base_dir) if client_ca_file else None,
        client_allowed_sans=tuple(sans),
        cipher_suites=tuple(suites),
        prefer_server_cipher_suites=prefer,
        curve_preferences=tuple(curves),
        context=ctx,
    )


class _PasswordNeeded(Exception):
    pass


def _no_password() -> NoReturn:
    # Called by OpenSSL only for an encrypted key; raising keeps it from prompting on the terminal.
    raise _PasswordNeeded()


def _resolve(path: str, base_dir: str) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def _read_pem(path: str, where: str) -> bytes:
    """A certificate or key file: a regular file (never blocking), at most 1 MiB, read once."""
    try:
        return yamlfile.read_text_file(path, PEM_FILE_MAX_BYTES).encode()
    except yamlfile.FileProblem as e:
        _fail(where, f"cannot read {path}: {e.reason}" if e.kind == "unreadable" else f"{path} is {e.reason}")


def _readable(path: str, where: str) -> None:
    _read_pem(path, where)


def _check_certificates(path: str, where: str) -> None:
    """The file holds at least one PEM certificate (checked without quoting any of it)."""
    data = _read_pem(path, where)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        _fail(where, "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as e:
        _fail(where, f"not a valid PEM certificate ({_ssl_reason(e)})")


def _check_key(path: str, where: str) -> None:
    data = _read_pem(path, where)
    if not re.search(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----", data):
        _fail(where, "no PEM private key found (expected -----BEGIN ... PRIVATE KEY-----)")
    if b"ENCRYPTED" in data:
        _fail(where, "the private key is encrypted; give an unencrypted key")


class _pem_files:
    """Paths for the certificate and key, writing inline PEM (``cert:``/``key:``) to private temp files."""

    def __init__(self, cert_path: str | None, cert: str | None, key_path: str | None, key: str | None) -> None:
        self._items = [(cert_path, cert), (key_path, key)]
        self._temps: list[str] = []

    def __enter__(self) -> tuple[str, ...]:
        paths: list[str] = []
        for path, inline in self._items:
            if path:
                paths.append(path)
                continue
            if inline is None:
                raise ValueError("neither a file nor inline PEM")  # the rules before this require one
            fd, tmp = tempfile.mkstemp(prefix="webcfg-", suffix=".pem")  # mode 0600
            self._temps.append(tmp)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(inline)
            paths.append(tmp)
        return tuple(paths)

    def __exit__(self, *exc: object) -> None:
        for tmp in self._temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _ssl_reason(e: Exception) -> str:
    reason = getattr(e, "reason", None)
    lib = getattr(e, "library", None)
    if reason:
        return f"{lib} {reason}" if lib else str(reason)
    return type(e).__name__
