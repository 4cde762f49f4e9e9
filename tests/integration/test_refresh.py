"""Poller.request_refresh: an extra, debounced poll of one account (what a webhook triggers)."""

from __future__ import annotations

from exporter.poller import Poller
from exporter.store import Store
from tests.helpers import make_config, wait_for


def _polls(store: Store, name: str) -> float | None:
    snap = store.account(name)
    return snap.poll.finished_at if snap and snap.poll else None


def test_refresh_polls_again_long_before_the_interval(emulator):
    store = Store()
    poller = Poller(make_config(emulator.url), store)
    poller.start()
    try:
        wait_for(store.ready, "the first poll")
        first = _polls(store, "shop")
        requests_before = dict(store.account("shop").requests)
        assert poller.request_refresh("shop", delay=0.2)
        # poll_interval is 30 s: a new poll within the wait can only be the refresh
        wait_for(lambda: _polls(store, "shop") != first, "the refresh poll", timeout=10)
        assert store.account("shop").requests != requests_before
        assert _polls(store, "other") is not None
    finally:
        poller.stop()


def test_refresh_requests_are_debounced(emulator):
    store = Store()
    poller = Poller(make_config(emulator.url), store)
    poller.start()
    try:
        wait_for(store.ready, "the first poll")
        before = store.account("shop").poll.finished_at
        answers = [poller.request_refresh("shop", delay=1.0) for _ in range(20)]
        assert answers[0] is True and not any(answers[1:])  # one pending refresh absorbs the burst
        wait_for(lambda: store.account("shop").poll.finished_at != before, "the one debounced refresh", timeout=10)
        # once it has run, a new request schedules a new refresh
        wait_for(lambda: poller.request_refresh("shop", delay=0.1), "a new refresh accepted", timeout=10)
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


# -- number-level refresh (Meta, Kaleyra read numbers one at a time) -------------------------------

from emulators.meta import MetaEmulator  # noqa: E402
from emulators.scenario import loads_scenario  # noqa: E402
from exporter.config import parse_config  # noqa: E402
from tests.integration.test_integration_providers import ENV, META_SCENARIO, meta_account  # noqa: E402


def _meta_stack(emu):
    config = parse_config("accounts:\n" + meta_account(emu.url) + "    poll_interval: 1h\n", env=ENV)
    store = Store()
    poller = Poller(config, store)
    poller.start()
    wait_for(store.ready, "the first poll")
    return store, poller


def test_a_named_number_is_read_alone_and_its_change_is_served():
    with MetaEmulator(loads_scenario(META_SCENARIO)) as emu:
        store, poller = _meta_stack(emu)
        try:
            before = dict(store.account("meta").requests)
            emu.set_number("1022900001", "15550100002", status="CONNECTED")
            assert poller.request_refresh("meta", 0.05, ["+15550100002"])
            wait_for(
                lambda: store.account("meta").numbers["+15550100002"].number.status == "CONNECTED",
                "+15550100002 CONNECTED",
            )
            after = store.account("meta").requests
            # one number node read, no list call, the other number untouched
            assert after["phone_number"] == before["phone_number"] + 1
            assert after["phone_numbers"] == before["phone_numbers"]
            assert store.account("meta").numbers["+15550100001"].number.status == "CONNECTED"
        finally:
            poller.stop()


def test_an_unknown_number_widens_the_refresh_to_the_whole_account():
    with MetaEmulator(loads_scenario(META_SCENARIO)) as emu:
        store, poller = _meta_stack(emu)
        try:
            before = dict(store.account("meta").requests)
            assert poller.request_refresh("meta", 0.05, ["+19990000000"])
            wait_for(
                lambda: store.account("meta").requests["phone_numbers"] == before["phone_numbers"] + 1,
                "one more phone_numbers call",
            )
        finally:
            poller.stop()


def test_a_pending_number_refresh_joined_by_an_account_refresh_polls_everything():
    with MetaEmulator(loads_scenario(META_SCENARIO)) as emu:
        store, poller = _meta_stack(emu)
        try:
            before = dict(store.account("meta").requests)
            assert poller.request_refresh("meta", 0.5, ["+15550100002"])
            assert not poller.request_refresh("meta", 0.5)  # joins the pending one, widening it
            wait_for(
                lambda: store.account("meta").requests["phone_numbers"] == before["phone_numbers"] + 1,
                "one more phone_numbers call",
            )
        finally:
            poller.stop()


def test_a_number_refresh_does_not_wait_for_a_running_poll():
    """A poll of a large account takes many seconds; the named number is read and served meanwhile."""
    with MetaEmulator(loads_scenario(META_SCENARIO)) as emu:
        store, poller = _meta_stack(emu)
        try:
            import threading

            from emulators.meta import LIST_ACTION
            from emulators.scenario import Fault

            # A poll of the account is under way: it has listed the numbers (the emulator records a request
            # once answered), and its read of the first number waits 3 s at the provider.
            emu.inject(Fault(kind="delay", seconds=3.0, action="get_phone_number", phone_number="15550100001", count=1))
            seen = len(emu.requests)
            before = store.account("meta").poll.finished_at
            poll = threading.Thread(target=poller.poll_account, args=("meta",))
            poll.start()
            wait_for(lambda: any(r.action == LIST_ACTION for r in emu.requests[seen:]), "the poll's list call")
            emu.set_number("1022900001", "15550100002", status="CONNECTED")
            assert poller.request_refresh("meta", 0.0, ["+15550100002"])
            wait_for(
                lambda: store.account("meta").numbers["+15550100002"].number.status == "CONNECTED",
                "+15550100002 CONNECTED",
            )
            assert store.account("meta").poll.finished_at == before  # served while the poll still runs
            poll.join(timeout=30)
            # and a new request is accepted afterwards, not swallowed as "debounced"
            wait_for(
                lambda: poller.request_refresh("meta", 0.0, ["+15550100001"]),
                "a refresh of +15550100001 accepted",
                timeout=10,
            )
        finally:
            poller.stop()


def test_a_poll_that_read_a_number_before_its_refresh_keeps_the_refreshed_reading():
    import threading

    from emulators.scenario import Fault

    with MetaEmulator(loads_scenario(META_SCENARIO)) as emu:
        store, poller = _meta_stack(emu)
        try:
            # The poll reads +15550100001 first, then waits 2 s on +15550100002's node.
            emu.inject(Fault(kind="delay", seconds=2.0, action="get_phone_number", phone_number="15550100002", count=1))
            poll = threading.Thread(target=poller.poll_account, args=("meta",))
            before = store.account("meta").poll.finished_at
            seen = len(emu.requests)

            def read_first_number():
                return any(
                    r.action == "get_phone_number" and (r.phone_number or "").lstrip("+") == "15550100001"
                    for r in emu.requests[seen:]
                )

            poll.start()
            wait_for(read_first_number, "the first number read")
            emu.set_number("1022900001", "15550100001", status="RESTRICTED")  # after the poll read it
            poller.poll_numbers("meta", ["+15550100001"])
            assert store.account("meta").numbers["+15550100001"].number.status == "RESTRICTED"
            poll.join(timeout=30)
            assert store.account("meta").poll.finished_at != before  # the poll has published...
            assert (
                store.account("meta").numbers["+15550100001"].number.status == "RESTRICTED"
            )  # ...not its older reading
        finally:
            poller.stop()


def test_a_reload_that_replaces_the_credential_cancels_a_refresh_in_flight(caplog):
    """The retired provider's refresh is cancelled and awaited before its client is closed: the reload does not
    wait for the provider, nothing fails on a closed client, and the new credential polls."""
    import logging
    import threading

    from emulators.scenario import Fault

    with MetaEmulator(loads_scenario(META_SCENARIO)) as emu:
        store, poller = _meta_stack(emu)
        try:
            emu.inject(Fault(kind="hang", action="get_phone_number", phone_number="15550100002", count=1))
            assert poller.request_refresh("meta", 0.0, ["+15550100002"])
            wait_for(lambda: emu.hanging() == 1, "the refresh held by the provider")
            changed = parse_config(
                "accounts:\n" + meta_account(emu.url) + "    poll_interval: 1h\n    qps: 5\n", env=ENV
            )
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
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
                r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            ]
        finally:
            poller.stop()
