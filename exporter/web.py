"""The exporter's HTTP endpoints: ``/``, the telemetry path, ``/-/healthy`` and ``/-/ready``.

The telemetry path serves the pre-rendered exposition from the store (and its
pre-gzipped twin when the scraper accepts gzip), followed by the handful of
process metrics that prometheus_client renders per scrape.  Nothing here ever
calls a provider.
"""

from __future__ import annotations

import gzip
import html
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest

from exporter import __version__
from exporter.store import Store

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_listen_address(value: str) -> tuple[str, int]:
    """``:10067``, ``0.0.0.0:10067``, ``[::1]:10067``, ``localhost:0`` → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid listen address {value!r}: expected [host]:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler, app: "App"):
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        elif host == "":
            # Listen on every interface, IPv6 and IPv4 where the host has IPv6.
            if socket.has_ipv6:
                try:
                    socket.socket(socket.AF_INET6).close()
                    self.address_family = socket.AF_INET6
                    address = ("::", address[1])
                except OSError:
                    address = ("0.0.0.0", address[1])
            else:
                address = ("0.0.0.0", address[1])
        self.app = app
        super().__init__(address, handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        super().server_bind()

    def handle_error(self, request, client_address):
        log.debug("connection error", extra={"client": str(client_address[0])}, exc_info=True)


class App:
    def __init__(self, store: Store, telemetry_path: str = "/metrics", ready: Callable[[], bool] | None = None):
        self.store = store
        self.telemetry_path = telemetry_path
        self.ready = ready or store.ready
        self.started_at = time.time()
        self._process = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self._process)
        PlatformCollector(registry=self._process)

    def process_metrics(self) -> bytes:
        return generate_latest(self._process)

    def landing_page(self) -> bytes:
        rows = []
        for acc in sorted(self.store.accounts(), key=lambda a: a.name):
            poll = acc.poll
            if poll is None:
                state, age, err = "pending", "never", ""
            else:
                state = "ok" if poll.success else "failing"
                age = f"{time.time() - poll.last_success_at:.0f}s ago" if poll.last_success_at else "never"
                err = poll.error
            rows.append(
                "<tr>"
                f"<td>{html.escape(acc.provider)}</td><td>{html.escape(acc.name)}</td>"
                f'<td class="{state}">{state}</td><td>{age}</td><td>{len(acc.numbers)}</td>'
                f"<td>{html.escape(err)}</td></tr>"
            )
        path = html.escape(self.telemetry_path)
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>WhatsApp number exporter</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .7em;text-align:left}}
.ok{{background:#d4f7d4}}.failing{{background:#ffd6d6}}.pending{{background:#eee}}
</style></head><body>
<h1>WhatsApp number exporter</h1>
<p>Version {html.escape(__version__)}. <a href="{path}">Metrics</a> &middot; <a href="/-/healthy">Health</a> &middot; <a href="/-/ready">Readiness</a></p>
<h2>Accounts</h2>
<table><tr><th>Provider</th><th>Account</th><th>Last poll</th><th>Last success</th><th>Numbers</th><th>Last error</th></tr>
{''.join(rows)}
</table>
</body></html>
"""
        return page.encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "whatsapp-number-exporter"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may take to send its request

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        log.debug("http request", extra={"client": self.client_address[0], "line": (format % args)[:200]})

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        app: App = self.server.app
        path = self.path.split("?", 1)[0]
        if path == app.telemetry_path:
            exposition = app.store.exposition
            tail = app.process_metrics()
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                # Two gzip members in a row form one valid gzip stream (RFC 1952 §2.2).
                body = exposition.gzipped + gzip.compress(tail, compresslevel=1)
                self._send(200, body, CONTENT_TYPE, {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
            else:
                self._send(200, exposition.body + tail, CONTENT_TYPE, {"Vary": "Accept-Encoding"})
        elif path == "/":
            self._send(200, app.landing_page(), "text/html; charset=utf-8")
        elif path == "/-/healthy":
            self._send(200, b"Healthy\n")
        elif path == "/-/ready":
            if app.ready():
                self._send(200, b"Ready\n")
            else:
                self._send(503, b"Not ready: the first poll round has not finished\n")
        else:
            self._send(404, b"Not found\n")

    do_HEAD = do_GET


class HttpServer:
    def __init__(self, app: App, listen_address: str):
        host, port = parse_listen_address(listen_address)
        self._server = _Server((host, port), Handler, app)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        if host in ("::", "0.0.0.0"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> "HttpServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
