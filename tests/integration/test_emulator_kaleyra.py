"""The Kaleyra emulator over real loopback HTTP."""

from __future__ import annotations

import json

import pytest

from emulators.kaleyra import KaleyraEmulator
from emulators.scenario import Fault, load_builtin_scenario
from tests.helpers import Resp as BaseResp
from tests.helpers import (
    check_garbage_requests,
    check_transport_faults,
    emulator_fixtures,
    http_exchange,
    standalone_emulator,
)

SID, KEY = "HXAP1600000097IN", "A0000000000000000000000000000003"
WABA = "109000000000123"

SCENARIO_YAML = f"""
credentials:
  - {{access_key_id: {SID}, access_key_secret: {KEY}, qps: 10}}
  - {{access_key_id: HXOTHER000000001, access_key_secret: other-key}}
  - {{access_key_id: HXOFF00000000001, access_key_secret: off-key, enabled: false}}
  - {{access_key_id: HXDENY0000000001, access_key_secret: deny-key, permissions: denied}}
spaces:
  - space_id: "{WABA}"
    access_key_id: {SID}
    waba: {{id: "{WABA}", name: Shop, account_review_status: APPROVED, business_id: "3100001"}}
    numbers:
      - phone_number: "919876500001"
        id: "110000000000001"
        verified_name: Shop
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10K
        whatsapp_business_manager_messaging_limit: TIER_10K
        name_status: APPROVED
        new_name_status: NONE
        code_verification_status: VERIFIED
        throughput_level: HIGH
        timeline:
          - {{at: 60, set: {{status: FLAGGED, quality_rating: RED}}}}
          - {{at: 120, set: {{status: CONNECTED, quality_rating: YELLOW, messaging_limit_tier: TIER_1K}}}}
        repeat_every: 180
      - phone_number: "919876500002"
        id: "110000000000002"
        verified_name: Shop Lite
        status: CONNECTED
        quality_rating: null
        messaging_limit_tier: null
        name_status: APPROVED
        platform_type: null
        can_send_message: LIMITED
        health_additional_info: ["Some countries are limited."]
        wire_extra: {{is_pin_enabled: true}}
      - phone_number: "919876500003"
        id: "110000000000003"
        verified_name: Shop Blocked
        status: BANNED
        quality_rating: RED
        quality_score: {{score: RED, date: 1700000000}}
        health_errors:
          - {{error_code: 141000, error_description: The phone number is banned., possible_solution: Appeal.}}
      - phone_number: "919876500004"
        status: PENDING
        present: false
  - space_id: waba-alias-space
    access_key_id: {SID}
    waba: {{id: "109000000000777", name: Alias}}
    numbers: [{{phone_number: "447700900777", id: "777", status: CONNECTED}}]
  - space_id: "109000000000999"
    access_key_id: HXOTHER000000001
    numbers: [{{phone_number: "14155550999", id: "999", status: CONNECTED}}]
  - space_id: "109000000000555"
    access_key_id: HXDENY0000000001
    numbers: []
"""

DETAIL_KEYS = {
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "quality_score",
    "status",
    "messaging_limit_tier",
    "whatsapp_business_manager_messaging_limit",
    "name_status",
    "new_name_status",
    "code_verification_status",
    "throughput",
    "platform_type",
    "account_mode",
    "health_status",
}
LIST_KEYS = {"id", "display_phone_number", "phone_number", "verified_name", "status", "quality_rating", "name_status"}


class Resp(BaseResp):
    @property
    def code(self):
        return self.json["code"]

    @property
    def data(self):
        return self.json["data"]


class Client:
    def __init__(self, port: int, sid: str = SID, key: str | None = KEY):
        self.port, self.sid, self.key = port, sid, key

    def request(
        self, method: str, path: str, body: bytes = b"", key: str | None = "default", headers: dict | None = None
    ) -> Resp:
        h = {"Content-Type": "application/json"}
        key = self.key if key == "default" else key
        if key is not None:
            h["api-key"] = key
        h.update(headers or {})
        return http_exchange(self.port, method, path, body, h, answer=Resp)

    def numbers(self, waba: str = WABA, sid: str | None = None, **kw) -> Resp:
        return self.request("GET", f"/v2/{sid or self.sid}/whatsapp/{waba}/number", **kw)

    def details(self, number: str, sid: str | None = None, **kw) -> Resp:
        return self.request("GET", f"/v2/{sid or self.sid}/whatsapp/{number}/phone_number_details", **kw)


clock, emu, client = emulator_fixtures(KaleyraEmulator, SCENARIO_YAML, client=lambda emu, _clock: Client(emu.port))


def _ok(resp: Resp):
    assert resp.status == 200, resp
    body = resp.json
    assert set(body) == {"code", "message", "data", "error"} and body["code"] == "WA200" and body["error"] == {}
    return body["data"]


def _failure(resp: Resp, status: int, code: str) -> dict:
    assert resp.status == status, resp
    body = resp.json
    assert set(body) == {"code", "message", "data", "error"}, body
    assert body["code"] == code and isinstance(body["message"], str) and isinstance(body["error"], dict), body
    return body


# ---------------------------------------------------------------------------
# authentication


def test_missing_or_wrong_api_key_and_sid_are_rbc001(client):
    for resp in (
        client.numbers(key=None),
        client.numbers(key=KEY + "x"),
        client.numbers(key=""),
        client.numbers(sid="HXNOBODY00000001"),
        client.details("919876500001", key="other-key"),
        client.numbers(sid="HXOTHER000000001"),  # the other account's key is not ours
        Client(client.port, "HXOFF00000000001", "off-key").numbers("x"),
    ):
        body = _failure(resp, 401, "RBC001")
        assert body["error"] and body["data"] == []
    assert _failure(client.numbers(key=None), 401, "RBC001")["error"]["error"]


def test_api_key_header_name_is_case_insensitive(client):
    resp = client.request("GET", f"/v2/{SID}/whatsapp/{WABA}/number", key=None, headers={"API-KEY": KEY})
    assert _ok(resp)


def test_denied_account_is_wa401(emu):
    _failure(Client(emu.port, "HXDENY0000000001", "deny-key").numbers("109000000000555"), 400, "WA401")


# ---------------------------------------------------------------------------
# discovery


def test_discovery_lists_the_numbers_of_a_waba(client):
    data = _ok(client.numbers())
    assert [n["phone_number"] for n in data] == ["919876500001", "919876500002", "919876500003"]  # present: false
    for item in data:
        assert set(item) <= LIST_KEYS and {"id", "phone_number", "display_phone_number", "status"} <= set(item)
    assert data[0] == {
        "id": "110000000000001",
        "display_phone_number": "+91 9876500001",
        "phone_number": "919876500001",
        "verified_name": "Shop",
        "status": "CONNECTED",
        "quality_rating": "GREEN",
        "name_status": "APPROVED",
    }
    assert "quality_rating" not in data[1]  # null attributes are left out


def test_discovery_accepts_the_waba_id_of_a_space(client):
    assert [n["id"] for n in _ok(client.numbers("109000000000777"))] == ["777"]
    assert [n["id"] for n in _ok(client.numbers("waba-alias-space"))] == ["777"]


def test_waba_of_another_account_or_unknown_is_wa401(client):
    body = _failure(client.numbers("109000000000999"), 400, "WA401")
    assert "waba_id" in body["error"]
    _failure(client.numbers("123"), 400, "WA401")


# ---------------------------------------------------------------------------
# details


def test_details_is_metas_phone_number_object(client):
    data = _ok(client.details("919876500001"))
    assert set(data) == DETAIL_KEYS
    assert data["id"] == "110000000000001" and data["display_phone_number"] == "+91 9876500001"
    assert (data["status"], data["quality_rating"], data["quality_score"]) == ("CONNECTED", "GREEN", {"score": "GREEN"})
    assert (data["messaging_limit_tier"], data["whatsapp_business_manager_messaging_limit"]) == ("TIER_10K", "TIER_10K")
    assert data["throughput"] == {"level": "HIGH"}
    assert (data["platform_type"], data["account_mode"]) == ("CLOUD_API", "LIVE")
    health = data["health_status"]
    assert health["can_send_message"] == "AVAILABLE"
    assert [(e["entity_type"], e["id"], e["can_send_message"]) for e in health["entities"]] == [
        ("PHONE_NUMBER", "110000000000001", "AVAILABLE"),
        ("WABA", WABA, "AVAILABLE"),
        ("BUSINESS", "3100001", "AVAILABLE"),
    ]


def test_details_null_attributes_omitted_and_limited_health(client):
    data = _ok(client.details("919876500002"))
    for key in (
        "quality_rating",
        "quality_score",
        "messaging_limit_tier",
        "platform_type",
        "whatsapp_business_manager_messaging_limit",
    ):
        assert key not in data
    assert data["is_pin_enabled"] is True  # wire_extra
    assert data["throughput"] == {"level": "STANDARD"}
    health = data["health_status"]
    assert health["can_send_message"] == "LIMITED"
    phone = health["entities"][0]
    assert phone["can_send_message"] == "LIMITED" and phone["additional_info"] == ["Some countries are limited."]


def test_details_blocked_number_carries_errors(client):
    data = _ok(client.details("919876500003"))
    assert data["quality_score"] == {"score": "RED", "date": 1700000000}
    health = data["health_status"]
    assert health["can_send_message"] == "BLOCKED"
    phone = health["entities"][0]
    assert phone["can_send_message"] == "BLOCKED"
    assert phone["errors"] == [
        {"error_code": 141000, "error_description": "The phone number is banned.", "possible_solution": "Appeal."}
    ]


@pytest.mark.parametrize("number", ["919876500001", "+919876500001", "%2B919876500001", "%2b919876500001"])
def test_details_accepts_a_leading_plus(client, number):
    assert _ok(client.details(number))["id"] == "110000000000001"


@pytest.mark.parametrize("number", ["919876500099", "91987650000x", "919876500004", "%20"])
def test_unknown_or_invalid_number_is_wa400(client, number):
    body = _failure(client.details(number), 400, "WA400")
    assert body["error"]


def test_number_of_another_account_is_wa401(client):
    _failure(client.details("14155550999"), 400, "WA401")


# ---------------------------------------------------------------------------
# routing, write endpoints


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", f"/v2/{SID}/whatsapp/{WABA}/number/add"),
        ("POST", f"/v2/{SID}/whatsapp/{WABA}/number/verify"),
        ("POST", f"/v2/{SID}/whatsapp/{WABA}/number/retry_otp"),
        ("PUT", f"/v2/{SID}/whatsapp/{WABA}/number/update"),
        ("POST", f"/v2/{SID}/whatsapp/{WABA}/number/update"),
        ("POST", f"/v1/{SID}/whatsapp/number"),
        ("GET", f"/v1/{SID}/messages"),
    ],
)
def test_write_endpoints_are_recorded_and_refused(client, emu, method, path):
    resp = client.request(
        method, path, json.dumps({"id": "1", "phone_number": "+919876500001", "otp": "123456"}).encode()
    )
    _failure(resp, 400, "Emulator.WriteActionCalled")
    (call,) = emu.write_action_calls()
    assert call.authenticated and call.access_key_id == SID and call.method == method


def test_write_calls_are_recorded_even_when_unauthenticated(client, emu):
    _failure(client.request("POST", f"/v2/{SID}/whatsapp/{WABA}/number/verify", key="bad"), 401, "RBC001")
    assert len(emu.write_action_calls()) == 1 and not emu.write_action_calls()[0].authenticated
    _ok(client.numbers())
    _ok(client.details("919876500001"))
    assert len(emu.write_action_calls()) == 1
    assert {r.action for r in emu.requests} == {"verify_number", "list_numbers", "phone_number_details"}


def test_unknown_paths_and_methods(client):
    for path in (
        "/",
        "/v2",
        f"/v2/{SID}/sms/{WABA}/number",
        f"/v2/{SID}/whatsapp/{WABA}/numbers",
        f"/v3/{SID}/whatsapp/{WABA}/number",
        f"/v2/{SID}/whatsapp/{WABA}/number/delete",
    ):
        _failure(client.request("GET", path), 404, "WA404")
    _failure(client.request("POST", f"/v2/{SID}/whatsapp/919876500001/phone_number_details"), 405, "WA405")
    _failure(client.request("DELETE", f"/v2/{SID}/whatsapp/{WABA}/number"), 405, "WA405")
    assert _ok(client.request("GET", f"/v2/{SID}/whatsapp/{WABA}/number/?x=1"))


# ---------------------------------------------------------------------------
# flow control


def test_throttling_past_qps_is_429(client, emu, clock):
    second = int(clock.t)  # the calendar second the requests below are counted in
    codes = [client.details("919876500001").status for _ in range(12)]
    assert codes == [200] * 10 + [429] * 2
    body = _failure(client.numbers(), 429, "WA429")
    assert body["message"] == "Too Many Requests"
    assert emu.max_requests_in_any_second(SID) == 13
    assert emu.max_requests_in_any_second(SID, accepted_only=True) == 10
    assert emu.per_second_counts(SID) == {second: 13}
    clock.t += 1
    assert _ok(client.numbers())


# ---------------------------------------------------------------------------
# timelines and overrides


def test_timeline_flagged_and_back_and_tier_drop(client, emu):
    def state():
        d = _ok(client.details("919876500001"))
        return d["status"], d["quality_rating"], d["messaging_limit_tier"], d["health_status"]["can_send_message"]

    assert state() == ("CONNECTED", "GREEN", "TIER_10K", "AVAILABLE")
    emu.advance(60)
    assert state() == ("FLAGGED", "RED", "TIER_10K", "LIMITED")
    emu.advance(60)
    assert state() == ("CONNECTED", "YELLOW", "TIER_1K", "AVAILABLE")
    emu.advance(60)
    assert state() == ("CONNECTED", "GREEN", "TIER_10K", "AVAILABLE")


def test_runtime_overrides(client, emu):
    emu.set_number(WABA, "919876500001", status="RESTRICTED", throughput_level=None)
    data = _ok(client.details("919876500001"))
    assert data["status"] == "RESTRICTED" and "throughput" not in data
    emu.set_waba(WABA, account_review_status="REJECTED")
    health = _ok(client.details("919876500001"))["health_status"]
    assert health["entities"][1]["can_send_message"] == "BLOCKED" and health["can_send_message"] == "BLOCKED"
    emu.clear_overrides()
    assert _ok(client.details("919876500001"))["status"] == "CONNECTED"


# ---------------------------------------------------------------------------
# faults


@pytest.mark.parametrize(
    "code,status", [("WA500", 500), ("WA400", 400), ("WA401", 400), ("RBC001", 401), ("WA429", 429), ("E110", 400)]
)
def test_fault_error_default_statuses(client, emu, code, status):
    emu.inject(Fault(kind="error", code=code, count=1))
    _failure(client.details("919876500001"), status, code)
    assert _ok(client.details("919876500001"))


def test_fault_error_options_and_selectors(client, emu):
    emu.inject(Fault(kind="error", code="WA500", http_status=503, retry_after=7, phone_number="919876500002"))
    emu.inject(Fault(kind="error", code="WA500", http200=True, action="list_numbers", count=1))
    resp = client.details("919876500002")
    _failure(resp, 503, "WA500")
    assert resp.headers["Retry-After"] == "7"
    assert _ok(client.details("919876500001"))
    _failure(client.numbers(), 200, "WA500")
    assert _ok(client.numbers())


def test_fault_selector_by_waba_applies_to_its_numbers(client, emu):
    emu.inject(Fault(kind="error", code="WA500", space_id=WABA))
    _failure(client.numbers(), 500, "WA500")
    _failure(client.details("919876500001"), 500, "WA500")
    assert _ok(client.details("447700900777"))


def test_fault_delay_malformed_html_reset(client, emu):
    check_transport_faults(emu, client.numbers, _ok)


def test_faults_come_after_auth_and_flow_control(client, emu):
    emu.inject(Fault(kind="error", code="WA500"))
    _failure(client.numbers(key="bad"), 401, "RBC001")
    for _ in range(10):
        _failure(client.numbers(), 500, "WA500")
    _failure(client.numbers(), 429, "WA429")


# ---------------------------------------------------------------------------
# robustness, demo, standalone


def test_garbage_requests_get_answers_and_server_keeps_serving(client, emu):
    check_garbage_requests(emu.port, b"/v2/x/whatsapp/y/number", b'"code":"WA400"')
    _failure(client.request("GET", "/v2/%FF%FE/whatsapp/%00/phone_number_details"), 401, "RBC001")
    assert _ok(client.numbers())


def test_demo_scenario(clock):
    demo = load_builtin_scenario("demo-kaleyra")
    assert len(demo.credentials) == 1 and len(demo.spaces) == 1 and 3 <= demo.number_count() <= 5
    cred, space = demo.credentials[0], demo.spaces[0]
    with KaleyraEmulator(demo, clock=clock) as emu:
        c = Client(emu.port, cred.access_key_id, cred.access_key_secret)
        numbers = [n["phone_number"] for n in _ok(c.numbers(space.space_id))]
        assert len(numbers) == demo.number_count()

        def snapshot():
            return {n: _ok(c.details(n)) for n in numbers}

        start = snapshot()
        assert any(
            d["health_status"]["can_send_message"] == "LIMITED" and d["status"] == "CONNECTED" for d in start.values()
        )
        seen_status, seen_tier = {}, {}
        for _ in range(30):  # 5 minutes in 10 s steps (the clock moves scenario time)
            clock.t += 10
            for n, d in snapshot().items():
                seen_status.setdefault(n, []).append(d["status"])
                seen_tier.setdefault(n, []).append(d.get("messaging_limit_tier"))
        assert emu.scenario_time() == 300

    def changes(values):
        return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]

    assert any(changes(v)[:3] == ["CONNECTED", "FLAGGED", "CONNECTED"] for v in seen_status.values())
    assert any(changes(v)[:3] == ["TIER_10K", "TIER_1K", "TIER_10K"] for v in seen_tier.values())


def test_standalone_module_runs_and_answers():
    with standalone_emulator("--provider", "kaleyra", banner="Kaleyra emulator listening on http://127.0.0.1:") as run:
        c = Client(run.port, "HXDEMO00000001IN", "Akdemo0000000000000000000000000001")
        assert len(_ok(c.numbers("109000000000001"))) == 4
    assert "list_numbers" in run.log and "-> 200 WA200" in run.log
