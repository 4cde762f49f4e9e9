"""Lifecycle across reloads: the receiver started, reconfigured and stopped as the configuration says."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.config import Config, WebhooksConfig
from exporter.webhooks.handler import _Listener
from exporter.webhooks.metrics import WebhookMetrics
from exporter.webhooks.receiver import WebhookReceiver
from exporter.webhooks.routing import RefreshTarget

if TYPE_CHECKING:
    from exporter.store import Store

log = logging.getLogger("exporter.webhooks")  # the name of the module this package was split from


@dataclass
class WebhookPlan:
    """A prepared change of the receiver: :meth:`commit` it, or :meth:`abort` it (closes a new socket)."""

    _commit: Callable[[], None]
    listener: _Listener | None = None

    def commit(self) -> None:
        self._commit()

    def abort(self) -> None:
        if self.listener is not None:
            self.listener.stop()


class WebhookManager:
    """Starts, reconfigures and stops the receiver as the configuration says (``config.webhooks``).

    A change is made in two steps so that a reload is refused as a whole when
    it cannot be applied: :meth:`prepare` binds a new listening socket when the
    receiver is turned on or its ``listen_address`` changed (and raises
    OSError, changing nothing, when that fails).  The returned
    :class:`WebhookPlan` commits the change (serves on the new socket, closes
    the old one, swaps secrets and routes) or aborts it (closes the new
    socket).  On a reload, commit after the poller has taken the new accounts,
    so that no event is routed to an account the poller does not know yet.
    """

    def __init__(
        self,
        poller: RefreshTarget,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        loop: asyncio.AbstractEventLoop | None = None,
    ):
        self._lock = threading.Lock()
        self.metrics = WebhookMetrics(store)

        def new_receiver(settings: WebhooksConfig, config: Config) -> WebhookReceiver:
            # loop: the event loop the listeners serve on (None: a loop thread of their own)
            return WebhookReceiver(settings, config, poller, store, self.metrics, clock=clock, timer=timer, loop=loop)

        self._new_receiver = new_receiver
        self.receiver: WebhookReceiver | None = None

    def prepare(self, config: Config) -> WebhookPlan:
        settings = config.webhooks
        with self._lock:
            current = self.receiver
            if settings is None:
                return WebhookPlan(self._commit_off)
            if current is None:
                receiver = self._new_receiver(settings, config)
                listener = receiver.bind()  # may raise OSError: nothing has changed
                return WebhookPlan(lambda: self._commit_new(receiver, listener), listener)
            moved: _Listener | None = None
            if settings.listen_address != current.settings.listen_address:
                moved = current.bind(settings.listen_address)  # may raise OSError
            return WebhookPlan(lambda: self._commit_change(settings, config, moved), moved)

    def apply(self, config: Config) -> None:
        """prepare() and commit at once."""
        self.prepare(config).commit()

    def stop(self) -> None:
        with self._lock:
            receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.stop()
            self.metrics.stop()

    # -- the commits -------------------------------------------------------------

    def _commit_off(self) -> None:
        with self._lock:
            receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.stop()
            self.metrics.stop(clear=True)
            log.info("webhook receiver stopped: the configuration has no webhooks section")

    def _commit_new(self, receiver: WebhookReceiver, listener: _Listener) -> None:
        with self._lock:
            self.receiver = receiver.start(listener)

    def _commit_change(self, settings: WebhooksConfig, config: Config, listener: _Listener | None) -> None:
        with self._lock:
            receiver = self.receiver
            if receiver is None:  # stopped meanwhile
                if listener is not None:
                    listener.stop()
                return
            receiver.reconfigure(settings, config)
            if listener is not None:
                receiver.start(listener)
