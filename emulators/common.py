"""Machinery shared by the provider emulators (CAMS, NxCloud, Kaleyra).

Every emulator is a :class:`ProviderEmulator` subclass.  The base class owns
everything that does not depend on a provider's wire format:

* an aiohttp HTTP/1.1 server on loopback, on an event loop in a thread of its
  own, with a clean start/stop lifecycle (``start()``, ``stop()``, ``url``,
  ``port``, ``running``, context manager);
* robust request reading: chunked bodies, bad or oversized ``Content-Length``
  and garbage request lines (aiohttp's parser; answered with the provider's
  error envelope), and a catch-all so a bug in a provider handler becomes an
  error answer instead of a dead server;
* an injectable wall clock plus *scenario time* (``scenario_time()``, ``advance()``);
* a thread-safe request log (:class:`RequestRecord`, ``requests``, ``calls()``,
  ``per_second_counts()``, ``max_requests_in_any_second()``, ``write_action_calls()``);
* per-second request counting against limits (:meth:`ProviderEmulator._admit`);
* fault selection and injection (``inject()``, ``clear_faults()``, ``count`` /
  ``from`` / ``until`` / ``probability`` / selectors), including ``delay``,
  ``malformed``, ``html``, ``reset``, ``truncate``, ``oversize``, ``refuse`` and
  ``hang`` (never answers: the request is held until the emulator stops, then
  reset and recorded with its arrival time; ``hanging()`` counts those held);
  ``error`` faults are turned into the provider's own error answer, and the data
  faults (``unknown_enum``, ``null_fields``, ``duplicate_numbers``) are applied by
  each provider to its successful answers through :meth:`ProviderEmulator._corrupt_answer`;
  ``probability`` draws from a random generator private to the emulator
  (``seed=`` on the constructor), so runs are reproducible;
* runtime overrides of numbers and WABAs (``set_number()``, ``set_waba()``,
  ``clear_overrides()``) on top of the scenario timelines;
* a state watcher (a thread started and stopped with the emulator) that
  evaluates every number's and WABA's observable state against scenario time
  every :attr:`ProviderEmulator.watch_interval` seconds (at once after
  ``advance()`` or an override) and records each change (``state_changes()``),
  whether or not a webhook is configured; the emulators that push webhooks
  (Meta, NxCloud, Kaleyra: ``set_webhook()``) turn the changes into events and
  send them asynchronously through :class:`~emulators.webhooks.WebhookSender`
  (``webhooks_sent()``), subject to the ``webhook_bad_signature`` and
  ``webhook_drop`` faults.

A subclass implements :meth:`ProviderEmulator._process` (authenticate, count,
apply faults, answer) and the few hooks that shape its error answers.  Like the
emulators themselves, this module never imports the exporter's client code.
"""

from __future__ import annotations

from email.utils import formatdate

import asyncio
import difflib
import json
import logging
import math
import random
import socket
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from .scenario import DATA_FAULT_KINDS, WEBHOOK_FAULT_KINDS, Fault, Scenario, Space, Timeline
from .webhooks import Event, OutgoingRequest, WebhookSender, derive_events, redact_url, validate_url

__all__ = [
    "ApiError",
    "BodyError",
    "Context",
    "HEALTH_BY_REVIEW",
    "HEALTH_BY_STATUS",
    "HEALTH_RANK",
    "MAX_BODY_BYTES",
    "ProviderEmulator",
    "Reply",
    "Request",
    "RequestRecord",
    "UNKNOWN_ENUM_VALUES",
    "country_code_length",
    "display_number",
    "json_bytes",
    "wire_fields",
    "worst_health",
]

logger = logging.getLogger("emulators")

MAX_BODY_BYTES = 1 << 20

# Meta's health_status vocabulary, derived from a number's status / a WABA's review status when a
# scenario does not set can_send_message explicitly.
HEALTH_BY_STATUS = {
    "CONNECTED": "AVAILABLE",
    "FLAGGED": "LIMITED", "RATE_LIMITED": "LIMITED", "RESTRICTED": "LIMITED",
    "BANNED": "BLOCKED", "DISCONNECTED": "BLOCKED", "DELETED": "BLOCKED", "OFFLINE": "BLOCKED",
    "PENDING": "BLOCKED", "UNVERIFIED": "BLOCKED", "MIGRATED": "BLOCKED", "PAUSED": "LIMITED",
    # the list edge's spelling in Meta's OpenAPI (WhatsAppPhoneNumberStatus)
    "LINKED": "AVAILABLE", "UNLINKED": "BLOCKED",
}
HEALTH_BY_REVIEW = {"APPROVED": "AVAILABLE", "PENDING": "LIMITED", "REJECTED": "BLOCKED", "DISABLED": "BLOCKED"}
HEALTH_RANK = {"AVAILABLE": 0, "LIMITED": 1, "BLOCKED": 2}

# What an ``unknown_enum`` fault puts in place of each kind of enumerated value.
UNKNOWN_ENUM_VALUES = {"status": "BRAND_NEW_STATE", "quality": "BRAND_NEW_RATING", "tier": "TIER_BRAND_NEW"}


def worst_health(values: Iterable[str], default: str = "AVAILABLE") -> str:
    """BLOCKED if any value is BLOCKED, else LIMITED if any is LIMITED (unknown strings rank as LIMITED)."""
    return max(values, key=lambda v: HEALTH_RANK.get(v, 1), default=default)


# ---------------------------------------------------------------------------
# small wire helpers

# ITU-T E.164 country calling codes of one and two digits; every other code has three.
_CC_ONE = {"1", "7"}
_CC_TWO = {"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48",
           "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81",
           "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"}


def country_code_length(digits: str) -> int:
    """Length of the country calling code at the start of an E.164 number given as digits."""
    if digits[:1] in _CC_ONE:
        return 1
    if digits[:2] in _CC_TWO:
        return 2
    return min(3, len(digits))


def display_number(digits: str) -> str:
    """``"+<cc> <national number>"``, e.g. ``8613800000001`` -> ``+86 13800000001``."""
    if not digits.isdigit():
        return digits
    cc = country_code_length(digits)
    rest = digits[cc:]
    return f"+{digits[:cc]} {rest}" if rest else f"+{digits}"


def json_bytes(payload: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII left unescaped, as the providers' servers send it)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def wire_fields(state: Mapping[str, Any], mapping: Iterable[tuple[str, str]], extra: bool = True) -> dict[str, Any]:
    """Map snake_case attributes to wire keys; None / absent attributes are omitted.

    With ``extra``, the entity's ``wire_extra`` mapping is merged verbatim (a None value removes a key).
    """
    out: dict[str, Any] = {}
    for attr, key in mapping:
        value = state.get(attr)
        if value is not None:
            out[key] = value
    if extra:
        merge_wire_extra(out, state)
    return out


def merge_wire_extra(out: dict[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    extras = state.get("wire_extra")
    if isinstance(extras, Mapping):
        for key, value in extras.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
    return out


# ---------------------------------------------------------------------------
# records and request plumbing


@dataclass(frozen=True)
class RequestRecord:
    """One request as an emulator saw it.  ``access_key_id`` is the credential the request claimed
    (CAMS: the AccessKeyId; NxCloud: the accessKey header; Kaleyra: the SID in the path)."""

    time: float
    access_key_id: str | None
    action: str | None
    space_id: str | None
    http_status: int                 # 0 when the connection was reset
    code: str | None                 # the provider's result code as a string, or "fault:<kind>"
    phone_number: str | None = None
    signature_version: str | None = None   # CAMS "V3"/"V2"; NxCloud "md5"/"sha256"; else None
    authenticated: bool = False
    throttled: bool = False
    fault: str | None = None         # the kind of the fault applied, if any
    request_id: str | None = None
    method: str = ""
    path: str = ""

    @property
    def accepted(self) -> bool:
        """Authenticated and not refused by flow control."""
        return self.authenticated and not self.throttled


class ApiError(Exception):
    """An error answer.  Subclasses set ``ERRORS`` (code -> (HTTP status, message))."""

    ERRORS: Mapping[Any, tuple[int, str]] = {}
    DEFAULT: tuple[int, str] = (400, "The request failed.")

    def __init__(self, code: Any, message: str | None = None, status: int | None = None, *,
                 retry_after: int | None = None, http200: bool = False, detail: Any = None):
        default_status, default_message = self.ERRORS.get(code, self.DEFAULT)
        super().__init__(code)
        self.code = code
        self.status = status if status is not None else default_status
        self.message = message if message is not None else default_message
        self.retry_after = retry_after
        self.http200 = http200
        self.detail = detail


class BodyError(Exception):
    """The request body could not be read (``status`` 400 or 413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None
    reset: bool = False
    truncate: bool = False          # send the headers and half the body, then close the connection
    tail: tuple[bytes | memoryview, ...] = ()   # more body after ``body`` (an oversize answer's shared padding)


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    arrival: float

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in self.headers:
            out.setdefault(key.lower(), []).append(value)
        return out


@dataclass
class Context:
    """What is known about a request while it is processed; becomes its :class:`RequestRecord`."""

    request_id: str = ""
    action: str | None = None
    access_key_id: str | None = None
    space_id: str | None = None
    phone_number: str | None = None
    phone_numbers: tuple[str, ...] = ()      # every number a request names (fault selectors match any)
    signature_version: str | None = None
    authenticated: bool = False
    throttled: bool = False
    fault: str | None = None
    path: str = ""
    fault_spec: Fault | None = None          # the fault applied (its parameters, e.g. megabytes)


class ActiveFault:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault):
        self.fault = fault
        self.remaining = fault.count


# ---------------------------------------------------------------------------
# HTTP server: aiohttp on an event loop in a thread of the emulator's own
#
# Request parsing, keep-alive and chunked bodies are aiohttp's.  The emulator
# answers with the provider's shapes, so a request aiohttp cannot parse still
# gets the provider's error envelope (``handle_error``).  Faults that need the
# connection itself use the transport aiohttp hands over: ``refuse`` aborts a
# new connection before aiohttp sees it (or a reused one before its request is
# read), ``reset`` aborts with SO_LINGER 0 so the peer sees RST, ``truncate``
# sends the headers and half the body and closes, ``oversize`` streams a
# shared padding buffer.  ``delay`` and the providers' own processing run in
# worker threads (``_serve`` is synchronous), never on the loop.

_PADDING = bytearray()
_PADDING_LOCK = threading.Lock()


def _padding(size: int) -> memoryview:
    """``size`` bytes of ``x``, a read-only view of one buffer that only ever grows."""
    global _PADDING
    with _PADDING_LOCK:
        if len(_PADDING) < size:
            _PADDING = bytearray(b"x") * size
        return memoryview(_PADDING).toreadonly()[:size]


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close a connection with RST (SO_LINGER 0) instead of FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    transport.abort()  # type: ignore[attr-defined]


class _Connection(RequestHandler):
    """aiohttp's connection protocol, with the ``refuse`` fault and provider-shaped parse errors."""

    def __init__(self, manager: Any, emulator: "ProviderEmulator", **kwargs: Any):
        super().__init__(manager, **kwargs)
        self.emulator = emulator
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.emulator._refuse_now():  # accept the connection and close it at once with a reset, without a byte
            _reset(transport)
            return
        super().connection_made(transport)

    def eof_received(self) -> bool:
        """The client half-closed: answer what it already sent, then close (aiohttp would drop the connection)."""
        self.close()
        return True

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        emulator = self.emulator
        if isinstance(exc, LineTooLong):
            status = 414 if exc.args[1:2] == (MAX_REQUEST_LINE,) else 431
        emulator._logger.debug("%s emulator: unparsable request: %s", emulator.provider_name, exc)
        if status == 400:
            reply = emulator._body_error_reply("", "", emulator._clock(), BodyError(400, "Malformed HTTP request."))
            resp = _response(reply, emulator)
        else:
            resp = web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}\n")
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        self.emulator._logger.debug("%s emulator: connection error", self.emulator.provider_name)


MAX_REQUEST_LINE = 65536 + 64  # long query strings (a CAMS GET carries every parameter) are legitimate


def _response(reply: Reply, emulator: "ProviderEmulator") -> web.Response:
    # The Date header comes from the emulator's clock, as a real server's from its own.
    resp = web.Response(status=reply.status, body=reply.body, headers={"Content-Type": reply.content_type,
                                                                        "Server": emulator.server_software,
                                                                        "Date": formatdate(emulator._clock(), usegmt=True),
                                                                        **reply.headers})
    return resp


async def _read_body(request: web.BaseRequest) -> bytes:
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise BodyError(413, "The request body is too large.")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyError(413, "The request body is too large.") from None
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        raise BodyError(400, "Malformed request body.") from None


# ---------------------------------------------------------------------------
# the base emulator


class ProviderEmulator:
    """Base class of the provider emulators; see the module docstring.

    ``clock`` is the wall clock (epoch seconds) used for signature freshness and
    the per-second counting windows; scenario time is
    ``clock() - start time + advance()`` offsets.
    """

    provider_name = "Provider"            # for log lines and the standalone runner
    thread_prefix = "provider"
    server_software = "nginx"
    json_content_type = "application/json;charset=utf-8"
    known_number_attributes: frozenset[str] = frozenset()
    known_waba_attributes: frozenset[str] = frozenset()
    write_actions: frozenset[str] = frozenset()
    #: data-fault kind -> the actions whose successful answers it alters (others are never data-faulted)
    data_fault_actions: Mapping[str, frozenset[str]] = {}
    #: the ignored field an ``oversize`` fault adds to a JSON (or XML) answer
    padding_key = "emulator_padding"
    #: seconds between two evaluations of the scenario by the state watcher
    watch_interval = 0.1
    #: number / WABA attributes whose changes the watcher records (subclasses add derived ones, e.g. ``health``)
    observed_number_fields: tuple[str, ...] = ("present", "status", "quality_rating", "messaging_limit_tier",
                                               "name_status", "code_verification_status", "verified_name")
    observed_waba_fields: tuple[str, ...] = ("present", "account_review_status")
    #: whether :meth:`set_webhook` is available, and whether it needs a ``secret``
    webhooks_supported = False
    webhook_secret_required = False
    _logger = logger

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time, *, max_records: int = 200_000,
                 log_level: int = logging.DEBUG, seed: int | None = None):
        if not isinstance(scenario, Scenario):
            raise TypeError("scenario must be a Scenario (see emulators.scenario)")
        self.scenario = scenario
        self.host = host
        self.port = port
        self._clock = clock
        self._log_level = log_level
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._qps_counts: dict[tuple, int] = {}
        self._qps_second: int | None = None
        self._scenario_faults = [ActiveFault(f) for f in scenario.faults]
        self._injected: list[ActiveFault] = []
        self._number_overrides: dict[tuple[str, str], dict[str, Any]] = {}
        self._waba_overrides: dict[str, dict[str, Any]] = {}
        self._offset = 0.0
        self._t0: float | None = None
        self._hanging = 0  # requests held by a ``hang`` fault right now
        self._stop_event = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._workers: ThreadPoolExecutor | None = None
        # state watcher and webhooks
        self._watch_lock = threading.Lock()
        self._watch_thread: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self._watch_wake = threading.Event()
        self._snapshot: dict[str, dict[str | None, dict[str, Any]]] | None = None
        self._due: dict[str, float | None] = {}
        self._dirty: dict[str, float] = {}          # space id -> wall time of the latest override
        self._last_eval: tuple[float, float, float] = (0.0, 0.0, 0.0)   # scenario time, wall, monotonic
        self._state_changes: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._webhook: dict[str, Any] | None = None
        self._webhook_sender = WebhookSender(self.provider_name, log=self._logger, clock=clock,
                                             max_records=max_records)
        self._warn_unknown_attributes()

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        if self._server is not None:
            return self
        self._stop_event.clear()
        loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(self._open(loop))
        except BaseException:
            loop.close()
            raise
        self._loop, self._server = loop, server
        self.port = server.sockets[0].getsockname()[1]
        self._workers = ThreadPoolExecutor(max_workers=64, thread_name_prefix=f"{self.thread_prefix}-emulator")
        if self._t0 is None:
            self._t0 = self._clock()
        self._thread = threading.Thread(target=loop.run_forever, name=f"{self.thread_prefix}-emulator:{self.port}",
                                        daemon=True)
        self._thread.start()
        self.check_states()                      # the baseline (or what changed while stopped)
        self._watch_stop.clear()
        self._watch_thread = threading.Thread(target=self._watch, name=f"{self.thread_prefix}-watcher:{self.port}",
                                              daemon=True)
        self._watch_thread.start()
        return self

    async def _open(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractServer:
        runner = web.ServerRunner(web.Server(self._handle), handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        manager = runner.server

        def protocol() -> _Connection:
            return _Connection(manager, self, loop=loop, access_log=None, max_line_size=MAX_REQUEST_LINE,
                               max_field_size=16384, lingering_time=1.0)

        return await loop.create_server(protocol, self.host, self.port, reuse_address=True, backlog=128)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()  # closes the connections still open

    def stop(self) -> None:
        server, loop = self._server, self._loop
        if server is None or loop is None:
            return
        self._stop_event.set()                   # delays end at once
        self._watch_stop.set()
        self._watch_wake.set()
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=5)
            self._watch_thread = None
        self._webhook_sender.stop()
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=10)
        except Exception:  # a timeout or an error while closing: the port is released below anyway
            self._logger.debug("%s emulator: error while stopping", self.provider_name, exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if not loop.is_running():
            loop.close()
        if self._workers is not None:
            self._workers.shutdown(wait=False)
            self._workers = None
        self._server = self._runner = self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- scenario time -----------------------------------------------------

    def scenario_time(self) -> float:
        with self._lock:
            elapsed = 0.0 if self._t0 is None else self._clock() - self._t0
            return max(0.0, elapsed) + self._offset

    def advance(self, seconds: float) -> float:
        """Move scenario time forward (the wall clock used for signatures is untouched)."""
        if seconds < 0:
            raise ValueError("scenario time only moves forward")
        with self._lock:
            self._offset += float(seconds)
        self._watch_wake.set()
        return self.scenario_time()

    # -- runtime control ---------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Add a fault at runtime; injected faults are checked before the scenario's own."""
        if not isinstance(fault, Fault):
            raise TypeError("inject() takes a Fault")
        with self._lock:
            self._injected.append(ActiveFault(replace(fault)))
        return fault

    def clear_faults(self, include_scenario: bool = False) -> None:
        """Drop injected faults (and, with ``include_scenario``, the scenario's own)."""
        with self._lock:
            self._injected.clear()
            if include_scenario:
                self._scenario_faults = []

    def set_number(self, space_id: str, phone_number: str, **attributes: Any) -> None:
        """Override attributes of one number from now on (on top of its timeline); None omits a field."""
        space = self.scenario.space(space_id)
        if space is None or space.number(phone_number) is None:
            raise KeyError(f"no number {phone_number!r} in space {space_id!r}")
        with self._lock:
            self._number_overrides.setdefault((space_id, phone_number), {}).update(attributes)
            self._dirty[space_id] = self._clock()
        self._watch_wake.set()

    def set_waba(self, space_id: str, **attributes: Any) -> None:
        """Override attributes of a space's WABA from now on; None omits a field."""
        space = self.scenario.space(space_id)
        if space is None or space.waba is None:
            raise KeyError(f"no WABA in space {space_id!r}")
        with self._lock:
            self._waba_overrides.setdefault(space_id, {}).update(attributes)
            self._dirty[space_id] = self._clock()
        self._watch_wake.set()

    def clear_overrides(self) -> None:
        with self._lock:
            spaces = {sid for sid, _ in self._number_overrides} | set(self._waba_overrides)
            self._number_overrides.clear()
            self._waba_overrides.clear()
            now = self._clock()
            for sid in spaces:
                self._dirty[sid] = now
        self._watch_wake.set()

    # -- statistics --------------------------------------------------------

    def hanging(self) -> int:
        """How many requests a ``hang`` fault holds right now (they get no answer while the emulator runs)."""
        with self._lock:
            return self._hanging

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request recorded so far (oldest first)."""
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    def per_second_counts(self, access_key_id: str, accepted_only: bool = False, *,
                          action: str | None = None) -> dict[int, int]:
        """Requests that arrived per calendar second (floor of the arrival time) for one key, optionally
        only those of one ``action`` (e.g. ``GetWhatsappHealthStatus``)."""
        counts: dict[int, int] = {}
        for record in self.requests:
            if record.access_key_id != access_key_id or (accepted_only and not record.accepted):
                continue
            if action is not None and record.action != action:
                continue
            second = math.floor(record.time)
            counts[second] = counts.get(second, 0) + 1
        return counts

    def max_requests_in_any_second(self, access_key_id: str, accepted_only: bool = False, *,
                                   action: str | None = None) -> int:
        return max(self.per_second_counts(access_key_id, accepted_only, action=action).values(), default=0)

    def calls(self, action: str | None = None, access_key_id: str | None = None) -> list[RequestRecord]:
        """Recorded requests filtered by action and/or key."""
        return [r for r in self.requests
                if (action is None or r.action == action)
                and (access_key_id is None or r.access_key_id == access_key_id)]

    def write_action_calls(self) -> list[RequestRecord]:
        """Requests to endpoints with side effects (which the emulator records and refuses)."""
        return [r for r in self.requests if r.action in self.write_actions]

    # -- state evaluation --------------------------------------------------

    def number_state(self, space: Space, phone_number: str, t: float | None = None) -> dict[str, Any] | None:
        number = space.number(phone_number)
        if number is None:
            return None
        state = number.state_at(self.scenario_time() if t is None else t)
        with self._lock:
            state.update(self._number_overrides.get((space.space_id, phone_number), {}))
        state["phone_number"] = phone_number
        return state

    def waba_state(self, space: Space, t: float | None = None) -> dict[str, Any] | None:
        if space.waba is None:
            return None
        state = space.waba.state_at(self.scenario_time() if t is None else t)
        with self._lock:
            state.update(self._waba_overrides.get(space.space_id, {}))
        if state.get("present") is False:
            return None
        return state

    def _warn_unknown_attributes(self) -> None:
        def check(keys: Iterable[str], known: frozenset[str], where: str) -> None:
            for key in keys:
                if key not in known:
                    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
                    if close:
                        self._logger.warning("scenario %s: attribute %r is not a %s field (did you mean %r?)",
                                             where, key, self.provider_name, close[0])

        for space in self.scenario.spaces:
            for number in space.numbers:
                keys = set(number.attributes)
                for tr in number.timeline.transitions:
                    keys |= set(tr.set)
                check(keys, self.known_number_attributes, f"{space.space_id}/{number.phone_number}")
            if space.waba is not None:
                keys = set(space.waba.attributes)
                for tr in space.waba.timeline.transitions:
                    keys |= set(tr.set)
                check(keys, self.known_waba_attributes, f"{space.space_id}/waba")

    # -- state watcher and webhooks ------------------------------------------

    def set_webhook(self, url: str | None, secret: str | None = None, *, timeout: float | None = None,
                    retries: int | None = None, backoff: float | None = None) -> None:
        """Push events to ``url`` from now on (``None`` turns webhooks off).

        ``secret`` is Meta's app secret (required there: it keys ``X-Hub-Signature-256``); NxCloud
        signs with the accessKey/accessSecret of each space's owner and Kaleyra signs nothing (its
        token is part of ``url``), so both refuse a ``secret``.  ``timeout`` (default 2 s) bounds each
        attempt, ``retries`` (default 2) and ``backoff`` (default 0.5 s, doubling) shape the retries.
        """
        if not self.webhooks_supported:
            raise NotImplementedError(f"the {self.provider_name} emulator sends no webhooks")
        if url is None:
            self.clear_webhook()
            return
        validate_url(url)
        if self.webhook_secret_required and not secret:
            raise ValueError(f"{self.provider_name} webhooks need a secret (the app secret that signs them)")
        if not self.webhook_secret_required and secret is not None:
            raise ValueError(f"{self.provider_name} webhooks take no secret (see set_webhook's docstring)")
        self._webhook_sender.configure(timeout=timeout, retries=retries, backoff=backoff)
        with self._lock:
            self._webhook = {"url": url, "secret": secret}

    def clear_webhook(self) -> None:
        """Stop pushing events (queued ones are still delivered)."""
        with self._lock:
            self._webhook = None

    @property
    def webhook_url(self) -> str | None:
        with self._lock:
            return None if self._webhook is None else self._webhook["url"]

    def webhooks_sent(self) -> list[dict[str, Any]]:
        """Every event pushed (or dropped by a fault) so far, oldest first, as dicts (copies):

        ``id``, ``provider``, ``field`` (Meta's webhook field), ``event`` (e.g. ``FLAGGED``, or None),
        ``space_id``, ``phone_number`` (None for a WABA-level event), ``changes`` (the
        :meth:`state_changes` entries it reports), ``method``, ``url`` (the configured URL's own query
        values shown as ``***``), ``headers``, ``body`` (text; None for a GET), ``fault``
        (``webhook_bad_signature``/``webhook_drop`` or None), ``status`` (``pending``, ``delivered``,
        ``failed``, ``dropped``, ``cancelled``), ``http_status`` (of the last attempt),
        ``queued_wall``/``queued_monotonic`` (when the watcher produced it), ``sent_wall``/
        ``sent_monotonic`` (first attempt), ``delivered_wall``/``delivered_monotonic`` (the 2xx answer)
        and ``attempts`` (``[{wall, monotonic, status, error}]``).
        """
        return self._webhook_sender.records()

    def webhooks_idle(self) -> bool:
        """True when no webhook is queued, waiting for a retry, or being sent."""
        return self._webhook_sender.idle()

    def state_changes(self) -> list[dict[str, Any]]:
        """Every change of an observable field the watcher saw, oldest first, as dicts (copies):

        ``wall``/``monotonic`` (when the change took effect: the timeline transition's time mapped to
        the clocks, the ``set_number``/``set_waba`` call for overrides, else when it was observed),
        ``scenario_time`` (of the transition, else of the observation), ``observed_wall``/
        ``observed_monotonic``, ``space_id``, ``phone_number`` (None for a WABA field), ``field``,
        ``old``, ``new``.  Recorded whether or not a webhook is configured.
        """
        with self._lock:
            return [dict(change) for change in self._state_changes]

    def clear_state_changes(self) -> None:
        with self._lock:
            self._state_changes.clear()

    def clear_webhooks_sent(self) -> None:
        self._webhook_sender.clear_records()

    def check_states(self) -> list[dict[str, Any]]:
        """Evaluate the scenario now, record and push what changed since the last evaluation, and
        return the new changes (the watcher calls this every :attr:`watch_interval`)."""
        with self._watch_lock:
            s, wall, mono = self.scenario_time(), self._clock(), time.monotonic()
            with self._lock:
                dirty, self._dirty = self._dirty, {}
                target = dict(self._webhook) if self._webhook is not None else None
            if self._snapshot is None:
                self._snapshot = {}
                for space in self.scenario.spaces:
                    self._snapshot[space.space_id] = self._observe_space(space, s)
                    self._due[space.space_id] = self._next_due(space, s)
                self._last_eval = (s, wall, mono)
                return []
            p, p_wall, _ = self._last_eval
            self._last_eval = (s, wall, mono)
            found: list[dict[str, Any]] = []
            for space in self.scenario.spaces:
                sid = space.space_id
                known = sid in self._snapshot
                due = self._due.get(sid)
                if known and sid not in dirty and (due is None or due > s):
                    continue
                old_space = self._snapshot.get(sid, {})
                new_space = self._observe_space(space, s)
                self._snapshot[sid] = new_space
                self._due[sid] = self._next_due(space, s)
                if not known:
                    continue
                space_changes: list[tuple[str | None, dict, dict, list[dict[str, Any]]]] = []
                for key in list(new_space) + [k for k in old_space if k not in new_space]:
                    old, new = old_space.get(key, {}), new_space.get(key, {})
                    fields = [f for f in dict.fromkeys(list(new) + list(old)) if old.get(f) != new.get(f)]
                    if not fields:
                        continue
                    timelines = [space.waba.timeline] if space.waba is not None else []
                    number = space.number(key) if key is not None else None
                    if number is not None:
                        timelines.append(number.timeline)
                    eff_s = max((t for t in (_last_transition(tl, p, s) for tl in timelines) if t is not None),
                                default=None)
                    if eff_s is not None:
                        eff_wall = max(p_wall, wall - (s - eff_s))
                    elif sid in dirty:
                        eff_wall = max(p_wall, min(wall, dirty[sid]))
                    else:
                        eff_wall = wall
                    changes = [{"wall": eff_wall, "monotonic": mono - (wall - eff_wall),
                                "scenario_time": s if eff_s is None else eff_s, "observed_wall": wall,
                                "observed_monotonic": mono, "space_id": sid, "phone_number": key, "field": f,
                                "old": old.get(f), "new": new.get(f)} for f in fields]
                    space_changes.append((key, old, new, changes))
                    found.extend(changes)
                if not space_changes:
                    continue
                with self._lock:
                    for _, _, _, changes in space_changes:
                        self._state_changes.extend(changes)
                for _, _, _, changes in space_changes:
                    for change in changes:
                        self._logger.log(self._log_level, "%s emulator: %s %s %s: %r -> %r", self.provider_name, sid,
                                         change["phone_number"] or "waba", change["field"], change["old"],
                                         change["new"])
                if target is not None:
                    self._push(space, space_changes, target, s, wall)
            return found

    def _watch(self) -> None:
        while not self._watch_stop.is_set():
            self._watch_wake.clear()
            try:
                self.check_states()
            except Exception:  # never let a scenario quirk kill the watcher
                self._logger.exception("%s emulator: state watcher error", self.provider_name)
            self._watch_wake.wait(self.watch_interval)

    def _observe_space(self, space: Space, t: float) -> dict[str | None, dict[str, Any]]:
        """Observable state of every number (keyed by phone number) and of the WABA (key None)."""
        waba = self.waba_state(space, t)
        out: dict[str | None, dict[str, Any]] = {}
        for number in space.numbers:
            state = self.number_state(space, number.phone_number, t) or {"phone_number": number.phone_number}
            out[number.phone_number] = self._observe_number(space, state, waba)
        if space.waba is not None:
            if waba is None:
                out[None] = {"present": False}
            else:
                out[None] = self._observe_waba(space, waba, t)
        return out

    def _observe_number(self, space: Space, state: Mapping[str, Any],
                        waba: Mapping[str, Any] | None) -> dict[str, Any]:
        """The fields of a number the watcher compares (subclasses add derived ones such as ``health``)."""
        return {f: state.get(f, True if f == "present" else None) for f in self.observed_number_fields}

    def _observe_waba(self, space: Space, waba: Mapping[str, Any], t: float) -> dict[str, Any]:
        """The fields of a present WABA the watcher compares (subclasses may derive some)."""
        return {f: (True if f == "present" else waba.get(f)) for f in self.observed_waba_fields}

    def _next_due(self, space: Space, t: float) -> float | None:
        """The earliest scenario time after ``t`` at which the space's observable state may change by
        itself (its timelines; subclasses add e.g. expiries)."""
        return _next_due(space, t)

    def _events(self, space: Space, space_changes: list[tuple[str | None, dict, dict, list[dict[str, Any]]]],
                t: float, wall: float) -> list[Event]:
        """The webhook events (Meta vocabulary) for one space's changes.  The default is the BSP relays'
        form (:func:`~emulators.webhooks.derive_events`, plus one ``business_capability_update``
        per new per-number portfolio value); the Meta emulator has its own."""
        events: list[Event] = []
        portfolio: dict[Any, list[dict[str, Any]]] = {}
        for key, old, new, changes in space_changes:
            events.extend(derive_events(key, old, new, changes, wall))
            for change in changes:
                if change["field"] == "whatsapp_business_manager_messaging_limit" and change["new"] is not None \
                        and new.get("present", True):
                    portfolio.setdefault(change["new"], []).append(change)
        for value, changes in portfolio.items():
            events.append(Event("business_capability_update", {"max_daily_conversations_per_business": value},
                                None, changes))
        return events

    def _push(self, space: Space, space_changes: list[tuple[str | None, dict, dict, list[dict[str, Any]]]],
              target: Mapping[str, Any], t: float, wall: float) -> None:
        try:
            events = self._events(space, space_changes, t, wall)
        except Exception:
            self._logger.exception("%s emulator: cannot derive the webhook events of %s", self.provider_name,
                                   space.space_id)
            return
        for event in events:
            try:
                fault = self._webhook_fault(space, event, t)
                request = self._webhook_request(space, event, target, wall, forged=fault == "webhook_bad_signature")
            except Exception:
                self._logger.exception("%s emulator: cannot build the %s webhook", self.provider_name, event.field)
                continue
            if request is None:
                continue
            record = self._webhook_sender.new_record(
                field=event.field, event=event.event, space_id=space.space_id, phone_number=event.phone_number,
                changes=[dict(c) for c in event.changes], method=request.method,
                url=redact_url(request.url, target["url"]), headers=dict(request.headers),
                body=request.body.decode("utf-8", "replace") if request.body else None, fault=fault,
                status="dropped" if fault == "webhook_drop" else "pending")
            if fault == "webhook_drop":
                self._logger.log(self._log_level, "%s emulator: webhook %s %s dropped (fault)", self.provider_name,
                                 event.field, event.event or "")
                continue
            self._webhook_sender.submit(record, request)

    def _webhook_fault(self, space: Space, event: Event, t: float) -> str | None:
        """The webhook fault kind that takes this event, if any (consumes ``count``)."""
        with self._lock:
            for active in self._injected + self._scenario_faults:
                fault = active.fault
                if active.remaining == 0 or fault.kind not in WEBHOOK_FAULT_KINDS:
                    continue
                if not fault.selects(access_key_id=space.access_key_id, action=event.field, space_id=space.space_id,
                                     phone_number=event.phone_number, t=t):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                return fault.kind
        return None

    def _webhook_request(self, space: Space, event: Event, target: Mapping[str, Any], wall: float, *,
                         forged: bool) -> OutgoingRequest | None:
        """The provider's HTTP request for one event (None: the provider has no such webhook)."""
        return None

    # -- hooks for subclasses ------------------------------------------------

    def _new_context(self, req: Request | None) -> Context:
        """A fresh context (``req`` is None when the body could not even be read)."""
        return Context(request_id=str(uuid.uuid4()))

    def _process(self, req: Request, ctx: Context) -> Reply:
        """Answer one request; raise :class:`ApiError` for error answers."""
        raise NotImplementedError

    def _error_reply(self, ctx: Context, err: ApiError) -> Reply:
        raise NotImplementedError

    def _internal_error(self) -> ApiError:
        """The error answered when a handler crashes."""
        return ApiError("InternalError", "Internal error.", 500)

    def _body_error(self, exc: BodyError) -> ApiError:
        """The error answered when the body cannot be read."""
        return ApiError("InvalidParameter", exc.message, exc.status)

    def _fault_error(self, ctx: Context, fault: Fault) -> ApiError:
        """The error an ``error`` fault raises."""
        return ApiError(fault.code, fault.message, fault.http_status, retry_after=fault.retry_after,
                        http200=fault.http200)

    def _common_headers(self, ctx: Context) -> dict[str, str]:
        """Headers every answer carries (e.g. a request id)."""
        return {}

    def _html_reply(self, ctx: Context) -> Reply:
        """What an ``html`` fault answers: an HTML error page of a proxy in front of the API."""
        page = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
        return Reply(502, page, "text/html", self._common_headers(ctx), code="fault:html")

    def _malformed_reply(self, ctx: Context, reply: Reply) -> Reply:
        """What a ``malformed`` fault answers: HTTP 200 with the first half of the real body."""
        body = reply.body
        return Reply(200, body[: max(1, len(body) // 2)], self.json_content_type, self._common_headers(ctx),
                     code="fault:malformed")

    def _oversize_reply(self, ctx: Context, reply: Reply, megabytes: float) -> Reply:
        """What an ``oversize`` fault answers: the real answer with one ignored string field
        (:attr:`padding_key`) making the body about ``megabytes`` MiB.  Bodies that are neither a JSON
        object nor an XML document are left alone."""
        body = reply.body
        target = int(megabytes * (1 << 20))
        key = self.padding_key.encode("ascii")
        stripped = body.rstrip()
        if stripped.startswith(b"{") and stripped.endswith(b"}"):
            head = stripped[:-1]
            opening = head.rstrip() + (b"," if head.strip() != b"{" else b"") + b'"' + key + b'":"'
            closing = b'"}'
        elif stripped.startswith(b"<") and stripped.rfind(b"</") > 0:
            cut = stripped.rfind(b"</")
            opening, closing = stripped[:cut] + b"<" + key + b">", b"</" + key + b">" + stripped[cut:]
        else:
            return reply
        fill = max(0, target - len(opening) - len(closing))
        # the padding is one shared buffer sent without a copy: building tens of MiB per answer would hold
        # the GIL long enough to delay every other request of the process (and their arrival times)
        return replace(reply, body=opening, tail=(_padding(fill), closing))

    def _data_fault(self, ctx: Context, payload: Any) -> Any:
        """Providers pass every successful payload through here before encoding it."""
        if ctx.fault in DATA_FAULT_KINDS:
            return self._corrupt_answer(ctx.fault, ctx.action, payload)
        return payload

    def _corrupt_answer(self, kind: str, action: str | None, payload: Any) -> Any:
        """Apply a data fault (``unknown_enum``, ``null_fields``, ``duplicate_numbers``) to the decoded
        successful answer of ``action``; only called for actions in :attr:`data_fault_actions`."""
        return payload

    # -- request processing ------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """The one aiohttp handler: read the body, let the provider answer (in a worker thread), write it."""
        arrival = self._clock()
        conn = request.protocol
        conn.served += 1
        target = request.raw_path
        if conn.served > 1 and self._refuse_now(request.method, target.split("?", 1)[0]):
            # a keep-alive connection opened before the endpoint started refusing
            _reset(request.transport)
            return web.Response(status=500)  # never sent: the connection is gone
        try:
            body = await _read_body(request)
        except BodyError as exc:
            resp = _response(self._body_error_reply(request.method, target, arrival, exc), self)
            resp.force_close()
            return resp
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        req = Request(request.method, target, headers, body, arrival)
        reply = await asyncio.get_running_loop().run_in_executor(self._workers, self._serve, req)
        return await self._write(request, reply)

    async def _write(self, request: web.BaseRequest, reply: Reply) -> web.StreamResponse:
        if reply.reset:
            _reset(request.transport)
            return web.Response(status=500)  # never sent: the connection is gone
        # The Date header comes from the emulator's clock, as a real server's from its own.
        headers = {"Content-Type": reply.content_type, "Server": self.server_software,
                   "Date": formatdate(self._clock(), usegmt=True), **reply.headers}
        resp = web.StreamResponse(status=reply.status, headers=headers)
        resp.content_length = len(reply.body) + sum(len(part) for part in reply.tail)
        if reply.truncate:
            # the real status line and headers (full Content-Length, no "Connection: close"), half the body,
            # then the connection is closed as if the server died mid-body
            await resp.prepare(request)
            await resp.write(reply.body[: len(reply.body) // 2])
            transport = request.transport
            if transport is not None:
                if transport.can_write_eof():
                    transport.write_eof()
                transport.close()
            return resp
        await resp.prepare(request)
        await resp.write(reply.body)
        for part in reply.tail:
            for start in range(0, len(part), 1 << 20):
                await resp.write(part[start:start + (1 << 20)])
        return resp

    def _record(self, req_method: str, path: str, arrival: float, ctx: Context, reply: Reply) -> None:
        record = RequestRecord(
            time=arrival, access_key_id=ctx.access_key_id, action=ctx.action, space_id=ctx.space_id,
            http_status=0 if reply.reset else reply.status, code=reply.code, phone_number=ctx.phone_number,
            signature_version=ctx.signature_version, authenticated=ctx.authenticated, throttled=ctx.throttled,
            fault=ctx.fault, request_id=ctx.request_id, method=req_method, path=path,
        )
        with self._lock:
            self._records.append(record)

    def _body_error_reply(self, method: str, target: str, arrival: float, exc: BodyError) -> Reply:
        ctx = self._new_context(None)
        reply = self._error_reply(ctx, self._body_error(exc))
        self._record(method, target.split("?", 1)[0], arrival, ctx, reply)
        return reply

    def _serve(self, req: Request) -> Reply:
        ctx = self._new_context(req)
        ctx.path = req.target.split("?", 1)[0]
        started = time.monotonic()
        try:
            reply = self._process(req, ctx)
        except ApiError as exc:
            reply = self._error_reply(ctx, exc)
        except Exception:  # never let a bug take the server down
            self._logger.exception("%s emulator: unexpected error while handling %s %s", self.provider_name,
                                   req.method, req.target[:200])
            reply = self._error_reply(ctx, self._internal_error())
        if ctx.fault == "malformed":
            reply = self._malformed_reply(ctx, reply)
        elif ctx.fault == "truncate" and not reply.reset:
            reply = replace(reply, truncate=True, code="fault:truncate")
        elif ctx.fault == "oversize" and ctx.fault_spec is not None and not reply.reset:
            reply = self._oversize_reply(ctx, reply, ctx.fault_spec.megabytes or 0.0)
        self._record(req.method, ctx.path, req.arrival, ctx, reply)
        self._logger.log(self._log_level, "%s %s ak=%s space=%s -> %s %s (%.1f ms)", req.method,
                         ctx.action or "-", ctx.access_key_id or "-", ctx.space_id or "-",
                         "reset" if reply.reset else reply.status, reply.code,
                         (time.monotonic() - started) * 1000)
        return reply

    # -- flow control and faults -------------------------------------------

    def _admit(self, arrival: float, buckets: Sequence[tuple[Hashable, int | None]]) -> bool:
        """Count one request in every bucket for the calendar second of ``arrival``.

        ``buckets`` are ``(key, limit)`` pairs; ``limit`` None means unlimited.  If
        any bucket is already at its limit, nothing is counted and False is
        returned (a refused request does not consume quota).
        """
        second = math.floor(arrival)
        with self._lock:
            if self._qps_second != second:
                self._qps_counts = {k: v for k, v in self._qps_counts.items() if k[-1] >= second - 1}
                self._qps_second = second
            keys = [(key, second) for key, _ in buckets]
            counts = [self._qps_counts.get(k, 0) for k in keys]
            if any(limit is not None and count >= limit for (_, limit), count in zip(buckets, counts)):
                return False
            for k, count in zip(keys, counts):
                self._qps_counts[k] = count + 1
            return True

    def _apply_faults(self, ctx: Context) -> Reply | None:
        """Pick the first matching fault (after summing matching delays) and apply it.

        A fault matches when its selectors and time window do, its kind applies
        to the request (``refuse`` never does here: see :meth:`_refuse_now`; a data
        fault only for the actions in :attr:`data_fault_actions`), and, with a
        ``probability``, a draw from the emulator's generator says so; only then
        does it consume ``count``.  ``error`` raises the provider's error
        (:meth:`_fault_error`); ``html`` and ``reset`` return a reply; the other
        kinds return None and alter the normal answer later (``malformed``,
        ``truncate`` and ``oversize`` in :meth:`_serve`, data faults in the
        provider's :meth:`_data_fault` call).
        """
        t = self.scenario_time()
        phones = ctx.phone_numbers or (ctx.phone_number,)
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for active in self._injected + self._scenario_faults:
                if active.remaining == 0:
                    continue
                fault = active.fault
                if fault.kind == "refuse" or fault.kind in WEBHOOK_FAULT_KINDS:
                    continue
                if fault.kind in DATA_FAULT_KINDS and ctx.action not in self.data_fault_actions.get(fault.kind, ()):
                    continue
                if not any(fault.selects(access_key_id=ctx.access_key_id, action=ctx.action,
                                         space_id=ctx.space_id, phone_number=phone, t=t) for phone in phones):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                if fault.kind == "delay":
                    delay += fault.seconds or 0.0
                    ctx.fault = "delay"
                    continue
                chosen = fault
                break
        if delay:
            self._stop_event.wait(delay)
        if chosen is None:
            return None
        ctx.fault = chosen.kind
        ctx.fault_spec = chosen
        if chosen.kind == "error":
            raise self._fault_error(ctx, chosen)
        if chosen.kind == "html":
            return self._html_reply(ctx)
        if chosen.kind == "reset":
            return Reply(0, reset=True, code="fault:reset")
        if chosen.kind == "hang":
            # Never answers: held until the emulator stops, then the connection is reset.  The request is
            # recorded then, with its arrival time; :meth:`hanging` counts the ones held meanwhile.
            with self._lock:
                self._hanging += 1
            try:
                self._stop_event.wait()
            finally:
                with self._lock:
                    self._hanging -= 1
            return Reply(0, reset=True, code="fault:hang")
        return None  # answered normally, then altered (see the docstring)

    def _refuse_now(self, method: str = "", path: str = "") -> bool:
        """True (and recorded) if a ``refuse`` fault takes this connection, or this request on a reused one."""
        with self._lock:
            candidates = [a for a in self._injected + self._scenario_faults
                          if a.fault.kind == "refuse" and a.remaining != 0]
            if not candidates:
                return False
        t = self.scenario_time()
        chosen: Fault | None = None
        with self._lock:
            for active in candidates:
                fault = active.fault
                if active.remaining == 0 or not fault.selects(access_key_id=None, action=None, space_id=None,
                                                              phone_number=None, t=t):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                chosen = fault
                break
        if chosen is None:
            return False
        ctx = Context(request_id=str(uuid.uuid4()), fault="refuse", fault_spec=chosen, path=path)
        self._record(method, path, self._clock(), ctx, Reply(0, reset=True, code="fault:refuse"))
        self._logger.log(self._log_level, "%s emulator: connection refused (fault)", self.provider_name)
        return True


def _next_due(space: Space, t: float) -> float | None:
    """The earliest scenario time after ``t`` at which a timeline of the space changes something."""
    times = [n.timeline.next_change_after(t) for n in space.numbers if n.timeline.transitions]
    if space.waba is not None and space.waba.timeline.transitions:
        times.append(space.waba.timeline.next_change_after(t))
    return min((x for x in times if x is not None), default=None)


def _last_transition(timeline: Timeline, after: float, until: float) -> float | None:
    """The scenario time of the latest transition point in ``(after, until]`` (None if there is none)."""
    if not timeline.transitions or until <= after:
        return None
    if timeline.repeat_every:
        after = max(after, until - timeline.repeat_every)
    last, t = None, after
    for _ in range(10_000):
        nxt = timeline.next_change_after(t)
        if nxt is None or nxt > until:
            break
        last = t = nxt
    return last
