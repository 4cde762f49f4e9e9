"""Twilio and Infobip through the real exporter, over sockets against their emulators.

Paging across three pages, a 429 storm, wrong credentials, an Infobip batch of
more than 100 configured senders, and the calls per second (and in flight) each
emulator saw while a fleet large enough to reach the limits was polled.
"""

from __future__ import annotations

import pytest

from emulators.infobip import InfobipEmulator
from emulators.scenario import Fault, load_builtin_scenario, loads_scenario
from emulators.twilio import TwilioEmulator, sender_sid
from tests.helpers import (
    REQUEST_ERRORS,
    active_state,
    assert_promtool_clean,
    emulator_fixture,
    poll,
    pollers_fixture,
    value,
)

M = "whatsapp_phone_number_"
TW_SK = "SKdemo0000000000000000000000000001"
TW_AC = "ACdemo0000000000000000000000000001"
ENV = {"TW": "twdemo-secret-0001", "IB": "ibdemo-api-key-0001", "WRONG": "not-the-secret"}


def tw_account(url, *, name="tw", secret="TW", extra="", senders=""):
    return f"""
  - name: {name}
    provider: twilio
    endpoint: {url}
    credentials: {{sid: {TW_SK}, secret: "${{{secret}}}"}}
    page_size: 2
{extra}    twilio_accounts: [{{account_sid: {TW_AC}{senders}}}]
"""


def ib_account(url, senders, *, name="ib", key="IB", extra=""):
    listed = ", ".join(f'"{s}"' for s in senders)
    return f"""
  - name: {name}
    provider: infobip
    endpoint: {url}
    credentials: {{api_key: "${{{key}}}"}}
{extra}    sender_groups: [{{group: travel, senders: [{listed}]}}]
"""


IB_DEMO = ["447860099101", "447860099102", "447860099103", "4915730099101", "4915730099102", "447860099999"]


tw = emulator_fixture("tw", TwilioEmulator, builtin="demo-twilio")
ib = emulator_fixture("ib", InfobipEmulator, builtin="demo-infobip")

make = pollers_fixture(ENV)


def test_twilio_paging_three_pages_offline_reason_and_back(tw, make):
    poller, store = make(tw_account(tw.url))
    s = poll(poller, store, "tw")
    one = dict(provider="twilio", account="tw", phone_number="+14155550101")
    assert value(s, "whatsapp_exporter_api_requests_total", account="tw", action="ListChannelsSender") == 3
    assert value(s, "whatsapp_exporter_numbers", account="tw") == 6
    assert active_state(s, M + "status", "status", **one) == "CONNECTED"
    assert active_state(s, M + "quality_rating", "quality_rating", phone_number="+5511900000101") == "RED"
    assert active_state(s, M + "messaging_limit_tier", "tier", phone_number="+14155550103") == "TIER_100K"
    assert active_state(s, M + "status", "status", phone_number="+447700900101") == "PENDING"
    assert value(s, M + "info", **one, space_id=TW_AC, waba_id="203040506070801", verified_name="Demo Retail US") == 1

    tw.advance(50)
    s = poll(poller, store, "tw")
    assert active_state(s, M + "status", "status", **one) == "OFFLINE"
    assert (
        value(
            s,
            M + "blocking_error_info",
            **one,
            entity_type="PHONE_NUMBER",
            entity_id=sender_sid("14155550101"),
            error_code="63020",
            error_description="The business has not accepted the Meta invitation",
        )
        == 1
    )
    tw.advance(200)
    s = poll(poller, store, "tw")
    assert active_state(s, M + "status", "status", **one) == "CONNECTED"
    assert value(s, M + "blocking_error_info", **one, error_code="63020") is None
    assert not tw.write_action_calls()
    assert "twdemo-secret-0001" not in store.exposition.body.decode()
    assert_promtool_clean(store.exposition.body)


def test_twilio_never_follows_a_next_page_on_another_host(make):
    with TwilioEmulator(load_builtin_scenario("demo-twilio"), next_page_host="127.0.0.2:9") as emu:
        poller, store = make(tw_account(emu.url))
        s = poll(poller, store, "tw")
        assert value(s, "whatsapp_exporter_poll_success", account="tw") == 0
        assert len(emu.requests) == 1  # the first page only


def test_twilio_wrong_credentials_is_auth_and_rfc9457_too(make):
    for fmt in ("legacy", "rfc9457"):
        with TwilioEmulator(load_builtin_scenario("demo-twilio"), error_format=fmt) as emu:
            poller, store = make(tw_account(emu.url, name=f"tw-{fmt}", secret="WRONG"))
            s = poll(poller, store, f"tw-{fmt}")
            assert value(s, REQUEST_ERRORS, account=f"tw-{fmt}", action="ListChannelsSender", reason="auth") == 1
            assert value(s, "whatsapp_exporter_poll_success", account=f"tw-{fmt}") == 0
            assert len(emu.requests) == 1  # auth is not retried
            assert ENV["WRONG"] not in store.exposition.body.decode()


def test_twilio_429_storm_backs_off_and_recovers(tw, make):
    tw.inject(Fault(kind="error", code="20429", http_status=429, count=3))
    poller, store = make(tw_account(tw.url, extra="    retries: 1\n"))
    s = poll(poller, store, "tw")
    assert value(s, "whatsapp_exporter_api_request_errors_total", action="ListChannelsSender", reason="throttled") == 2
    assert value(s, "whatsapp_exporter_poll_success", account="tw") == 0
    assert len(tw.requests) == 2  # one retry, not a hammering
    s = poll(poller, store, "tw")  # after the hold: the third refusal, one retry, then three pages
    assert value(s, "whatsapp_exporter_poll_success", account="tw") == 1
    assert value(s, "whatsapp_exporter_numbers", account="tw") == 6


def test_twilio_configured_senders_by_sid_and_number(tw, make):
    sids = [sender_sid("14155550101"), "XE" + "0" * 32]
    senders = ', senders: ["+14155550102", ' + ", ".join(f'"{s}"' for s in sids) + "]"
    poller, store = make(tw_account(tw.url, senders=senders))
    s = poll(poller, store, "tw")
    assert value(s, "whatsapp_exporter_numbers", account="tw") == 2
    assert value(s, "whatsapp_exporter_number_poll_success", phone_number="+14155550101") == 1
    assert value(s, "whatsapp_exporter_number_poll_success", phone_number="+14155550102") == 1
    assert value(s, "whatsapp_exporter_number_poll_success", phone_number="XE" + "0" * 32) == 0
    assert value(s, "whatsapp_exporter_api_requests_total", action="FetchChannelsSender") == 2


def test_infobip_quality_low_and_not_owned_sender(ib, make):
    poller, store = make(ib_account(ib.url, IB_DEMO))
    s = poll(poller, store, "ib")
    one = dict(provider="infobip", account="ib", phone_number="+447860099101")
    assert active_state(s, M + "quality_rating", "quality_rating", **one) == "GREEN"
    assert active_state(s, M + "messaging_limit_tier", "tier", phone_number="+447860099103") == "TIER_NOT_SET"
    assert value(s, "whatsapp_exporter_number_poll_success", phone_number="+447860099999") == 0
    assert value(s, "whatsapp_exporter_number_poll_success", **one) == 1
    assert value(s, "whatsapp_exporter_numbers", account="ib") == 5
    ib.advance(55)
    s = poll(poller, store, "ib")
    assert active_state(s, M + "quality_rating", "quality_rating", **one) == "RED"
    assert_promtool_clean(store.exposition.body)


def big_infobip(n_owned: int, qps: int = 10) -> str:
    numbers = "\n".join(
        f'      - {{phone_number: "4477009{i:05d}", status: CONNECTED, quality_rating: HIGH, current_limit: LIMIT_10K}}'
        for i in range(n_owned)
    )
    return f"""
credentials: [{{access_key_id: ib-key, access_key_secret: ibdemo-api-key-0001, qps: {qps}}}]
spaces:
  - space_id: big
    access_key_id: ib-key
    numbers:
{numbers}
"""


def test_infobip_batch_of_more_than_100_configured_senders(make):
    with InfobipEmulator(loads_scenario(big_infobip(140))) as emu:
        senders = [f"4477009{i:05d}" for i in range(150)]  # 140 owned, 10 not
        poller, store = make(ib_account(emu.url, senders))
        s = poll(poller, store, "ib")
        assert sorted(emu.batch_sizes) == [50, 100]
        assert value(s, "whatsapp_exporter_numbers", account="ib") == 140
        assert value(s, "whatsapp_exporter_number_poll_success", phone_number="+447700900145") == 0
        assert value(s, "whatsapp_exporter_number_poll_success", phone_number="+447700900139") == 1


def test_infobip_wrong_key_and_429_storm(ib, make):
    poller, store = make(ib_account(ib.url, IB_DEMO, name="bad", key="WRONG"))
    s = poll(poller, store, "bad")
    assert value(s, "whatsapp_exporter_api_request_errors_total", account="bad", reason="auth") == 1
    ib.clear_requests()
    ib.inject(Fault(kind="error", code="TOO_MANY_REQUESTS", count=2))
    poller, store = make(ib_account(ib.url, IB_DEMO, extra="    retries: 1\n"))
    s = poll(poller, store, "ib")
    assert value(s, "whatsapp_exporter_api_request_errors_total", account="ib", reason="throttled") == 2
    assert len(ib.requests) == 2


def test_calls_per_second_never_over_the_configured_budget(make):
    """A fleet big enough to reach both providers' limits: each emulator counts per calendar second."""
    owned = 2500  # 25 Infobip calls: over two seconds at 10/s
    tw_numbers = "\n".join(
        f'      - {{phone_number: "1415600{i:04d}", status: ONLINE, quality_rating: HIGH}}' for i in range(30)
    )
    tw_scenario = f"""
credentials: [{{access_key_id: {TW_SK}, access_key_secret: twdemo-secret-0001, account: {TW_AC}, qps: 8}}]
spaces:
  - space_id: {TW_AC}
    access_key_id: {TW_SK}
    numbers:
{tw_numbers}
"""
    with (
        InfobipEmulator(loads_scenario(big_infobip(owned))) as ibe,
        TwilioEmulator(loads_scenario(tw_scenario), max_concurrent=2) as twe,
    ):
        twe.inject(Fault(kind="delay", seconds=0.05))  # requests overlap: the concurrency cap matters
        sids = ", ".join(f'"{sender_sid(f"1415600{i:04d}")}"' for i in range(30))
        poller, store = make(
            ib_account(ibe.url, [f"4477009{i:05d}" for i in range(owned)]),
            tw_account(twe.url, extra="    qps: 8\n    max_concurrent_requests: 2\n", senders=f", senders: [{sids}]"),
        )
        s = poll(poller, store, "ib", "tw")
        assert value(s, "whatsapp_exporter_numbers", account="ib") == owned
        assert value(s, "whatsapp_exporter_numbers", account="tw") == 30
        assert len(ibe.requests) == 25 and len(twe.requests) == 30
        assert ibe.max_requests_in_any_second("ib-key") <= 10
        assert max(ibe.per_second_counts("ib-key").values()) >= 5  # the limit was really approached
        assert twe.max_requests_in_any_second(TW_SK) <= 8
        assert twe.max_in_flight_seen[TW_AC] <= 2
        assert not [r for r in ibe.requests + twe.requests if r.throttled]


@pytest.mark.parametrize(
    "fault,reason",
    [
        (Fault(kind="malformed"), "parse"),
        (Fault(kind="html"), "upstream"),
        (Fault(kind="reset"), "upstream"),
        (Fault(kind="truncate"), "upstream"),
        (Fault(kind="error", code="20503", http_status=503), "upstream"),
        (Fault(kind="error", code="20404", http_status=404), "request"),
        (Fault(kind="delay", seconds=3), "timeout"),
    ],
)
def test_twilio_faults_are_classified(tw, make, fault, reason):
    tw.inject(fault)
    poller, store = make(tw_account(tw.url, extra="    poll_interval: 5s\n    timeout: 1s\n    retries: 0\n"))
    s = poll(poller, store, "tw")
    assert value(s, "whatsapp_exporter_api_request_errors_total", action="ListChannelsSender", reason=reason) == 1
    assert value(s, "whatsapp_exporter_poll_success", account="tw") == 0


@pytest.mark.parametrize(
    "fault,reason",
    [
        (Fault(kind="malformed"), "parse"),
        (Fault(kind="error", code="GENERAL_ERROR"), "upstream"),
        (Fault(kind="error", code="FORBIDDEN"), "permission"),
        (Fault(kind="unknown_enum"), None),
    ],
)
def test_infobip_faults_are_classified(ib, make, fault, reason):
    ib.inject(fault)
    poller, store = make(ib_account(ib.url, IB_DEMO[:2], extra="    retries: 0\n"))
    s = poll(poller, store, "ib")
    if reason is None:  # new values land in OTHER, nothing fails
        assert active_state(s, M + "status", "status", phone_number="+447860099101") == "OTHER"
        assert active_state(s, M + "messaging_limit_tier", "tier", phone_number="+447860099101") == "OTHER"
        assert value(s, "whatsapp_exporter_poll_success", account="ib") == 1
    else:
        assert value(s, "whatsapp_exporter_api_request_errors_total", reason=reason) == 1
