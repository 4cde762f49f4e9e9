"""Poller.request_refresh: an extra, debounced poll of one account (what a webhook triggers)."""

from __future__ import annotations

import time

from exporter.poller import Poller
from exporter.store import Store
from tests.helpers import make_config


def _polls(store: Store, name: str) -> float | None:
    snap = store.account(name)
    return snap.poll.finished_at if snap and snap.poll else None


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_refresh_polls_again_long_before_the_interval(emulator):
    store = Store()
    poller = Poller(make_config(emulator.url), store)
    poller.start()
    try:
        assert _wait(store.ready)
        first = _polls(store, "shop")
        requests_before = dict(store.account("shop").requests)
        assert poller.request_refresh("shop", delay=0.2)
        # poll_interval is 30 s: a new poll within the wait can only be the refresh
        assert _wait(lambda: _polls(store, "shop") != first, timeout=10)
        assert store.account("shop").requests != requests_before
        assert _polls(store, "other") is not None
    finally:
        poller.stop()


def test_refresh_requests_are_debounced(emulator):
    store = Store()
    poller = Poller(make_config(emulator.url), store)
    poller.start()
    try:
        assert _wait(store.ready)
        before = store.account("shop").poll.finished_at
        answers = [poller.request_refresh("shop", delay=1.0) for _ in range(20)]
        assert answers[0] is True and not any(answers[1:])  # one pending refresh absorbs the burst
        assert _wait(lambda: store.account("shop").poll.finished_at != before, timeout=10)
        # once it has run, a new request schedules a new refresh
        assert _wait(lambda: poller.request_refresh("shop", delay=0.1), timeout=10)
    finally:
        poller.stop()


def test_refresh_of_unknown_or_stopped_accounts_is_refused(emulator):
    store = Store()
    poller = Poller(make_config(emulator.url), store)
    assert not poller.request_refresh("shop")  # not started
    poller.start()
    try:
        assert not poller.request_refresh("no-such-account")
    finally:
        poller.stop()
    assert not poller.request_refresh("shop")
