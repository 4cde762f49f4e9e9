"""TLS, mTLS and basic auth on the exporter's own server, with real TLS clients over real sockets."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import warnings

import httpx
import pytest

from exporter.logsetup import LogfmtFormatter
from exporter.web import REALM, App, HttpServer
from exporter.webconfig import load_web_config
from tests.helpers import free_port, read_until_closed, wait_for, wait_ready
from tests.integration.test_webconfig import HASH, PASSWORD, client_context, filled_store, make_pki

CMD = [sys.executable, "-m", "exporter"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def logs(caplog):
    """Every record of the exporter at debug level; afterwards: no traceback, no secret."""
    caplog.set_level(logging.DEBUG, logger="exporter")
    yield caplog
    fmt = LogfmtFormatter()
    for record in caplog.records:
        assert not (record.levelno >= logging.ERROR and record.exc_info), fmt.format(record)
        text = fmt.format(record)
        assert PASSWORD not in text and HASH not in text


@pytest.fixture
def serve(pki, tmp_path, logs):
    servers = []

    def start(web_yaml: str, store=None, **kw) -> HttpServer:
        path = tmp_path / f"web{len(servers)}.yml"
        path.write_text(textwrap.dedent(web_yaml).format(crt=pki.server_crt, key=pki.server_key, ca=pki.ca, hash=HASH))
        server = HttpServer(App(store or filled_store(50)), "127.0.0.1:0", web_config=load_web_config(str(path)), **kw)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


TLS_AUTH = """
tls_server_config:
  cert_file: {crt}
  key_file: {key}
basic_auth_users:
  prometheus: '{hash}'
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
    X-Frame-Options: deny
"""

MTLS = """
tls_server_config:
  cert_file: {crt}
  key_file: {key}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {ca}
"""


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_tls_and_basic_auth(pki, serve):
    server = serve(TLS_AUTH)
    assert server.url.startswith("https://127.0.0.1:")
    with httpx.Client(verify=client_context(pki), timeout=5) as client:
        ok = client.get(server.url + "/metrics", auth=("prometheus", PASSWORD))
        assert ok.status_code == 200 and b"whatsapp_phone_number_info{" in ok.content
        assert ok.headers["X-Content-Type-Options"] == "nosniff" and ok.headers["X-Frame-Options"] == "deny"

        wrong = client.get(server.url + "/metrics", auth=("prometheus", PASSWORD + "x"))
        assert wrong.status_code == 401
        assert wrong.headers["WWW-Authenticate"] == f'Basic realm="{REALM}"'
        assert wrong.headers["X-Content-Type-Options"] == "nosniff"
        assert b"whatsapp_" not in wrong.content

        assert client.get(server.url + "/metrics").status_code == 401
        assert client.get(server.url + "/metrics", auth=("grafana", PASSWORD)).status_code == 401
        for header in [
            "Bearer abc",
            "Basic",
            "Basic !!!notbase64!!!",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            basic("prometheus", ""),
            basic("", PASSWORD),
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        ]:
            assert client.get(server.url + "/metrics", headers={"Authorization": header}).status_code == 401, header

        # exporter-toolkit protects every path, the health endpoints included
        for path in ("/", "/-/healthy", "/-/ready", "/nope"):
            assert client.get(server.url + path).status_code == 401, path
        assert client.get(server.url + "/-/healthy", auth=("prometheus", PASSWORD)).text == "Healthy\n"
        assert client.get(server.url + "/nope", auth=("prometheus", PASSWORD)).status_code == 404

        head = client.head(server.url + "/metrics", auth=("prometheus", PASSWORD))
        assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 0


def test_htpasswd_2y_hashes_work(pki, serve):
    server = serve(TLS_AUTH.replace("'{hash}'", "'" + HASH.replace("$2b$", "$2y$") + "'"))
    with httpx.Client(verify=client_context(pki), timeout=5) as client:
        assert client.get(server.url + "/metrics", auth=("prometheus", PASSWORD)).status_code == 200
        assert client.get(server.url + "/metrics", auth=("prometheus", "nope")).status_code == 401


def test_successful_checks_are_cached_failures_are_not(pki, serve):
    server = serve(TLS_AUTH)
    with httpx.Client(verify=client_context(pki), timeout=5) as client:
        for _ in range(10):
            assert client.get(server.url + "/metrics", auth=("prometheus", PASSWORD)).status_code == 200
        assert server.auth.bcrypt_checks == 1
        for _ in range(3):
            assert client.get(server.url + "/metrics", auth=("prometheus", "wrong")).status_code == 401
        assert server.auth.bcrypt_checks == 4
        # an unknown user still costs one bcrypt (against a dummy hash), so it answers as slowly as a known one
        assert client.get(server.url + "/metrics", auth=("mallory", PASSWORD)).status_code == 401
        assert server.auth.bcrypt_checks == 5


def test_basic_auth_without_tls(serve):
    server = serve("basic_auth_users:\n  prometheus: '{hash}'\n")
    assert server.url.startswith("http://")
    assert httpx.get(server.url + "/metrics", auth=("prometheus", PASSWORD), timeout=5).status_code == 200
    assert httpx.get(server.url + "/metrics", timeout=5).status_code == 401


def test_secrets_never_served_or_logged(pki, serve, logs):
    server = serve(TLS_AUTH)
    with httpx.Client(verify=client_context(pki), timeout=5) as client:
        pages = [client.get(server.url + p, auth=("prometheus", PASSWORD)).text for p in ("/", "/metrics", "/-/ready")]
        pages.append(client.get(server.url + "/metrics", auth=("prometheus", PASSWORD + "-typo")).text)
        pages.append(client.get(server.url + "/metrics").text)
    for page in pages:
        assert PASSWORD not in page and HASH not in page
    assert logs.records, "the server logs its requests at debug level"
    # the `logs` fixture checks every record for the password and the hash


def test_plain_http_to_the_tls_port_is_refused(serve):
    server = serve(TLS_AUTH)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + basic("prometheus", PASSWORD).encode()
            + b"\r\n\r\n"
        )
        answer = read_until_closed(sock)
    assert not answer.startswith(b"HTTP/1.1 200") and b"whatsapp_" not in answer
    assert answer.startswith(b"HTTP/1.0 400") and b"HTTPS server" in answer
    # an ordinary HTTP client gets that answer too
    response = httpx.get(
        server.url.replace("https://", "http://") + "/metrics", auth=("prometheus", PASSWORD), timeout=5
    )
    assert response.status_code == 400 and "HTTPS" in response.text


def _handshake(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        tls.negotiated = tls.version()
        # with TLS 1.3 a refused client certificate is reported after the handshake: make one round trip
        tls.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(tls)
        if not answer:
            raise ssl.SSLError("connection closed without an answer")
        tls.answer = answer
        return tls
    except BaseException:
        sock.close()
        raise


def test_tls11_client_is_refused_when_min_version_is_tls12(pki, serve, logs):
    server = serve(TLS_AUTH)
    assert server.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2  # (a private attribute before issue 13)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError):
            return  # this OpenSSL cannot even build a TLS 1.1 client; the assertion above stands
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(server.port, ctx)
    # the server itself saw the TLS 1.1 hello and refused it (it logs that just after sending its alert)
    refusals = wait_for(
        lambda: [r.error for r in logs.records if r.getMessage() == "TLS handshake failed"],
        "the server's log of the refused handshake",
        timeout=5,
    )
    assert refusals == ["UNSUPPORTED_PROTOCOL"]
    # ... while a TLS 1.2 client on the same server gets in
    ok = client_context(pki)
    ok.maximum_version = ssl.TLSVersion.TLSv1_2
    tls = _handshake(server.port, ok)
    assert tls.negotiated == "TLSv1.2" and tls.answer.startswith(b"HTTP/1.1 401")
    tls.close()


def test_max_version_tls12_refuses_a_tls13_only_client(pki, serve):
    server = serve("tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  max_version: TLS12\n")
    only13 = client_context(pki)
    only13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(server.port, only13)
    tls = _handshake(server.port, client_context(pki))
    assert tls.negotiated == "TLSv1.2" and tls.answer.startswith(b"HTTP/1.1 200")
    tls.close()


def test_mutual_tls(pki, serve):
    server = serve(MTLS)
    with httpx.Client(verify=client_context(pki, pki.client_crt, pki.client_key), timeout=5) as client:
        assert client.get(server.url + "/metrics").status_code == 200
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(server.port, client_context(pki))  # no client certificate
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(server.port, client_context(pki, pki.rogue_crt, pki.rogue_key))  # signed by another CA
    with pytest.raises(httpx.TransportError), httpx.Client(verify=client_context(pki), timeout=5) as client:
        client.get(server.url + "/metrics")
    # and the server still serves the right client afterwards
    with httpx.Client(verify=client_context(pki, pki.client_crt, pki.client_key), timeout=5) as client:
        assert client.get(server.url + "/-/healthy").status_code == 200


@pytest.mark.parametrize(
    "sans,allowed",
    [("[scraper.example]", True), ("['spiffe://test/scraper']", True), ("[other.example, 10.0.0.1]", False)],
)
def test_client_allowed_sans(pki, serve, sans, allowed):
    server = serve(MTLS + f"  client_allowed_sans: {sans}\n")
    ctx = client_context(pki, pki.client_crt, pki.client_key)
    if allowed:
        assert _handshake(server.port, ctx).answer.startswith(b"HTTP/1.1 200")
    else:
        with pytest.raises((ssl.SSLError, OSError)):
            _handshake(server.port, ctx)


def test_rate_limit(serve):
    server = serve("rate_limit: {{interval: 1h, burst: 3}}\n")
    codes = [httpx.get(server.url + "/-/healthy", timeout=5).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


def check_config(tmp_path, web_config) -> subprocess.CompletedProcess:
    """``--check-config`` of a one-account configuration together with ``web_config``."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "accounts:\n  - name: shop\n    provider: alibaba_cams\n"
        '    credentials: {access_key_id: ak, access_key_secret: "${WEB_TEST_SECRET}"}\n'
        "    spaces: [{cust_space_id: cams-1}]\n"
    )
    return subprocess.run(
        [*CMD, "--check-config", "--config.file", str(config), "--web.config.file", str(web_config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "WEB_TEST_SECRET": "x"},
    )


@pytest.mark.parametrize(
    "text,key",
    [
        ("tls_server_config:\n  cert_file: {crt}\n", "tls_server_config.key_file"),
        (
            "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: {key}\n",
            "tls_server_config.cert_file: cannot read",
        ),
        ("basic_auth_users:\n  alice: not-a-hash-{hash}\n", "basic_auth_users.alice"),
        ("basic_auth_users: [\n", "web.yml:"),
        ("tls: {{}}\n", "tls: unknown key"),
    ],
)
def test_cli_bad_web_config_exits_2_with_one_line(pki, tmp_path, text, key):
    path = tmp_path / "web.yml"
    path.write_text(text.format(crt=pki.server_crt, key=pki.server_key, hash=HASH))
    port = free_port()
    result = subprocess.run(
        [*CMD, "--demo", "--web.listen-address", f"127.0.0.1:{port}", "--web.config.file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --web.config.file: ") and key in lines[0], result.stderr
    assert "Traceback" not in result.stderr and HASH not in result.stderr

    check = check_config(tmp_path, path)
    assert check.returncode == 2 and len(check.stderr.strip().splitlines()) == 1 and key in check.stderr


def test_cli_check_config_accepts_a_good_web_config(pki, tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(TLS_AUTH.format(crt=pki.server_crt, key=pki.server_key, hash=HASH))
    result = check_config(tmp_path, path)
    assert result.returncode == 0, result.stderr
    assert "web config OK: TLS on" in result.stdout and "1 basic-auth user(s)" in result.stdout


def test_cli_demo_serves_https_with_auth(pki, tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(TLS_AUTH.format(crt=os.path.relpath(pki.server_crt, tmp_path), key=pki.server_key, hash=HASH))
    port = free_port()
    proc = subprocess.Popen(
        [
            *CMD,
            "--demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--web.config.file",
            str(path),
            "--log.format",
            "json",
            "--log.level",
            "debug",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=client_context(pki), timeout=2) as client:
            wait_ready(
                url, "the demo's readiness over https", client=client, process=proc, auth=("prometheus", PASSWORD)
            )
            metrics = client.get(url + "/metrics", auth=("prometheus", PASSWORD))
            assert metrics.status_code == 200 and b"whatsapp_phone_number_info{" in metrics.content
            assert client.get(url + "/metrics").status_code == 401
            assert client.get(url + "/metrics", auth=("prometheus", "wrong")).status_code == 401
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/metrics", verify=True, timeout=2)  # a client that does not trust our CA
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    listening = [r for r in records if r["msg"] == "listening"]
    assert listening and listening[0]["url"].startswith("https://")
    assert not [r for r in records if r["level"] == "error"], err
    assert "Traceback" not in err and PASSWORD not in err and HASH not in err


# --------------------------------------------------------------------------
# /-/reload and --web.enable-lifecycle (issue 13)
# --------------------------------------------------------------------------


def _reload_server(lifecycle: bool, web_config=None, reload=True):
    calls = []

    def do_reload():
        calls.append(1)
        return True, "configuration reloaded"

    app = App(filled_store(5), reload=do_reload if reload else None, lifecycle=lifecycle)
    return HttpServer(app, "127.0.0.1:0", web_config=web_config).start(), calls


def test_reload_is_not_served_without_web_enable_lifecycle():
    server, calls = _reload_server(lifecycle=False)
    try:
        for method in ("POST", "PUT", "GET"):
            assert httpx.request(method, server.url + "/-/reload", timeout=5).status_code == 404, method
        assert calls == []
    finally:
        server.stop()


def test_reload_with_web_enable_lifecycle():
    server, calls = _reload_server(lifecycle=True)
    try:
        response = httpx.post(server.url + "/-/reload", timeout=5)
        assert response.status_code == 200 and response.text == "configuration reloaded\n"
        assert httpx.put(server.url + "/-/reload", timeout=5).status_code == 200
        get = httpx.get(server.url + "/-/reload", timeout=5)
        assert get.status_code == 405 and set(get.headers["Allow"].replace(" ", "").split(",")) == {"POST", "PUT"}
        assert calls == [1, 1]
    finally:
        server.stop()
    demo, _ = _reload_server(lifecycle=True, reload=False)  # --demo has no file to reload
    try:
        assert httpx.post(demo.url + "/-/reload", timeout=5).status_code == 503
    finally:
        demo.stop()


def test_reload_is_behind_basic_auth(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    server, calls = _reload_server(lifecycle=True, web_config=load_web_config(str(path)))
    try:
        assert httpx.post(server.url + "/-/reload", timeout=5).status_code == 401
        assert httpx.post(server.url + "/-/reload", auth=("prometheus", "wrong"), timeout=5).status_code == 401
        assert calls == []
        assert httpx.post(server.url + "/-/reload", auth=("prometheus", PASSWORD), timeout=5).status_code == 200
        assert calls == [1]
    finally:
        server.stop()
