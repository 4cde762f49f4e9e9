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
renewed certificate).  Every failure raises :class:`WebConfigError`, whose
``str()`` is one line ``"<key path>: <problem>"``.  Messages never quote a
password hash, a password, or the contents of a certificate or key file.

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

import ipaddress
import math
import os
import re
import ssl
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml

from exporter.config import ConfigError
from exporter.config import _show
from exporter.config import _typename as _bare_typename

from exporter.config import parse_duration

__all__ = ["RateLimit", "TLSConfig", "WebConfig", "WebConfigError", "load_web_config", "parse_web_config"]


class WebConfigError(ConfigError):
    """An invalid web configuration; ``str()`` is one line ``"<key path>: <problem>"``."""


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

    def allowed_san(self, peer_cert: Mapping | None) -> bool:
        """Whether a verified client certificate carries one of ``client_allowed_sans``."""
        if not self.client_allowed_sans:
            return True
        if not peer_cert:
            return False
        wanted_ips = set()
        for want in self.client_allowed_sans:
            try:
                wanted_ips.add(ipaddress.ip_address(want))
            except ValueError:
                pass
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
        parts = [f"TLS on (min {self.tls.min_version}, client auth {self.tls.client_auth_type})" if self.tls else "TLS off"]
        parts.append(f"{len(self.users)} basic-auth user(s)" if self.users else "no basic auth")
        if self.rate_limit:
            parts.append(f"rate limit {self.rate_limit.interval:g}s burst {self.rate_limit.burst}")
        return ", ".join(parts)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def load_web_config(path: str) -> WebConfig:
    """Read and validate the web config at *path*; relative paths in it resolve against its directory."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        _fail(path, f"cannot read web config file: {e.strerror or type(e).__name__}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        _fail(path, f"web config file is not valid UTF-8 (invalid byte at offset {e.start})")
    return parse_web_config(text, source=path)


def parse_web_config(text: str, source: str | None = None, base_dir: str | None = None) -> WebConfig:
    root_name = source or "<web config>"
    if base_dir is None:
        base_dir = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
    doc = _load_yaml(text, root_name)
    if doc is None:
        return WebConfig(source=source)
    if not isinstance(doc, dict):
        _fail(root_name, f"the web config must be a mapping, got {_typename(doc)}")
    _check_keys(doc, "", root_name, ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"))
    notes: list[str] = []
    tls = _parse_tls(doc.get("tls_server_config"), base_dir, notes)
    headers, http2 = _parse_http(doc.get("http_server_config"))
    users = _parse_users(doc.get("basic_auth_users"))
    rate_limit = _parse_rate_limit(doc.get("rate_limit"))
    return WebConfig(source=source, tls=tls, users=users, headers=headers, http2=http2,
                     rate_limit=rate_limit, notes=tuple(notes))


# --------------------------------------------------------------------------
# tls_server_config
# --------------------------------------------------------------------------

_TLS_KEYS = ("cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca", "client_auth_type",
             "client_allowed_sans", "min_version", "max_version", "cipher_suites",
             "prefer_server_cipher_suites", "curve_preferences")


def _parse_tls(raw: Any, base_dir: str, notes: list[str]) -> TLSConfig | None:
    P = "tls_server_config"
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        _fail(P, f"must be a mapping, got {_typename(raw)}")
    _check_keys(raw, P, P, _TLS_KEYS)

    def s(key: str) -> str | None:
        value = raw.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            _fail(f"{P}.{key}", f"must be a string, got {_typename(value)}")
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

    def version(key: str, default: str) -> str:
        value = s(key) or default
        if value not in TLS_VERSIONS:
            _fail(f"{P}.{key}", f"unknown TLS version {_show(value)}; expected one of {', '.join(TLS_VERSIONS)}")
        return value

    min_version = version("min_version", "TLS12")
    max_version = version("max_version", "TLS13")
    if TLS_VERSIONS[max_version] < TLS_VERSIONS[min_version]:
        _fail(f"{P}.max_version", f"{max_version} is lower than min_version {min_version}")

    client_auth_type = s("client_auth_type") or "NoClientCert"
    if client_auth_type not in CLIENT_AUTH_TYPES:
        _fail(f"{P}.client_auth_type",
              f"unknown client auth type {_show(client_auth_type)}; expected one of {', '.join(CLIENT_AUTH_TYPES)}")
    verify_mode, needs_ca = CLIENT_AUTH_TYPES[client_auth_type]
    client_ca_file, client_ca = s("client_ca_file"), s("client_ca")
    if client_ca_file and client_ca:
        _fail(f"{P}.client_ca", "set either client_ca or client_ca_file, not both")
    has_ca = bool(client_ca_file or client_ca)
    if needs_ca and not has_ca:
        _fail(f"{P}.client_ca_file", f"required when client_auth_type is {client_auth_type}")
    if has_ca and client_auth_type in ("NoClientCert", "RequestClientCert"):
        _fail(f"{P}.client_auth_type",
              f"client_ca_file is set but client_auth_type is {client_auth_type}; use RequireAndVerifyClientCert")
    if client_auth_type == "RequestClientCert":
        notes.append("tls_server_config.client_auth_type: RequestClientCert behaves as NoClientCert "
                     "(a requested certificate would never be used)")
    if client_auth_type == "RequireAnyClientCert":
        notes.append("tls_server_config.client_auth_type: RequireAnyClientCert is enforced as "
                     "RequireAndVerifyClientCert (OpenSSL verifies every certificate it requires)")

    sans = _string_list(raw.get("client_allowed_sans"), f"{P}.client_allowed_sans")
    if sans and verify_mode != ssl.CERT_REQUIRED:
        _fail(f"{P}.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert (or RequireAnyClientCert)")

    suites = _string_list(raw.get("cipher_suites"), f"{P}.cipher_suites")
    openssl_suites = []
    for i, name in enumerate(suites):
        if name in CIPHER_SUITES:
            openssl_suites.append(CIPHER_SUITES[name])
        elif name in TLS13_SUITES:
            notes.append(f"tls_server_config.cipher_suites[{i}]: {name} is a TLS 1.3 suite; TLS 1.3 suites are not configurable and it is ignored")
        else:
            _fail(f"{P}.cipher_suites[{i}]", f"unknown or insecure cipher suite {_show(name)}")

    prefer = raw.get("prefer_server_cipher_suites", True)
    if prefer is None:
        prefer = True
    if not isinstance(prefer, bool):
        _fail(f"{P}.prefer_server_cipher_suites", f"must be true or false, got {_typename(prefer)}")

    curves = _string_list(raw.get("curve_preferences"), f"{P}.curve_preferences")
    for i, name in enumerate(curves):
        if name not in CURVES:
            _fail(f"{P}.curve_preferences[{i}]", f"unknown curve {_show(name)}; expected one of {', '.join(sorted(CURVES))}")
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
    try:
        ctx.set_alpn_protocols(["http/1.1"])
    except NotImplementedError:  # pragma: no cover - OpenSSL without ALPN
        pass
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
        cert_file=cert_path, key_file=key_path, min_version=min_version, max_version=max_version,
        client_auth_type=client_auth_type, client_ca_file=_resolve(client_ca_file, base_dir) if client_ca_file else None,
        client_allowed_sans=tuple(sans), cipher_suites=tuple(suites), prefer_server_cipher_suites=prefer,
        curve_preferences=tuple(curves), context=ctx,
    )


class _PasswordNeeded(Exception):
    pass


def _no_password():
    # Called by OpenSSL only for an encrypted key; raising keeps it from prompting on the terminal.
    raise _PasswordNeeded()


def _resolve(path: str, base_dir: str) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def _readable(path: str, where: str) -> None:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as e:
        _fail(where, f"cannot read {path}: {e.strerror or type(e).__name__}")


def _check_certificates(path: str, where: str) -> None:
    """The file holds at least one PEM certificate (checked without quoting any of it)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(4 * 1024 * 1024)
    except OSError as e:
        _fail(where, f"cannot read {path}: {e.strerror or type(e).__name__}")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        _fail(where, "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as e:
        _fail(where, f"not a valid PEM certificate ({_ssl_reason(e)})")


def _check_key(path: str, where: str) -> None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(1024 * 1024)
    except OSError as e:
        _fail(where, f"cannot read {path}: {e.strerror or type(e).__name__}")
    if not re.search(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----", data):
        _fail(where, "no PEM private key found (expected -----BEGIN ... PRIVATE KEY-----)")
    if b"ENCRYPTED" in data:
        _fail(where, "the private key is encrypted; give an unencrypted key")


class _pem_files:
    """Paths for the certificate and key, writing inline PEM (``cert:``/``key:``) to private temp files."""

    def __init__(self, cert_path, cert, key_path, key):
        self._items = [(cert_path, cert), (key_path, key)]
        self._temps: list[str] = []

    def __enter__(self):
        paths = []
        for path, inline in self._items:
            if path:
                paths.append(path)
                continue
            fd, tmp = tempfile.mkstemp(prefix="webcfg-", suffix=".pem")  # mode 0600
            self._temps.append(tmp)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(inline)
            paths.append(tmp)
        return tuple(paths)

    def __exit__(self, *exc):
        for tmp in self._temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def _ssl_reason(e: Exception) -> str:
    reason = getattr(e, "reason", None)
    lib = getattr(e, "library", None)
    if reason:
        return f"{lib} {reason}" if lib else str(reason)
    return type(e).__name__


# --------------------------------------------------------------------------
# http_server_config, basic_auth_users, rate_limit
# --------------------------------------------------------------------------


def _parse_http(raw: Any) -> tuple[tuple[tuple[str, str], ...], bool]:
    P = "http_server_config"
    if raw is None:
        return (), True
    if not isinstance(raw, dict):
        _fail(P, f"must be a mapping, got {_typename(raw)}")
    _check_keys(raw, P, P, ("http2", "headers"))
    http2 = raw.get("http2", True)
    if http2 is None:
        http2 = True
    if not isinstance(http2, bool):
        _fail(f"{P}.http2", f"must be true or false, got {_typename(http2)}")
    headers_raw = raw.get("headers")
    if headers_raw is None:
        return (), http2
    if not isinstance(headers_raw, dict):
        _fail(f"{P}.headers", f"must be a mapping, got {_typename(headers_raw)}")
    canonical = {name.lower(): name for name in HEADERS}
    out = []
    for name, value in headers_raw.items():
        if not isinstance(name, str) or name.lower() not in canonical:
            _fail(_join(f"{P}.headers", name),
                  f"unsupported header; expected one of {', '.join(HEADERS)}")
        name = canonical[name.lower()]
        where = f"{P}.headers.{name}"
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            _fail(where, f"must be a string, got {_typename(value)}")
        if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
            _fail(where, "must not contain control characters (line breaks would split the response)")
        allowed = HEADERS[name]
        if allowed is not None and value.lower() not in allowed:
            _fail(where, f"invalid value {_show(value)}; expected one of {', '.join(allowed)}")
        out.append((name, value))
    return tuple(out), http2


def _parse_users(raw: Any) -> dict[str, bytes]:
    P = "basic_auth_users"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        _fail(P, f"must be a mapping of user name to bcrypt hash, got {_typename(raw)}")
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        where = _join(P, user)
        if not isinstance(user, str):
            _fail(where, f"user name must be a string, got {_typename(user)}")
        if ":" in user:
            _fail(where, "user name must not contain ':' (basic auth cannot carry it)")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in user):
            _fail(where, "user name must not contain control characters")
        # The value is a secret: never quote it, not even its type's repr.
        if not isinstance(hashed, str):
            _fail(where, f"must be a bcrypt hash string, got {_typename(hashed)}")
        data = hashed.strip().encode("utf-8", "replace")
        m = _BCRYPT_RE.fullmatch(data)
        if not m:
            _fail(where, "not a bcrypt hash (expected $2a$, $2b$ or $2y$, a two-digit cost and 53 characters; "
                         "make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        cost = int(m.group(1))
        if not 4 <= cost <= 31:
            _fail(where, f"bcrypt cost {cost} is out of range 4-31")
        users[user] = data
    return users


def _parse_rate_limit(raw: Any) -> RateLimit | None:
    P = "rate_limit"
    if raw is None:
        return None
    if not isinstance(raw, dict):
        _fail(P, f"must be a mapping, got {_typename(raw)}")
    _check_keys(raw, P, P, ("interval", "burst"))
    interval_raw = raw.get("interval", 0)
    if isinstance(interval_raw, bool) or not isinstance(interval_raw, (int, float, str)):
        _fail(f"{P}.interval", f"must be a duration such as 100ms or 1s, got {_typename(interval_raw)}")
    try:
        interval = parse_duration(interval_raw) if isinstance(interval_raw, str) else float(interval_raw)
    except ValueError:
        _fail(f"{P}.interval", f"malformed duration {_show(interval_raw)}; expected e.g. 100ms, 1s or 1m")
    if not math.isfinite(interval) or interval < 0:
        _fail(f"{P}.interval", "must be a finite duration ≥ 0")
    burst = raw.get("burst", 0)
    if isinstance(burst, bool) or not isinstance(burst, int):
        _fail(f"{P}.burst", f"must be an integer, got {_typename(burst)}")
    if interval == 0:
        return None  # exporter-toolkit: an interval of 0 disables the limiter
    if burst < 1:
        _fail(f"{P}.burst", "must be at least 1 when interval is set (0 would refuse every request)")
    return RateLimit(interval=interval, burst=burst)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys in a mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _value in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue
                if duplicate:
                    shown = key if isinstance(key, str) and len(key) <= 60 else type(key).__name__
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {shown!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, root_name: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        # Not str(e): that quotes the offending line, which could hold a hash.
        mark = e.problem_mark or e.context_mark
        where = f"{root_name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else root_name
        _fail(where, f"YAML syntax error: {e.problem or e.context or 'invalid YAML'}")
    except yaml.YAMLError:
        _fail(root_name, "YAML syntax error")
    except RecursionError:
        _fail(root_name, "YAML syntax error: document is nested too deeply")
    except Exception as e:  # e.g. ValueError from an impossible timestamp
        _fail(root_name, f"YAML error: {type(e).__name__}")


def _check_keys(raw: dict, path: str, where: str, allowed: tuple[str, ...]) -> None:
    for key in raw:
        if not isinstance(key, str):
            _fail(where, f"keys must be strings, got {_typename(key)}")
        if key not in allowed:
            _fail(_join(path, key), f"unknown key; expected one of {', '.join(allowed)}")


def _string_list(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        _fail(where, f"must be a list of strings, got {_typename(raw)}")
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item:
            _fail(f"{where}[{i}]", f"must be a non-empty string, got {_typename(item)}")
    return list(raw)


def _join(path: str, key: Any) -> str:
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_@+-]{1,64}", key):
        return f"{path}.{key}" if path else key
    text = repr(key)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{path}[{text}]"


def _typename(value: Any) -> str:
    """The configuration's type name, with an article: "an integer", "a list", "nothing (null)"."""
    name = _bare_typename(value)
    if name == "null":
        return "nothing (null)"
    if name in ("boolean", "number", "string", "list", "mapping"):
        return f"a {name}"
    return "an integer" if name == "integer" else name
