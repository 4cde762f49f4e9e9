"""The Meta Graph API client and provider against the real MetaEmulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import logging

import pytest

from emulators.meta import LIST_ACTION as EMU_LIST
from emulators.meta import NUMBER_ACTION as EMU_NUMBER
from emulators.meta import MetaEmulator
from emulators.scenario import Fault, load_builtin_scenario, loads_scenario
from exporter.config import parse_config
from exporter.providers import make_provider
from exporter.providers.errors import ProviderError
from exporter.providers.meta.client import MetaClient
from exporter.providers.meta.provider import SLOWDOWN_RATIO, MetaProvider
from exporter.ratelimit import TokenBucket
from tests.helpers import OnLoop

TOKEN, APP = "EAAClientTestToken0001secret", "1001"
WABA, BIG_WABA, TINY_WABA, OTHER_WABA = "102000000000001", "102000000000002", "102000000000003", "102000000000004"
N1, N2, N3, N4 = "106000000000001", "106000000000002", "106000000000003", "106000000000004"
BIG = 250

SCENARIO = (
    f"""
credentials:
  - {{access_key_id: "{APP}", access_key_secret: {TOKEN}, qps: null}}
  - {{access_key_id: "2002", access_key_secret: expired-token-0002, enabled: false}}
spaces:
  - space_id: "{WABA}"
    access_key_id: "{APP}"
    extra: {{calls_per_hour: 10}}
    waba: {{id: "{WABA}", name: Shop, account_review_status: APPROVED, business_id: "524000000000001"}}
    numbers:
      - {{phone_number: "15550000001", id: "{N1}", status: CONNECTED, quality_rating: GREEN,
          whatsapp_business_manager_messaging_limit: TIER_10K, messaging_limit_tier: TIER_1K, throughput_level: HIGH}}
      - {{phone_number: "15550000002", id: "{N2}", status: CONNECTED, quality_rating: YELLOW,
          can_send_message: LIMITED, additional_info: ["Limited."]}}
      - phone_number: "15550000003"
        id: "{N3}"
        status: CONNECTED
        quality_rating: RED
        can_send_message: BLOCKED
        errors: [{{error_code: 141006, error_description: Blocked., possible_solution: Appeal.}}]
      - {{phone_number: "15550000004", id: "{N4}", status: RESTRICTED, quality_rating: RED,
          messaging_limit_tier: TIER_250}}
  - space_id: "{BIG_WABA}"
    access_key_id: "{APP}"
    extra: {{calls_per_hour: 5000}}
    numbers:
"""
    + "\n".join(
        f'      - {{phone_number: "4477009{i:05d}", id: "1070000000{i:05d}", status: CONNECTED}}' for i in range(BIG)
    )
    + f"""
  - space_id: "{TINY_WABA}"
    access_key_id: "{APP}"
    extra: {{calls_per_hour: 3}}
    numbers:
      - {{phone_number: "15550000011", id: "106000000000011", status: CONNECTED}}
      - {{phone_number: "15550000012", id: "106000000000012", status: CONNECTED}}
      - {{phone_number: "15550000013", id: "106000000000013", status: CONNECTED}}
  - space_id: "{OTHER_WABA}"
    access_key_id: "{APP}"
    extra: {{calls_per_hour: 5000}}
    numbers:
      - {{phone_number: "15550000021", id: "106000000000021", status: CONNECTED}}
"""
)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def emu():
    with MetaEmulator(loads_scenario(SCENARIO), calls_per_hour=200) as emulator:
        yield emulator


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def build(emu, clock):
    made = []

    def make(waba=WABA, token_var="T", version="", phones=""):
        version_line = f"    graph_api_version: {version}\n" if version else ""
        phones_line = f"        phone_numbers: [{phones}]\n" if phones else ""
        config = parse_config(
            f"""accounts:
  - name: meta
    provider: meta
    endpoint: {emu.url}
    credentials: {{app_id: "{APP}", access_token: "${{{token_var}}}"}}
    qps: 1000
{version_line}    wabas:
      - waba_id: "{waba}"
{phones_line}""",
            env={"T": TOKEN, "WRONG": "EAAWrongTokenValue999", "EXPIRED": "expired-token-0002"},
        )
        account = config.accounts[0]
        seen = []
        client = MetaClient(
            endpoint=account.endpoint,
            access_token=account.credentials.access_key_secret,
            api_version=account.graph_api_version,
            clock=clock,
            bucket=TokenBucket(1000),
            on_request=lambda action, reason: seen.append((action, reason)),
            sleep=no_wait,
        )
        provider = OnLoop(MetaProvider(account, client), loop)
        provider.seen = seen
        made.append(provider)
        return provider, account.units[0]

    loop = asyncio.new_event_loop()
    yield make
    for provider in made:
        provider.aclose()
    loop.close()


async def no_wait(seconds):
    return None


def test_numbers_and_health_with_a_bearer_token(emu, build):
    provider, unit = build()
    result = provider.poll_unit(unit, 0.0)
    assert not result.errors and not result.stale
    by_id = {n.phone_number_id: n for n in result.numbers}
    assert set(by_id) == {N1, N2, N3, N4}
    one = by_id[N1]
    assert (one.phone_number, one.status, one.quality_rating, one.throughput_level) == (
        "+15550000001",
        "CONNECTED",
        "GREEN",
        "HIGH",
    )
    assert (one.messaging_limit_tier, one.limit_scope, one.waba_id, one.space_id) == (
        "TIER_10K",
        "business_portfolio",
        WABA,
        WABA,
    )
    assert one.can_send_message == "AVAILABLE"
    assert {(e.entity_type, e.entity_id) for e in one.entities} == {
        ("WABA", WABA),
        ("BUSINESS", "524000000000001"),
        ("APP", APP),
    }
    assert by_id[N2].can_send_message == "LIMITED"
    assert by_id[N3].can_send_message == "BLOCKED"
    assert [(b.entity_type, b.entity_id, b.error_code) for b in by_id[N3].blocking_errors] == [
        ("PHONE_NUMBER", N3, "141006")
    ]
    assert (by_id[N4].status, by_id[N4].messaging_limit_tier, by_id[N4].limit_scope) == (
        "RESTRICTED",
        "TIER_250",
        "phone_number",
    )
    assert [r.action for r in emu.requests] == [EMU_LIST] + [EMU_NUMBER] * 4
    assert all(r.authenticated and r.method == "GET" for r in emu.requests)
    assert not any(TOKEN in r.path for r in emu.requests)
    assert emu.api_versions() == ["v24.0"] * 5
    assert not emu.write_action_calls()
    assert provider.seen == [("phone_numbers", None)] + [("phone_number", None)] * 4


def test_usage_headers_are_kept(emu, build):
    provider, unit = build()
    provider.poll_unit(unit, 0.0)
    ratios, regain = provider.usage()
    assert ratios[("business_use_case", WABA, "call_count")] == 0.5  # 5 of 10 calls this hour
    assert ratios[("business_use_case", WABA, "total_time")] == 0.25
    assert ("app", "", "call_count") in ratios
    assert regain == {WABA: 0.0}


def test_paging_across_more_than_100_numbers(emu, build):
    provider, _ = build()
    numbers = provider.client.list_numbers(BIG_WABA)
    assert len(numbers) == BIG == len({n.phone_number for n in numbers})
    assert numbers[0].phone_number == "+447700900000" and numbers[-1].phone_number == f"+4477009{BIG - 1:05d}"
    assert len(emu.calls(EMU_LIST)) == 3  # 100 + 100 + 50


def test_configured_numbers_restrict_and_report_unknown_ones(emu, build):
    provider, unit = build(phones='"15550000001", "+15559999999"')
    result = provider.poll_unit(unit, 0.0)
    assert [n.phone_number for n in result.numbers] == ["+15550000001"]
    assert result.configured == {"+15550000001": True, "+15559999999": False}
    assert result.stale == ("+15559999999",)
    assert len(emu.calls(EMU_NUMBER)) == 1


@pytest.mark.parametrize("var,subcode", [("WRONG", "467"), ("EXPIRED", "463")])
def test_bad_token_is_auth_and_never_shown(emu, build, var, subcode):
    provider, unit = build(token_var=var)
    with pytest.raises(ProviderError) as err:
        provider.poll_unit(unit, 0.0)
    assert (err.value.reason, err.value.code, err.value.http_status) == ("auth", "190", 401)
    assert f"subcode {subcode}" in err.value.message and err.value.request_id
    for secret in ("EAAWrongTokenValue999", "expired-token-0002", TOKEN):
        assert secret not in str(err.value) and secret not in repr(err.value.args)
    assert len(emu.requests) == 1  # auth is not retried


def test_a_token_echoed_by_the_server_is_redacted(emu, build):
    emu.inject(Fault(kind="error", code="100", message=f"(#100) Invalid parameter near {TOKEN}"))
    provider, unit = build()
    with pytest.raises(ProviderError) as err:
        provider.poll_unit(unit, 0.0)
    assert err.value.reason == "request" and "<redacted>" in str(err.value)
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value.args)


def test_throttled_80007_is_not_retried_and_waits_for_the_regain_time(emu, build, clock):
    provider, unit = build(waba=TINY_WABA)
    for _ in range(3):  # the WABA's budget is 3 calls per hour (the poll itself would slow down at 90%)
        provider.client.list_numbers(TINY_WABA)
    with pytest.raises(ProviderError) as err:
        provider.poll_unit(unit, 0.0)
    assert (err.value.reason, err.value.code, err.value.http_status) == ("throttled", "80007", 429)
    assert err.value.action == "phone_numbers"
    assert err.value.retry_after == 3600  # estimated_time_to_regain_access: 60 minutes
    assert len(emu.requests) == 4 and emu.requests[-1].throttled
    assert provider.seen[-1] == ("phone_numbers", "throttled")
    _, regain = provider.usage()
    assert regain[TINY_WABA] == 3600

    clock.t += 1800
    with pytest.raises(ProviderError) as err:
        provider.poll_unit(unit, 0.0)
    assert err.value.reason == "throttled" and err.value.http_status is None
    assert len(emu.requests) == 4  # refused here, without a request
    assert provider.usage()[1][TINY_WABA] == 1800
    # another WABA of the same app has its own budget
    assert len(provider.client.list_numbers(OTHER_WABA)) == 1

    clock.t += 1801
    emu.advance(3600)
    result = provider.poll_unit(unit, 0.0)  # calls flow again once access is regained
    assert len(result.numbers) == 3 and not result.errors
    assert len(emu.requests) == 5 + 3  # the other WABA's list, then this WABA's list and two numbers


def test_throttle_with_status_400_is_still_throttled(build, emu):
    emu.throttle_status = 400
    provider, unit = build(waba=TINY_WABA)
    for _ in range(3):
        provider.client.list_numbers(TINY_WABA)
    with pytest.raises(ProviderError) as err:
        provider.poll_unit(unit, 0.0)
    assert (err.value.reason, err.value.code, err.value.http_status) == ("throttled", "80007", 400)


def test_app_throttle_code_4_stops_every_waba(emu, build, clock):
    emu.inject(Fault(kind="error", code="4", count=1))
    provider, unit = build()
    with pytest.raises(ProviderError) as err:
        provider.poll_unit(unit, 0.0)
    assert (err.value.reason, err.value.code) == ("throttled", "4")
    assert err.value.retry_after == 60  # nothing advertised: the default wait
    with pytest.raises(ProviderError):
        provider.client.list_numbers(OTHER_WABA)
    assert len(emu.requests) == 1
    clock.t += 61
    assert len(provider.client.list_numbers(OTHER_WABA)) == 1


def test_high_usage_skips_the_detail_calls_and_keeps_the_last_health(emu, build, caplog):
    provider, unit = build()  # budget: 10 calls per hour
    first = {n.phone_number_id: n for n in provider.poll_unit(unit, 0.0).numbers}
    assert len(emu.requests) == 5
    with caplog.at_level(logging.WARNING, logger="exporter.providers.meta.provider"):
        second = provider.poll_unit(unit, 60.0)
    # list (60%), three numbers (70, 80, 90%): at 90% the fourth number is read from the list edge only
    assert len(emu.requests) == 9
    assert provider.client.usage_peak(WABA) >= SLOWDOWN_RATIO
    assert not second.errors and not second.stale and len(second.numbers) == 4
    last = second.numbers[-1]
    assert last.phone_number_id == N4
    assert last.can_send_message == first[N4].can_send_message != "UNKNOWN"
    assert last.entities == first[N4].entities
    warnings = [r for r in caplog.records if "usage is high" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].skipped == 1

    third = provider.poll_unit(unit, 10_000.0)  # beyond max_staleness: no stale health is made up
    assert len(emu.requests) == 10
    assert all(n.can_send_message == "UNKNOWN" for n in third.numbers)


def test_one_number_failing_is_reported_and_the_others_kept(emu, build):
    emu.inject(Fault(kind="error", code="100", phone_number="15550000002"))
    provider, unit = build()
    result = provider.poll_unit(unit, 0.0)
    assert [e.reason for e in result.errors] == ["request"] and result.errors[0].code == "100"
    assert result.stale == ("+15550000002",)
    assert {n.phone_number_id for n in result.numbers} == {N1, N3, N4}


def test_transient_error_is_retried(emu, build):
    emu.inject(Fault(kind="error", code="2", count=1))
    provider, unit = build()
    assert len(provider.poll_unit(unit, 0.0).numbers) == 4
    assert provider.seen[:2] == [("phone_numbers", "upstream"), ("phone_numbers", None)]


def test_older_graph_versions_do_not_ask_for_the_portfolio_limit(emu, build):
    provider, unit = build(version="v23.0")
    by_id = {n.phone_number_id: n for n in provider.poll_unit(unit, 0.0).numbers}
    assert (by_id[N1].messaging_limit_tier, by_id[N1].limit_scope) == ("TIER_1K", "phone_number")
    assert (by_id[N2].messaging_limit_tier, by_id[N2].limit_scope) == ("UNKNOWN", "unknown")
    assert set(emu.api_versions()) == {"v23.0"}


def test_the_version_is_part_of_every_path():
    client = MetaClient(endpoint="https://graph.facebook.com", access_token=TOKEN, bucket=TokenBucket(1000))
    try:
        assert client._base == "https://graph.facebook.com/v24.0"
    finally:
        asyncio.run(client.aclose())


def test_demo_scenario_through_make_provider():
    scenario = load_builtin_scenario("demo-meta")
    with MetaEmulator(scenario) as emulator:
        [cred] = scenario.credentials
        config = parse_config(
            f"""accounts:
  - name: demo
    provider: meta
    endpoint: {emulator.url}
    credentials: {{access_token: "${{T}}"}}
    wabas: [{{waba_id: "102290000000001"}}]
""",
            env={"T": cred.access_key_secret},
        )
        account = config.accounts[0]
        assert account.credentials.access_key_id.startswith("sha256:")
        assert cred.access_key_secret not in repr(account)
        provider = make_provider(account, TokenBucket(100), lambda a, r: None)

        async def poll():
            try:
                return (await provider.poll_unit(account.units[0], 0.0)).numbers
            finally:
                await provider.aclose()

        numbers = asyncio.run(poll())
        assert len(numbers) == 4
        assert {n.can_send_message for n in numbers} >= {"LIMITED", "AVAILABLE"}
