"""Provider faults: the exporter stays up, keeps the last good data visibly stale, drops it after
max_staleness, leaves other accounts alone, and recovers by itself."""

from __future__ import annotations

import logging
import threading

import pytest

from emulators.scenario import Fault
from exporter.config import parse_config
from exporter.poller import Poller
from exporter.ratelimit import TokenBucket
from exporter.store import Store
from tests.helpers import (
    REQUEST_ERRORS,
    SECRETS,
    active_state,
    cams_account,
    cams_config,
    current,
    poll_once,
    value,
    wait_for,
)

M = "whatsapp_phone_number_"


def poll_a_minute_later(clock, poller, account: str = "shop") -> None:
    clock.now += 60
    poller.poll_account(account)


class Clock:
    def __init__(self):
        import time

        self.now = time.time()

    def __call__(self):
        return self.now


def config(url, max_staleness="10m", retries=3):
    common = dict(poll_interval="60s", timeout="0.5s")
    shop = cams_account(
        url,
        "shop",
        "ak-one",
        "SK_ONE",
        ["cams-shop", "cams-support"],
        **common,
        max_staleness=max_staleness,
        retries=retries,
    )
    other = cams_account(url, "other", "ak-two", "SK_TWO", ["cams-other"], **common)
    return parse_config("accounts:\n" + shop + other, env=SECRETS)


async def no_wait(seconds):
    return None


def _setup(emulator, retries=3):
    clock = Clock()
    store = Store(clock=clock)
    # retries still happen, without waiting out the backoff
    poller = Poller(config(emulator.url, retries=retries), store, clock=clock, backoff_sleep=no_wait)
    poller.poll_account("shop")
    poller.poll_account("other")
    return emulator, poller, store, clock


@pytest.fixture
def setup(emulator):
    stack = _setup(emulator)
    yield stack
    stack[1].stop()


@pytest.fixture
def setup_no_retries(emulator):
    """``retries: 0`` on the account shop."""
    stack = _setup(emulator, retries=0)
    yield stack
    stack[1].stop()


FAULTS = [
    ("http 500", dict(kind="error", code="InternalError"), "upstream"),
    ("http 503", dict(kind="error", code="ServiceUnavailable"), "upstream"),
    ("slow answer past the timeout", dict(kind="delay", seconds=1.5), "timeout"),
    ("connection reset", dict(kind="reset"), "upstream"),
    ("malformed JSON", dict(kind="malformed"), "parse"),
    ("HTML error page", dict(kind="html"), "upstream"),
    ("Throttling.User", dict(kind="error", code="Throttling.User"), "throttled"),
    ("Throttling.Api", dict(kind="error", code="Throttling.Api"), "throttled"),
    ("Throttling", dict(kind="error", code="Throttling"), "throttled"),
    ("System.LimitControl as HTTP 200", dict(kind="error", code="System.LimitControl", http200=True), "throttled"),
    ("System.LimitControl as HTTP 400", dict(kind="error", code="System.LimitControl"), "throttled"),
    ("SignatureDoesNotMatch", dict(kind="error", code="SignatureDoesNotMatch"), "auth"),
    ("InvalidAccessKeyId.NotFound", dict(kind="error", code="InvalidAccessKeyId.NotFound"), "auth"),
    ("InvalidTimeStamp.Expired", dict(kind="error", code="InvalidTimeStamp.Expired"), "auth"),
    ("Ram.PermissionDeny", dict(kind="error", code="Ram.PermissionDeny"), "permission"),
]


@pytest.mark.parametrize("name,fault,reason", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_faulty_account_stays_visibly_stale_and_recovers(setup, name, fault, reason):
    emulator, poller, store, clock = setup
    good = current(store)
    clock.now += 60
    emulator.inject(Fault(access_key_id="ak-one", **fault))
    poller.poll_account("shop")
    poller.poll_account("other")
    s = current(store)
    # the last good data is still served ...
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3
    assert active_state(s, M + "status", "status", account="shop", phone_number="+8613800000001") == "CONNECTED"
    # ... visibly stale
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 0
    assert value(s, "whatsapp_exporter_last_successful_poll_timestamp_seconds", account="shop") == value(
        good, "whatsapp_exporter_last_successful_poll_timestamp_seconds", account="shop"
    )
    assert value(s, "whatsapp_exporter_last_poll_timestamp_seconds", account="shop") > value(
        good, "whatsapp_exporter_last_poll_timestamp_seconds", account="shop"
    )
    assert value(s, REQUEST_ERRORS, account="shop", action="QueryChatappPhoneNumbers", reason=reason) >= 1
    # the other account is untouched
    assert value(s, "whatsapp_exporter_poll_success", account="other") == 1
    assert {k: v for k, v in s.items() if dict(k[1]).get("account") == "other" and k[0].startswith(M)} == {
        k: v for k, v in good.items() if dict(k[1]).get("account") == "other" and k[0].startswith(M)
    }

    # recovery is automatic once the fault clears (auth/permission after their longer pause)
    emulator.clear_faults()
    clock.now += 3601 if reason in ("auth", "permission") else 60
    poller.poll_account("shop")
    s = current(store)
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 1
    assert value(s, "whatsapp_exporter_last_successful_poll_timestamp_seconds", account="shop") > value(
        good, "whatsapp_exporter_last_successful_poll_timestamp_seconds", account="shop"
    )


def test_stale_series_are_dropped_after_max_staleness(setup):
    emulator, poller, store, clock = setup
    emulator.inject(Fault(kind="error", code="InternalError", access_key_id="ak-one"))
    for _ in range(9):  # 9 minutes of failures: still served
        poll_a_minute_later(clock, poller)
    assert value(current(store), "whatsapp_exporter_numbers", account="shop") == 3
    clock.now += 120  # past max_staleness (10 min) since the last success
    poller.poll_account("shop")
    s = current(store)
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 0
    assert not [k for k in s if k[0] == M + "info" and dict(k[1])["account"] == "shop"]
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 0
    assert value(s, "whatsapp_exporter_numbers", account="other") == 1
    emulator.clear_faults()
    poll_a_minute_later(clock, poller)
    assert value(current(store), "whatsapp_exporter_numbers", account="shop") == 3


def test_refused_connections(setup):
    emulator, poller, store, clock = setup
    emulator.stop()
    poll_a_minute_later(clock, poller)
    s = current(store)
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 0
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3
    assert value(s, REQUEST_ERRORS, account="shop", action="QueryChatappPhoneNumbers", reason="upstream") >= 1


@pytest.mark.parametrize("code,reason", [("SignatureDoesNotMatch", "auth"), ("Ram.PermissionDeny", "permission")])
def test_auth_and_permission_failures_pause_the_account_and_say_what_to_fix(setup, caplog, code, reason):
    emulator, poller, _store, clock = setup
    emulator.inject(Fault(kind="error", code=code, access_key_id="ak-one"))
    clock.now += 60
    poller.poll_account("shop")  # one refusal could be a hiccup: no pause yet
    assert poller.paused_until("shop") < clock.now
    clock.now += 60
    with caplog.at_level(logging.INFO):
        poller.poll_account("shop")
    calls = len(emulator.requests)
    paused = [r for r in caplog.records if r.getMessage() == "credential refused: polls of this account are paused"]
    assert paused and paused[0].reason == reason and paused[0].paused_seconds >= 300
    assert "reload" in paused[0].hint
    for record in caplog.records:
        for secret in SECRETS.values():
            assert secret not in record.getMessage() and secret not in str(record.__dict__)
    # the next scheduled polls do not call the provider while paused ...
    for _ in range(4):
        poll_a_minute_later(clock, poller)
    assert len(emulator.requests) == calls
    # ... and the pause grows while the credential keeps being refused
    clock.now += paused[0].paused_seconds
    poller.poll_account("shop")
    assert len(emulator.requests) > calls
    assert poller.paused_until("shop") - clock.now > paused[0].paused_seconds


def test_transient_errors_are_retried_and_the_budget_holds(setup):
    emulator, poller, store, clock = setup
    emulator.inject(Fault(kind="error", code="ServiceUnavailable", access_key_id="ak-one", count=2))
    poll_a_minute_later(clock, poller)
    s = current(store)
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 1
    assert value(s, REQUEST_ERRORS, account="shop", action="QueryChatappPhoneNumbers", reason="upstream") == 2
    assert emulator.max_requests_in_any_second("ak-one") <= 10


MORE_FAULTS = [
    ("reset mid-body", dict(kind="truncate"), "upstream"),
    ("a 40 MiB answer", dict(kind="oversize", megabytes=40), "parse"),
]


@pytest.mark.parametrize("name,fault,reason", MORE_FAULTS, ids=[f[0] for f in MORE_FAULTS])
def test_transport_faults_keep_the_last_good_data(setup_no_retries, name, fault, reason):
    emulator, poller, store, clock = setup_no_retries
    emulator.inject(Fault(access_key_id="ak-one", **fault))
    poll_a_minute_later(clock, poller)
    s = current(store)
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 0
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3
    assert value(s, REQUEST_ERRORS, account="shop", action="QueryChatappPhoneNumbers", reason=reason) >= 1
    emulator.clear_faults()
    poll_a_minute_later(clock, poller)
    assert value(current(store), "whatsapp_exporter_poll_success", account="shop") == 1


def test_a_smaller_oversized_answer_is_read(setup):
    emulator, poller, store, clock = setup
    emulator.inject(Fault(kind="oversize", megabytes=3, access_key_id="ak-one", action="QueryChatappPhoneNumbers"))
    poll_a_minute_later(clock, poller)
    s = current(store)
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 1
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3


def test_data_faults_are_tolerated(setup, caplog):
    emulator, poller, store, clock = setup
    for kind in ("unknown_enum", "duplicate_numbers"):
        emulator.inject(Fault(kind=kind, access_key_id="ak-one", action="QueryChatappPhoneNumbers", count=2))
    clock.now += 60
    with caplog.at_level(logging.WARNING):
        poller.poll_account("shop")
    s = current(store)
    one = dict(account="shop", phone_number="+8613800000001")
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 1
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3  # duplicates kept once
    assert active_state(s, M + "status", "status", **one) == "OTHER"
    assert active_state(s, M + "quality_rating", "quality_rating", **one) == "OTHER"
    assert any(r.getMessage() == "unrecognised value, exported as OTHER" for r in caplog.records)
    emulator.clear_faults()
    emulator.inject(Fault(kind="null_fields", access_key_id="ak-one", action="QueryChatappPhoneNumbers", count=2))
    poll_a_minute_later(clock, poller)
    s = current(store)
    assert active_state(s, M + "status", "status", **one) == "UNKNOWN"
    assert active_state(s, M + "quality_rating", "quality_rating", **one) == "UNKNOWN"
    emulator.clear_faults()
    poll_a_minute_later(clock, poller)
    assert active_state(current(store), M + "status", "status", **one) == "CONNECTED"


def test_a_refused_side_call_does_not_pause_the_account(setup, caplog):
    """Permission denied on the WABA lookup only: the numbers still come, so the credential works; no pause."""
    emulator, poller, store, clock = setup
    emulator.inject(
        Fault(kind="error", code="Ram.PermissionDeny", access_key_id="ak-one", action="QueryChatappBindWaba")
    )
    for _ in range(3):
        clock.now += 601  # past waba_poll_interval (10 min): every poll looks the WABA up
        poller.poll_account("shop")
    assert poller.paused_until("shop") < clock.now
    assert not [r for r in caplog.records if r.getMessage() == "credential refused: polls of this account are paused"]
    s = current(store)
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3
    assert value(s, REQUEST_ERRORS, account="shop", action="QueryChatappBindWaba", reason="permission") >= 1


def test_a_number_listed_by_two_spaces_is_kept_once_and_logged_once_per_poll(caplog):
    from emulators.cams import CamsEmulator
    from emulators.scenario import loads_scenario

    numbers = "\n".join(f'      - {{phone_number: "86138000001{i:02d}", status: CONNECTED}}' for i in range(12))
    scenario = loads_scenario(f"""
credentials: [{{access_key_id: ak-one, access_key_secret: "{SECRETS["SK_ONE"]}", qps: null}}]
spaces:
  - cust_space_id: cams-a
    access_key_id: ak-one
    numbers:
{numbers}
  - cust_space_id: cams-b
    access_key_id: ak-one
    numbers:
{numbers}
""")
    with CamsEmulator(scenario) as emu:
        config = cams_config(emu.url, "twice", "ak-one", SECRETS["SK_ONE"], ["cams-a", "cams-b"])
        with caplog.at_level(logging.WARNING):
            store = poll_once(config, "twice")
    assert len(store.account("twice").numbers) == 12
    assert {t.number.space_id for t in store.account("twice").numbers.values()} == {"cams-a"}
    [record] = [r for r in caplog.records if r.getMessage().startswith("numbers listed twice")]
    assert record.count == 12 and record.space_id == "cams-b" and record.phone_numbers.endswith(",...")


def test_calls_cut_short_by_the_shutdown_are_not_logged_as_provider_failures(emulator, caplog, monkeypatch):
    # a call that asks for a token while the credential's bucket has none left is the one the shutdown cuts short
    waiting = threading.Event()
    real_acquire = TokenBucket.acquire

    def acquire(bucket, *args, **kwargs):
        if bucket.delay() > 0:
            waiting.set()
        return real_acquire(bucket, *args, **kwargs)

    monkeypatch.setattr(TokenBucket, "acquire", acquire)
    config = cams_config(emulator.url, "slow", "ak-one", SECRETS["SK_ONE"], ["cams-shop", "cams-support"], qps=0.5)
    poller = Poller(config, Store())
    with caplog.at_level(logging.DEBUG, logger="exporter.poller"):
        poller.start()
        wait_for(waiting.is_set, "a call waiting for its token (qps 0.5: about 2 s after the first call)")
        assert emulator.requests
        poller.stop()
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.DEBUG, "provider call abandoned: shutting down") in messages
    assert not [m for m in messages if m[1] == "provider call failed"], messages


def test_a_reload_with_an_unchanged_configuration_resumes_a_paused_credential(setup, caplog):
    """The pause log says "reload the configuration to retry at once": a reload of the same file does."""
    from tests.helpers import wait_for

    emulator, poller, store, clock = setup
    emulator.inject(Fault(kind="error", code="SignatureDoesNotMatch", access_key_id="ak-one"))
    for _ in range(2):
        clock.now += 60
        poller.poll_account("shop")
    assert poller.paused_until("shop") > clock.now
    assert value(current(store), "whatsapp_exporter_poll_success", account="shop") == 0
    emulator.clear_faults()  # the operator fixed the credential (or the clock)
    calls = len(emulator.requests)
    poller.poll_account("shop")
    assert len(emulator.requests) == calls  # still paused: no call
    with caplog.at_level(logging.INFO):
        kept, added, removed = poller.reconfigure(config(emulator.url))
    assert (kept, added, removed) == (["shop", "other"], [], [])
    wait_for(
        lambda: value(current(store), "whatsapp_exporter_poll_success", account="shop") == 1,
        "a poll right after the reload",
    )
    assert poller.paused_until("shop") == 0
    assert any(r.getMessage() == "polls resumed by a reload" and r.account == "shop" for r in caplog.records)
