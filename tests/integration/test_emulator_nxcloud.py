"""The NxCloud emulator over real loopback HTTP.

Requests are signed by a small signer written here, independently of the
emulator's verifier; both are pinned to NxCloud's published worked example and
the recorded vectors.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from emulators import nxcloud
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import Fault, ScenarioError, load_builtin_scenario, loads_scenario
from tests.helpers import (
    FakeClock,
    check_garbage_requests,
    check_transport_faults,
    emulator_fixtures,
    http_exchange,
    raw_exchange,
    standalone_emulator,
)
from tests.helpers import Resp as BaseResp

REFERENCE = Path("/work/shared/reference/signing-vectors.json")

# A copy of the reference vectors, so the tests still run where /work/shared is absent.
_FALLBACK_VECTORS = [
    {
        "name": "NxCloud's own worked example",
        "accessKey": "fme2na3kdi3ki",
        "ts": "1655710885431",
        "bizType": "1",
        "action": "send",
        "accessSecret": "abciiiko2k3",
        "body": '{"name":"牛小信","id":10001}',
        "expected_string_to_sign": "accessKey=fme2na3kdi3ki&action=send&bizType=1&ts=1655710885431&body="
        '{"name":"牛小信","id":10001}&accessSecret=abciiiko2k3',
        "expected_sign": "87c3560d3331ae23f1021e2025722354",
    },
    {
        "name": "same, compact body with sorted keys",
        "accessKey": "fme2na3kdi3ki",
        "ts": "1655710885431",
        "bizType": "1",
        "action": "send",
        "accessSecret": "abciiiko2k3",
        "body": '{"id":10001,"name":"牛小信"}',
        "expected_sign": "7750759da06333f20d0640be09355e34",
    },
    {
        "name": "empty body (the &body= part is left out)",
        "accessKey": "fme2na3kdi3ki",
        "ts": "1655710885431",
        "bizType": "1",
        "action": "send",
        "accessSecret": "abciiiko2k3",
        "body": "",
        "expected_sign": "884afe159e39b6c88a0d6102ca97d704",
    },
    {
        "name": "getPhone with business_phones",
        "accessKey": "fme2na3kdi3ki",
        "ts": "1655710885431",
        "bizType": "2",
        "action": "getPhone",
        "accessSecret": "abciiiko2k3",
        "body": '{"appkey":"jh42xxxd434","business_phones":"185xxx99,861xxx24","messaging_product":"whatsapp"}',
        "expected_sign": "139a8171d72bdbf2fc53b8c5a2a14583",
    },
    {
        "name": "getPhone for every number of the app",
        "accessKey": "fme2na3kdi3ki",
        "ts": "1655710885431",
        "bizType": "2",
        "action": "getPhone",
        "accessSecret": "abciiiko2k3",
        "body": '{"appkey":"jh42xxxd434","messaging_product":"whatsapp"}',
        "expected_sign": "eec4d93ccef39ed6e67219afbe93547a",
    },
]
VECTORS = (json.loads(REFERENCE.read_text())["nxcloud_md5"] if REFERENCE.exists() else None) or _FALLBACK_VECTORS
# The doc's worked example hashed with SHA-256 (the optional ``algorithm: sha256`` header, not signed itself).
SHA256_VECTOR = {
    **_FALLBACK_VECTORS[0],
    "expected_sign": "e0eec2c99ef80f269a82795e2223f618ebfc0616c8b6c8c7d438021ec38ad0eb",
}


# ---------------------------------------------------------------------------
# an independent test-side signer and client


def nx_sign(ak: str, action: str, biz_type: str, ts: str, body: bytes, secret: str, algo: str = "md5") -> str:
    text = (
        b"accessKey="
        + ak.encode()
        + b"&action="
        + action.encode()
        + b"&bizType="
        + biz_type.encode()
        + b"&ts="
        + ts.encode()
    )
    if len(body) > 0:
        text += b"&body=" + body
    text += b"&accessSecret=" + secret.encode()
    return hashlib.new(algo, text).hexdigest()


class Resp(BaseResp):
    @property
    def code(self):
        return self.json["code"]


def _post(port: int, path: str, headers: dict, body: bytes, method: str = "POST") -> Resp:
    return http_exchange(port, method, path, body, headers, answer=Resp)


class Client:
    def __init__(self, port: int, ak: str = "nx-ak", secret: str = "nx-secret", clock: FakeClock | None = None):
        self.port, self.ak, self.secret, self.clock = port, ak, secret, clock

    def ts(self) -> str:
        return str(int((self.clock.t if self.clock else time.time()) * 1000))

    def get_phone(
        self,
        payload=None,
        *,
        body: bytes | None = None,
        signed_body: bytes | None = None,
        ak: str | None = None,
        secret: str | None = None,
        ts: str | None = None,
        biz_type: str = "2",
        action: str = "getPhone",
        algo: str | None = None,
        drop: tuple = (),
        headers: dict | None = None,
        path: str = "/api/wa/getPhone",
        method: str = "POST",
        sign: str | None = None,
    ) -> Resp:
        if body is None:
            body = (
                json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() if payload is not None else b""
            )
        ts = ts or self.ts()
        signature = sign or nx_sign(
            ak or self.ak,
            action,
            biz_type,
            ts,
            body if signed_body is None else signed_body,
            secret or self.secret,
            algo or "md5",
        )
        h = {
            "Content-Type": "application/json",
            "accessKey": ak or self.ak,
            "ts": ts,
            "bizType": biz_type,
            "action": action,
            "sign": signature,
        }
        if algo:
            h["algorithm"] = algo
        h.update(headers or {})
        for name in drop:
            h.pop(name, None)
        return _post(self.port, path, h, body, method)

    def app(self, appkey: str = "app-shop", phones: str | None = None, **kw) -> Resp:
        payload = {"appkey": appkey, "messaging_product": "whatsapp"}
        if phones is not None:
            payload["business_phones"] = phones
        return self.get_phone(payload, **kw)


# ---------------------------------------------------------------------------
# fixtures

SCENARIO_YAML = """
credentials:
  - {access_key_id: nx-ak, access_key_secret: nx-secret, qps: 10}
  - {access_key_id: nx-other, access_key_secret: other-secret}
  - {access_key_id: nx-off, access_key_secret: off-secret, enabled: false}
  - {access_key_id: nx-denied, access_key_secret: denied-secret, permissions: denied}
  - {access_key_id: fme2na3kdi3ki, access_key_secret: abciiiko2k3, qps: null}
spaces:
  - space_id: app-shop
    access_key_id: nx-ak
    numbers:
      - phone_number: "8613800000001"
        verified_name: GLORY JACK
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_1K
        code_verification_status: VERIFIED
        name_status: APPROVED
        timeline:
          - {at: 60, set: {quality_rating: YELLOW}}
          - {at: 120, set: {quality_rating: RED, status: RATE_LIMITED}}
        repeat_every: 180
      - phone_number: "12025550100"
        verified_name: Glory HK
        status: CONNECTED
        quality_rating: UNKNOW
        messaging_limit_tier: null
        code_verification_status: NOT_VERIFIED
        name_status: APPROVED
      - phone_number: "6281300000009"
        status: PENDING
        present: false
        timeline: [{at: 30, set: {present: true}}]
  - space_id: app-array
    access_key_id: nx-ak
    extra: {response_shape: array}
    numbers:
      - phone_number: "447700900001"
        display_phone_number: "+44 7700 900001"
        verified_name: Array Shop
        status: FLAGGED
        quality_rating: RED
        messaging_limit_tier: TIER_250
        code_verification_status: VERIFIED
        name_status: APPROVED
        wire_extra: {waba_id: "1234", name_status: null}
  - space_id: app-other
    access_key_id: nx-other
    numbers: [{phone_number: "4915100000001", status: CONNECTED}]
  - space_id: jh42xxxd434
    access_key_id: fme2na3kdi3ki
    numbers: [{phone_number: "8618500000099", status: CONNECTED, quality_rating: GREEN}]
"""

PHONE_KEYS = {
    "display_phone_number",
    "quality_rating",
    "name_status",
    "verified_name",
    "code_verification_status",
    "current_limit",
    "status",
}


clock, emu, client = emulator_fixtures(
    NxCloudEmulator, SCENARIO_YAML, client=lambda emu, clock: Client(emu.port, clock=clock)
)


def _failure(resp: Resp, code: int, status: int = 200) -> dict:
    assert resp.status == status, resp
    body = resp.json
    assert body["code"] == code and body["data"] is None, body
    assert isinstance(body["message"], str) and body["message"]
    return body


# ---------------------------------------------------------------------------
# signing vectors


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"][:40])
def test_vectors_reproduced_by_both_signers(vector):
    args = (vector["accessKey"], vector["action"], vector["bizType"], vector["ts"])
    body = vector["body"].encode("utf-8")
    assert nx_sign(*args, body, vector["accessSecret"]) == vector["expected_sign"]
    assert nxcloud.sign(*args, body, vector["accessSecret"]) == vector["expected_sign"]
    # the emulator's verifier accepts the vector and refuses it with any other secret or body
    assert nxcloud.verify(*args, body, vector["accessSecret"], vector["expected_sign"])
    assert not nxcloud.verify(*args, body, vector["accessSecret"] + "x", vector["expected_sign"])
    assert not nxcloud.verify(*args, body + b" ", vector["accessSecret"], vector["expected_sign"])
    assert not nxcloud.verify(*args, body, vector["accessSecret"], vector["expected_sign"].upper())
    if "expected_string_to_sign" in vector:
        assert nxcloud.string_to_sign(*args, body, vector["accessSecret"]) == vector["expected_string_to_sign"].encode(
            "utf-8"
        )


def test_sha256_variant():
    v = SHA256_VECTOR
    args = (v["accessKey"], v["action"], v["bizType"], v["ts"], v["body"].encode(), v["accessSecret"])
    assert nx_sign(*args, "sha256") == v["expected_sign"]
    assert nxcloud.verify(*args, v["expected_sign"], "sha256")
    assert not nxcloud.verify(*args, v["expected_sign"], "md5")


def test_getphone_vectors_accepted_over_http(clock):
    clock.t = 1655710885431 / 1000 + 5
    with NxCloudEmulator(loads_scenario(SCENARIO_YAML), clock=clock) as emu:
        by_name = {v["name"]: v for v in VECTORS}
        for name, expected_code in (
            ("getPhone for every number of the app", 0),
            ("getPhone with business_phones", 9002),
        ):  # "185xxx99" is not digits
            v = by_name[name]
            headers = {
                "Content-Type": "application/json",
                "accessKey": v["accessKey"],
                "ts": v["ts"],
                "bizType": v["bizType"],
                "action": v["action"],
                "sign": v["expected_sign"],
            }
            resp = _post(emu.port, "/api/wa/getPhone", headers, v["body"].encode())
            assert resp.status == 200 and resp.code == expected_code, resp
            if expected_code == 0:
                assert list(resp.json["data"]) == ["8618500000099"]
        assert all(r.authenticated and r.signature_version == "md5" for r in emu.requests)


# ---------------------------------------------------------------------------
# accepted requests and response shapes


def test_default_shape_is_the_documented_example(client):
    resp = client.app()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
    body = resp.json
    assert body["code"] == 0 and body["message"] == "Request successful"
    data = body["data"]
    assert list(data) == ["8613800000001", "12025550100"]  # present: false is not listed
    for items in data.values():
        assert isinstance(items, list) and len(items) == 1 and set(items[0]) == PHONE_KEYS
    first = data["8613800000001"][0]
    assert first == {
        "display_phone_number": "+86 13800000001",
        "quality_rating": "GREEN",
        "name_status": "APPROVED",
        "verified_name": "GLORY JACK",
        "code_verification_status": "VERIFIED",
        "current_limit": "TIER_1K",
        "status": "CONNECTED",
    }
    second = data["12025550100"][0]
    assert second["current_limit"] == "" and second["quality_rating"] == "UNKNOW"
    assert second["display_phone_number"] == "+1 2025550100"


def test_array_shape_and_wire_extra(client):
    body = client.app("app-array").json
    assert body["code"] == 0 and list(body["data"]) == ["business_phones"]
    (item,) = body["data"]["business_phones"]
    assert item["business_phone"] == "447700900001" and item["display_phone_number"] == "+44 7700 900001"
    assert item["waba_id"] == "1234" and "name_status" not in item  # wire_extra adds and removes keys
    assert (item["status"], item["quality_rating"], item["current_limit"]) == ("FLAGGED", "RED", "TIER_250")


@pytest.mark.parametrize(
    "phones,expected",
    [
        (None, ["8613800000001", "12025550100"]),
        ("", ["8613800000001", "12025550100"]),
        ("12025550100", ["12025550100"]),
        ("12025550100,8613800000001", ["12025550100", "8613800000001"]),
        ("12025550100, 8613800000001", ["12025550100", "8613800000001"]),  # the ", " separator of the page
        ("8613800000001,8613800000001,", ["8613800000001"]),
    ],
)
def test_empty_versus_listed_business_phones(client, phones, expected):
    resp = client.app(phones=phones)
    assert resp.code == 0 and list(resp.json["data"]) == expected, resp


def test_business_phones_null_means_every_number(client):
    resp = client.get_phone({"appkey": "app-shop", "messaging_product": "whatsapp", "business_phones": None})
    assert resp.code == 0 and len(resp.json["data"]) == 2


def test_raw_bytes_are_signed_not_a_reserialisation(client):
    payload = {"appkey": "app-shop", "messaging_product": "whatsapp"}
    compact = json.dumps(payload, separators=(",", ":")).encode()
    spaced = json.dumps(payload).encode()
    assert client.get_phone(body=compact).code == 0
    assert client.get_phone(body=spaced).code == 0  # any bytes verify when they are what was signed
    _failure(client.get_phone(body=spaced, signed_body=compact), 1003)  # same JSON, different bytes
    _failure(client.get_phone(body=compact, signed_body=spaced), 1003)
    pretty = (
        b'{\n  "appkey": "app-shop",\n  "messaging_product": "whatsapp",\n'
        b'  "note": "\xe7\x89\x9b\xe5\xb0\x8f\xe4\xbf\xa1"\n}'
    )
    assert client.get_phone(body=pretty).code == 0  # newlines and raw UTF-8 are signed as sent
    escaped = json.dumps({**payload, "note": "牛小信"}, separators=(",", ":")).encode()  # \\u escapes
    unescaped = json.dumps({**payload, "note": "牛小信"}, separators=(",", ":"), ensure_ascii=False).encode()
    _failure(client.get_phone(body=escaped, signed_body=unescaped), 1003)


def test_sha256_algorithm_header(client, emu):
    assert client.app(algo="sha256").code == 0
    assert emu.requests[-1].signature_version == "sha256"
    assert client.app(algo="MD5").code == 0
    # a sha256 digest sent without the header is checked as md5
    ts = client.ts()
    body = json.dumps({"appkey": "app-shop", "messaging_product": "whatsapp"}, separators=(",", ":")).encode()
    wrong = nx_sign("nx-ak", "getPhone", "2", ts, body, "nx-secret", "sha256")
    _failure(client.get_phone(body=body, ts=ts, sign=wrong), 1003)
    _failure(client.app(algo="sha1", sign="0" * 40), 1003)


# ---------------------------------------------------------------------------
# every documented error code


@pytest.mark.parametrize("header", ["accessKey", "ts", "bizType", "action", "sign"])
def test_missing_common_header_is_1001(client, header):
    body = _failure(client.app(drop=(header,)), 1001)
    assert header in body["message"]


def test_empty_common_header_is_1001(client):
    _failure(client.app(headers={"sign": ""}), 1001)


def test_wrong_biz_type_or_action_is_1002(client):
    _failure(client.app(biz_type="1"), 1002)
    _failure(client.app(action="send"), 1002)
    _failure(client.app(action="getphone"), 1002)


def test_bad_signature_is_1003(client):
    _failure(client.app(secret="wrong"), 1003)
    _failure(client.app(sign=nx_sign("nx-ak", "getPhone", "2", client.ts(), b"", "nx-secret")), 1003)
    good = client.app()
    assert good.code == 0
    # the sign covers the headers too
    ts = client.ts()
    body = json.dumps({"appkey": "app-shop", "messaging_product": "whatsapp"}).encode()
    other_ts = str(int(ts) + 1)
    _failure(
        client.get_phone(body=body, ts=other_ts, sign=nx_sign("nx-ak", "getPhone", "2", ts, body, "nx-secret")), 1003
    )
    # uppercase hex is not the documented format
    upper = nx_sign("nx-ak", "getPhone", "2", ts, body, "nx-secret").upper()
    _failure(client.get_phone(body=body, ts=ts, sign=upper), 1003)


def test_wrong_content_type_is_1003(client):
    _failure(client.app(headers={"Content-Type": "application/x-www-form-urlencoded"}), 1003)
    assert client.app(headers={"Content-Type": "application/json; charset=utf-8"}).code == 0


def test_timestamp_window_is_60_seconds(client, clock):
    now_ms = int(clock.t * 1000)
    assert client.app(ts=str(now_ms - 60000)).code == 0
    assert client.app(ts=str(now_ms + 60000)).code == 0
    for ts in (now_ms - 60001, now_ms + 60001, now_ms // 1000):  # the last one: seconds, not milliseconds
        body = _failure(client.app(ts=str(ts)), 1004)
        assert "expired" in body["message"].lower()
    _failure(client.app(ts="2026-03-01T12:00:00Z"), 1004)
    _failure(client.app(ts="-1"), 1004)


def test_permissions_are_1005(emu, clock, client):
    _failure(client.app(ak="nobody", secret="x"), 1005)
    _failure(Client(emu.port, "nx-off", "off-secret", clock).app(), 1005)
    _failure(Client(emu.port, "nx-denied", "denied-secret", clock).app(), 1005)
    _failure(client.app("app-other"), 1005)  # another accessKey's appkey
    assert Client(emu.port, "nx-other", "other-secret", clock).app("app-other").code == 0


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "text",
        {"messaging_product": "whatsapp"},
        {"appkey": "", "messaging_product": "whatsapp"},
        {"appkey": 7, "messaging_product": "whatsapp"},
        {"appkey": "app-shop"},
        {"appkey": "app-shop", "messaging_product": "sms"},
        {"appkey": "app-shop", "messaging_product": "whatsapp", "business_phones": ["8613800000001"]},
    ],
)
def test_parameter_exception_is_9000(client, payload):
    _failure(client.get_phone(payload), 9000)


def test_body_not_json_is_9000(client):
    _failure(client.get_phone(body=b"{not json"), 9000)
    _failure(client.get_phone(body=b"\xff\xfe"), 9000)


def test_unknown_appkey_is_9003(client):
    body = _failure(client.app("no-such-app"), 9003)
    assert "no-such-app" in body["message"]


@pytest.mark.parametrize("phones", ["86138abc", "+8613800000001", "8613800000001,12 34", "8613800000001;12025550100"])
def test_non_digit_number_is_9002(client, phones):
    _failure(client.app(phones=phones), 9002)


def test_unbound_number_fails_the_whole_request_with_9006(client):
    body = _failure(client.app(phones="8613800000001,4915100000001,19999999999"), 9006)
    assert "4915100000001" in body["message"] and "19999999999" not in body["message"]
    _failure(client.app(phones="6281300000009"), 9006)  # present: false is not bound (yet)


def test_unknown_path_and_method(client, emu):
    resp = client.app(path="/api/wa/getPhones")
    assert resp.status == 404 and resp.code == -1
    resp = client.app(method="GET")
    assert resp.status == 405 and resp.code == -1
    assert client.app(path="/api/wa/getPhone/").code == 0


def test_send_endpoint_is_recorded_and_refused(client, emu):
    resp = client.get_phone(
        {"appkey": "app-shop", "messaging_product": "whatsapp", "to": "1"}, action="mt", path="/api/wa/mt"
    )
    _failure(resp, -1)
    assert [(r.action, r.authenticated) for r in emu.write_action_calls()] == [("mt", True)]
    _failure(client.get_phone({"appkey": "app-shop"}, action="mt", path="/api/wa/mt", secret="bad"), 1003)
    assert len(emu.write_action_calls()) == 2
    assert not [r for r in emu.requests if r.action == "getPhone"]


# ---------------------------------------------------------------------------
# flow control


def test_throttling_past_qps_with_a_fake_clock(client, emu, clock):
    second = int(clock.t)  # the calendar second the requests below are counted in
    results = [client.app() for _ in range(13)]
    assert [r.status for r in results] == [200] * 10 + [429] * 3
    for r in results[10:]:
        body = _failure(r, -1, 429)
        assert body["message"] == "Request is too frequent"
    assert emu.per_second_counts("nx-ak") == {second: 13}
    assert emu.max_requests_in_any_second("nx-ak") == 13
    assert emu.max_requests_in_any_second("nx-ak", accepted_only=True) == 10
    assert sum(r.throttled for r in emu.requests) == 3
    # unauthenticated requests are not counted against the quota; another key has its own
    assert Client(emu.port, "nx-other", "other-secret", clock).app("app-other").code == 0
    clock.t += 1
    assert client.app().code == 0
    assert emu.per_second_counts("nx-ak") == {second: 13, second + 1: 1}


def test_default_qps_is_10_and_null_is_unlimited(clock):
    scenario = loads_scenario("""
credentials:
  - {access_key_id: a, access_key_secret: s}
  - {access_key_id: b, access_key_secret: s, qps: null}
spaces:
  - {space_id: app-a, access_key_id: a, numbers: [{phone_number: "8613800000001"}]}
  - {space_id: app-b, access_key_id: b, numbers: [{phone_number: "8613800000002"}]}
""")
    with NxCloudEmulator(scenario, clock=clock) as emu:
        a, b = Client(emu.port, "a", "s", clock), Client(emu.port, "b", "s", clock)
        assert [a.app("app-a").status for _ in range(11)] == [200] * 10 + [429]
        assert [b.app("app-b").code for _ in range(15)] == [0] * 15


# ---------------------------------------------------------------------------
# timelines and overrides


def _number(client, phone="8613800000001"):
    return client.app().json["data"].get(phone, [None])[0]


def test_timeline_transitions_and_repeat(client, emu):
    assert (_number(client)["quality_rating"], _number(client)["status"]) == ("GREEN", "CONNECTED")
    assert _number(client, "6281300000009") is None
    emu.advance(30)
    assert _number(client, "6281300000009")["status"] == "PENDING"
    assert client.app(phones="6281300000009").code == 0
    emu.advance(30)
    assert _number(client)["quality_rating"] == "YELLOW"
    emu.advance(60)
    assert (_number(client)["quality_rating"], _number(client)["status"]) == ("RED", "RATE_LIMITED")
    emu.advance(60)
    assert (_number(client)["quality_rating"], _number(client)["status"]) == ("GREEN", "CONNECTED")


def test_runtime_overrides(client, emu):
    emu.set_number("app-shop", "8613800000001", status="BANNED", messaging_limit_tier=None, verified_name=None)
    n = _number(client)
    assert n["status"] == "BANNED" and n["current_limit"] == "" and "verified_name" not in n
    emu.clear_overrides()
    assert _number(client)["status"] == "CONNECTED"
    with pytest.raises(KeyError):
        emu.set_number("app-shop", "000", status="X")


def test_invalid_response_shape_is_a_scenario_error():
    bad = loads_scenario("""
credentials: [{access_key_id: a, access_key_secret: s}]
spaces: [{space_id: x, access_key_id: a, extra: {response_shape: list}}]
""")
    with pytest.raises(ScenarioError, match=r"spaces\[0\]\.extra\.response_shape"):
        NxCloudEmulator(bad)


# ---------------------------------------------------------------------------
# faults


def test_fault_error_codes_statuses_and_count(client, emu):
    emu.inject(Fault(kind="error", code="9001", count=2))
    _failure(client.app(), 9001)
    _failure(client.app(), 9001)
    assert client.app().code == 0
    emu.inject(Fault(kind="error", code=1004, http_status=401, retry_after=3, count=1))  # integer codes too
    resp = client.app()
    _failure(resp, 1004, 401)
    assert resp.headers["Retry-After"] == "3"
    emu.inject(Fault(kind="error", code="-1", http_status=503, count=1))
    _failure(client.app(), -1, 503)
    assert [r.fault for r in emu.requests] == ["error", "error", None, "error", "error"]
    assert [r.code for r in emu.requests] == ["9001", "9001", "0", "1004", "-1"]


def test_fault_9099_passes_a_meta_error_through(client, emu):
    emu.inject(Fault(kind="error", code="9099", count=1))
    resp = client.app()
    assert resp.status == 200
    body = resp.json
    assert body["code"] == 9099 and isinstance(body["data"]["error"], dict)
    error = body["data"]["error"]
    assert {"code", "message", "type", "fbtrace_id", "error_data"} <= set(error)
    assert error["error_data"]["messaging_product"] == "whatsapp"


def test_fault_selectors_by_appkey_and_number(client, emu):
    emu.inject(Fault(kind="error", code="9001", space_id="app-array"))
    emu.inject(Fault(kind="error", code="9002", phone_number="12025550100"))
    assert client.app("app-shop", phones="8613800000001").code == 0
    assert client.app("app-array").code == 9001
    assert client.app("app-shop", phones="8613800000001,12025550100").code == 9002  # any listed number matches
    assert client.app("app-shop").code == 0  # no number listed: the selector cannot match


def test_fault_delay_malformed_html_reset(client, emu):
    check_transport_faults(emu, client.app, lambda r: r.code == 0)


def test_faults_come_after_auth_and_flow_control(client, emu):
    emu.inject(Fault(kind="error", code="9001"))
    _failure(client.app(secret="wrong"), 1003)
    for _ in range(10):
        _failure(client.app(), 9001)
    _failure(client.app(), -1, 429)


def test_scenario_fault_time_window(clock):
    scenario = loads_scenario(
        SCENARIO_YAML
        + """
faults:
  - {kind: error, code: 9001, space_id: app-array, from: 100, until: 200}
"""
    )
    with NxCloudEmulator(scenario, clock=clock) as emu:
        c = Client(emu.port, clock=clock)
        assert c.app("app-array").code == 0
        emu.advance(100)
        assert c.app("app-array").code == 9001 and c.app().code == 0
        emu.advance(100)
        assert c.app("app-array").code == 0


# ---------------------------------------------------------------------------
# robustness


def test_garbage_requests_get_answers_and_server_keeps_serving(client, emu):
    check_garbage_requests(emu.port, b"/api/wa/getPhone", b'"code":9000')
    assert client.app(headers={"accessKey": "n\u00e9"}).code == 1005
    assert client.app().code == 0


def test_chunked_body_is_signed_as_received(client, emu, clock):
    body = json.dumps({"appkey": "app-shop", "messaging_product": "whatsapp"}).encode()
    ts = client.ts()
    headers = (
        f"POST /api/wa/getPhone HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"accessKey: nx-ak\r\nts: {ts}\r\nbizType: 2\r\naction: getPhone\r\n"
        f"sign: {nx_sign('nx-ak', 'getPhone', '2', ts, body, 'nx-secret')}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    half = len(body) // 2
    chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
    answer = raw_exchange(emu.port, headers + chunks)
    assert b" 200 " in answer.split(b"\r\n")[0] and b'"code":0' in answer


# ---------------------------------------------------------------------------
# the built-in demo and the standalone runner


def _trace(entity, attr, until=600, step=5):
    values, last = [], object()
    for t in range(0, until, step):
        value = entity.state_at(t).get(attr)
        if value != last:
            values.append(value)
            last = value
    return values


def test_demo_scenario(clock):
    demo = load_builtin_scenario("demo-nxcloud")
    assert len(demo.credentials) == 1 and len(demo.spaces) == 2 and 4 <= demo.number_count() <= 6
    assert {s.extra.get("response_shape", "map") for s in demo.spaces} == {"map", "array"}
    numbers = {n.phone_number: n for s in demo.spaces for n in s.numbers}
    assert _trace(numbers["6281300000001"], "quality_rating")[:4] == ["GREEN", "YELLOW", "RED", "GREEN"]
    assert _trace(numbers["6281300000002"], "status")[:3] == ["CONNECTED", "RATE_LIMITED", "CONNECTED"]
    assert min(n.timeline.next_change_after(0) or 1e9 for n in numbers.values()) <= 60
    cred = demo.credentials[0]
    with NxCloudEmulator(demo, clock=clock) as emu:
        c = Client(emu.port, cred.access_key_id, cred.access_key_secret, clock)
        shop = c.app("nx-demo-shop").json["data"]
        states = [items[0] for items in shop.values()]
        assert "UNKNOW" in {s["quality_rating"] for s in states} and "" in {s["current_limit"] for s in states}
        travel = c.app("nx-demo-travel").json["data"]
        assert len(travel["business_phones"]) == 2
        emu.advance(95)
        assert c.app("nx-demo-shop", phones="6281300000001").json["data"]["6281300000001"][0]["quality_rating"] == "RED"


def test_standalone_module_runs_and_answers():
    with standalone_emulator(
        "--provider", "nxcloud", "--scenario", "demo-nxcloud", banner="NxCloud emulator listening on http://127.0.0.1:"
    ) as run:
        c = Client(run.port, "nxdemo-ak-0001", "nxdemo-secret-0001")
        resp = c.app("nx-demo-shop")
        assert resp.status == 200 and resp.code == 0 and len(resp.json["data"]) == 3, resp
    assert "getPhone" in run.log and "-> 200 0" in run.log
