"""Poller.request_refresh: an extra, debounced poll of one account (what a webhook triggers)."""

from __future__ import annotations

import logging
import threading

import pytest

from emulators.meta import LIST_ACTION, MetaEmulator
from emulators.scenario import Fault, loads_scenario
from exporter.config import parse_config
from exporter.poller import Poller
from exporter.store import Store
from tests.helpers import make_config, wait_for
from tests.integration.test_integration_providers import ENV, META_SCENARIO, meta_account


def _polls(store: Store, name: str) -> float | None:
    snap = store.account(name)
    return snap.poll.finished_at if snap and snap.poll else None


@pytest.fixture
def running(emulator):
    """A started Poller on the two CAMS accounts, its first polls done: (store, poller); stopped after."""
    store = Store()
    poller = Poller(make_config(emulator.url), store)
    poller.start()
    try:
        wait_for(store.ready, "the first poll")
        yield store, poller
    finally:
        poller.stop()


def test_refresh_polls_again_long_before_the_interval(running):
    store, poller = running
    first = _polls(store, "shop")
    requests_before = dict(store.account("shop").requests)
    assert poller.request_refresh("shop", delay=0.2)
    # poll_interval is 30 s: a new poll within the wait can only be the refresh
    wait_for(lambda: _polls(store, "shop") != first, "the refresh poll", timeout=10)
    assert store.account("shop").requests != requests_before
    assert _polls(store, "other") is not None


def test_refresh_requests_are_debounced(running):
    store, poller = running
    before = _polls(store, "shop")
    answers = [poller.request_refresh("shop", delay=1.0) for _ in range(20)]
    assert answers[0] is True and not any(answers[1:])  # one pending refresh absorbs the burst
    wait_for(lambda: _polls(store, "shop") != before, "the one debounced refresh", timeout=10)
    # once it has run, a new request schedules a new refresh
    wait_for(lambda: poller.request_refresh("shop", delay=0.1), "a new refresh accepted", timeout=10)


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


# -- number-level refresh (Meta, Kaleyra read numbers one at a time) -------------------------------


@pytest.fixture
def meta():
    """The Meta emulator and a started Poller on its account, first poll done: (emulator, store, poller)."""
    with MetaEmulator(loads_scenario(META_SCENARIO)) as emu:
        config = parse_config("accounts:\n" + meta_account(emu.url) + "    poll_interval: 1h\n", env=ENV)
        store = Store()
        poller = Poller(config, store)
        poller.start()
        try:
            wait_for(store.ready, "the first poll")
            yield emu, store, poller
        finally:
            poller.stop()


def _status(store: Store, phone: str) -> str:
    return store.account("meta").numbers[phone].number.status


def _wait_status(store: Store, phone: str, status: str) -> None:
    wait_for(lambda: _status(store, phone) == status, f"{phone} {status}")


def test_a_named_number_is_read_alone_and_its_change_is_served(meta):
    emu, store, poller = meta
    before = dict(store.account("meta").requests)
    emu.set_number("1022900001", "15550100002", status="CONNECTED")
    assert poller.request_refresh("meta", 0.05, ["+15550100002"])
    _wait_status(store, "+15550100002", "CONNECTED")
    after = store.account("meta").requests
    # one number node read, no list call, the other number untouched
    assert after["phone_number"] == before["phone_number"] + 1
    assert after["phone_numbers"] == before["phone_numbers"]
    assert _status(store, "+15550100001") == "CONNECTED"


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param([(0.05, ["+19990000000"], True)], id="a number never seen"),
        # an account refresh joins the pending number refresh, widening it
        pytest.param([(0.5, ["+15550100002"], True), (0.5, None, False)], id="joined by an account refresh"),
    ],
)
def test_a_number_refresh_widened_to_the_whole_account_lists_the_numbers_again(meta, requests):
    _emu, store, poller = meta
    before = store.account("meta").requests["phone_numbers"]
    for delay, phones, accepted in requests:
        assert poller.request_refresh("meta", delay, phones) is accepted
    wait_for(
        lambda: store.account("meta").requests["phone_numbers"] == before + 1,
        "one more phone_numbers call",
    )


def _poll_in_background(poller: Poller) -> threading.Thread:
    poll = threading.Thread(target=poller.poll_account, args=("meta",))
    poll.start()
    return poll


def test_a_number_refresh_does_not_wait_for_a_running_poll(meta):
    """A poll of a large account takes many seconds; the named number is read and served meanwhile."""
    emu, store, poller = meta
    # A poll of the account is under way: it has listed the numbers (the emulator records a request
    # once answered), and its read of the first number waits 3 s at the provider.
    emu.inject(Fault(kind="delay", seconds=3.0, action="get_phone_number", phone_number="15550100001", count=1))
    seen = len(emu.requests)
    before = _polls(store, "meta")
    poll = _poll_in_background(poller)
    wait_for(lambda: any(r.action == LIST_ACTION for r in emu.requests[seen:]), "the poll's list call")
    emu.set_number("1022900001", "15550100002", status="CONNECTED")
    assert poller.request_refresh("meta", 0.0, ["+15550100002"])
    _wait_status(store, "+15550100002", "CONNECTED")
    assert _polls(store, "meta") == before  # served while the poll still runs
    poll.join(timeout=30)
    # and a new request is accepted afterwards, not swallowed as "debounced"
    wait_for(
        lambda: poller.request_refresh("meta", 0.0, ["+15550100001"]),
        "a refresh of +15550100001 accepted",
        timeout=10,
    )


def test_a_poll_that_read_a_number_before_its_refresh_keeps_the_refreshed_reading(meta):
    emu, store, poller = meta
    # The poll reads +15550100001 first, then waits 2 s on +15550100002's node.
    emu.inject(Fault(kind="delay", seconds=2.0, action="get_phone_number", phone_number="15550100002", count=1))
    before = _polls(store, "meta")
    seen = len(emu.requests)

    def read_first_number():
        return any(
            r.action == "get_phone_number" and (r.phone_number or "").lstrip("+") == "15550100001"
            for r in emu.requests[seen:]
        )

    poll = _poll_in_background(poller)
    wait_for(read_first_number, "the first number read")
    emu.set_number("1022900001", "15550100001", status="RESTRICTED")  # after the poll read it
    poller.poll_numbers("meta", ["+15550100001"])
    assert _status(store, "+15550100001") == "RESTRICTED"
    poll.join(timeout=30)
    assert _polls(store, "meta") != before  # the poll has published...
    assert _status(store, "+15550100001") == "RESTRICTED"  # ...not its older reading


def test_a_reload_that_replaces_the_credential_cancels_a_refresh_in_flight(meta, caplog):
    """The retired provider's refresh is cancelled and awaited before its client is closed: the reload does not
    wait for the provider, nothing fails on a closed client, and the new credential polls."""
    emu, store, poller = meta
    emu.inject(Fault(kind="hang", action="get_phone_number", phone_number="15550100002", count=1))
    assert poller.request_refresh("meta", 0.0, ["+15550100002"])
    wait_for(lambda: emu.hanging() == 1, "the refresh held by the provider")
    changed = parse_config("accounts:\n" + meta_account(emu.url) + "    poll_interval: 1h\n    qps: 5\n", env=ENV)
    answer = []
    with caplog.at_level(logging.DEBUG):
        reload = threading.Thread(target=lambda: answer.append(poller.reconfigure(changed)))
        reload.start()
        reload.join(timeout=10)
        assert not reload.is_alive()
        assert answer == [([], ["meta"], ["meta"])]
        wait_for(
            lambda: store.account("meta").poll is not None and store.account("meta").poll.success,
            "the new credential's poll",
        )
    assert store.account("meta").qps == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, warnings
