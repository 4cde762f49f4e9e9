"""Hostile clients against the exporter's server: bad request lines, huge headers, slow and stalled
clients, a connection flood, concurrent scrapes.  Real sockets; the only waits are bounded ones."""

from __future__ import annotations

import base64
import gzip
import logging
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from exporter.web import App, HttpServer
from exporter.webconfig import load_web_config
from tests.helpers import read_until_closed
from tests.integration.test_webconfig import HASH, PASSWORD, client_context, filled_store, make_pki

AUTH = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def quiet(caplog, capfd):
    """Everything the server logs is captured; afterwards: no error record, no traceback anywhere."""
    caplog.set_level(logging.DEBUG, logger="exporter")
    yield caplog
    for record in caplog.records:
        assert record.levelno < logging.ERROR, record.getMessage()
        assert not record.exc_info, record.getMessage()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


@pytest.fixture(scope="module")
def store():
    return filled_store(500)


@pytest.fixture
def serve(quiet, store):
    servers = []

    def start(web_config=None, **kw) -> HttpServer:
        server = HttpServer(App(store), "127.0.0.1:0", web_config=web_config, **kw).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def connect(server: HttpServer, timeout: float = 5) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def raw(server: HttpServer, data: bytes) -> bytes:
    with connect(server) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def still_serving(server: HttpServer, **kw) -> None:
    response = httpx.get(server.url + "/metrics", timeout=5, **kw)
    assert response.status_code == 200 and response.content.startswith(b"# HELP")


@pytest.mark.parametrize(
    "request_line",
    [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1 extra words\r\n\r\n",
        b"GET / HTTP/x.y\r\n\r\n",
        b"\x00\x01\x02\xff\xfe binary \x80\r\n\r\n",
        b"GET / HTTQ/1.1\r\n\r\n",
    ],
)
def test_malformed_request_line_gets_400(serve, request_line):
    server = serve()
    answer = raw(server, request_line)
    assert answer.startswith(b"HTTP/1.1 400 ") or answer.startswith(b"HTTP/1.0 400 "), answer[:100]
    still_serving(server)


def test_http2_preface_and_unknown_methods(serve):
    server = serve()
    # Issue 13 changed this on purpose: aiohttp's parser (no longer our own) refuses the HTTP/2 preface on
    # an HTTP/1.1 port as a bad request, 400 instead of the hand-written server's 505.
    assert raw(server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").split(b" ")[1] == b"400"
    assert (
        raw(server, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").split(b" ")[1] == b"405"
    )  # only /-/reload takes POST
    assert raw(server, b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n").split(b" ")[1] == b"501"
    still_serving(server)


def test_long_request_line_gets_414(serve):
    server = serve()
    answer = raw(server, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    # aiohttp answers a request it could not parse as HTTP/1.0 (issue 13): the status is what matters
    assert answer.split(b" ")[1] == b"414", answer[:100]
    still_serving(server)


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Huge: " + b"h" * 100_000 + b"\r\n",  # one 100 KB header
        b"".join(b"X-Many-%d: v\r\n" % i for i in range(150)),  # too many headers
        b"".join(b"X-Big-%d: %s\r\n" % (i, b"b" * 1000) for i in range(40)),  # 40 KB in total
    ],
)
def test_huge_headers_get_431(serve, headers):
    server = serve()
    answer = raw(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.split(b" ")[1] in (b"431", b"400"), answer[:100]
    assert b"whatsapp_" not in answer
    still_serving(server)


def test_keep_alive_head_and_request_bodies(serve, store):
    server = serve()
    with connect(server) as sock:
        rfile = sock.makefile("rb")

        def response():
            status = rfile.readline()
            headers = {}
            while (line := rfile.readline()) not in (b"\r\n", b""):
                k, v = line.decode().split(":", 1)
                headers[k.strip().lower()] = v.strip()
            return status, headers

        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = response()
        assert status.startswith(b"HTTP/1.1 200") and rfile.read(int(headers["content-length"])) == b"Healthy\n"

        sock.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = response()
        assert status.startswith(b"HTTP/1.1 200") and int(headers["content-length"]) > len(store.exposition.body)

        # a GET with a (pointless) body: the body is read and dropped, the connection stays usable
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
        status, headers = response()
        assert status.startswith(b"HTTP/1.1 200") and rfile.read(int(headers["content-length"])) == b"Healthy\n"

        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        status, headers = response()
        body = gzip.decompress(rfile.read(int(headers["content-length"])))
        assert status.startswith(b"HTTP/1.1 200") and body.startswith(store.exposition.body)

        sock.sendall(b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers = response()
        assert status.startswith(b"HTTP/1.1 200") and rfile.read(int(headers["content-length"])) == b"Ready\n"
        assert rfile.read() == b""  # closed as asked
        rfile.close()


def test_bad_content_length_gets_400(serve):
    server = serve()
    answer = raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
    assert answer.split(b" ")[1] == b"400", answer[:100]  # as HTTP/1.0 from aiohttp's parser (issue 13)
    still_serving(server)


def _slow_clients(server: HttpServer, n: int, payload: bytes) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        sock = connect(server)
        if payload:
            sock.sendall(payload)
        socks.append(sock)
    return socks


def test_100_slow_clients_do_not_block_a_scrape(serve):
    server = serve()  # the default 10 s timeout: the slow clients stay connected throughout
    socks = _slow_clients(server, 100, b"GET /metr")
    try:
        still_serving(server)
        # the slow clients are still connected (not simply refused) while the scrape was served
        sock = socks[0]
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)
    finally:
        for sock in socks:
            sock.close()


def test_stalled_and_idle_clients_are_dropped_after_the_timeout(serve):
    # issue 13: the one "no progress" timeout became a header deadline and an idle keep-alive timeout
    server = serve(header_timeout=1.0, idle_timeout=1.0)
    stalled = _slow_clients(server, 3, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    idle = _slow_clients(server, 3, b"")  # never says anything
    keepalive = connect(server)
    keepalive.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        for sock in stalled + idle + [keepalive]:
            sock.settimeout(10)  # bounded wait; the server should close well before
            data = read_until_closed(sock)
            assert b"200 OK" not in data or sock is keepalive
        assert read_until_closed(keepalive) == b""  # already fully read above; the server closed the idle keep-alive
    finally:
        for sock in stalled + idle + [keepalive]:
            sock.close()
    still_serving(server)


def _closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> float | None:
    """Seconds until the server closed ``sock`` (dripping ``drip`` every 0.25 s meanwhile), None if it did not.

    Waits on the socket itself (select), so that a close is seen when it happens, not at the next drip."""
    start = time.monotonic()
    next_drip = start
    sock.setblocking(False)
    while (left := start + seconds - time.monotonic()) > 0:
        if drip and time.monotonic() >= next_drip:
            try:
                sock.sendall(drip)
            except OSError:
                return time.monotonic() - start
            next_drip += 0.25
        select.select([sock], [], [], min(left, max(0.0, next_drip - time.monotonic())) if drip else left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except BlockingIOError:
            pass
        except OSError:
            return time.monotonic() - start
    return None


def test_dripping_header_lines_do_not_extend_the_header_deadline(serve):
    """One header line every 0.25 s: the connection is closed at the header deadline, not kept for ever."""
    server = serve(header_timeout=1.5, idle_timeout=60)
    socks = _slow_clients(server, 40, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    try:
        with ThreadPoolExecutor(max_workers=40) as pool:
            closed = list(pool.map(lambda s: _closed_within(s, 10, b"X-Drip: 1\r\n"), socks))
            still_serving(server)
        assert all(c is not None and 1.0 < c < 6 for c in closed), closed
    finally:
        for sock in socks:
            sock.close()


def test_idle_keep_alive_is_closed_after_the_idle_timeout_not_the_header_deadline(serve):
    server = serve(header_timeout=60, idle_timeout=1.0)
    with connect(server) as sock:
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        closed = _closed_within(sock, 10)
    assert closed is not None and closed < 5


def test_http09_request_line_gets_400_at_once(serve):
    server = serve(header_timeout=30)
    for line in (b"GET /\r\n", b"GET /metrics\r\n\r\n"):
        with connect(server, timeout=5) as sock:
            sock.sendall(line)
            started = time.monotonic()
            answer = read_until_closed(sock)
        assert answer.split(b" ")[1] == b"400" and b"whatsapp_" not in answer, answer[:100]
        assert time.monotonic() - started < 4  # not after the 30 s header deadline
    still_serving(server)


@pytest.mark.parametrize(
    "request_bytes",
    [
        # two different lengths: the second request must not be smuggled in the body
        b"POST /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",  # repeated
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /-/healthy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ],
)
def test_ambiguous_message_framing_gets_400_and_nothing_is_smuggled(serve, request_bytes):
    server = serve()
    answer = raw(server, request_bytes)
    assert answer.split(b" ")[1] == b"400", answer[:100]
    assert answer.count(b"HTTP/1.") == 1 and b"whatsapp_" not in answer
    still_serving(server)


def test_a_body_over_the_limit_gets_413(serve):
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 65536)
        answer = read_until_closed(sock)
    assert answer.split(b" ")[1] == b"413", answer[:100]
    still_serving(server)


@pytest.mark.parametrize(
    "accept,gzipped",
    [
        ("gzip", True),
        ("gzip;q=0", False),
        ("GZIP; q=0.0", False),
        ("gzip;q=0.5, identity", True),
        ("identity", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
        ("deflate, br", False),
        ("x-gzip", True),
        ("gzip;q=bogus", False),
    ],
)
def test_accept_encoding_q_values_are_honoured(serve, store, accept, gzipped):
    server = serve()
    response = httpx.get(server.url + "/metrics", headers={"Accept-Encoding": accept}, timeout=10)
    assert response.status_code == 200 and response.headers["Vary"] == "Accept-Encoding"
    assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
    assert response.content.startswith(store.exposition.body)  # httpx decodes gzip


def test_50_concurrent_scrapes_get_complete_identical_bodies(serve, store):
    server = serve()
    expected = store.exposition.body
    barrier = threading.Barrier(50)

    def scrape(i: int) -> bytes:
        barrier.wait(timeout=10)
        gzipped = bool(i % 2)
        headers = {"Accept-Encoding": "gzip" if gzipped else "identity"}
        with httpx.stream("GET", server.url + "/metrics", headers=headers, timeout=10) as response:
            assert response.status_code == 200
            data = b"".join(response.iter_raw())
        # the gzip answer is one gzip member holding the cached exposition and the process metrics
        return gzip.decompress(data) if gzipped else data

    with ThreadPoolExecutor(max_workers=50) as pool:
        bodies = list(pool.map(scrape, range(50)))
    assert len(expected) > 100_000
    for body in bodies:
        assert body.startswith(expected)
        tail = body[len(expected) :]
        assert tail.endswith(b"\n") and b"# TYPE python_info gauge" in tail


def test_tls_client_that_never_handshakes_does_not_block_others(pki, tmp_path, serve):
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config: {{cert_file: {pki.server_crt}, key_file: {pki.server_key}}}\n"
        f"basic_auth_users: {{prometheus: '{HASH}'}}\n"
    )
    server = serve(load_web_config(str(path)))
    silent = _slow_clients(server, 30, b"")  # connect, say nothing
    partial = _slow_clients(server, 30, b"\x16\x03\x01\x02\x00\x01")  # half a ClientHello, then nothing
    garbage = _slow_clients(server, 5, b"\x16" + b"\xff" * 300)  # not TLS at all after the first byte
    try:
        with httpx.Client(verify=client_context(pki), timeout=5) as client:
            for _ in range(3):
                response = client.get(server.url + "/metrics", headers={"Authorization": AUTH})
                assert response.status_code == 200 and b"whatsapp_phone_number_info{" in response.content
        for sock in garbage:  # the server gives up on those at once
            sock.settimeout(5)
            assert b"HTTP/" not in read_until_closed(sock)
    finally:
        for sock in silent + partial + garbage:
            sock.close()


def test_tls_handshake_and_sniffing_are_bounded_by_the_header_deadline(pki, tmp_path, serve):
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config: {{cert_file: {pki.server_crt}, key_file: {pki.server_key}}}\n")
    server = serve(load_web_config(str(path)), header_timeout=1.0)
    silent = connect(server)
    partial = connect(server)
    partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # half a ClientHello
    try:
        assert _closed_within(silent, 10) is not None
        assert _closed_within(partial, 10) is not None
    finally:
        silent.close()
        partial.close()
    with httpx.Client(verify=client_context(pki), timeout=5) as client:
        assert client.get(server.url + "/-/healthy").status_code == 200


def test_tls_hostile_requests_inside_the_tunnel(pki, tmp_path, serve):
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config: {{cert_file: {pki.server_crt}, key_file: {pki.server_key}}}\n")
    server = serve(load_web_config(str(path)))
    ctx = client_context(pki)
    for payload, status in [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nX-Huge: " + b"h" * 100_000 + b"\r\n\r\n", b"431"),
    ]:
        with ctx.wrap_socket(connect(server), server_hostname="localhost") as tls:
            tls.sendall(payload)
            answer = read_until_closed(tls)
        assert answer.split(b" ")[1] == status, answer[:100]
    with httpx.Client(verify=ctx, timeout=5) as client:
        assert client.get(server.url + "/metrics").status_code == 200


def test_many_wrong_passwords_do_not_starve_scrapes(pki, tmp_path, serve):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users: {{prometheus: '{HASH}'}}\n")
    server = serve(load_web_config(str(path)))

    def attempt(i: int) -> int:
        return httpx.get(server.url + "/metrics", auth=("prometheus", f"guess-{i}"), timeout=10).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(attempt, i) for i in range(60)]
        still_serving(server, auth=("prometheus", PASSWORD))
        assert {f.result() for f in futures} == {401}


def test_a_bug_in_a_handler_answers_500_and_the_server_goes_on(caplog, store):
    class Broken(App):
        def landing_page(self) -> bytes:
            raise RuntimeError("boom")

    caplog.set_level(logging.DEBUG, logger="exporter")
    server = HttpServer(Broken(store), "127.0.0.1:0").start()
    try:
        with httpx.Client(timeout=5) as client:
            assert client.get(server.url + "/").status_code == 500
            assert client.get(server.url + "/metrics").status_code == 200  # same keep-alive connection
    finally:
        server.stop()
    # a bug (unlike anything a client does) is logged as an error, with its traceback
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == ["request failed"]
