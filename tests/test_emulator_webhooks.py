"""Outgoing webhooks of the Meta, NxCloud and Kaleyra emulators, over real loopback sockets.

Each test runs a tiny receiver (``http.server`` on port 0) and checks what arrives
against the providers' documents, with signatures recomputed here independently
(``hmac``/``hashlib``), never with the emulators' own helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from emulators.cams import CamsEmulator
from emulators.kaleyra import KaleyraEmulator
from emulators.meta import MetaEmulator
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import Fault, ScenarioError, loads_scenario

REPO = Path(__file__).resolve().parents[1]
APP_SECRET = "meta-app-secret-0001"
WAIT = 15.0


# ---------------------------------------------------------------------------
# a receiver


class Receiver:
    """Records every request; ``verify(method, path, headers, body) -> int`` picks the answer's status."""

    def __init__(self, verify=None):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.verify = verify
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                entry = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                         "header_names": list(self.headers.keys()), "body": body}
                status = receiver.verify(entry) if receiver.verify else 200
                entry["answered"] = status
                with receiver.lock:
                    receiver.requests.append(entry)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def got(self) -> list[dict]:
        with self.lock:
            return list(self.requests)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate, timeout: float = WAIT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def independent_meta_signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def independent_nx_sign(ak: str, action: str, biz: str, ts: str, raw: bytes, secret: str) -> str:
    text = f"accessKey={ak}&action={action}&bizType={biz}&ts={ts}".encode() + b"&body=" + raw + \
        f"&accessSecret={secret}".encode()
    return hashlib.md5(text).hexdigest()


def dead_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---------------------------------------------------------------------------
# scenarios: every change happens at scenario time 60 s (tests call advance(61))

WABA = "102000000000001"

META_YAML = f"""
credentials:
  - {{access_key_id: app-1, access_key_secret: token-1, qps: null}}
spaces:
  - space_id: "{WABA}"
    access_key_id: app-1
    waba: {{id: "{WABA}", name: Shop, account_review_status: APPROVED}}
    numbers:
      - phone_number: "15550000001"
        id: "106000000000001"
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10K
        timeline:
          - {{at: 60, set: {{status: FLAGGED}}}}
      - phone_number: "15550000002"
        id: "106000000000002"
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10K
        whatsapp_business_manager_messaging_limit: TIER_10K
        timeline:
          - {{at: 60, set: {{messaging_limit_tier: TIER_1K, whatsapp_business_manager_messaging_limit: TIER_2K}}}}
      - phone_number: "15550000003"
        id: "106000000000003"
        verified_name: Shop Three
        status: CONNECTED
        quality_rating: GREEN
        name_status: PENDING_REVIEW
        timeline:
          - {{at: 60, set: {{name_status: APPROVED}}}}
      - phone_number: "15550000004"
        id: "106000000000004"
        status: CONNECTED
        quality_rating: GREEN
        timeline:
          - {{at: 60, set: {{status: BANNED}}}}
      - phone_number: "15550000005"
        id: "106000000000005"
        status: CONNECTED
        quality_rating: GREEN
        timeline:
          - {{at: 60, set: {{quality_rating: YELLOW}}}}
"""


def meta_events(requests: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for req in requests:
        payload = json.loads(req["body"])
        for entry in payload["entry"]:
            for change in entry["changes"]:
                out.append((change["field"], change["value"]))
    return out


# ---------------------------------------------------------------------------
# Meta


def test_meta_pushes_signed_events_for_each_kind_of_change():
    with Receiver() as rx, MetaEmulator(loads_scenario(META_YAML)) as emu:
        emu.set_webhook(rx.url + "/webhooks/meta", secret=APP_SECRET)
        emu.advance(61)
        # FLAGGED, DOWNGRADE, business_capability_update, name update, account_update (ban)
        wait_for(lambda: len(rx.got()) >= 5, what="five Meta events")
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        got = rx.got()
        for req in got:
            assert req["method"] == "POST" and req["path"] == "/webhooks/meta"
            assert req["headers"]["Content-Type"] == "application/json"
            assert req["headers"]["X-Hub-Signature-256"] == independent_meta_signature(APP_SECRET, req["body"])
            payload = json.loads(req["body"])
            assert payload["object"] == "whatsapp_business_account"
            assert len(payload["entry"]) == 1 and payload["entry"][0]["id"] == WABA
            assert isinstance(payload["entry"][0]["time"], int)
        events = meta_events(got)
        by = {(f, v.get("display_phone_number"), v.get("event")): v for f, v in events}
        assert ("phone_number_quality_update", "15550000001", "FLAGGED") in by
        assert by[("phone_number_quality_update", "15550000001", "FLAGGED")]["current_limit"] == "TIER_10K"
        down = by[("phone_number_quality_update", "15550000002", "DOWNGRADE")]
        assert down["old_limit"] == "TIER_10K" and down["current_limit"] == "TIER_1K"
        assert down["max_daily_conversations_per_business"] == "TIER_2K"
        assert ("business_capability_update", None, None) in by
        assert by[("business_capability_update", None, None)] == {"max_daily_conversations_per_business": "TIER_2K"}
        name = by[("phone_number_name_update", "15550000003", None)]
        assert name["decision"] == "APPROVED" and name["requested_verified_name"] == "Shop Three"
        ban = [v for f, v in events if f == "account_update"]
        assert ban == [{"phone_number": "15550000004", "event": "DISABLED_UPDATE",
                        "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": ban[0]["ban_info"]["waba_ban_date"]}}]
        # GREEN -> YELLOW carries no Meta event (the event would not carry the rating)
        assert not any(v.get("display_phone_number") == "15550000005" for _, v in events)
        assert len(events) == 5

        sent = emu.webhooks_sent()
        assert len(sent) == 5 and all(r["status"] == "delivered" and r["http_status"] == 200 for r in sent)
        flagged = next(r for r in sent if r["event"] == "FLAGGED")
        assert flagged["field"] == "phone_number_quality_update" and flagged["phone_number"] == "15550000001"
        assert flagged["space_id"] == WABA and flagged["fault"] is None
        assert [(c["field"], c["old"], c["new"]) for c in flagged["changes"]] == [("status", "CONNECTED", "FLAGGED")]
        for r in sent:
            assert r["queued_monotonic"] <= r["sent_monotonic"] <= r["delivered_monotonic"]
            assert r["queued_wall"] <= r["sent_wall"] <= r["delivered_wall"]
            assert len(r["attempts"]) == 1 and r["attempts"][0]["status"] == 200
        # the YELLOW change is still recorded as a state change
        changes = {(c["phone_number"], c["field"]): c for c in emu.state_changes()}
        assert changes[("15550000005", "quality_rating")]["new"] == "YELLOW"
        assert changes[("15550000004", "health")]["new"] == "BLOCKED"


def test_meta_fast_timeline_without_advance():
    yaml = f"""
credentials:
  - {{access_key_id: app-1, access_key_secret: token-1}}
spaces:
  - space_id: "{WABA}"
    access_key_id: app-1
    waba: {{id: "{WABA}"}}
    numbers:
      - phone_number: "15550000001"
        status: CONNECTED
        quality_rating: GREEN
        timeline:
          - {{at: 300ms, set: {{quality_rating: RED}}}}
          - {{at: 600ms, set: {{quality_rating: GREEN}}}}
"""
    with Receiver() as rx, MetaEmulator(loads_scenario(yaml)) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)
        wait_for(lambda: len(rx.got()) >= 2, what="FLAGGED then UNFLAGGED")
        assert [v["event"] for _, v in meta_events(rx.got())] == ["FLAGGED", "UNFLAGGED"]
        quality = [c for c in emu.state_changes() if c["field"] == "quality_rating"]
        assert [(c["old"], c["new"]) for c in quality] == [("GREEN", "RED"), ("RED", "GREEN")]
        for c in quality:
            assert c["wall"] <= c["observed_wall"] and c["monotonic"] <= c["observed_monotonic"]
        assert quality[0]["scenario_time"] == pytest.approx(0.3) and quality[1]["scenario_time"] == pytest.approx(0.6)


def test_meta_waba_review_and_health_events():
    yaml = f"""
credentials:
  - {{access_key_id: app-1, access_key_secret: token-1}}
spaces:
  - space_id: "{WABA}"
    access_key_id: app-1
    waba:
      id: "{WABA}"
      account_review_status: APPROVED
      timeline:
        - {{at: 60, set: {{account_review_status: PENDING}}}}
    numbers:
      - {{phone_number: "15550000001", status: CONNECTED, quality_rating: GREEN}}
"""
    with Receiver() as rx, MetaEmulator(loads_scenario(yaml)) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= 2, what="review and restriction events")
        events = meta_events(rx.got())
        assert ("account_review_update", {"decision": "PENDING"}) in events
        restriction = [v for f, v in events if f == "account_update"]
        assert restriction[0]["event"] == "ACCOUNT_RESTRICTION" and restriction[0]["phone_number"] == "15550000001"
        assert restriction[0]["restriction_info"][0]["restriction_type"] == "RESTRICTED_BIZ_INITIATED_MESSAGING"
        # an override takes effect at once, and the change is timed at the set_number call
        before = time.time()
        emu.set_number(WABA, "15550000001", can_send_message="BLOCKED")
        wait_for(lambda: any(v.get("event") == "ACCOUNT_VIOLATION" for _, v in meta_events(rx.got())),
                 what="ACCOUNT_VIOLATION")
        change = [c for c in emu.state_changes() if c["field"] == "health"][-1]
        assert change["new"] == "BLOCKED" and before <= change["wall"] <= change["observed_wall"]


# ---------------------------------------------------------------------------
# NxCloud

NX_YAML = """
credentials:
  - {access_key_id: nx-ak-1, access_key_secret: nx-secret-1}
spaces:
  - space_id: app-key-1
    access_key_id: nx-ak-1
    waba: {id: "209000000000001"}
    numbers:
      - phone_number: "8613800000001"
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_1K
        verified_name: 牛小信
        timeline:
          - {at: 60, set: {quality_rating: RED, messaging_limit_tier: TIER_10K}}
"""


def test_nxcloud_pushes_signed_envelopes():
    with Receiver() as rx, NxCloudEmulator(loads_scenario(NX_YAML)) as emu:
        emu.set_webhook(rx.url + "/webhooks/nxcloud")
        before_ms = int(time.time() * 1000)
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= 2, what="FLAGGED and UPGRADE")
        got = rx.got()
        events = []
        for req in got:
            h = req["headers"]
            assert req["method"] == "POST" and req["path"] == "/webhooks/nxcloud"
            assert h["Content-Type"] == "application/json"
            assert h["accessKey"] == "nx-ak-1" and h["bizType"] == "2"
            assert h["action"] == "phone_number_quality_update"
            assert {"accessKey", "ts", "bizType", "action", "sign"} <= set(req["header_names"])   # case kept
            assert int(h["ts"]) >= before_ms - 1000
            assert h["sign"] == independent_nx_sign("nx-ak-1", h["action"], "2", h["ts"], req["body"], "nx-secret-1")
            payload = json.loads(req["body"].decode("utf-8"))
            assert payload["field"] == "phone_number_quality_update"
            value = payload["value"]
            assert value["business_phone"] == "8613800000001" and value["wabaId"] == "209000000000001"
            assert isinstance(value["time"], int) and value["current_limit"] == "TIER_10K"
            events.append(value["event"])
        assert sorted(events) == ["FLAGGED", "UPGRADE"]
        assert all(r["status"] == "delivered" for r in emu.webhooks_sent())


def test_nxcloud_forged_signature_is_refused_by_a_checking_receiver():
    def verify(entry):
        h = entry["headers"]
        good = independent_nx_sign(h["accessKey"], h["action"], h["bizType"], h["ts"], entry["body"], "nx-secret-1")
        return 200 if hmac.compare_digest(good, h["sign"]) else 401

    scenario = loads_scenario(NX_YAML)
    with Receiver(verify) as rx, NxCloudEmulator(scenario) as emu:
        emu.set_webhook(rx.url, retries=0)
        emu.inject(Fault(kind="webhook_bad_signature", phone_number="8613800000001", count=1))
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= 2, what="two events")
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        answered = sorted(r["answered"] for r in rx.got())
        assert answered == [200, 401]
        sent = emu.webhooks_sent()
        forged = [r for r in sent if r["fault"] == "webhook_bad_signature"]
        assert len(forged) == 1 and forged[0]["status"] == "failed" and forged[0]["http_status"] == 401
        assert [r["status"] for r in sent if r["fault"] is None] == ["delivered"]


# ---------------------------------------------------------------------------
# Kaleyra

KALEYRA_YAML = """
credentials:
  - {access_key_id: HXAP1600000097IN, access_key_secret: kaleyra-key}
spaces:
  - space_id: "109000000000123"
    access_key_id: HXAP1600000097IN
    waba: {id: "109000000000123", account_review_status: APPROVED}
    numbers:
      - phone_number: "919876500001"
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10K
        name_status: PENDING_REVIEW
        timeline:
          - {at: 60, set: {status: FLAGGED, name_status: APPROVED}}
          - {at: 120, set: {status: CONNECTED, messaging_limit_tier: TIER_1K}}
"""


@pytest.mark.parametrize("path", ["/webhooks/kaleyra?token=XYZ", "/webhooks/kaleyra"])
def test_kaleyra_sends_get_with_query_params(path):
    with Receiver() as rx, KaleyraEmulator(loads_scenario(KALEYRA_YAML)) as emu:
        emu.set_webhook(rx.url + path)
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= 1, what="FLAGGED")
        emu.advance(60)
        wait_for(lambda: len(rx.got()) >= 3, what="UNFLAGGED and DOWNGRADE")
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        got = rx.got()
        assert len(got) == 3            # the name change has no Kaleyra webhook
        seen = []
        for req in got:
            assert req["method"] == "GET" and req["body"] == b""
            parts = urlsplit(req["path"])
            assert parts.path == "/webhooks/kaleyra"
            query = parse_qs(parts.query, keep_blank_values=True)
            if "token" in path:
                assert query.pop("token") == ["XYZ"]
                assert parts.query.startswith("token=XYZ&display_phone_number=")
            assert set(query) == {"display_phone_number", "event", "current_limit"}
            assert query["display_phone_number"] == ["919876500001"]
            seen.append((query["event"][0], query["current_limit"][0]))
        assert seen[0] == ("FLAGGED", "TIER_10K")
        assert sorted(seen[1:]) == [("DOWNGRADE", "TIER_1K"), ("UNFLAGGED", "TIER_1K")]
        records = emu.webhooks_sent()
        assert all(r["method"] == "GET" and r["body"] is None for r in records)
        if "token" in path:
            assert all("token=%2A%2A%2A" in r["url"] or "token=***" in r["url"] for r in records)
            assert not any("XYZ" in r["url"] for r in records)


def test_kaleyra_forged_token_and_dropped_event():
    def verify(entry):
        query = parse_qs(urlsplit(entry["path"]).query)
        return 200 if query.get("token") == ["XYZ"] else 403

    with Receiver(verify) as rx, KaleyraEmulator(loads_scenario(KALEYRA_YAML)) as emu:
        emu.set_webhook(rx.url + "/hook?token=XYZ", retries=0)
        emu.inject(Fault(kind="webhook_bad_signature", count=1))
        emu.inject(Fault(kind="webhook_drop", from_=100))
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= 1, what="the forged FLAGGED")
        emu.advance(60)
        wait_for(lambda: len(emu.webhooks_sent()) >= 3, what="the dropped events' records")
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        assert [r["answered"] for r in rx.got()] == [403]
        records = emu.webhooks_sent()
        assert records[0]["fault"] == "webhook_bad_signature" and records[0]["status"] == "failed"
        assert [r["status"] for r in records[1:]] == ["dropped", "dropped"]
        assert all(r["sent_wall"] is None for r in records[1:])


# ---------------------------------------------------------------------------
# without a webhook, failures, configuration


@pytest.mark.parametrize("cls,yaml,phone", [(MetaEmulator, META_YAML, "15550000001"),
                                            (NxCloudEmulator, NX_YAML, "8613800000001"),
                                            (KaleyraEmulator, KALEYRA_YAML, "919876500001"),
                                            (CamsEmulator, NX_YAML, "8613800000001")])
def test_state_changes_are_recorded_without_a_webhook(cls, yaml, phone):
    with cls(loads_scenario(yaml)) as emu:
        assert emu.state_changes() == []
        emu.advance(61)
        changes = wait_for(lambda: [c for c in emu.state_changes() if c["phone_number"] == phone],
                           what="state changes")
        for change in changes:
            assert change["scenario_time"] == 60.0
            assert set(change) == {"wall", "monotonic", "scenario_time", "observed_wall", "observed_monotonic",
                                   "space_id", "phone_number", "field", "old", "new"}
            assert change["wall"] <= change["observed_wall"]
        assert emu.webhooks_sent() == []


def test_dead_receiver_never_crashes_the_emulator():
    scenario = loads_scenario(META_YAML)
    with MetaEmulator(scenario) as emu:
        emu.set_webhook(f"http://127.0.0.1:{dead_port()}/hook", secret=APP_SECRET, timeout=0.5, retries=1,
                        backoff=0.05)
        emu.advance(61)
        wait_for(lambda: len(emu.webhooks_sent()) >= 5 and emu.webhooks_idle(), what="the failed deliveries")
        records = emu.webhooks_sent()
        assert all(r["status"] == "failed" and len(r["attempts"]) == 2 for r in records)
        assert all(a["status"] is None and a["error"] for r in records for a in r["attempts"])
        # the emulator still answers, and still watches
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        conn.request("GET", f"/v24.0/{WABA}/phone_numbers", headers={"Authorization": "Bearer token-1"})
        assert conn.getresponse().status == 200
        conn.close()
        emu.set_number(WABA, "15550000005", quality_rating="RED")
        wait_for(lambda: len(emu.webhooks_sent()) >= 6, what="a new event after the failures")


def test_a_receiver_that_hangs_is_timed_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)                 # accepts connections, never answers
    try:
        with MetaEmulator(loads_scenario(META_YAML)) as emu:
            emu.set_webhook(f"http://127.0.0.1:{listener.getsockname()[1]}/", secret=APP_SECRET, timeout=0.2,
                            retries=0)
            emu.advance(61)
            wait_for(lambda: len(emu.webhooks_sent()) >= 5 and emu.webhooks_idle(), what="timeouts")
            assert all(r["status"] == "failed" for r in emu.webhooks_sent())
    finally:
        listener.close()


def test_retries_until_the_receiver_recovers():
    answers = iter([503, 500])

    def verify(entry):
        return next(answers, 200)

    yaml = META_YAML.split("      - phone_number: \"15550000002\"")[0]     # only the FLAGGED number
    with Receiver(verify) as rx, MetaEmulator(loads_scenario(yaml)) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET, retries=2, backoff=0.05)
        emu.advance(61)
        wait_for(lambda: emu.webhooks_sent() and emu.webhooks_sent()[0]["status"] == "delivered", what="delivery")
        record = emu.webhooks_sent()[0]
        assert [a["status"] for a in record["attempts"]] == [503, 500, 200]
        assert [r["answered"] for r in rx.got()] == [503, 500, 200]
        assert len({r["body"] for r in rx.got()}) == 1        # the same bytes each time


def test_meta_forged_signature_and_faults_never_touch_answers():
    def verify(entry):
        good = independent_meta_signature(APP_SECRET, entry["body"])
        return 200 if hmac.compare_digest(good, entry["headers"].get("X-Hub-Signature-256", "")) else 403

    scenario = loads_scenario(META_YAML + """
faults:
  - {kind: webhook_bad_signature, phone_number: "15550000001"}
  - {kind: webhook_drop, action: business_capability_update}
""")
    with Receiver(verify) as rx, MetaEmulator(scenario) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET, retries=0)
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        conn.request("GET", f"/v24.0/{WABA}/phone_numbers", headers={"Authorization": "Bearer token-1"})
        assert conn.getresponse().status == 200          # webhook faults never alter an answer
        conn.close()
        emu.advance(61)
        wait_for(lambda: len(emu.webhooks_sent()) >= 5 and emu.webhooks_idle(), what="events")
        by_event = {(r["field"], r["event"]): r for r in emu.webhooks_sent()}
        assert by_event[("phone_number_quality_update", "FLAGGED")]["http_status"] == 403
        assert by_event[("business_capability_update", None)]["status"] == "dropped"
        assert sorted(r["answered"] for r in rx.got()) == [200, 200, 200, 403]


def test_set_webhook_api():
    meta = MetaEmulator(loads_scenario(META_YAML))
    with pytest.raises(ValueError, match="secret"):
        meta.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(ValueError, match="http"):
        meta.set_webhook("ftp://example/hook", secret="s")
    meta.set_webhook("http://127.0.0.1:9/hook", secret="s")
    assert meta.webhook_url == "http://127.0.0.1:9/hook"
    meta.set_webhook(None)
    assert meta.webhook_url is None
    with pytest.raises(ValueError, match="no secret"):
        NxCloudEmulator(loads_scenario(NX_YAML)).set_webhook("http://127.0.0.1:9/", secret="s")
    with pytest.raises(ValueError, match="no secret"):
        KaleyraEmulator(loads_scenario(KALEYRA_YAML)).set_webhook("http://127.0.0.1:9/", secret="s")
    with pytest.raises(NotImplementedError):
        CamsEmulator(loads_scenario(NX_YAML)).set_webhook("http://127.0.0.1:9/")
    # the fault kinds parse with selectors and windows; unknown kinds still fail with the key path
    scenario = loads_scenario("""
faults:
  - {kind: webhook_drop, phone_number: "1555", from: 10, until: 20, probability: 0.5}
  - {kind: webhook_bad_signature, action: phone_number_quality_update, count: 2}
""")
    assert [f.kind for f in scenario.faults] == ["webhook_drop", "webhook_bad_signature"]
    with pytest.raises(ScenarioError) as info:
        loads_scenario("faults: [{kind: webhook_delay}]")
    assert info.value.path == "faults[0].kind" and "webhook_drop" in info.value.message
    with pytest.raises(ScenarioError):
        loads_scenario("faults: [{kind: webhook_drop, code: X}]")


def test_standalone_runner_pushes_meta_webhooks(tmp_path):
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(META_YAML.replace("at: 60", "at: 1"), encoding="utf-8")
    secret_file = tmp_path / "secret"
    secret_file.write_text(APP_SECRET + "\n", encoding="utf-8")
    with Receiver() as rx:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulators", "--provider", "meta", "--scenario", str(scenario_file),
             "--listen", "127.0.0.1:0", "--webhook-url", rx.url + "/hook", "--webhook-secret-file",
             str(secret_file), "--log-level", "WARNING"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            assert proc.stdout.readline().startswith("Meta emulator listening on http://127.0.0.1:")
            wait_for(lambda: len(rx.got()) >= 5, what="webhooks from the standalone emulator")
            for req in rx.got():
                assert req["headers"]["X-Hub-Signature-256"] == independent_meta_signature(APP_SECRET, req["body"])
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert APP_SECRET not in " ".join(proc.args)


def test_standalone_runner_refuses_bad_webhook_options(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "emulators", "--listen", "127.0.0.1:0", *args],
                              cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})

    result = run("--provider", "meta", "--webhook-url", "http://127.0.0.1:9/")
    assert result.returncode == 2 and "secret" in result.stderr
    result = run("--provider", "cams", "--webhook-url", "http://127.0.0.1:9/")
    assert result.returncode == 2 and "no webhooks" in result.stderr
    result = run("--provider", "meta", "--webhook-url", "http://127.0.0.1:9/",
                 "--webhook-secret-file", str(tmp_path / "missing"))
    assert result.returncode == 2 and "cannot read" in result.stderr
