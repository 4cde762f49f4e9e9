"""Webhooks, bounded (issue 14): replays act once, refreshes per account are limited and coalesced, events about
unknown numbers are logged once an hour per number.

Real HTTP to the real listener throughout.  Where timing matters the receiver gets a clock the test sets
(``timer=``), and :class:`ClockedPoller` keeps the real poller's contract on that clock (one pending refresh
per account; requests while it is pending join it and add their numbers); the end-to-end replay test runs the
real Poller against the Meta emulator and counts the emulator's requests.
"""

from __future__ import annotations

import itertools
import logging
import math
from contextlib import contextmanager

import pytest

from emulators.meta import MetaEmulator
from emulators.scenario import loads_scenario
from exporter.config import parse_config
from exporter.store import Store
from exporter.webhooks import EVENTS_FAMILY, REFRESHES_FAMILY, ExpiringSet, RefreshGate, WebhookManager
from tests.helpers import FakeClock, no_secret_logged_fixture, start_with_webhooks, wait_for
from tests.integration.test_integration_providers import ENV as PROVIDER_ENV
from tests.integration.test_integration_providers import META_SCENARIO, meta_account
from tests.integration.test_webhooks import (
    ENV,
    ROUTING,
    SECRETS,
    get_kaleyra,
    meta_body,
    nx_body,
    post_meta,
    post_nx,
    snapshot,
)

BOUNDS = """
webhooks:
  listen_address: "127.0.0.1:0"
  debounce: {debounce}
  min_refresh_interval: {interval}
  replay_window: {window}
  meta_refreshes_per_hour: {per_hour}
  meta: {{app_secret: "${{META_APP_SECRET}}", verify_token: "${{META_VERIFY_TOKEN}}"}}
  kaleyra: {{token: "${{KALEYRA_WEBHOOK_TOKEN}}"}}
  nxcloud: {{}}
"""

#: a Meta account (its refreshes have an hourly budget) next to the routing accounts
META_ROUTED = """
  - name: graph
    provider: meta
    credentials: {app_id: "7001", access_token: "${META}"}
    wabas: [{waba_id: "2002"}]
"""


class ClockedPoller:
    """The poller's refresh contract on the test's clock: a refresh runs ``delay`` after it was requested;
    until then further requests join it (their numbers added, None widening it to the whole account) and
    return False.  ``runs`` records each refresh: {"name", "due", "phones" (None: the whole account)}."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.pending: dict[str, dict] = {}
        self.runs: list[dict] = []

    def request_refresh(self, name: str, delay: float, phones=None) -> bool:
        now = self.clock()
        wanted = None if phones is None else set(phones)
        run = self.pending.get(name)
        if run is not None and now < run["due"]:
            run["phones"] = None if run["phones"] is None or wanted is None else run["phones"] | wanted
            return False
        run = self.pending[name] = {"name": name, "due": now + delay, "phones": wanted}
        self.runs.append(run)
        return True

    def of(self, name: str) -> list[dict]:
        return [run for run in self.runs if run["name"] == name]

    def apply_waba_update(self, name, update) -> bool:
        return True

    def apply_business_limit(self, name, waba_id, tier) -> bool:
        return True


logs = no_secret_logged_fixture(SECRETS)


@pytest.fixture
def stack(logs):
    """stack(**settings) -> (url, poller, manager, clock): the receiver on the test's clock, a ClockedPoller."""
    managers = []

    def make(debounce="0s", interval="0s", window="10m", per_hour=20):
        clock = FakeClock(1000.0)
        config = parse_config(
            ROUTING
            + META_ROUTED
            + BOUNDS.format(debounce=debounce, interval=interval, window=window, per_hour=per_hour),
            env={**ENV, "META": "EAAmetaTOKENvalue0001"},
        )
        store = Store()
        store.update_many([snapshot("shop", "alibaba_cams", ("+8613800000001", "1001"))])
        poller = ClockedPoller(clock)
        manager = WebhookManager(poller, store, timer=clock)
        manager.apply(config)
        managers.append(manager)
        return manager.receiver.url, poller, manager, clock

    yield make
    for manager in managers:
        manager.stop()


@contextmanager
def real_meta_stack(emu, interval: str):
    """The real Poller and WebhookManager on the Meta emulator, after its first poll: (url, poller, manager)."""
    config = parse_config(
        "accounts:\n"
        + meta_account(emu.url)
        + "    poll_interval: 1h\n"
        + BOUNDS.format(debounce="0s", interval=interval, window="10m", per_hour=100),
        env={**PROVIDER_ENV, **ENV},
    )
    store, poller, webhooks = start_with_webhooks(config)
    try:
        wait_for(store.ready, "the first poll")
        yield webhooks.receiver.url, poller, webhooks
    finally:
        webhooks.stop()
        poller.stop()


def events(manager, provider, event, result) -> int:
    return manager.metrics.value(EVENTS_FAMILY, provider=provider, event=event, result=result)


def refreshes(manager, provider, account, result) -> int:
    return manager.metrics.value(REFRESHES_FAMILY, provider=provider, account=account, result=result)


# --------------------------------------------------------------------------
# Replays
# --------------------------------------------------------------------------


def test_a_replayed_signed_meta_event_makes_one_provider_call(logs):
    """Real HTTP, the real Poller, the Meta emulator: the same signed delivery twice reads the number once."""
    # no debounce and no minimum interval: without replay protection the replay would be a second read
    with (
        MetaEmulator(loads_scenario(META_SCENARIO)) as emu,
        real_meta_stack(emu, interval="0s") as (url, _poller, webhooks),
    ):

        def reads(number: str) -> int:
            return sum(
                1
                for r in emu.requests
                if r.action == "get_phone_number" and (r.phone_number or "").lstrip("+") == number
            )

        before = reads("15550100002")
        body = meta_body(waba_id="1022900001", phone="15550100002")
        assert post_meta(url, body).status_code == 200
        wait_for(lambda: reads("15550100002") == before + 1, "the read the event asked for")
        assert post_meta(url, body).status_code == 200  # the same delivery again: answered, not acted on
        assert events(webhooks, "meta", "unknown", "replayed") == 1
        assert events(webhooks, "meta", "phone_number_quality_update", "accepted") == 1
        # a distinct event after it is acted on; once its read is seen, a read for the replay would be too
        other = reads("15550100001")
        assert post_meta(url, meta_body(waba_id="1022900001", phone="15550100001", at=1748454395)).status_code == 200
        wait_for(lambda: reads("15550100001") == other + 1, "the read of the distinct event")
        assert reads("15550100002") == before + 1
        assert refreshes(webhooks, "meta", "meta", "scheduled") == 2


def test_the_real_poller_holds_an_event_inside_the_interval_until_its_end(logs):
    """Real Poller and Meta emulator: after one refresh, a distinct event inside min_refresh_interval is pending
    in the poller (scheduled at the interval's end), not read now; later events join it."""
    with (
        MetaEmulator(loads_scenario(META_SCENARIO)) as emu,
        real_meta_stack(emu, interval="1h") as (url, poller, webhooks),
    ):
        reads = lambda: sum(1 for r in emu.requests if r.action == "get_phone_number")  # noqa: E731
        before = reads()
        assert post_meta(url, meta_body(waba_id="1022900001", phone="15550100002")).status_code == 200
        wait_for(lambda: reads() == before + 1, "the first event's read")
        for i in range(5):
            assert (
                post_meta(url, meta_body(waba_id="1022900001", phone="15550100001", at=1748454400 + i)).status_code
                == 200
            )
        assert refreshes(webhooks, "meta", "meta", "scheduled") == 2
        assert refreshes(webhooks, "meta", "meta", "coalesced") == 4
        assert not poller.request_refresh("meta", 0.0, ["+15550100001"])  # the poller holds one pending
        assert reads() == before + 1


def test_replays_are_caught_for_every_provider_and_forgotten_after_the_window(stack):
    url, poller, manager, clock = stack(window="10m")
    body = meta_body()
    assert post_meta(url, body).status_code == 200
    assert post_meta(url, body).status_code == 200
    ts = int(__import__("time").time() * 1000)
    nx = nx_body()
    assert post_nx(url, nx, ts=ts).status_code == 200
    assert post_nx(url, nx, ts=ts).status_code == 200
    assert post_nx(url, nx, ts=ts + 1).status_code == 200  # signed again with a new timestamp: a new delivery
    assert get_kaleyra(url).status_code == 200
    assert get_kaleyra(url).status_code == 200
    for _ in range(2):  # an unreadable callback stays refused, however often it comes
        assert get_kaleyra(url, event="", display_phone_number="").status_code == 400
    assert [events(manager, p, "unknown", "replayed") for p in ("meta", "nxcloud", "kaleyra")] == [1, 1, 1]
    # (Kaleyra: a number no account knows goes to every Kaleyra account)
    assert [run["name"] for run in poller.runs] == ["shop", "nx-a", "nx-a", "kal", "kal2"]
    # a wrong signature is refused, never "replayed", and does not enter the cache
    assert post_meta(url, body, signature="sha256=" + "0" * 64).status_code == 403
    assert events(manager, "meta", "unknown", "replayed") == 1
    # within the window still a replay; after it, the same bytes count as a delivery again
    clock.t += 599
    assert post_meta(url, body).status_code == 200
    assert events(manager, "meta", "unknown", "replayed") == 2
    clock.t += 2
    assert post_meta(url, body).status_code == 200
    assert events(manager, "meta", "unknown", "replayed") == 2
    assert [run["name"] for run in poller.runs].count("shop") == 2


def test_a_signed_but_unreadable_body_is_refused_each_time_and_replays_survive_a_reload(stack):
    url, poller, manager, _clock = stack()
    for _ in range(2):
        assert post_meta(url, b"{not json").status_code == 400
    assert events(manager, "meta", "unknown", "invalid") == 2
    body = meta_body()
    assert post_meta(url, body).status_code == 200
    config = parse_config(
        ROUTING + META_ROUTED + BOUNDS.format(debounce="0s", interval="0s", window="10m", per_hour=20),
        env={**ENV, "META": "EAAmetaTOKENvalue0001"},
    )
    manager.apply(config)  # a reload
    assert post_meta(manager.receiver.url, body).status_code == 200
    assert events(manager, "meta", "unknown", "replayed") == 1
    assert len(poller.of("shop")) == 1


def test_the_replay_cache_is_bounded_and_drops_the_oldest():
    cache = ExpiringSet(3)
    assert all(cache.add(k, 0.0, 60.0) for k in "abcd")
    assert len(cache) == 3
    assert not cache.add("d", 1.0, 60.0) and not cache.add("b", 1.0, 60.0)
    assert cache.add("a", 1.0, 60.0)  # dropped as the oldest: seen as new
    assert cache.add("b", 61.0, 60.0)  # expired
    # a shorter ttl after a longer one (a reload): the newer key still expires on time
    mixed = ExpiringSet(10)
    assert mixed.add("long", 0.0, 3600.0) and mixed.add("short", 0.0, 600.0)
    assert not mixed.add("short", 599.0, 600.0)
    assert mixed.add("short", 601.0, 600.0)
    many = ExpiringSet(1000)
    for i in range(100_000):
        many.add(i, float(i), 600.0)
    assert len(many) <= 600


# --------------------------------------------------------------------------
# Refreshes per account: minimum interval, coalescing, Meta's hourly budget
# --------------------------------------------------------------------------


def test_a_stream_of_distinct_events_yields_a_bounded_number_of_refreshes(stack):
    url, poller, manager, clock = stack(debounce="2s", interval="30s")
    start, step, n = clock.t, 0.5, 120
    pending_after = []
    for i in range(n):
        clock.t = start + i * step
        phone = f"86138000{i:05d}"
        assert post_meta(url, meta_body(waba_id="1001", phone=phone, at=1748454394 + i)).status_code == 200
        pending_after.append(("+" + phone, poller.pending["shop"]))
    span = (n - 1) * step
    runs = poller.of("shop")
    # before issue 14 every event after the 2 s debounce started a new refresh: about one per 2 s
    assert len(runs) <= 1 + math.ceil(span / 30.0)
    assert len(runs) == 3
    dues = [run["due"] for run in runs]
    assert dues[0] == start + 2.0 and all(b - a >= 30.0 for a, b in itertools.pairwise(dues))
    # nothing dropped: every number is read by the refresh that was pending after its event, at or after it
    for i, (phone, run) in enumerate(pending_after):
        assert run["phones"] is not None and phone in run["phones"]
        assert run["due"] >= start + i * step
    assert sum(len(run["phones"]) for run in runs) == n
    assert refreshes(manager, "alibaba_cams", "shop", "scheduled") == 3
    assert refreshes(manager, "alibaba_cams", "shop", "coalesced") == n - 3
    assert events(manager, "meta", "phone_number_quality_update", "accepted") == 3
    assert events(manager, "meta", "phone_number_quality_update", "debounced") == n - 3
    # after a quiet spell an event waits only for the debounce again
    clock.t = dues[-1] + 300
    assert post_meta(url, meta_body(waba_id="1001", at=1748450000)).status_code == 200
    assert poller.of("shop")[-1]["due"] == clock.t + 2.0


def test_meta_accounts_stay_within_their_hourly_budget_and_nothing_is_dropped(stack):
    url, poller, manager, clock = stack(debounce="0s", interval="0s", per_hour=3)
    start = clock.t
    times = [start + 60.0 * i for i in range(120)]  # an event a minute for two hours
    for i, t in enumerate(times):
        clock.t = t
        assert (
            post_meta(url, meta_body(waba_id="2002", field="account_update", phone="", at=1748454394 + i)).status_code
            == 200
        )
        assert poller.pending["graph"]["due"] >= t  # the event's refresh is pending, possibly deferred
    dues = [run["due"] for run in poller.of("graph")]
    # never more than 3 refreshes in any hour
    assert all(later - earlier >= 3600.0 for earlier, later in zip(dues, dues[3:], strict=False)), dues
    assert len(dues) <= 3 * math.ceil((times[-1] - start) / 3600.0 + 1)
    over = refreshes(manager, "meta", "graph", "over_budget")
    scheduled = refreshes(manager, "meta", "graph", "scheduled")
    assert over >= 1 and scheduled + over == len(dues)
    assert scheduled + over + refreshes(manager, "meta", "graph", "coalesced") == len(times)
    # the Meta account's budget does not limit the others: a CAMS account refreshes at every event here
    for i in range(6):
        clock.t += 1
        post_meta(url, meta_body(waba_id="1001", field="account_update", at=1748400000 + i))
    assert len(poller.of("shop")) == 6
    assert refreshes(manager, "alibaba_cams", "shop", "scheduled") == 6
    assert 'account="shop",result="over_budget"' not in manager.metrics.render()


def test_the_gate_is_a_pure_function_of_its_clock():
    gate = RefreshGate()
    assert gate.plan("a", 0.0, 2.0, 30.0, None) == ("scheduled", 2.0)
    gate.commit("a", 0.0, 2.0, None)
    assert gate.plan("a", 1.0, 2.0, 30.0, None) == ("coalesced", 1.0)
    assert gate.plan("a", 5.0, 2.0, 30.0, None) == ("scheduled", 27.0)  # the end of the interval
    gate.commit("a", 5.0, 27.0, None)
    assert gate.plan("a", 100.0, 2.0, 30.0, None) == ("scheduled", 2.0)
    # budget of 2 an hour, no interval
    assert gate.plan("b", 0.0, 0.0, 0.0, 2) == ("scheduled", 0.0)
    gate.commit("b", 0.0, 0.0, 2)
    gate.commit("b", 10.0, 0.0, 2)
    assert gate.plan("b", 20.0, 0.0, 0.0, 2) == ("over_budget", 3580.0)
    gate.keep(["b"])
    assert gate.plan("a", 101.0, 2.0, 30.0, None) == ("scheduled", 2.0)  # forgotten with its account


# --------------------------------------------------------------------------
# Events about numbers no account knows
# --------------------------------------------------------------------------


def test_events_about_unknown_numbers_are_logged_once_an_hour_per_number(stack, logs):
    url, poller, manager, clock = stack()

    def loud() -> list[str]:
        return [
            r.phone_number for r in logs.records if r.levelno >= logging.INFO and "no account knows" in r.getMessage()
        ]

    for i in range(5):
        post_meta(url, meta_body(waba_id="9999", phone="447700900001", at=1748454394 + i))
    for i in range(3):
        post_meta(url, meta_body(waba_id="9999", phone="447700900002", at=1748454394 + i))
    assert loud() == ["447700900001", "447700900002"]
    assert events(manager, "meta", "phone_number_quality_update", "unmatched") == 8
    assert poller.runs == []
    clock.t += 3599
    post_meta(url, meta_body(waba_id="9999", phone="447700900001", at=1748454300))
    assert loud() == ["447700900001", "447700900002"]
    clock.t += 2
    post_meta(url, meta_body(waba_id="9999", phone="447700900001", at=1748454301))
    assert loud() == ["447700900001", "447700900002", "447700900001"]
