"""CAMS health sweeps (GetWhatsappHealthStatus) against the CAMS emulator over real sockets.

Covers issue 12 section 1: every number's and WABA's health is read within the
action's own budget (5 per second inside the credential's 10), numbers a poll
finds changed are read first, a number never read has no can-send series, and
a sweep slower than health_poll_interval says so once and shows its duration.
"""

from __future__ import annotations

import logging
import math
import threading

import pytest

from emulators.cams import CamsEmulator
from emulators.scenario import generate_fleet, loads_scenario
from exporter.config import parse_config
from exporter.poller import Poller
from exporter.store import Store
from tests.helpers import active_state, current, value, wait_for

HEALTH = "GetWhatsappHealthStatus"
SECRET = {"SK": "sk-health-SECRET"}

SCENARIO = """
credentials:
  - {access_key_id: ak-health, access_key_secret: sk-health-SECRET, qps: 10}
spaces:
  - cust_space_id: cams-shop
    access_key_id: ak-health
    waba: {id: "1001", name: Shop, account_review_status: APPROVED}
    numbers:
      - phone_number: "8613800000001"
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10K
      - phone_number: "8613800000002"
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10K
        can_send_message: BLOCKED
        health_errors:
          - {ErrorCode: "141006", ErrorDescription: There is an error with the payment method.,
             PossibleSolution: Add a new payment method.}
"""


def account(
    endpoint: str, extra: str = "", spaces: str = "[{cust_space_id: cams-shop}]", key: str = "ak-health"
) -> str:
    return f"""
accounts:
  - name: shop
    provider: alibaba_cams
    endpoint: {endpoint}
    credentials: {{access_key_id: {key}, access_key_secret: "${{SK}}"}}
    qps: 10
    poll_interval: 1h
    spaces: {spaces}
{extra}
"""


@pytest.fixture
def emulator():
    emu = CamsEmulator(loads_scenario(SCENARIO)).start()
    yield emu
    emu.stop()


@pytest.fixture
def make():
    made = []

    def build(text: str, env=SECRET) -> tuple[Poller, Store]:
        store = Store()
        poller = Poller(parse_config(text, env=env), store)
        made.append(poller)
        return poller, store

    yield build
    for poller in made:
        poller.stop()


def test_a_number_is_blocked_only_once_its_health_was_read(emulator, make):
    poller, store = make(account(emulator.url))
    poller.poll_account("shop")
    s = current(store)
    # polled, not yet swept: no can-send series at all (not a fake UNKNOWN)
    assert not [k for k in s if k[0] == "whatsapp_phone_number_can_send_message"]
    assert value(s, "whatsapp_exporter_api_requests_total", action=HEALTH) == 0

    poller.sweep_health("shop")
    s = current(store)
    blocked = dict(account="shop", phone_number="+8613800000002")
    assert active_state(s, "whatsapp_phone_number_can_send_message", "can_send_message", **blocked) == "BLOCKED"
    assert (
        active_state(s, "whatsapp_phone_number_can_send_message", "can_send_message", phone_number="+8613800000001")
        == "AVAILABLE"
    )
    assert (
        value(
            s, "whatsapp_phone_number_blocking_error_info", **blocked, error_code="141006", entity_type="PHONE_NUMBER"
        )
        == 1
    )
    assert (
        active_state(s, "whatsapp_entity_can_send_message", "can_send_message", entity_type="WABA", entity_id="1001")
        == "AVAILABLE"
    )
    # two numbers and the WABA node: three reads, within the action's budget
    assert value(s, "whatsapp_exporter_api_requests_total", action=HEALTH) == 3
    assert len(emulator.calls(HEALTH)) == 3
    assert value(s, "whatsapp_exporter_health_sweep_duration_seconds", account="shop") >= 0

    # the next poll keeps the health the sweep read
    poller.poll_account("shop")
    assert (
        active_state(current(store), "whatsapp_phone_number_can_send_message", "can_send_message", **blocked)
        == "BLOCKED"
    )


def test_health_sweeps_off(emulator, make):
    poller, store = make(account(emulator.url, "    health_poll_interval: 0s"))
    poller.poll_account("shop")
    poller.sweep_health("shop")
    s = current(store)
    assert value(s, "whatsapp_exporter_api_requests_total", action=HEALTH) is None  # not even an action
    assert not emulator.calls(HEALTH)


def test_a_number_a_poll_finds_changed_is_read_before_the_next_sweep(emulator, make):
    poller, store = make(account(emulator.url))
    poller.start()
    wait_for(
        lambda: value(current(store), "whatsapp_exporter_health_sweep_duration_seconds", account="shop") is not None,
        "the first sweep, right after the first poll",
    )
    assert len(emulator.calls(HEALTH)) == 3
    emulator.set_number("cams-shop", "8613800000001", status="RESTRICTED", can_send_message="BLOCKED")
    poller.poll_account("shop")  # sees the status change; the sweep is an hour away
    wait_for(
        lambda: (
            active_state(
                current(store),
                "whatsapp_phone_number_can_send_message",
                "can_send_message",
                phone_number="+8613800000001",
            )
            == "BLOCKED"
        ),
        "the re-read of the changed number",
    )
    reads = [r for r in emulator.calls(HEALTH) if r.phone_number == "8613800000001"]
    assert len(reads) == 2  # the sweep's, then the re-read of this number only
    assert len(emulator.calls(HEALTH)) == 4


def per_second(records) -> dict[int, int]:
    counts: dict[int, int] = {}
    for r in records:
        counts[math.floor(r.time)] = counts.get(math.floor(r.time), 0) + 1
    return counts


def test_health_reads_never_exceed_their_own_budget_nor_the_credentials(make):
    """Enough numbers to keep the 5/s health budget busy for seconds, while polls use the rest of the 10/s."""
    fleet = generate_fleet(
        spaces=8, numbers_per_space=6, access_key_id="fleet-ak", secret="fleet-secret", qps=10, seed=3, timelines=False
    )
    with CamsEmulator(fleet, max_records=100_000) as emu:
        spaces = "[" + ", ".join(f"{{cust_space_id: {s.space_id}}}" for s in fleet.spaces) + "]"
        poller, store = make(account(emu.url, spaces=spaces, key="fleet-ak"), env={"SK": "fleet-secret"})
        poller.poll_account("shop")
        busy = threading.Event()

        def keep_polling():
            while not busy.is_set():
                poller.poll_account("shop")

        polls = threading.Thread(target=keep_polling)
        polls.start()
        try:
            poller.sweep_health("shop")
        finally:
            busy.set()
            polls.join()
        records = [r for r in emu.requests if r.access_key_id == "fleet-ak"]
    health = [r for r in records if r.action == HEALTH]
    assert len(health) == 48 + 8  # every number and every WABA node
    assert max(per_second(health).values()) <= 5
    assert max(per_second(records).values()) <= 10
    assert len(per_second(health)) >= 10  # the reads were spread, not bunched into a couple of seconds
    others = [r for r in records if r.action != HEALTH]
    assert len(others) > len(health)  # the polls kept going meanwhile: the budget was shared, not taken
    assert all(r.accepted for r in records), [r for r in records if not r.accepted][:3]
    s = current(store)
    assert value(s, "whatsapp_exporter_api_request_errors_total", action=HEALTH, reason="throttled") == 0
    assert (
        len(
            {
                dict(k[1])["phone_number"]
                for k, v in s.items()
                if k[0] == "whatsapp_phone_number_can_send_message" and v == 1
            }
        )
        == 48
    )


def test_a_sweep_slower_than_its_interval_says_so_once(emulator, make, caplog):
    text = account(emulator.url, "    health_poll_interval: 10s\n    action_qps: {GetWhatsappHealthStatus: 0.2}")
    poller, _store = make(text)
    poller.poll_account("shop")
    with caplog.at_level(logging.WARNING, logger="exporter"):
        sweep = threading.Thread(target=poller.sweep_health, args=["shop"])
        sweep.start()
        wait_for(
            lambda: [r for r in caplog.records if "longer than health_poll_interval" in r.getMessage()], "the warning"
        )
        poller.stop()  # cancels the sweep's wait for its next token
        sweep.join(timeout=10)
        assert not sweep.is_alive()
    [warning] = [r for r in caplog.records if "longer than health_poll_interval" in r.getMessage()]
    assert warning.sweep_seconds_at_least == 15  # 3 calls at one per 5 s
    assert len(emulator.calls(HEALTH)) <= 1


def test_a_poll_that_read_its_numbers_before_a_health_read_keeps_the_newer_health():
    """A sweep publishes a number's health while a poll is under way; the poll, which enriched its numbers with
    the health known before, must not overwrite the newer reading (found as a flaky count under load)."""
    from exporter import merge, model

    old = model.TrackedNumber(
        model.PhoneNumber("+1", can_send_message="BLOCKED", business_id="b"), model.ChangeTimes.first_seen(0)
    )
    polled = {"+1": model.PhoneNumber("+1", status="CONNECTED"), "+2": model.PhoneNumber("+2")}
    kept = merge.newer_health({"+1": old}, polled, {"+1": 105.0, "+2": 90.0}, poll_started=100.0)
    assert kept == {"+1": model.PhoneNumber("+1", status="CONNECTED", can_send_message="BLOCKED", business_id="b")}
    assert merge.newer_health({"+1": old}, polled, {"+1": 95.0}, poll_started=100.0) == {}
