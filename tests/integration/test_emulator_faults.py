"""Every documented provider fault, injected per request, by scenario or at random, over real sockets.

The same scenario is served by the three emulators (a space is a CAMS
CustSpaceId, an NxCloud appkey, a Kaleyra WABA id).  Requests are built here
with the emulators' own published signing helpers: what is under test is the
fault machinery, not the signatures.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from emulators import cams, nxcloud
from emulators.cams import CamsEmulator
from emulators.common import UNKNOWN_ENUM_VALUES
from emulators.kaleyra import KaleyraEmulator
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import FAULT_KINDS, Fault, ScenarioError, loads_scenario
from tests import helpers
from tests.helpers import Resp

SCENARIO = """
credentials:
  - {access_key_id: ak, access_key_secret: sk, qps: null}
spaces:
  - space_id: s1
    access_key_id: ak
    waba: {id: "1001", name: Shop, account_review_status: APPROVED, currency: USD}
    numbers:
      - {phone_number: "8613800000001", id: "5001", verified_name: One, status: CONNECTED, quality_rating: GREEN,
         messaging_limit_tier: TIER_1K, code_verification_status: VERIFIED, name_status: APPROVED}
      - {phone_number: "8613800000002", id: "5002", verified_name: Two, status: FLAGGED, quality_rating: YELLOW,
         messaging_limit_tier: TIER_250, code_verification_status: VERIFIED, name_status: APPROVED}
  - space_id: s2
    access_key_id: ak
    extra: {response_shape: array}
    numbers:
      - {phone_number: "8613900000001", id: "6001", verified_name: Three, status: CONNECTED, quality_rating: RED,
         messaging_limit_tier: TIER_10K, code_verification_status: VERIFIED, name_status: APPROVED}
"""
PHONES = {"s1": ["8613800000001", "8613800000002"], "s2": ["8613900000001"]}
PROVIDERS = ["cams", "nxcloud", "kaleyra"]
CLASSES = {"cams": CamsEmulator, "nxcloud": NxCloudEmulator, "kaleyra": KaleyraEmulator}
LIST_ACTION = {"cams": "QueryChatappPhoneNumbers", "nxcloud": "getPhone", "kaleyra": "list_numbers"}
PADDING_KEY = {"cams": "EmulatorPadding", "nxcloud": "emulator_padding", "kaleyra": "emulator_padding"}


# ---------------------------------------------------------------------------
# requests


def _cams_request(port: int, action: str, params: dict[str, str]) -> tuple[str, str, dict[str, str], bytes]:
    full = {
        "Action": action,
        "Version": cams.API_VERSION,
        "AccessKeyId": "ak",
        "Format": "JSON",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": f"{time.time_ns()}",
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **params,
    }
    full["Signature"] = cams.v2_signature("sk", cams.v2_string_to_sign("GET", full.items()))
    return "GET", "/?" + cams.canonical_query_string(full.items()), {}, b""


def _nxcloud_request(space: str, phones: list[str] | None = None) -> tuple[str, str, dict[str, str], bytes]:
    payload = {"appkey": space, "messaging_product": "whatsapp"}
    if phones:
        payload["business_phones"] = ",".join(phones)
    body = json.dumps(payload).encode()
    ts = str(int(time.time() * 1000))
    headers = {
        "accessKey": "ak",
        "ts": ts,
        "bizType": "2",
        "action": "getPhone",
        "Content-Type": "application/json",
        "sign": nxcloud.sign("ak", "getPhone", "2", ts, body, "sk"),
    }
    return "POST", nxcloud.PATH, headers, body


def list_request(provider: str, port: int, space: str = "s1"):
    if provider == "cams":
        return _cams_request(port, "QueryChatappPhoneNumbers", {"CustSpaceId": space})
    if provider == "nxcloud":
        return _nxcloud_request(space)
    return "GET", f"/v2/ak/whatsapp/{space}/number", {"api-key": "sk"}, b""


def kaleyra_details(phone: str):
    return "GET", f"/v2/ak/whatsapp/{quote(phone)}/phone_number_details", {"api-key": "sk"}, b""


def call(port: int, parts, conn: http.client.HTTPConnection | None = None) -> Resp:
    method, target, headers, body = parts
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, body=body or None, headers=headers)
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        if own:
            conn.close()


def raw_exchange(port: int, parts) -> bytes:
    """Send one request on a fresh socket and read everything until the server closes it."""
    method, target, headers, body = parts
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return helpers.raw_exchange(port, head.encode("latin-1") + b"\r\n" + body, timeout=10, half_close=False)


def numbers(provider: str, payload: dict) -> list[dict]:
    """The answered numbers as {phone, status, quality, tier} (None for a null or absent field)."""
    out = []
    if provider == "cams":
        for item in payload["PhoneNumbers"]:
            out.append(
                {
                    "phone": item["PhoneNumber"],
                    "status": item.get("Status"),
                    "quality": item.get("QualityRating"),
                    "tier": item.get("MessagingLimitTier"),
                    "raw": item,
                }
            )
    elif provider == "nxcloud":
        data = payload["data"]
        pairs = (
            [(e["business_phone"], e) for e in data["business_phones"]]
            if "business_phones" in data
            else [(k, v[0]) for k, v in data.items()]
        )
        for phone, item in pairs:
            out.append(
                {
                    "phone": phone,
                    "status": item.get("status"),
                    "quality": item.get("quality_rating"),
                    "tier": item.get("current_limit"),
                    "raw": item,
                }
            )
    else:
        for item in payload["data"]:
            out.append(
                {
                    "phone": item["phone_number"],
                    "status": item.get("status"),
                    "quality": item.get("quality_rating"),
                    "tier": "n/a",
                    "raw": item,
                }
            )
    return out


@pytest.fixture(params=PROVIDERS)
def provider(request):
    return request.param


@pytest.fixture
def emu(provider):
    with CLASSES[provider](loads_scenario(SCENARIO), seed=1) as emulator:
        yield emulator


def ok(provider: str, emu, space: str = "s1") -> Resp:
    resp = call(emu.port, list_request(provider, emu.port, space))
    assert resp.status == 200, resp.body[:300]
    return resp


# ---------------------------------------------------------------------------
# scenario format


def test_new_keys_parse_and_validate_with_key_paths():
    scenario = loads_scenario("""
faults:
  - {kind: delay, seconds: 250ms, probability: 0.5}
  - {kind: oversize, megabytes: 40, action: getPhone}
  - {kind: truncate, count: 2}
  - {kind: refuse, from: 10, until: 20}
  - {kind: unknown_enum, probability: 1}
  - {kind: null_fields, space_id: s1}
  - {kind: duplicate_numbers, probability: 0}
  - {kind: hang, access_key_id: ak-1}
""")
    kinds = [f.kind for f in scenario.faults]
    assert kinds == [
        "delay",
        "oversize",
        "truncate",
        "refuse",
        "unknown_enum",
        "null_fields",
        "duplicate_numbers",
        "hang",
    ]
    assert scenario.faults[0].probability == 0.5 and scenario.faults[1].megabytes == 40.0
    assert set(kinds) | {"error", "malformed", "html", "reset"} == set(FAULT_KINDS)
    for fault, path, words in [
        ({"kind": "oversize"}, "faults[0].megabytes", "required"),
        ({"kind": "oversize", "megabytes": 0}, "faults[0].megabytes", "> 0"),
        ({"kind": "oversize", "megabytes": "big"}, "faults[0].megabytes", "expected a number"),
        ({"kind": "truncate", "megabytes": 1}, "faults[0].megabytes", "only valid"),
        ({"kind": "reset", "probability": 1.5}, "faults[0].probability", "between 0 and 1"),
        ({"kind": "reset", "probability": "often"}, "faults[0].probability", "expected a number"),
        ({"kind": "reset", "probability": True}, "faults[0].probability", "expected a number"),
        ({"kind": "refuse", "access_key_id": "ak"}, "faults[0].access_key_id", "acts on connections"),
        ({"kind": "refuse", "action": "getPhone"}, "faults[0].action", "acts on connections"),
        ({"kind": "null_fields", "seconds": 1}, "faults[0].seconds", "only valid"),
    ]:
        with pytest.raises(ScenarioError) as info:
            loads_scenario(json.dumps({"faults": [fault]}))
        assert info.value.path == path and words in info.value.message, (fault, str(info.value))


# ---------------------------------------------------------------------------
# truncate, oversize


def test_truncate_sends_headers_with_full_length_then_half_the_body(provider, emu):
    full = ok(provider, emu)
    emu.inject(Fault(kind="truncate", count=1))
    raw = raw_exchange(emu.port, list_request(provider, emu.port))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200 ")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    assert "connection" not in headers  # it looks like a normal answer...
    assert abs(length - len(full.body)) < 100  # (request ids differ in length only slightly)
    assert len(body) == length // 2 and 0 < len(body) < length  # ...cut mid-body
    record = emu.requests[-1]
    assert (record.fault, record.code, record.http_status) == ("truncate", "fault:truncate", 200)
    emu.inject(Fault(kind="truncate", count=1))
    with pytest.raises(http.client.IncompleteRead):
        call(emu.port, list_request(provider, emu.port))
    assert ok(provider, emu).json  # still serving


def test_oversize_pads_a_valid_answer_to_about_n_mib(provider, emu):
    emu.inject(Fault(kind="oversize", megabytes=3, count=1))
    resp = ok(provider, emu)
    assert abs(len(resp.body) - 3 * (1 << 20)) < 64
    payload = resp.json  # still valid JSON
    padding = payload.pop(PADDING_KEY[provider])
    assert set(padding) == {"x"}
    assert sorted(n["phone"].lstrip("+") for n in numbers(provider, payload)) == PHONES["s1"]
    assert emu.requests[-1].fault == "oversize"
    assert len(ok(provider, emu).body) < 10_000  # count: 1


def test_oversize_beyond_the_exporters_cap():
    with NxCloudEmulator(loads_scenario(SCENARIO)) as emu:
        emu.inject(Fault(kind="oversize", megabytes=40, count=1))
        resp = call(emu.port, list_request("nxcloud", emu.port))
        assert resp.status == 200 and len(resp.body) > 32 * (1 << 20)


def test_cams_oversize_in_an_xml_answer():
    with CamsEmulator(loads_scenario(SCENARIO)) as emu:
        emu.inject(Fault(kind="oversize", megabytes=1))
        parts = _cams_request(emu.port, "QueryChatappBindWaba", {"CustSpaceId": "s1", "Format": "XML"})
        resp = call(emu.port, parts)
        assert resp.status == 200 and resp.body.startswith(b"<?xml")
        assert b"<EmulatorPadding>xxx" in resp.body and resp.body.endswith(b"</QueryChatappBindWabaResponse>")
        assert abs(len(resp.body) - (1 << 20)) < 64


# ---------------------------------------------------------------------------
# refuse


def _refused(port: int, parts, conn=None) -> bool:
    try:
        call(port, parts, conn)
    except (OSError, http.client.HTTPException):
        return True
    return False


def test_refuse_new_connections_then_recover(provider, emu):
    emu.inject(Fault(kind="refuse"))
    for _ in range(3):
        assert _refused(emu.port, list_request(provider, emu.port))
    assert [(r.fault, r.code, r.http_status) for r in emu.requests] == [("refuse", "fault:refuse", 0)] * 3
    assert emu.per_second_counts("ak") == {}  # nothing was read: no credential is known
    emu.clear_faults()
    assert ok(provider, emu).json


def test_refuse_also_cuts_keep_alive_connections(provider, emu):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        assert call(emu.port, list_request(provider, emu.port), conn).status == 200
        emu.inject(Fault(kind="refuse", count=1))
        assert _refused(emu.port, list_request(provider, emu.port), conn)
        assert emu.requests[-1].code == "fault:refuse" and emu.requests[-1].path
    finally:
        conn.close()
    assert ok(provider, emu).json  # count: 1, then served again


def test_refuse_by_scenario_time_window(provider):
    scenario = loads_scenario(SCENARIO + "faults: [{kind: refuse, from: 10, until: 20}]\n")
    with CLASSES[provider](scenario) as emu:
        assert ok(provider, emu).json
        emu.advance(10)
        assert _refused(emu.port, list_request(provider, emu.port))
        emu.advance(10)
        assert ok(provider, emu).json


def test_a_real_connection_refused_is_stop_and_start_on_the_same_port(provider, emu):
    port = emu.port
    emu.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    emu.start()
    assert emu.port == port
    assert ok(provider, emu).json


# ---------------------------------------------------------------------------
# data faults


def numbers_under_fault(provider: str, emu, space: str, kind: str) -> list[dict]:
    """The numbers of ``space`` answered under one ``kind`` data fault: every number is still there."""
    emu.inject(Fault(kind=kind, count=1))
    answered = numbers(provider, ok(provider, emu, space).json)
    assert sorted(n["phone"] for n in answered) == PHONES[space]
    return answered


@pytest.mark.parametrize("space", ["s1", "s2"])
def test_unknown_enum(provider, emu, space):
    answered = numbers_under_fault(provider, emu, space, "unknown_enum")
    for n in answered:
        assert n["status"] == UNKNOWN_ENUM_VALUES["status"] == "BRAND_NEW_STATE"
        assert n["quality"] == UNKNOWN_ENUM_VALUES["quality"]
        assert n["tier"] in (UNKNOWN_ENUM_VALUES["tier"], "n/a")
    assert emu.requests[-1].fault == "unknown_enum"
    assert numbers(provider, ok(provider, emu, space).json)[0]["status"] in ("CONNECTED", "FLAGGED")


@pytest.mark.parametrize("space", ["s1", "s2"])
def test_null_fields(provider, emu, space):
    answered = numbers_under_fault(provider, emu, space, "null_fields")
    for n in answered:
        assert n["status"] is None and n["quality"] is None and n["tier"] in (None, "n/a")
        keys = set(n["raw"])
        assert not keys & {"VerifiedName", "verified_name", "NameStatus", "name_status"}
        assert {"status", "Status"} & keys  # present, as null


@pytest.mark.parametrize("space", ["s1", "s2"])
def test_duplicate_numbers(provider, emu, space):
    emu.inject(Fault(kind="duplicate_numbers", count=1))
    payload = ok(provider, emu, space).json
    answered = [n["phone"].lstrip("+") for n in numbers(provider, payload)]
    assert sorted(answered) == sorted(PHONES[space] * 2)
    if provider == "nxcloud" and space == "s1":  # map shape: the second key is the E.164 spelling
        assert set(payload["data"]) == set(PHONES["s1"]) | {"+" + p for p in PHONES["s1"]}
    assert sorted(n["phone"].lstrip("+") for n in numbers(provider, ok(provider, emu, space).json)) == PHONES[space]


def test_data_faults_on_cams_waba_verification_and_health():
    with CamsEmulator(loads_scenario(SCENARIO)) as emu:
        emu.inject(Fault(kind="unknown_enum", action="QueryChatappBindWaba", count=1))
        data = call(emu.port, _cams_request(emu.port, "QueryChatappBindWaba", {"CustSpaceId": "s1"})).json["Data"]
        assert data["AccountReviewStatus"] == "BRAND_NEW_STATE" and data["Name"] == "Shop"
        emu.inject(Fault(kind="null_fields", action="QueryChatappBindWaba", count=1))
        data = call(emu.port, _cams_request(emu.port, "QueryChatappBindWaba", {"CustSpaceId": "s1"})).json["Data"]
        assert data["AccountReviewStatus"] is None and "Name" not in data and data["Id"] == "1001"
        params = {"CustSpaceId": "s1", "PhoneNumber": "8613800000001"}
        emu.inject(Fault(kind="null_fields", action="GetPhoneNumberVerificationStatus", count=1))
        data = call(emu.port, _cams_request(emu.port, "GetPhoneNumberVerificationStatus", params)).json["Data"]
        assert data == {"PhoneNumber": "8613800000001", "CodeVerificationStatus": None}
        emu.inject(Fault(kind="unknown_enum", action="GetWhatsappHealthStatus", count=1))
        data = call(emu.port, _cams_request(emu.port, "GetWhatsappHealthStatus", {**params, "NodeType": "phone"})).json[
            "Data"
        ]
        assert data["CanSendMessage"] == "BRAND_NEW_STATE"
        assert {e["CanSendMessage"] for e in data["Entities"]} == {"BRAND_NEW_STATE"}


def test_data_faults_on_kaleyra_details_and_not_applicable_kinds():
    with KaleyraEmulator(loads_scenario(SCENARIO)) as emu:
        emu.inject(Fault(kind="unknown_enum", action="phone_number_details", count=1))
        data = call(emu.port, kaleyra_details("8613800000001")).json["data"]
        assert (data["status"], data["quality_rating"], data["messaging_limit_tier"]) == (
            "BRAND_NEW_STATE",
            "BRAND_NEW_RATING",
            "TIER_BRAND_NEW",
        )
        assert data["quality_score"] == {"score": "BRAND_NEW_RATING"}
        assert data["health_status"]["can_send_message"] == "BRAND_NEW_STATE"
        emu.inject(Fault(kind="null_fields", count=1))
        data = call(emu.port, kaleyra_details("8613800000001")).json["data"]
        assert data["status"] is None and data["quality_rating"] is None and data["messaging_limit_tier"] is None
        assert "quality_score" not in data and "verified_name" not in data and data["id"] == "5001"
        # duplicate_numbers does not apply to one number's details: not applied, count not consumed
        emu.inject(Fault(kind="duplicate_numbers", count=1))
        assert call(emu.port, kaleyra_details("8613800000001")).json["data"]["status"] == "CONNECTED"
        assert emu.requests[-1].fault is None
        assert len(call(emu.port, list_request("kaleyra", emu.port)).json["data"]) == 4
        assert emu.requests[-1].fault == "duplicate_numbers"


def test_data_faults_leave_error_answers_alone(provider, emu):
    emu.inject(Fault(kind="unknown_enum"))
    resp = call(emu.port, list_request(provider, emu.port, "no-such-space"))
    assert resp.status in (200, 400) and b"BRAND_NEW" not in resp.body


# ---------------------------------------------------------------------------
# probability


def _fault_pattern(provider: str, seed: int | None, fault: Fault, n: int = 40) -> list[str | None]:
    with CLASSES[provider](loads_scenario(SCENARIO), seed=seed) as emu:
        emu.inject(fault)
        for _ in range(n):
            call(emu.port, list_request(provider, emu.port))
        return [r.fault for r in emu.requests]


def test_probability_is_reproducible_with_a_seed(provider):
    fault = Fault(
        kind="error", code={"cams": "InternalError", "nxcloud": "9001", "kaleyra": "WA500"}[provider], probability=0.3
    )
    first = _fault_pattern(provider, 42, fault)
    assert first == _fault_pattern(provider, 42, fault)
    assert 3 <= first.count("error") <= 25 and first.count(None) == 40 - first.count("error")
    assert first != _fault_pattern(provider, 43, fault)


def test_probability_bounds_and_count_counts_applied_faults_only(provider):
    assert _fault_pattern(provider, 1, Fault(kind="unknown_enum", probability=0), 10) == [None] * 10
    assert _fault_pattern(provider, 1, Fault(kind="null_fields", probability=1), 10) == ["null_fields"] * 10
    pattern = _fault_pattern(provider, 5, Fault(kind="duplicate_numbers", probability=0.5, count=3), 30)
    assert pattern.count("duplicate_numbers") == 3


def test_probability_applies_to_refuse_per_connection():
    with NxCloudEmulator(loads_scenario(SCENARIO), seed=3) as emu:
        emu.inject(Fault(kind="refuse", probability=0.5))
        outcomes = [_refused(emu.port, list_request("nxcloud", emu.port)) for _ in range(30)]
        assert 3 <= sum(outcomes) <= 27
        assert sum(r.code == "fault:refuse" for r in emu.requests) == sum(outcomes)
        assert sum(r.http_status == 200 for r in emu.requests) == 30 - sum(outcomes)


def test_mixed_random_faults_keep_the_server_serving(provider):
    """All kinds at random on one emulator: every request gets some answer or a clean failure."""
    kinds = [
        Fault(kind="delay", seconds=0.01, probability=0.2),
        Fault(kind="truncate", probability=0.1),
        Fault(kind="reset", probability=0.1),
        Fault(kind="refuse", probability=0.1),
        Fault(kind="html", probability=0.1),
        Fault(kind="malformed", probability=0.1),
        Fault(kind="oversize", megabytes=0.1, probability=0.1),
        Fault(kind="unknown_enum", probability=0.1),
        Fault(kind="null_fields", probability=0.1),
        Fault(kind="duplicate_numbers", probability=0.1),
    ]
    with CLASSES[provider](loads_scenario(SCENARIO), seed=11) as emu:
        for fault in kinds:
            emu.inject(fault)
        for _ in range(60):
            _refused(emu.port, list_request(provider, emu.port))
        seen = {r.fault for r in emu.requests}
        assert len(seen) >= 6, seen
        emu.clear_faults()
        assert ok(provider, emu).json


# ---------------------------------------------------------------------------
# every documented throttling, auth, permission and 5xx answer


@pytest.mark.parametrize("code", ["Throttling.User", "Throttling.Api", "Throttling", "System.LimitControl"])
@pytest.mark.parametrize("http200", [False, True])
def test_cams_throttling_answers(code, http200):
    with CamsEmulator(loads_scenario(SCENARIO)) as emu:
        emu.inject(Fault(kind="error", code=code, http200=http200, retry_after=1, count=1))
        resp = call(emu.port, list_request("cams", emu.port))
        assert resp.status == (200 if http200 else 400) and resp.json["Code"] == code
        assert resp.headers["x-acs-retry-after"] == "1"
        if http200:
            assert resp.json["Success"] is False


@pytest.mark.parametrize(
    "code,status",
    [
        ("SignatureDoesNotMatch", 400),
        ("InvalidAccessKeyId.NotFound", 404),
        ("InvalidTimeStamp.Expired", 400),
        ("Ram.PermissionDeny", 400),
        ("InternalError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_cams_auth_permission_and_5xx_answers(code, status):
    with CamsEmulator(loads_scenario(SCENARIO)) as emu:
        emu.inject(Fault(kind="error", code=code, count=1))
        resp = call(emu.port, list_request("cams", emu.port))
        assert (resp.status, resp.json["Code"]) == (status, code)


@pytest.mark.parametrize(
    "fault,status,body",
    [
        (dict(code=-1, http_status=429), 429, {"code": -1, "message": "Request is too frequent", "data": None}),
        (dict(code=1003), 200, {"code": 1003, "message": "Invalid signature", "data": None}),
        (dict(code=1004), 200, {"code": 1004, "message": "Timestamp has expired", "data": None}),
        (dict(code=1005), 200, {"code": 1005, "message": "Insufficient permissions", "data": None}),
        (dict(code=9001, http_status=503), 503, {"code": 9001, "message": "System business error", "data": None}),
    ],
)
def test_nxcloud_documented_answers(fault, status, body):
    with NxCloudEmulator(loads_scenario(SCENARIO)) as emu:
        emu.inject(Fault(kind="error", count=1, **fault))
        resp = call(emu.port, list_request("nxcloud", emu.port))
        assert (resp.status, resp.json) == (status, body)


@pytest.mark.parametrize("code,status", [("WA429", 429), ("RBC001", 401), ("WA500", 500)])
def test_kaleyra_documented_answers(code, status):
    with KaleyraEmulator(loads_scenario(SCENARIO)) as emu:
        emu.inject(Fault(kind="error", code=code, retry_after=2, count=1))
        resp = call(emu.port, list_request("kaleyra", emu.port))
        assert (resp.status, resp.json["code"]) == (status, code) and resp.headers["Retry-After"] == "2"


def test_faults_per_account_leave_other_credentials_alone():
    scenario = loads_scenario(
        SCENARIO.replace(
            "credentials:\n", "credentials:\n  - {access_key_id: ak2, access_key_secret: sk2, qps: null}\n"
        )
        + """
  - space_id: s3
    access_key_id: ak2
    numbers: [{phone_number: "4915100000001", status: CONNECTED}]
"""
    )
    with KaleyraEmulator(scenario) as emu:
        emu.inject(Fault(kind="truncate", access_key_id="ak"))
        emu.inject(Fault(kind="unknown_enum", access_key_id="ak2", probability=1))
        with pytest.raises(http.client.IncompleteRead):
            call(emu.port, list_request("kaleyra", emu.port))
        other = call(emu.port, ("GET", "/v2/ak2/whatsapp/s3/number", {"api-key": "sk2"}, b"")).json["data"]
        assert other[0]["status"] == "BRAND_NEW_STATE"
