"""The result of a web config: :class:`WebConfig` and its parts, the names the file may use, the error."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from exporter.config.errors import ConfigError


class WebConfigError(ConfigError):
    """An invalid web configuration: one or more one-line problems ``"<key path>: <problem>"``."""


def _fail(path: str, message: str) -> NoReturn:
    raise WebConfigError(path, message)


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
