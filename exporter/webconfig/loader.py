"""Loading: the file read, parsed and validated into a :class:`WebConfig`."""

from __future__ import annotations

import os

from exporter.config.errors import load_yaml, read_file, validate
from exporter.webconfig.model import (
    WebConfig,
    WebConfigError,
    _fail,
)
from exporter.webconfig.schema import HTTPServerConfig, WebConfigFile, _a
from exporter.webconfig.tls import _tls


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
