"""The Meta Graph API (WhatsApp Cloud API) emulator over real loopback HTTP."""

from __future__ import annotations

import base64
import http.client
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from emulators.meta import DEFAULT_API_VERSION, MetaEmulator
from emulators.scenario import Fault, load_builtin_scenario, loads_scenario
from tests.helpers import Resp as BaseResp
from tests.helpers import check_garbage_requests, check_transport_faults, emulator_fixtures, http_exchange

TOKEN, APP = "EAATestToken0001", "app-1001"
WABA, BIG_WABA, OTHER_WABA = "102000000000001", "102000000000002", "102000000000009"
N_OK, N_LIMITED, N_BLOCKED, N_TIMELINE, N_GONE = (
    "106000000000001",
    "106000000000002",
    "106000000000003",
    "106000000000004",
    "106000000000005",
)
N_FOREIGN = "106000000000099"

BIG_NUMBERS = "\n".join(
    f'      - {{phone_number: "4477009{i:05d}", id: "1070000000{i:05d}", verified_name: Big {i}, status: CONNECTED,'
    f" quality_rating: GREEN}}"
    for i in range(60)
)

SCENARIO_YAML = f"""
credentials:
  - {{access_key_id: {APP}, access_key_secret: {TOKEN}, qps: null}}
  - {{access_key_id: app-other, access_key_secret: other-token, qps: null}}
  - {{access_key_id: app-off, access_key_secret: off-token, enabled: false}}
  - {{access_key_id: app-deny, access_key_secret: deny-token, permissions: denied}}
  - {{access_key_id: app-slow, access_key_secret: slow-token, qps: 3}}
spaces:
  - space_id: "{WABA}"
    access_key_id: {APP}
    waba: {{id: "{WABA}", name: Shop, account_review_status: APPROVED, business_id: "524000000000001",
            currency: USD}}
    numbers:
      - phone_number: "15550000001"
        id: "{N_OK}"
        verified_name: Shop
        status: CONNECTED
        quality_rating: GREEN
        code_verification_status: VERIFIED
        name_status: APPROVED
        new_name_status: NONE
        messaging_limit_tier: TIER_10K
        whatsapp_business_manager_messaging_limit: TIER_10K
        throughput_level: HIGH
        is_official_business_account: true
      - phone_number: "15550000002"
        id: "{N_LIMITED}"
        verified_name: Shop Lite
        status: CONNECTED
        quality_rating: YELLOW
        messaging_limit_tier: null
        whatsapp_business_manager_messaging_limit: TIER_2K
        can_send_message: LIMITED
        additional_info: ["Some countries are limited."]
        wire_extra: {{is_pin_enabled: true}}
      - phone_number: "15550000003"
        id: "{N_BLOCKED}"
        verified_name: Shop Blocked
        status: CONNECTED
        quality_rating: RED
        quality_score: {{score: RED, date: 1700000000}}
        can_send_message: BLOCKED
        errors:
          - {{error_code: 141006, error_description: Blocked., possible_solution: Appeal.}}
      - phone_number: "15550000004"
        id: "{N_TIMELINE}"
        verified_name: Shop Loop
        status: CONNECTED
        quality_rating: GREEN
        timeline:
          - {{at: 60, set: {{quality_rating: YELLOW}}}}
          - {{at: 120, set: {{quality_rating: RED}}}}
        repeat_every: 180
      - phone_number: "15550000005"
        id: "{N_GONE}"
        status: DELETED
        present: false
  - space_id: "{BIG_WABA}"
    access_key_id: {APP}
    extra: {{calls_per_hour: 5000}}
    numbers:
{BIG_NUMBERS}
  - space_id: "{OTHER_WABA}"
    access_key_id: app-other
    numbers: [{{phone_number: "14155550999", id: "{N_FOREIGN}", status: CONNECTED}}]
"""

DEFAULT_FIELDS = {"id", "display_phone_number", "verified_name", "quality_rating"}
ALL_FIELDS = (
    "status,quality_rating,quality_score,code_verification_status,name_status,new_name_status,"
    "messaging_limit_tier,whatsapp_business_manager_messaging_limit,throughput,platform_type,account_mode,"
    "is_official_business_account,display_phone_number,verified_name,health_status"
)


class Resp(BaseResp):
    @property
    def error(self) -> dict:
        return self.json["error"]

    def usage(self, waba: str = WABA) -> dict:
        (entry,) = json.loads(self.headers["X-Business-Use-Case-Usage"])[waba]
        return entry


def call(
    port: int, method: str, target: str, token: str | None = TOKEN, headers: dict | None = None, body: bytes = b""
) -> Resp:
    h = {}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return http_exchange(port, method, target, body or None, h, answer=Resp)


def get(port: int, target: str, **kw) -> Resp:
    return call(port, "GET", target, **kw)


def follow(url: str, **kw) -> Resp:
    parts = urlsplit(url)
    return get(parts.port, f"{parts.path}?{parts.query}", **kw)


def ok(resp: Resp) -> dict:
    assert resp.status == 200, resp
    return resp.json


def graph_error(resp: Resp, status: int, code: int, subcode: int | None = None) -> dict:
    assert resp.status == status, resp
    body = resp.json
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["fbtrace_id"], str) and error["fbtrace_id"] and isinstance(error["is_transient"], bool)
    assert error["type"] in ("OAuthException", "GraphMethodException")
    assert error.get("error_subcode") == subcode, error
    return error


clock, emu = emulator_fixtures(MetaEmulator, SCENARIO_YAML)


# ---------------------------------------------------------------------------
# authentication and permissions


def test_bearer_header_oauth_scheme_and_query_token(emu):
    assert ok(get(emu.port, f"/v24.0/{N_OK}"))["id"] == N_OK
    assert ok(get(emu.port, f"/v24.0/{N_OK}", token=None, headers={"Authorization": f"OAuth {TOKEN}"}))
    assert ok(get(emu.port, f"/v24.0/{N_OK}?access_token={TOKEN}", token=None))
    assert ok(get(emu.port, f"/v24.0/{N_OK}?access_token=wrong"))  # the header wins
    assert all(r.access_key_id == APP and r.authenticated for r in emu.requests)


def test_missing_unknown_and_expired_tokens_are_401(emu):
    resp = get(emu.port, f"/v24.0/{N_OK}", token=None)
    assert graph_error(resp, 401, 104)["type"] == "OAuthException"
    assert resp.headers["WWW-Authenticate"].startswith("OAuth ")
    for resp in (
        get(emu.port, f"/v24.0/{N_OK}", token="nope"),
        get(emu.port, f"/v24.0/{N_OK}?access_token=x", token=None),
    ):
        assert graph_error(resp, 401, 190, 467)["is_transient"] is False
    # an unusable scheme is no token at all
    graph_error(get(emu.port, f"/v24.0/{N_OK}", token=None, headers={"Authorization": "Basic abc"}), 401, 104)
    graph_error(get(emu.port, f"/v24.0/{N_OK}", token="off-token"), 401, 190, 463)
    assert "X-Business-Use-Case-Usage" not in resp.headers and "X-App-Usage" not in resp.headers
    assert not any(r.authenticated for r in emu.requests)


def test_objects_of_another_token_and_missing_permission_are_403_code_200(emu):
    graph_error(get(emu.port, f"/v24.0/{OTHER_WABA}/phone_numbers"), 403, 200)
    graph_error(get(emu.port, f"/v24.0/{N_FOREIGN}?fields=health_status"), 403, 200)
    graph_error(get(emu.port, f"/v24.0/{WABA}/phone_numbers", token="deny-token"), 403, 200)
    assert ok(get(emu.port, f"/v24.0/{N_FOREIGN}", token="other-token"))["id"] == N_FOREIGN


# ---------------------------------------------------------------------------
# the phone_numbers edge


def test_list_default_fields_and_present_false_left_out(emu):
    body = ok(get(emu.port, f"/v24.0/{WABA}/phone_numbers"))
    assert [n["id"] for n in body["data"]] == [N_OK, N_LIMITED, N_BLOCKED, N_TIMELINE]
    assert all(set(n) - {"is_pin_enabled"} <= DEFAULT_FIELDS and "id" in n for n in body["data"])  # + wire_extra
    assert body["data"][0] == {
        "id": N_OK,
        "display_phone_number": "+1 5550000001",
        "verified_name": "Shop",
        "quality_rating": "GREEN",
    }
    assert "next" not in body["paging"] and "previous" not in body["paging"]


def test_list_fields_filtering_ignores_health_status_on_the_edge(emu):
    body = ok(get(emu.port, f"/v24.0/{WABA}/phone_numbers?fields=status,messaging_limit_tier,health_status"))
    first, limited = body["data"][0], body["data"][1]
    assert first == {"id": N_OK, "status": "CONNECTED", "messaging_limit_tier": "TIER_10K"}
    assert limited == {"id": N_LIMITED, "status": "CONNECTED", "is_pin_enabled": True}  # null tier left out
    assert all("health_status" not in n for n in body["data"])
    body = ok(get(emu.port, f"/v24.0/{WABA}/phone_numbers?fields=throughput{{level}},quality_score"))
    assert body["data"][0] == {"id": N_OK, "throughput": {"level": "HIGH"}, "quality_score": {"score": "GREEN"}}
    graph_error(get(emu.port, f"/v24.0/{WABA}/phone_numbers?fields=status,bogus_field"), 400, 100)


def test_cursor_paging_across_60_numbers(emu):
    resp = get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers?fields=status&limit=25")
    pages, seen = [], []
    while True:
        body = ok(resp)
        pages.append(body)
        seen += [n["id"] for n in body["data"]]
        cursors = body["paging"]["cursors"]
        for cursor in cursors.values():
            assert base64.b64decode(cursor) and not any(n["id"] in cursor for n in body["data"])  # opaque
        if "next" not in body["paging"]:
            break
        nxt = body["paging"]["next"]
        assert nxt.startswith(f"http://127.0.0.1:{emu.port}/v24.0/{BIG_WABA}/phone_numbers?")
        assert parse_qs(urlsplit(nxt).query)["after"] == [cursors["after"]]
        resp = follow(nxt)
    assert [len(p["data"]) for p in pages] == [25, 25, 10]
    assert seen == [f"1070000000{i:05d}" for i in range(60)]
    assert all(set(n) == {"id", "status"} for p in pages for n in p["data"])  # fields carried over
    assert "previous" not in pages[0]["paging"] and "previous" in pages[2]["paging"]
    back = ok(follow(pages[2]["paging"]["previous"]))
    assert [n["id"] for n in back["data"]] == seen[25:50]


def test_paging_limits_and_bad_cursors(emu):
    assert len(ok(get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers"))["data"]) == 25  # default
    assert len(ok(get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers?limit=500"))["data"]) == 60  # capped at 100
    for query in ("limit=abc", "limit=0", "after=%25%25notbase64", "after=" + base64.b64encode(b"junk").decode()):
        graph_error(get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers?{query}"), 400, 100)
    last = ok(get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers?limit=60"))["paging"]["cursors"]["after"]
    assert ok(get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers?after={last}")) == {"data": []}


# ---------------------------------------------------------------------------
# the phone-number node


def test_number_node_default_and_requested_fields(emu):
    assert ok(get(emu.port, f"/v24.0/{N_OK}")) == {
        "id": N_OK,
        "display_phone_number": "+1 5550000001",
        "verified_name": "Shop",
        "quality_rating": "GREEN",
    }
    data = ok(get(emu.port, f"/v24.0/{N_OK}?fields={ALL_FIELDS}"))
    assert data["throughput"] == {"level": "HIGH"} and data["quality_score"] == {"score": "GREEN"}
    assert (data["platform_type"], data["account_mode"]) == ("CLOUD_API", "LIVE")
    assert data["whatsapp_business_manager_messaging_limit"] == "TIER_10K"
    assert data["is_official_business_account"] is True
    health = data["health_status"]
    assert health["can_send_message"] == "AVAILABLE"
    assert [(e["entity_type"], e["id"], e["can_send_message"]) for e in health["entities"]] == [
        ("PHONE_NUMBER", N_OK, "AVAILABLE"),
        ("WABA", WABA, "AVAILABLE"),
        ("BUSINESS", "524000000000001", "AVAILABLE"),
        ("APP", APP, "AVAILABLE"),
    ]
    assert ok(get(emu.port, f"/v24.0/{N_OK}?fields=status")) == {"id": N_OK, "status": "CONNECTED"}


def test_health_status_is_the_worst_entity(emu):
    limited = ok(
        get(
            emu.port,
            f"/v24.0/{N_LIMITED}?fields=health_status,messaging_limit_tier,whatsapp_business_manager_messaging_limit",
        )
    )
    assert "messaging_limit_tier" not in limited and limited["whatsapp_business_manager_messaging_limit"] == "TIER_2K"
    assert limited["health_status"]["can_send_message"] == "LIMITED"
    assert limited["health_status"]["entities"][0]["additional_info"] == ["Some countries are limited."]
    blocked = ok(get(emu.port, f"/v24.0/{N_BLOCKED}?fields=health_status,quality_score"))
    assert blocked["quality_score"] == {"score": "RED", "date": 1700000000}
    phone = blocked["health_status"]["entities"][0]
    assert blocked["health_status"]["can_send_message"] == "BLOCKED" and phone["can_send_message"] == "BLOCKED"
    assert phone["errors"] == [{"error_code": 141006, "error_description": "Blocked.", "possible_solution": "Appeal."}]
    emu.set_waba(WABA, business_can_send_message="BLOCKED")
    health = ok(get(emu.port, f"/v24.0/{N_LIMITED}?fields=health_status"))["health_status"]
    assert health["can_send_message"] == "BLOCKED" and health["entities"][0]["can_send_message"] == "LIMITED"
    emu.clear_overrides()
    emu.set_waba(WABA, account_review_status="PENDING")
    health = ok(get(emu.port, f"/v24.0/{N_OK}?fields=health_status"))["health_status"]
    assert health["can_send_message"] == "LIMITED" and health["entities"][1]["can_send_message"] == "LIMITED"


def test_waba_node(emu):
    data = ok(get(emu.port, f"/v24.0/{WABA}?fields=name,currency,account_review_status,health_status"))
    assert (data["id"], data["name"], data["currency"], data["account_review_status"]) == (
        WABA,
        "Shop",
        "USD",
        "APPROVED",
    )
    assert [e["entity_type"] for e in data["health_status"]["entities"]] == ["WABA", "BUSINESS", "APP"]
    assert ok(get(emu.port, f"/v24.0/{WABA}")) == {"id": WABA, "name": "Shop"}
    assert {r.action for r in emu.requests} == {"get_waba"}


# ---------------------------------------------------------------------------
# errors and versions


def test_unknown_node_field_edge_and_version_gated_field(emu):
    error = graph_error(get(emu.port, "/v24.0/123456789"), 400, 100, 33)
    assert error["type"] == "GraphMethodException" and error["message"].startswith("Unsupported get request")
    graph_error(get(emu.port, f"/v24.0/{N_GONE}"), 400, 100, 33)  # present: false
    assert "nonexisting field (bogus)" in graph_error(get(emu.port, f"/v24.0/{N_OK}?fields=bogus"), 400, 100)["message"]
    graph_error(get(emu.port, f"/v24.0/{N_OK}?fields=status,Bad-Name"), 400, 100)
    graph_error(get(emu.port, f"/v24.0/{N_OK}/whatever"), 400, 2500)
    graph_error(get(emu.port, f"/v24.0/{N_OK}/phone_numbers"), 400, 2500)
    graph_error(get(emu.port, f"/v24.0/{WABA}/phone_numbers/x"), 400, 2500)
    graph_error(get(emu.port, f"/v23.0/{N_OK}?fields=whatsapp_business_manager_messaging_limit"), 400, 100)
    assert ok(get(emu.port, f"/v23.0/{N_OK}?fields=messaging_limit_tier"))["messaging_limit_tier"] == "TIER_10K"


def test_any_version_is_accepted_and_recorded(emu):
    for version in ("v19.0", "v24.0", "v99.9"):
        resp = get(emu.port, f"/{version}/{N_OK}")
        assert ok(resp) and resp.headers["facebook-api-version"] == version
    resp = get(emu.port, f"/{N_OK}")
    assert ok(resp) and resp.headers["facebook-api-version"] == DEFAULT_API_VERSION
    assert emu.api_versions() == ["v19.0", "v24.0", "v99.9", None]
    assert all(
        r.action == "get_phone_number" and r.phone_number == "15550000001" and r.space_id == WABA for r in emu.requests
    )


# ---------------------------------------------------------------------------
# rate limits


def test_buc_usage_grows_then_80007_and_an_hour_resets(clock):
    with MetaEmulator(loads_scenario(SCENARIO_YAML), clock=clock, calls_per_hour=4) as emu:
        percents, waits = [], []
        for _ in range(4):
            resp = get(emu.port, f"/v24.0/{N_OK}")
            assert ok(resp)
            percents.append(resp.usage()["call_count"])
            waits.append(resp.usage()["estimated_time_to_regain_access"])
            assert resp.usage()["type"] == "whatsapp_business_management"
            assert set(json.loads(resp.headers["X-App-Usage"])) == {"call_count", "total_cputime", "total_time"}
        assert percents == [25, 50, 75, 100]
        assert waits == [0, 0, 0, 60]  # at 100 % the next call is refused
        resp = get(emu.port, f"/v24.0/{WABA}/phone_numbers")
        error = graph_error(resp, 429, 80007)
        assert error["is_transient"] is True
        assert resp.usage()["call_count"] == 100 and resp.usage()["estimated_time_to_regain_access"] == 60
        assert emu.requests[-1].throttled and emu.requests[-1].authenticated
        assert emu.buc_usage(WABA) == {"calls": 4, "call_count": 100, "estimated_time_to_regain_access": 60}
        # another WABA (its own budget) is unaffected
        assert ok(get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers")) and emu.buc_usage(BIG_WABA)["calls"] == 1
        emu.advance(30 * 60)
        assert get(emu.port, f"/v24.0/{N_OK}").usage()["estimated_time_to_regain_access"] == 30
        emu.advance(30 * 60)
        resp = get(emu.port, f"/v24.0/{N_OK}")
        assert ok(resp) and resp.usage()["call_count"] == 25


def test_throttle_status_400_variant_and_space_budget(clock):
    with MetaEmulator(loads_scenario(SCENARIO_YAML), clock=clock, calls_per_hour=1, throttle_status=400) as emu:
        assert emu.budget_of(WABA) == 1 and emu.budget_of(BIG_WABA) == 5000
        assert ok(get(emu.port, f"/v24.0/{N_OK}"))
        graph_error(get(emu.port, f"/v24.0/{N_OK}"), 400, 80007)
        assert get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers").usage(BIG_WABA)["call_count"] == 1
        emu.reset_rate_limits()
        assert ok(get(emu.port, f"/v24.0/{N_OK}"))


def test_app_limit_is_code_4(clock):
    with MetaEmulator(loads_scenario(SCENARIO_YAML), clock=clock, app_calls_per_hour=2) as emu:
        assert json.loads(get(emu.port, f"/v24.0/{N_OK}").headers["X-App-Usage"])["call_count"] == 50
        assert json.loads(get(emu.port, f"/v24.0/{WABA}").headers["X-App-Usage"])["call_count"] == 100
        resp = get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers")
        assert graph_error(resp, 429, 4)["is_transient"] is True
        assert emu.app_usage(APP)["calls"] == 2


def test_per_second_qps_is_code_4(emu, clock):
    codes = [get(emu.port, f"/v24.0/{N_FOREIGN}", token="slow-token").status for _ in range(4)]
    assert codes == [403, 403, 403, 429]
    assert emu.max_requests_in_any_second("app-slow", accepted_only=True) == 3
    clock.t += 1
    assert get(emu.port, f"/v24.0/{N_FOREIGN}", token="slow-token").status == 403


# ---------------------------------------------------------------------------
# write calls


@pytest.mark.parametrize(
    "method,path,action",
    [
        ("POST", f"/v24.0/{N_OK}/register", "register"),
        ("POST", f"/v24.0/{N_OK}/deregister", "deregister"),
        ("POST", f"/v24.0/{N_OK}/request_code", "request_code"),
        ("POST", f"/v24.0/{N_OK}/verify_code", "verify_code"),
        ("GET", f"/v24.0/{N_OK}/register", "register"),
        ("POST", f"/v24.0/{N_OK}/messages", "messages"),
        ("POST", f"/v24.0/{N_OK}", "post"),
        ("DELETE", f"/v24.0/{N_OK}", "delete"),
        ("POST", f"/v24.0/{WABA}/phone_numbers", "post"),
    ],
)
def test_write_calls_are_recorded_and_refused(emu, method, path, action):
    resp = call(
        emu.port,
        method,
        path,
        body=json.dumps({"messaging_product": "whatsapp", "pin": "123456"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    error = graph_error(resp, 403, 10)
    assert error["error_user_title"] == "Emulator.WriteActionCalled"
    (record,) = emu.write_action_calls()
    assert record.action == action and record.method == method and record.authenticated
    assert record.access_key_id == APP and record.space_id == WABA


def test_unauthenticated_write_calls_are_recorded_too(emu):
    graph_error(call(emu.port, "POST", f"/v24.0/{N_OK}/register", token="bad"), 401, 190, 467)
    assert ok(get(emu.port, f"/v24.0/{N_OK}"))
    (record,) = emu.write_action_calls()
    assert record.action == "register" and not record.authenticated


# ---------------------------------------------------------------------------
# timelines


def test_timeline_transitions_loop(emu):
    def state():
        d = ok(get(emu.port, f"/v24.0/{N_TIMELINE}?fields=status,quality_rating,health_status"))
        return d["status"], d["quality_rating"], d["health_status"]["can_send_message"]

    assert state() == ("CONNECTED", "GREEN", "AVAILABLE")
    emu.advance(60)
    assert state() == ("CONNECTED", "YELLOW", "AVAILABLE")
    emu.advance(60)
    assert state() == ("CONNECTED", "RED", "AVAILABLE")  # a RED rating changes neither status nor health
    emu.advance(60)
    assert state() == ("CONNECTED", "GREEN", "AVAILABLE")
    emu.set_number(WABA, "15550000004", quality_rating="UNKNOWN")
    assert state()[1] == "UNKNOWN"


def test_spec_variants_are_served_as_seeded(clock):
    """The values Meta's own specs disagree on (and unknown strings) reach the client verbatim."""
    seeded = [
        ("LINKED", "NA"),
        ("UNLINKED", "GREEN"),
        ("MESSAGING_LIMIT_TIER_2", "UNKNOWN"),
        ("BRAND_NEW_STATUS", "BRAND_NEW_RATING"),
    ]
    numbers = "\n".join(
        f'      - {{phone_number: "1555000010{i}", id: "10610000000000{i}", status: {st}, quality_rating: {q}}}'
        for i, (st, q) in enumerate(seeded)
    )
    scenario = loads_scenario(f"""
credentials: [{{access_key_id: {APP}, access_key_secret: {TOKEN}, qps: null}}]
spaces:
  - space_id: "{WABA}"
    access_key_id: {APP}
    waba: {{id: "{WABA}", portfolio_messaging_limit: TIER_BRAND_NEW}}
    numbers:
{numbers}
""")
    with MetaEmulator(scenario, clock=clock) as emu:
        listed = ok(get(emu.port, f"/v24.0/{WABA}/phone_numbers?fields=status,quality_rating"))["data"]
        assert [(n["status"], n["quality_rating"]) for n in listed] == seeded
        health = {}
        for i, (status, quality) in enumerate(seeded):
            node = ok(
                get(
                    emu.port,
                    f"/v24.0/10610000000000{i}?fields=status,quality_rating,quality_score,"
                    "whatsapp_business_manager_messaging_limit,health_status",
                )
            )
            assert (node["status"], node["quality_rating"], node["quality_score"]) == (
                status,
                quality,
                {"score": quality},
            )
            assert node["whatsapp_business_manager_messaging_limit"] == "TIER_BRAND_NEW"
            health[status] = node["health_status"]["entities"][0]["can_send_message"]
        assert health["LINKED"] == "AVAILABLE" and health["UNLINKED"] == "BLOCKED"


# ---------------------------------------------------------------------------
# faults


@pytest.mark.parametrize(
    "code,status,transient",
    [
        (190, 401, False),
        (200, 403, False),
        (100, 400, False),
        (4, 429, True),
        (17, 429, True),
        (80007, 429, True),
        (130429, 400, True),
        (131000, 500, True),
        (2, 503, True),
    ],
)
def test_fault_error_codes(emu, code, status, transient):
    emu.inject(Fault(kind="error", code=str(code), count=1))
    resp = get(emu.port, f"/v24.0/{N_OK}")
    assert graph_error(resp, status, code)["is_transient"] is transient
    if code == 80007:
        assert resp.usage()["call_count"] == 100 and resp.usage()["estimated_time_to_regain_access"] >= 1
    if code == 4:
        assert json.loads(resp.headers["X-App-Usage"])["call_count"] == 100
    assert emu.requests[-1].fault == "error"
    assert ok(get(emu.port, f"/v24.0/{N_OK}"))


def test_fault_error_options_and_selectors(emu):
    emu.inject(Fault(kind="error", code="131000", http_status=502, retry_after=7, phone_number="15550000002"))
    emu.inject(Fault(kind="error", code="1", http200=True, action="list_phone_numbers", count=1))
    resp = get(emu.port, f"/v24.0/{N_LIMITED}")
    graph_error(resp, 502, 131000)
    assert resp.headers["Retry-After"] == "7"
    assert ok(get(emu.port, f"/v24.0/{N_OK}"))
    graph_error(get(emu.port, f"/v24.0/{WABA}/phone_numbers"), 200, 1)
    assert ok(get(emu.port, f"/v24.0/{WABA}/phone_numbers"))
    emu.inject(Fault(kind="error", code="80007", space_id=BIG_WABA))
    graph_error(get(emu.port, f"/v24.0/{BIG_WABA}/phone_numbers"), 429, 80007)
    assert ok(get(emu.port, f"/v24.0/{N_OK}"))


def test_faults_come_after_auth(emu):
    emu.inject(Fault(kind="error", code="2"))
    graph_error(get(emu.port, f"/v24.0/{N_OK}", token=None), 401, 104)
    graph_error(get(emu.port, f"/v24.0/{N_OK}"), 503, 2)


def test_fault_delay_malformed_html_reset_truncate(emu):
    check_transport_faults(emu, lambda: get(emu.port, f"/v24.0/{N_OK}"), ok)
    emu.inject(Fault(kind="truncate", count=1))
    with pytest.raises((http.client.IncompleteRead, ConnectionError, OSError)):
        get(emu.port, f"/v24.0/{N_OK}")
    assert ok(get(emu.port, f"/v24.0/{N_OK}"))


def test_fault_oversize_and_refuse(emu):
    emu.inject(Fault(kind="oversize", megabytes=0.25, count=1))
    resp = get(emu.port, f"/v24.0/{N_OK}")
    assert len(resp.body) >= 0.24 * (1 << 20) and ok(resp)["id"] == N_OK and "emulator_padding" in resp.json
    emu.inject(Fault(kind="refuse", count=1))
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        get(emu.port, f"/v24.0/{N_OK}")
    assert ok(get(emu.port, f"/v24.0/{N_OK}"))


def test_data_faults(emu):
    emu.inject(Fault(kind="unknown_enum", count=2))
    listed = ok(get(emu.port, f"/v24.0/{WABA}/phone_numbers?fields=status,quality_rating"))["data"]
    assert {(n["status"], n["quality_rating"]) for n in listed} == {("BRAND_NEW_STATE", "BRAND_NEW_RATING")}
    node = ok(get(emu.port, f"/v24.0/{N_OK}?fields=status,whatsapp_business_manager_messaging_limit,health_status"))
    assert node["whatsapp_business_manager_messaging_limit"] == "TIER_BRAND_NEW"
    assert node["health_status"]["can_send_message"] == "BRAND_NEW_STATE" and "quality_rating" not in node
    emu.inject(Fault(kind="null_fields", count=1))
    node = ok(get(emu.port, f"/v24.0/{N_OK}?fields=status,quality_rating,quality_score,verified_name"))
    assert node == {"id": N_OK, "status": None, "quality_rating": None}
    emu.inject(Fault(kind="duplicate_numbers", count=1))
    ok(get(emu.port, f"/v24.0/{N_OK}"))  # not applicable: not consumed
    ids = [n["id"] for n in ok(get(emu.port, f"/v24.0/{WABA}/phone_numbers"))["data"]]
    assert ids == [N_OK, N_OK, N_LIMITED, N_LIMITED, N_BLOCKED, N_BLOCKED, N_TIMELINE, N_TIMELINE]
    assert len(ok(get(emu.port, f"/v24.0/{WABA}/phone_numbers"))["data"]) == 4


# ---------------------------------------------------------------------------
# robustness and the demo scenario


def test_garbage_requests_get_graph_answers(emu):
    check_garbage_requests(emu.port, b"/v24.0/x", b'"code":100')
    graph_error(get(emu.port, "/v24.0/%FF%FE/%00"), 400, 100, 33)
    graph_error(get(emu.port, "/"), 400, 100, 33)
    assert ok(get(emu.port, f"/v24.0/{N_OK}"))


def test_demo_scenario(clock):
    demo = load_builtin_scenario("demo-meta")
    assert len(demo.credentials) == 1 and len(demo.spaces) == 2 and demo.number_count() == 5
    token, waba = demo.credentials[0].access_key_secret, demo.spaces[0].space_id
    with MetaEmulator(demo, clock=clock) as emu:
        assert emu.budget_of(waba) == 5000
        ids = [n["id"] for n in ok(get(emu.port, f"/v24.0/{waba}/phone_numbers", token=token))["data"]]
        assert len(ids) == 4

        def snapshot():
            return {
                i: ok(
                    get(
                        emu.port,
                        f"/v24.0/{i}?fields=quality_rating,messaging_limit_tier,"
                        f"whatsapp_business_manager_messaging_limit,health_status",
                        token=token,
                    )
                )
                for i in ids
            }

        start = snapshot()
        assert any(
            d["health_status"]["can_send_message"] == "LIMITED"
            and d["health_status"]["entities"][0].get("additional_info")
            for d in start.values()
        )
        assert any("messaging_limit_tier" not in d for d in start.values())
        assert {d["whatsapp_business_manager_messaging_limit"] for d in start.values()} == {"TIER_10K"}
        quality, blocked_codes = {}, set()
        for _ in range(24):  # 4 minutes in 10 s steps
            clock.t += 10
            for i, d in snapshot().items():
                quality.setdefault(i, []).append(d["quality_rating"])
                for entity in d["health_status"]["entities"]:
                    blocked_codes |= {e["error_code"] for e in entity.get("errors", [])}
        assert 141006 in blocked_codes

    def changes(values):
        return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]

    assert any(changes(v)[:4] == ["GREEN", "YELLOW", "RED", "GREEN"] for v in quality.values())
