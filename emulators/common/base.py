"""The base class of the provider emulators: lifecycle (start, stop, url) on top of the concern mixins."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Self, TypedDict

from aiohttp import web

from ..scenario import Scenario
from ..webhooks import WebhookSender
from .faults import _FaultsMixin
from .records import ActiveFault, RequestRecord
from .requestlog import _RequestLogMixin
from .server import MAX_REQUEST_LINE, _Connection, _ServerMixin
from .state import _StateMixin
from .watcher import _WatcherMixin

logger = logging.getLogger("emulators")


# ---------------------------------------------------------------------------
# the base emulator


class EmulatorOptions(TypedDict, total=False):
    """The keyword arguments of :class:`ProviderEmulator` that a provider's constructor passes on unchanged.

    A provider with options of its own takes ``**options: Unpack[EmulatorOptions]`` rather than repeating them.
    """

    host: str
    port: int
    clock: Callable[[], float]
    max_records: int
    log_level: int
    seed: int | None


class ProviderEmulator(_ServerMixin, _FaultsMixin, _RequestLogMixin, _StateMixin, _WatcherMixin):
    """Base class of the provider emulators; see the module docstring.

    ``clock`` is the wall clock (epoch seconds) used for signature freshness and
    the per-second counting windows; scenario time is
    ``clock() - start time + advance()`` offsets.
    """

    provider_name = "Provider"  # for log lines, thread names and the standalone runner

    server_software = "nginx"

    json_content_type = "application/json;charset=utf-8"

    known_number_attributes: frozenset[str] = frozenset()

    known_waba_attributes: frozenset[str] = frozenset()

    write_actions: frozenset[str] = frozenset()

    #: data-fault kind -> the actions whose successful answers it alters (others are never data-faulted)
    data_fault_actions: ClassVar[Mapping[str, frozenset[str]]] = {}

    #: the ignored field an ``oversize`` fault adds to a JSON (or XML) answer
    padding_key = "emulator_padding"

    #: seconds between two evaluations of the scenario by the state watcher
    watch_interval = 0.1

    #: number / WABA attributes whose changes the watcher records (subclasses add derived ones, e.g. ``health``)
    observed_number_fields: tuple[str, ...] = (
        "present",
        "status",
        "quality_rating",
        "messaging_limit_tier",
        "name_status",
        "code_verification_status",
        "verified_name",
    )

    observed_waba_fields: tuple[str, ...] = ("present", "account_review_status")

    #: whether :meth:`set_webhook` is available, and whether it needs a ``secret``
    webhooks_supported = False

    webhook_secret_required = False

    _logger = logger

    @property
    def thread_prefix(self) -> str:
        return self.provider_name.lower()

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        *,
        max_records: int = 200_000,
        log_level: int = logging.DEBUG,
        seed: int | None = None,
    ):
        if not isinstance(scenario, Scenario):
            raise TypeError("scenario must be a Scenario (see emulators.scenario)")
        self._check_scenario(scenario)
        self.scenario = scenario
        self.host = host
        self.port = port
        self._clock = clock
        self._log_level = log_level
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._qps_counts: dict[tuple[Hashable, int], int] = {}
        self._qps_second: int | None = None
        self._scenario_faults = [ActiveFault(f) for f in scenario.faults]
        self._injected: list[ActiveFault] = []
        self._number_overrides: dict[tuple[str, str], dict[str, Any]] = {}
        self._waba_overrides: dict[str, dict[str, Any]] = {}
        self._offset = 0.0
        self._t0: float | None = None
        self._hanging = 0  # requests held by a ``hang`` fault right now
        self._stop_event = threading.Event()
        self._server: asyncio.Server | None = None
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
        self._dirty: dict[str, float] = {}  # space id -> wall time of the latest override
        self._last_eval: tuple[float, float, float] = (0.0, 0.0, 0.0)  # scenario time, wall, monotonic
        self._state_changes: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._webhook: dict[str, Any] | None = None
        self._webhook_sender = WebhookSender(self.provider_name, log=self._logger, clock=clock, max_records=max_records)
        self._warn_unknown_attributes()

    def _check_scenario(self, scenario: Scenario) -> None:
        """Refuse a scenario this provider cannot serve (raise ``ScenarioError``); the first step of ``__init__``."""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
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
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"{self.thread_prefix}-emulator:{self.port}", daemon=True
        )
        self._thread.start()
        self.check_states()  # the baseline (or what changed while stopped)
        self._watch_stop.clear()
        self._watch_thread = threading.Thread(
            target=self._watch, name=f"{self.thread_prefix}-watcher:{self.port}", daemon=True
        )
        self._watch_thread.start()
        return self

    async def _open(self, loop: asyncio.AbstractEventLoop) -> asyncio.Server:
        runner = web.ServerRunner(web.Server(self._handle), handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        manager = runner.server

        def protocol() -> _Connection:
            return _Connection(
                manager,
                self,
                loop=loop,
                access_log=None,
                max_line_size=MAX_REQUEST_LINE,
                max_field_size=16384,
                lingering_time=1.0,
            )

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
        self._stop_event.set()  # delays end at once
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

    def __enter__(self) -> Self:
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
