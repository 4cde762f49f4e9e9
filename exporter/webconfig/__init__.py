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

The package, by concern: :mod:`~exporter.webconfig.model` (the result and the
error), :mod:`~exporter.webconfig.schema` (the file's keys),
:mod:`~exporter.webconfig.tls` (the TLS rules and the SSL context) and
:mod:`~exporter.webconfig.loader` (reading a file into a :class:`WebConfig`).
"""

from exporter.webconfig.loader import load_web_config, parse_web_config
from exporter.webconfig.model import RateLimit, TLSConfig, WebConfig, WebConfigError

__all__ = ["RateLimit", "TLSConfig", "WebConfig", "WebConfigError", "load_web_config", "parse_web_config"]
