"""NxCloud and Kaleyra over real sockets, and all three providers in one exporter."""

from __future__ import annotations

import logging
import operator
import time

import pytest

from emulators.cams import CamsEmulator
from emulators.kaleyra import KaleyraEmulator
from emulators.meta import MetaEmulator
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import Fault, loads_scenario
from exporter.web import App, HttpServer
from tests.conftest import SCENARIO as CAMS_SCENARIO
from tests.helpers import (
    REQUEST_ERRORS,
    active_state,
    assert_promtool_clean,
    current,
    emulator_fixture,
    poll,
    pollers_fixture,
    samples,
    scenario_text,
    scrape,
    value,
)

M = "whatsapp_phone_number_"
ENV = {
    "NX_WRONG": "wrong",
    "NX": "nx-secret-VALUE",
    "KAL": "kaleyra-key-VALUE",
    "SK_ONE": "sk-one-SECRET-VALUE",
    "META": "EAAmetaTOKENvalue0001",
}

NX_SCENARIO = scenario_text("nxcloud")
KAL_SCENARIO = scenario_text("kaleyra")
META_SCENARIO = scenario_text("meta")


def nx_account(url, apps="[{appkey: app-shop}, {appkey: app-travel}]", name="nx", secret="NX", extra=""):
    return f"""
  - name: {name}
    provider: nxcloud
    endpoint: {url}
    credentials: {{access_key: nx-ak, access_secret: "${{{secret}}}"}}
    qps: 10
    apps: {apps}
{extra}"""


def kal_account(url, wabas='[{waba_id: "1029384756"}]', name="kal", extra=""):
    return f"""
  - name: {name}
    provider: kaleyra
    endpoint: {url}
    credentials: {{sid: HXSID1, api_key: "${{KAL}}"}}
    wabas: {wabas}
{extra}"""


def meta_account(url, name="meta"):
    return f"""
  - name: {name}
    provider: meta
    endpoint: {url}
    credentials: {{app_id: "7001", access_token: "${{META}}"}}
    wabas: [{{waba_id: "1022900001"}}]
"""


def cams_account(url):
    return f"""
  - name: shop
    provider: alibaba_cams
    endpoint: {url}
    credentials: {{access_key_id: ak-one, access_key_secret: "${{SK_ONE}}"}}
    spaces: [{{cust_space_id: cams-shop}}, {{cust_space_id: cams-support}}]
"""


nx = emulator_fixture("nx", NxCloudEmulator, NX_SCENARIO)
kal = emulator_fixture("kal", KaleyraEmulator, KAL_SCENARIO)
meta = emulator_fixture("meta", MetaEmulator, META_SCENARIO)
cams = emulator_fixture("cams", CamsEmulator, CAMS_SCENARIO)


make = pollers_fixture(ENV)


def test_nxcloud_both_shapes_and_transitions(nx, make):
    poller, store = make(nx_account(nx.url))
    s = poll(poller, store, "nx")
    shop = dict(provider="nxcloud", account="nx", phone_number="+6281300000001")
    assert active_state(s, M + "quality_rating", "quality_rating", **shop) == "GREEN"
    assert active_state(s, M + "messaging_limit_tier", "tier", **shop) == "TIER_1K"
    assert value(s, M + "info", **shop, verified_name="Shop", space_id="app-shop") == 1
    assert active_state(s, M + "quality_rating", "quality_rating", phone_number="+6281300000002") == "UNKNOWN"
    assert value(s, M + "messaging_limit", phone_number="+6281300000002") is None  # current_limit ""
    travel = dict(phone_number="+5511900000001", space_id="app-travel")
    assert active_state(s, M + "status", "status", phone_number="+5511900000001") == "FLAGGED"
    assert value(s, M + "info", **travel) == 1
    assert value(s, "whatsapp_exporter_api_requests_total", account="nx", action="getPhone") == 2
    assert value(s, "whatsapp_exporter_poll_success", account="nx") == 1

    nx.advance(150)
    assert active_state(poll(poller, store, "nx"), M + "quality_rating", "quality_rating", **shop) == "RED"
    assert not nx.write_action_calls()


def test_nxcloud_clock_skew_is_logged_as_a_clock_problem(make, caplog):
    # the provider's clock is 5 minutes ahead of ours
    with NxCloudEmulator(loads_scenario(NX_SCENARIO), clock=lambda: time.time() + 300) as nx:
        poller, store = make(nx_account(nx.url))
        with caplog.at_level(logging.WARNING):
            poller.poll_account("nx")
    s = current(store)
    assert value(s, "whatsapp_exporter_api_request_errors_total", action="getPhone", reason="auth") == 2
    messages = [r.error for r in caplog.records if getattr(r, "code", "") == "1004" and hasattr(r, "error")]
    assert messages and "clock problem" in messages[0] and "behind" in messages[0]


def test_nxcloud_wrong_secret_is_auth(nx, make):
    poller, store = make(nx_account(nx.url, "[{appkey: app-shop}]", secret="NX_WRONG"))
    assert value(poll(poller, store, "nx"), REQUEST_ERRORS, action="getPhone", reason="auth") == 1


def test_kaleyra_discovery_details_and_transitions(kal, make):
    poller, store = make(kal_account(kal.url))
    s = poll(poller, store, "kal")
    one = dict(provider="kaleyra", account="kal", phone_number="+919876543210")
    assert active_state(s, M + "status", "status", **one) == "CONNECTED"
    assert active_state(s, M + "messaging_limit_tier", "tier", **one) == "TIER_10K"  # the portfolio limit wins
    assert value(s, M + "info", **one, phone_number_id="5550001", waba_id="1029384756", verified_name="Kal Shop") == 1
    assert active_state(s, M + "quality_rating", "quality_rating", phone_number="+919876543211") == "YELLOW"
    assert value(s, "whatsapp_exporter_api_requests_total", account="kal", action="number") == 1
    assert value(s, "whatsapp_exporter_api_requests_total", account="kal", action="phone_number_details") == 2
    kal.advance(150)
    assert active_state(poll(poller, store, "kal"), M + "status", "status", **one) == "FLAGGED"
    assert not kal.write_action_calls()


@pytest.mark.parametrize(
    "provider,listed,unknown,known,more",
    [
        (
            "nx",
            '[{appkey: app-shop, business_phones: ["6281300000001", "6281300000002", "6281399999999"]}]',
            "+6281399999999",
            ["+6281300000001", "+6281300000002"],
            # a listed number the app does not hold fails the account's poll (the others are still read)
            [
                ("whatsapp_exporter_poll_success", {}, operator.eq, 0),
                (REQUEST_ERRORS, dict(action="getPhone", reason="request"), operator.ge, 1),
            ],
        ),
        (
            "kal",
            '[{waba_id: "1029384756", phone_numbers: ["919876543210", "919800000000"]}]',
            "+919800000000",
            ["+919876543210"],
            # listed numbers: no discovery call
            [
                ("whatsapp_exporter_api_requests_total", dict(action="number"), operator.eq, 0),
                (REQUEST_ERRORS, dict(action="phone_number_details", reason="request"), operator.eq, 1),
            ],
        ),
    ],
)
def test_a_listed_number_the_provider_does_not_hold_is_reported_and_the_others_kept(
    request, make, provider, listed, unknown, known, more
):
    emulator = request.getfixturevalue(provider)
    account = {"nx": nx_account, "kal": kal_account}[provider]
    poller, store = make(account(emulator.url, listed))
    s = poll(poller, store, provider)
    assert value(s, "whatsapp_exporter_number_poll_success", phone_number=unknown) == 0
    for number in known:
        assert value(s, "whatsapp_exporter_number_poll_success", phone_number=number) == 1
        assert active_state(s, M + "status", "status", phone_number=number) == "CONNECTED"
    for family, labels, compare, expected in more:
        assert compare(value(s, family, account=provider, **labels), expected), (family, labels)


@pytest.mark.parametrize(
    "provider,code,action",
    [
        ("kal", "RBC001", "number"),  # "Incorrect SID or API key"
        ("meta", "190", "phone_numbers"),  # "Invalid OAuth access token"
    ],
)
def test_a_refused_key_is_auth_and_keeps_the_last_data(request, make, provider, code, action):
    emulator = request.getfixturevalue(provider)
    poller, store = make({"kal": kal_account, "meta": meta_account}[provider](emulator.url))
    poller.poll_account(provider)
    emulator.inject(Fault(kind="error", code=code))  # from now on
    s = poll(poller, store, provider)
    assert value(s, REQUEST_ERRORS, action=action, reason="auth") == 1
    assert value(s, "whatsapp_exporter_poll_success", account=provider) == 0
    assert value(s, "whatsapp_exporter_numbers", account=provider) == 2


#: what each provider's error-count test polls: (its account, lines for one app or WABA and no retries, the action)
ERROR_ACCOUNTS = {
    "nx": (lambda url: nx_account(url, "[{appkey: app-shop}]", extra="    retries: 0"), "getPhone"),
    "kal": (lambda url: kal_account(url, extra="    retries: 0"), "number"),
}


@pytest.mark.parametrize(
    "provider,fault,reason",
    [
        ("nx", dict(kind="error", code=1003), "auth"),
        ("nx", dict(kind="error", code=1005), "permission"),
        ("nx", dict(kind="error", code=9001), "upstream"),
        ("nx", dict(kind="error", code=9099), "upstream"),
        ("kal", dict(kind="error", code="WA500"), "upstream"),
        ("kal", dict(kind="error", code="WA401", http_status=400), "permission"),
        ("kal", dict(kind="malformed"), "parse"),
    ],
)
def test_provider_errors_counted(request, make, provider, fault, reason):
    emulator = request.getfixturevalue(provider)
    emulator.inject(Fault(**fault))
    account, action = ERROR_ACCOUNTS[provider]
    poller, store = make(account(emulator.url))
    assert value(poll(poller, store, provider), REQUEST_ERRORS, action=action, reason=reason) == 1


def test_three_providers_in_one_scrape_and_one_failing_leaves_the_others(cams, nx, kal, make):
    poller, store = make(cams_account(cams.url), nx_account(nx.url, extra="    retries: 0"), kal_account(kal.url))
    server = HttpServer(App(store), "127.0.0.1:0").start()
    try:
        for name in ("shop", "nx", "kal"):
            poller.poll_account(name)
        body = scrape(server.url).content
        s = samples(body.decode())
        assert {dict(ls)["provider"] for (n, ls) in s if n == M + "info"} == {"alibaba_cams", "nxcloud", "kaleyra"}
        assert_promtool_clean(body)

        before = {k: v for k, v in s.items() if k[0].startswith(M) and dict(k[1])["provider"] != "nxcloud"}
        nx.inject(Fault(kind="error", code=9001))
        for name in ("shop", "nx", "kal"):
            poller.poll_account(name)
        after = samples(scrape(server.url).text)
        assert value(after, "whatsapp_exporter_poll_success", account="nx") == 0
        assert value(after, "whatsapp_exporter_poll_success", account="shop") == 1
        assert value(after, "whatsapp_exporter_poll_success", account="kal") == 1
        for key, v in before.items():
            if "last_change" not in key[0]:
                assert after.get(key) == v, key
        # NxCloud's last good data is still served, visibly stale
        assert value(after, "whatsapp_exporter_numbers", account="nx") == 3
    finally:
        server.stop()


def test_meta_list_details_health_and_transitions(meta, make):
    poller, store = make(meta_account(meta.url))
    s = poll(poller, store, "meta")
    one = dict(provider="meta", account="meta", phone_number="+15550100001")
    assert active_state(s, M + "status", "status", **one) == "CONNECTED"
    # Since October 2025 the limit is the business portfolio's: once per business, not on the number.
    assert not [
        k for k in s if k[0] == M + "messaging_limit_tier" and dict(k[1])["phone_number"] == one["phone_number"]
    ]
    assert (
        active_state(s, "whatsapp_business_messaging_limit_tier", "tier", account="meta", business_id="5241000001")
        == "TIER_10K"
    )
    assert value(s, "whatsapp_business_messaging_limit", account="meta", business_id="5241000001") == 10_000
    assert value(s, M + "info", **one, phone_number_id="1065400001", waba_id="1022900001") == 1
    assert active_state(s, M + "can_send_message", "can_send_message", **one) == "AVAILABLE"
    assert active_state(s, M + "throughput_level", "throughput_level", **one) == "HIGH"
    assert active_state(s, M + "status", "status", phone_number="+15550100002") == "RESTRICTED"
    # the deprecated per-number field, where the portfolio's is absent, stays per number
    assert active_state(s, M + "messaging_limit_tier", "tier", phone_number="+15550100002") == "TIER_1K"
    assert value(s, "whatsapp_exporter_api_requests_total", account="meta", action="phone_numbers") == 1
    assert value(s, "whatsapp_exporter_api_requests_total", account="meta", action="phone_number") == 2
    assert value(s, "whatsapp_exporter_poll_success", account="meta") == 1
    meta.advance(150)
    s = poll(poller, store, "meta")
    assert active_state(s, M + "can_send_message", "can_send_message", **one) == "BLOCKED"
    assert not meta.write_action_calls()
    assert ENV["META"] not in store.exposition.body.decode()


def test_meta_throttled_is_counted_once_and_not_retried(meta, make):
    meta.inject(Fault(kind="error", code="80007", count=1, retry_after=300))
    poller, store = make(meta_account(meta.url))
    s = poll(poller, store, "meta")
    assert value(s, "whatsapp_exporter_api_request_errors_total", action="phone_numbers", reason="throttled") == 1
    assert len(meta.requests) == 1
    poller.poll_account("meta")  # before the advertised regain time: no request at all
    assert len(meta.requests) == 1
