"""``tls_server_config``: the rules between its keys, and the SSL context."""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import tempfile
import warnings
from typing import TYPE_CHECKING, NoReturn

from exporter import yamlfile
from exporter.webconfig.model import (
    CIPHER_SUITES,
    CLIENT_AUTH_TYPES,
    PEM_FILE_MAX_BYTES,
    TLS13_SUITES,
    TLS_VERSIONS,
    TLSConfig,
    _fail,
)

if TYPE_CHECKING:
    from exporter.webconfig.schema import TLSServerConfig


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
