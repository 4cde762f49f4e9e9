"""The poller's public methods called off the loop (tests, benchmarks, the reload thread) run on it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from exporter.poller.actor import _Actor

T = TypeVar("T")


class _LoopBridge:
    """Runs calls on the poller's loop from other threads; mixed into :class:`~exporter.poller.facade.Poller`."""

    if TYPE_CHECKING:  # provided by Poller
        _loop: asyncio.AbstractEventLoop | None
        _loop_thread: int | None
        _own_thread: threading.Thread | None
        _stopping: bool
        _actors: dict[str, _Actor]

        async def _start_actors(self) -> None: ...

    # -- threads: public methods called off the loop run on it ----------------------------------

    def _on_loop(self) -> bool:
        return self._loop_thread == threading.get_ident()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the poller runs on; a thread of its own when none was given (tests, benchmarks)."""
        if self._loop is not None:
            return self._loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._loop_thread = threading.get_ident()
            ready.set()
            loop.run_forever()

        self._own_thread = threading.Thread(target=run, name="poller-loop", daemon=True)
        self._own_thread.start()
        ready.wait()
        self._loop = loop
        asyncio.run_coroutine_threadsafe(self._start_actors(), loop).result()
        return loop

    def _run(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T | None:
        """Run ``make()`` (a coroutine) on the poller's loop from another thread and wait for its result."""
        if self._on_loop():
            raise RuntimeError("called on the event loop: await the coroutine instead")
        if self._stopping:
            return None  # shut down: nothing runs any more
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(make(), loop).result(timeout)

    def _sync(self, func: Callable[..., bool], *args: Any, ack: str = "") -> bool:
        """Call ``func`` on the loop's thread (directly when already there).

        From another thread, with ``ack`` (an account name), also wait until
        that account's actor has handled every request posted so far.
        """
        if self._on_loop():
            return func(*args)
        if self._stopping:
            return False  # shut down: every request is refused
        loop = self._ensure_loop()

        async def call() -> bool:
            result = func(*args)
            actor = self._actors.get(ack)
            if result and actor is not None and not actor.retired:
                done = loop.create_future()
                actor.post("ack", done)
                await done
            return result

        return asyncio.run_coroutine_threadsafe(call(), loop).result()
