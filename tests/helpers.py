"""Helpers shared by every tier: configs for the emulator, scraping, parsing, waiting, raw sockets."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from emulators.scenario import Fault, load_builtin_scenario, loads_scenario
from exporter.config import parse_config
from exporter.poller import Poller
from exporter.store import Store
from tests.tools import ROOT, promtool_check_metrics

SECRETS = {"SK_ONE": "sk-one-SECRET-VALUE", "SK_TWO": "sk-two-SECRET-VALUE"}


def scenario_text(name: str) -> str:
    """The YAML of the emulator scenario ``name`` in tests/fixtures/scenarios/ (cams, nxcloud, kaleyra, meta)."""
    return (ROOT / "tests" / "fixtures" / "scenarios" / f"{name}.yaml").read_text()


def config_yaml(endpoint: str, *, extra_one: str = "", extra_two: str = "", two: bool = True) -> str:
    text = f"""
accounts:
  - name: shop
    provider: alibaba_cams
    endpoint: {endpoint}
    credentials: {{access_key_id: ak-one, access_key_secret: "${{SK_ONE}}"}}
    poll_interval: 30s
    waba_poll_interval: 30s
    labels: {{team: growth}}
    spaces:
      - cust_space_id: cams-shop
      - cust_space_id: cams-support
{extra_one}
"""
    if two:
        text += f"""
  - name: other
    provider: alibaba_cams
    endpoint: {endpoint}
    credentials: {{access_key_id: ak-two, access_key_secret: "${{SK_TWO}}"}}
    poll_interval: 30s
    spaces:
      - cust_space_id: cams-other
{extra_two}
"""
    return text


def make_config(endpoint: str, **kw):
    return parse_config(config_yaml(endpoint, **kw), env=SECRETS)


def cams_account(endpoint: str | None, name: str, access_key_id: str, secret_var: str, spaces, **keys) -> str:
    """One Alibaba CAMS account as a YAML list item under ``accounts:``: ``spaces`` are its cust_space_ids, the
    secret is ``${secret_var}``, ``keys`` more account keys in order (``timeout="0.3s"``, ``max_numbers=7``); no
    ``endpoint``: the provider's default one."""
    extra = "".join(f"    {key}: {value}\n" for key, value in keys.items())
    where = f"    endpoint: {endpoint}\n" if endpoint else ""
    return f"""  - name: {name}
    provider: alibaba_cams
{where}    credentials: {{access_key_id: {access_key_id}, access_key_secret: "${{{secret_var}}}"}}
{extra}    spaces: [{", ".join(f"{{cust_space_id: {space}}}" for space in spaces)}]
"""


def cams_config(endpoint: str, name: str, access_key_id: str, secret: str, spaces, **keys):
    """One Alibaba CAMS account, parsed: ``spaces`` are its cust_space_ids, ``keys`` more account keys
    (``timeout="0.3s"``, ``max_numbers=7``); the secret comes from the environment as a real config's does."""
    text = "accounts:\n" + cams_account(endpoint, name, access_key_id, "CAMS_SECRET", spaces, **keys)
    return parse_config(text, env={"CAMS_SECRET": secret})


def poll_once(config, *accounts: str):
    """A Poller on ``config`` polls each of ``accounts`` once, in this thread, and is stopped; returns its Store."""
    store = Store()
    poller = Poller(config, store)
    try:
        for name in accounts:
            poller.poll_account(name)
    finally:
        poller.stop()
    return store


#: quality ratings named HIGH/MEDIUM/LOW (Twilio's and Infobip's words) and the normalized rating of each
HIGH_MEDIUM_LOW_QUALITY = [
    ("HIGH", "GREEN"),
    ("MEDIUM", "YELLOW"),
    ("LOW", "RED"),
    ("UNKNOWN", "UNKNOWN"),
    (None, "UNKNOWN"),
]


def start_with_webhooks(config):
    """A real Poller and WebhookManager on ``config`` started as the exporter starts them (the receiver's routes
    committed once the poller runs): (store, poller, manager); the caller stops the manager, then the poller."""
    from exporter.webhooks import WebhookManager

    store = Store()
    poller = Poller(config, store)
    manager = WebhookManager(poller, store)
    plan = manager.prepare(config)
    poller.start()
    plan.commit()
    return store, poller, manager


#: the family most fault tests read: value(s, REQUEST_ERRORS, account=..., action=..., reason=...)
REQUEST_ERRORS = "whatsapp_exporter_api_request_errors_total"


def pollers_fixture(env: dict[str, str]):
    """A fixture ``make(*account_yaml) -> (Poller, Store)`` on those accounts; every poller made is stopped after."""

    @pytest.fixture
    def make():
        made = []

        def build(*accounts: str):
            store = Store()
            poller = Poller(parse_config("accounts:\n" + "".join(accounts), env=env), store)
            made.append(poller)
            return poller, store

        yield build
        for poller in made:
            poller.stop()

    return make


def current(store) -> dict[tuple[str, frozenset], float]:
    """The samples of ``store``'s current exposition."""
    return samples(store.exposition.body.decode())


def poll(poller, store, *accounts: str) -> dict[tuple[str, frozenset], float]:
    """``poller`` polls each of ``accounts`` once, in order; the samples of the exposition that follows."""
    for name in accounts:
        poller.poll_account(name)
    return current(store)


def assert_promtool_clean(exposition: bytes) -> None:
    """``promtool check metrics`` finds nothing at all to say about ``exposition``."""
    check = promtool_check_metrics(exposition)
    assert check.returncode == 0 and not check.stdout and not check.stderr, check


def scrape(url: str, path: str = "/metrics", gzip: bool = False) -> httpx.Response:
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    return httpx.get(url + path, headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """All samples of an exposition, keyed by (name, frozenset of label pairs), via prometheus_client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(all_samples, name: str, **labels) -> float | None:
    want = set(labels.items())
    found = [v for (n, ls), v in all_samples.items() if n == name and want <= set(ls)]
    if not found:
        return None
    assert len(found) == 1, (name, labels, found)
    return found[0]


def assert_fields(obj, **expected) -> None:
    """``obj``'s attributes named in ``expected`` have those values (compared at once: a failure shows them all)."""
    assert {name: getattr(obj, name) for name in expected} == expected


def active_state(all_samples, name: str, label: str, **labels) -> str:
    want = set(labels.items())
    states = [dict(ls)[label] for (n, ls), v in all_samples.items() if n == name and want <= set(ls) and v == 1]
    assert len(states) == 1, (name, labels, states)
    return states[0]


class FakeClock:
    """A wall clock the test sets: ``clock.t = ...``."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def emulator_fixture(name: str, emulator_class, scenario_yaml: str | None = None, *, builtin: str | None = None):
    """A fixture ``name``: the emulator serving ``scenario_yaml`` (or the ``builtin`` scenario of that name, as the
    demo runs it) on a real socket for one test."""

    @pytest.fixture(name=name)
    def serving():
        scenario = load_builtin_scenario(builtin) if builtin else loads_scenario(scenario_yaml)
        with emulator_class(scenario) as emulator:
            yield emulator

    return serving


#: where the emulator tests' clocks start: a quarter second into a calendar second (requests counted per second)
EMULATOR_T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp() + 0.25


def emulator_fixtures(emulator_class, scenario_yaml: str, t0: float = EMULATOR_T0, *, client=None):
    """One emulator's ``clock`` (a FakeClock at ``t0``) and ``emu`` (the emulator on that clock, serving on a real
    socket) fixtures; a test module takes them with ``clock, emu = emulator_fixtures(...)``. With ``client`` (a
    callable ``client(emu, clock)``), a third fixture ``client`` too: ``clock, emu, client = ...``."""

    @pytest.fixture
    def clock():
        return FakeClock(t0)

    @pytest.fixture
    def emu(clock):
        with emulator_class(loads_scenario(scenario_yaml), clock=clock) as emulator:
            yield emulator

    if client is None:
        return clock, emu
    make_client = client

    @pytest.fixture(name="client")
    def client_fixture(emu, clock):
        return make_client(emu, clock)

    return clock, emu, client_fixture


def check_transport_faults(emu, call, ok):
    """The delay, malformed, html and reset faults, each injected once into ``emu`` and seen through ``call()`` (one
    request, answering a :class:`Resp`); ``ok(resp)`` says an answer is good. Returns the html fault's page."""
    emu.inject(Fault(kind="delay", seconds=0.05, count=1))
    assert ok(call())
    assert emu.requests[-1].fault == "delay"
    emu.inject(Fault(kind="malformed", count=1))
    bad = call()
    assert bad.status == 200
    with pytest.raises(ValueError):
        json.loads(bad.body)
    emu.inject(Fault(kind="html", count=1))
    page = call()
    assert page.status == 502 and page.headers["Content-Type"].startswith("text/html")
    emu.inject(Fault(kind="reset", count=1))
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        call()
    assert emu.requests[-1].code == "fault:reset" and emu.requests[-1].http_status == 0
    assert ok(call())  # still serving
    return page


def check_garbage_requests(port: int, target: bytes = b"/", error_marker: bytes = b"") -> None:
    """Requests no HTTP server should take, sent raw to an emulator on ``port``: each gets an error answer, not a
    dropped connection; a bad Content-Length on ``target`` (a POST) gets the provider's own error envelope, which
    holds ``error_marker``, a huge one 413; a bad chunk 400 and a 70 kB URL 414."""
    assert b"400" in raw_exchange(port, b"GARBAGE\r\n\r\n")  # HTTP/0.9-style: the error page only
    assert raw_exchange(port, b"\x00\xff junk HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.")
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nthis is not a header\r\n\r\n").startswith(b"HTTP/1.")
    assert b" 414" in raw_exchange(port, b"GET /?" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")[:20]
    post = b"POST " + target + b" HTTP/1.1\r\nHost: x\r\n"
    for length in (b"nope", b"-5"):
        bad_length = raw_exchange(port, post + b"Content-Length: " + length + b"\r\n\r\n")
        assert b" 400 " in bad_length.split(b"\r\n")[0] and error_marker in bad_length, bad_length
    assert b" 413 " in raw_exchange(port, post + b"Content-Length: 99999999\r\n\r\n").split(b"\r\n")[0]
    assert b" 400 " in raw_exchange(port, post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n").split(b"\r\n")[0]


class Resp:
    """A raw HTTP answer from an emulator; each provider's tests add their own accessors."""

    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Resp({self.status}, {self.body[:300]!r})"


def wait_for(
    predicate,
    what: str,
    timeout: float = 30.0,
    interval: float = 0.05,
    *,
    ignore: tuple[type[BaseException], ...] = (),
    diagnostics=None,
):
    """Wait for a condition and return its truthy value; fail with ``what`` after ``timeout`` seconds.

    ``ignore``: exceptions that mean "not yet" (a server not listening yet: ``httpx.TransportError``, ``OSError``);
    ``diagnostics``: a callable whose text is added to the failure (a process's log). Bounded, and never asserts
    on how long it took (speed is for benchmarks).
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            got = predicate()
            if got:
                return got
        except ignore as err:
            last_error = err
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:g}s waiting for {what}"
                + (f" (last error: {last_error!r})" if last_error else "")
                + ("\n" + diagnostics() if diagnostics else ""),
                pytrace=False,
            )
        time.sleep(interval)


def wait_ready(url: str, what: str = "readiness", timeout: float = 60.0, *, client=None, process=None, **kw):
    """Wait until ``url`` + ``/-/ready`` answers 200 (connection errors mean "not up yet"); fail at once if
    ``process`` (a Popen) exited meanwhile."""
    get = (client or httpx).get

    def ready():
        if process is not None and process.poll() is not None:
            output = process.communicate(timeout=10)[1] if process.stderr else ""
            pytest.fail(f"the process exited ({process.returncode}) before {what}\n{output or ''}", pytrace=False)
        return get(url + "/-/ready", timeout=2, **kw).status_code == 200

    return wait_for(ready, what, timeout, 0.1, ignore=(httpx.TransportError,))


def http_exchange(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict | None = None,
    *,
    timeout: float = 5.0,
    answer=Resp,
):
    """One HTTP request to 127.0.0.1:``port`` with http.client, headers exactly as given; the answer as ``answer``
    (a :class:`Resp` or a provider's subclass of it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        r = conn.getresponse()
        return answer(r.status, r.headers, r.read())
    finally:
        conn.close()


# -- raw sockets --------------------------------------------------------------------------------------------


def assert_no_secret_logged(records, secrets) -> None:
    """No log record, in its message or attributes, holds one of ``secrets``; none is an error with a traceback."""
    for record in records:
        text = record.getMessage() + " " + repr(vars(record))
        for secret in secrets:
            assert secret not in text, record.getMessage()
        assert not (record.levelno >= logging.ERROR and record.exc_info), record.getMessage()


def no_secret_logged_fixture(secrets):
    """A fixture: the exporter's log records, at debug level, captured (it yields ``caplog``); afterwards none of
    them holds one of ``secrets`` (see :func:`assert_no_secret_logged`)."""

    @pytest.fixture
    def captured(caplog):
        caplog.set_level(logging.DEBUG, logger="exporter")
        yield caplog
        assert_no_secret_logged(caplog.records, secrets)

    return captured


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (as the kernel hands out)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until_closed(sock: socket.socket, limit: int = 1 << 20, seconds: float = 5.0) -> bytes:
    """What the peer sends until it closes or resets the connection, a read times out, ``seconds`` pass, or
    ``limit`` bytes came."""
    out = b""
    deadline = time.monotonic() + seconds
    while len(out) < limit and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        out += chunk
    return out


def raw_exchange(port: int, data: bytes, timeout: float = 5, half_close: bool = True) -> bytes:
    """Send ``data`` as is over a new connection (then half-close it, unless told not to) and return everything
    answered until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def load_script(name: str):
    """``scripts/<name>`` (a file, not a package: its name has dashes) imported as a module of its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name.removesuffix(".py").replace("-", "_"), ROOT / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python scripts/<name> ARGS`` run to its end: its exit code and its output as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=timeout
    )


#: the exporter's command line, as a user runs it
EXPORTER = [sys.executable, "-m", "exporter"]


def run_exporter(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """The exporter's command line run to its end with ``args`` (``env`` added to this environment, no stdin):
    its exit code and its output as text."""
    return subprocess.run(
        [*EXPORTER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def start_demo(command: list[str], port: int, **popen) -> subprocess.Popen:
    """``command --demo`` (the exporter, however installed) serving on 127.0.0.1:``port``, logging JSON; its
    output piped as text; ``popen``: more Popen arguments (``cwd``, ``env``)."""
    argv = [*command, "--demo", "--web.listen-address", f"127.0.0.1:{port}", "--log.format", "json"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def start_exporter(config_path, port: int, log, env: dict[str, str], *flags: str) -> subprocess.Popen:
    """The exporter run as a process on ``config_path``, listening on 127.0.0.1:``port``, logging JSON at debug
    level into the open file ``log``; ``env`` is added to this environment, ``flags`` to its command line."""
    return subprocess.Popen(
        [
            *EXPORTER,
            "--config.file",
            str(config_path),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            *flags,
            "--log.level",
            "debug",
            "--log.format",
            "json",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )


@contextmanager
def standalone_emulator(*args: str, banner: str = "listening on http://127.0.0.1:"):
    """``python -m emulators ARGS --listen 127.0.0.1:0`` run as a user runs it; yields ``run`` with ``run.port``.

    On leaving it is terminated and must exit 0; what it logged (its stderr) is then in ``run.log``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", *args, "--listen", "127.0.0.1:0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = SimpleNamespace(port=None, log="")
    try:
        line = proc.stdout.readline()
        assert banner in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        run.port = urlsplit(line.split()[-1]).port
        yield run
    finally:
        proc.terminate()
        try:
            run.log = proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            run.log = proc.communicate()[1]
    assert proc.returncode == 0, run.log


class OnLoop:
    """Calls an async provider (or client) from a synchronous test: each coroutine method runs to completion on
    ``loop``, one loop for the object's whole life (its HTTP client and budget belong to it); ``client`` is
    wrapped too.  Attributes are passed through."""

    def __init__(self, obj, loop):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name):
        import inspect

        value = getattr(self._obj, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self._loop.run_until_complete(value(*args, **kwargs))
        if name == "client":
            return OnLoop(value, self._loop)
        return value

    def __setattr__(self, name, value):
        setattr(self._obj, name, value)
