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
from emulators.scenario import Fault, ScenarioError, load_builtin_scenario, loads_scenario
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
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
                entry = {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "header_names": list(self.headers.keys()),
                    "body": body,
                }
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


def independent_meta_signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def independent_nx_sign(ak: str, action: str, biz: str, ts: str, raw: bytes, secret: str) -> str:
    text = (
        f"accessKey={ak}&action={action}&bizType={biz}&ts={ts}".encode()
        + b"&body="
        + raw
        + f"&accessSecret={secret}".encode()
    )
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
BUSINESS = "524000000000001"

# one token (app-1, token-1) owning one WABA; what follows is the space's remaining keys
META_PRELUDE = f"""
credentials:
  - {{access_key_id: app-1, access_key_secret: token-1, qps: null}}
spaces:
  - space_id: "{WABA}"
    access_key_id: app-1
"""

META_YAML = (
    META_PRELUDE
    + f"""    waba:
      id: "{WABA}"
      name: Shop
      account_review_status: APPROVED
      business_id: "{BUSINESS}"
      portfolio_messaging_limit: 100000
      timeline:
        - at: 60
          set:
            portfolio_messaging_limit: -1
            restrictions:
              - {{restriction_type: RESTRICTED_BIZ_INITIATED_MESSAGING, duration: 10m}}
              - {{restriction_type: RESTRICTED_ADD_PHONE_NUMBER_ACTION, duration: 1h,
                 remediation: "Review the policy enforcement notice."}}
            ban_state: SCHEDULE_FOR_DISABLE
            ban_date: "April 17, 2025"
            violation_type: ADULT
    numbers:
      - phone_number: "15550000001"
        id: "106000000000001"
        status: CONNECTED
        quality_rating: GREEN
        throughput_level: STANDARD
        timeline:
          - {{at: 60, set: {{throughput_level: HIGH}}}}
      - phone_number: "15550000002"
        id: "106000000000002"
        status: PENDING
        present: false
        timeline:
          - {{at: 60, set: {{present: true}}}}
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
        messaging_limit_tier: TIER_10K
        timeline:
          - {{at: 60, set: {{quality_rating: RED}}}}
      - phone_number: "15550000005"
        id: "106000000000005"
        status: CONNECTED
        quality_rating: GREEN
        timeline:
          - {{at: 60, set: {{quality_rating: YELLOW}}}}
"""
)
META_EVENTS = 7  # THROUGHPUT_UPGRADE, ONBOARDING, name update, capability, restriction, ban, violation

# one event only: a throughput upgrade
META_ONE_YAML = (
    META_PRELUDE
    + f"""    waba: {{id: "{WABA}", portfolio_messaging_limit: TIER_UNLIMITED}}
    numbers:
      - phone_number: "15550000001"
        status: CONNECTED
        timeline: [{{at: 60, set: {{throughput_level: HIGH}}}}]
"""
)


def meta_events(requests: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for req in requests:
        payload = json.loads(req["body"])
        for entry in payload["entry"]:
            for change in entry["changes"]:
                out.append((change["field"], change["value"]))
    return out


def check_meta_envelope(req: dict, secret: str = APP_SECRET) -> dict:
    """A signed Meta delivery: returns its one change ``{field, value}`` after checking the envelope."""
    assert req["method"] == "POST"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["X-Hub-Signature-256"] == independent_meta_signature(secret, req["body"])
    payload = json.loads(req["body"])
    assert set(payload) == {"object", "entry"} and payload["object"] == "whatsapp_business_account"
    [entry] = payload["entry"]
    assert set(entry) == {"id", "time", "changes"} and entry["id"] == WABA and isinstance(entry["time"], int)
    [change] = entry["changes"]
    assert set(change) == {"field", "value"}
    return change


def meta_scenario(
    waba: str,
    numbers: str = '      - {phone_number: "15550000001", id: "106000000000001", status: CONNECTED}',
    extra: str = "",
):
    """One token, one WABA (``waba``: its YAML lines after ``id``, indented 6), its ``numbers`` (indented 6)."""
    return loads_scenario(
        META_PRELUDE
        + f"""{extra}    waba:
      id: "{WABA}"
{waba}
    numbers:
{numbers}
"""
    )


def date_text(wall: float) -> str:
    """Meta's ``waba_ban_date`` style, e.g. ``April 17, 2025``, written here independently."""
    t = time.gmtime(wall)
    return f"{time.strftime('%B', t)} {t.tm_mday}, {t.tm_year}"


def graph_get(emu, target: str, token: str = "token-1") -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        conn.request("GET", target, headers={"Authorization": f"Bearer {token}"})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def waba_entity(emu, node: str, token: str = "token-1") -> dict:
    """The WABA entity of a node's ``health_status``."""
    health = graph_get(emu, f"/v24.0/{node}?fields=health_status", token)["health_status"]
    return next(e for e in health["entities"] if e["entity_type"] == "WABA")


# ---------------------------------------------------------------------------
# Meta


def test_meta_pushes_signed_current_events():
    with Receiver() as rx, MetaEmulator(loads_scenario(META_YAML)) as emu:
        emu.set_webhook(rx.url + "/webhooks/meta", secret=APP_SECRET)
        before = time.time()
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= META_EVENTS, what="the Meta events")
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        got = rx.got()
        assert all(req["path"] == "/webhooks/meta" for req in got)
        events = [(c["field"], c["value"]) for c in map(check_meta_envelope, got)]
        assert len(events) == META_EVENTS
        quality = sorted((v for f, v in events if f == "phone_number_quality_update"), key=lambda v: v["event"])
        assert quality == [
            {
                "display_phone_number": "15550000002",
                "event": "ONBOARDING",
                "current_limit": "TIER_UNLIMITED",
                "max_daily_conversations_per_business": "TIER_UNLIMITED",
            },
            {
                "display_phone_number": "15550000001",
                "event": "THROUGHPUT_UPGRADE",
                "current_limit": "TIER_UNLIMITED",
                "max_daily_conversations_per_business": "TIER_UNLIMITED",
            },
        ]
        assert (
            "business_capability_update",
            {"max_daily_conversations_per_business": -1, "max_phone_numbers_per_waba": 25},
        ) in events
        name = next(v for f, v in events if f == "phone_number_name_update")
        assert name == {
            "display_phone_number": "15550000003",
            "decision": "APPROVED",
            "requested_verified_name": "Shop Three",
            "rejection_reason": None,
        }
        account = {v["event"]: v for f, v in events if f == "account_update"}
        assert set(account) == {"ACCOUNT_RESTRICTION", "DISABLED_UPDATE", "ACCOUNT_VIOLATION"}
        restriction = account["ACCOUNT_RESTRICTION"]
        assert set(restriction) == {"event", "restriction_info"}  # no phone number: WABA-level
        first, second = restriction["restriction_info"]
        assert (
            set(first) == {"restriction_type", "expiration"}
            and first["restriction_type"] == "RESTRICTED_BIZ_INITIATED_MESSAGING"
        )
        assert second == {
            "restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION",
            "expiration": second["expiration"],
            "remediation": "Review the policy enforcement notice.",
        }
        # the change took effect at scenario 60 s, i.e. about 1 s before advance(61) returned
        assert before - 2 <= first["expiration"] - 600 <= time.time() and second["expiration"] - first[
            "expiration"
        ] in (2999, 3000, 3001)
        assert account["DISABLED_UPDATE"] == {
            "event": "DISABLED_UPDATE",
            "ban_info": {"waba_ban_state": "SCHEDULE_FOR_DISABLE", "waba_ban_date": "April 17, 2025"},
        }
        assert account["ACCOUNT_VIOLATION"] == {
            "event": "ACCOUNT_VIOLATION",
            "violation_info": {"violation_type": "ADULT"},
        }
        # a quality change alone (GREEN -> RED, GREEN -> YELLOW) sends nothing, and no legacy event exists
        assert not any(v.get("display_phone_number") in ("15550000004", "15550000005") for _, v in events)
        assert not {v.get("event") for _, v in events} & {"FLAGGED", "UNFLAGGED", "UPGRADE", "DOWNGRADE"}

        sent = emu.webhooks_sent()
        assert len(sent) == META_EVENTS and all(r["status"] == "delivered" and r["http_status"] == 200 for r in sent)
        upgrade = next(r for r in sent if r["event"] == "THROUGHPUT_UPGRADE")
        assert upgrade["field"] == "phone_number_quality_update" and upgrade["phone_number"] == "15550000001"
        assert upgrade["space_id"] == WABA and upgrade["fault"] is None
        assert [(c["field"], c["old"], c["new"]) for c in upgrade["changes"]] == [
            ("throughput_level", "STANDARD", "HIGH")
        ]
        assert all(
            r["phone_number"] is None for r in sent if r["field"] in ("account_update", "business_capability_update")
        )
        for r in sent:
            assert r["queued_monotonic"] <= r["sent_monotonic"] <= r["delivered_monotonic"]
            assert r["queued_wall"] <= r["sent_wall"] <= r["delivered_wall"]
            assert len(r["attempts"]) == 1 and r["attempts"][0]["status"] == 200
        # the quality changes are still recorded as state changes; the limit and health do not move with RED
        changes = {(c["phone_number"], c["field"]): c for c in emu.state_changes()}
        assert changes[("15550000004", "quality_rating")]["new"] == "RED"
        assert changes[("15550000005", "quality_rating")]["new"] == "YELLOW"
        assert ("15550000004", "messaging_limit_tier") not in changes
        assert changes[("15550000004", "health")]["new"] == "LIMITED"  # the WABA's restriction, not RED
        assert changes[(None, "restrictions")]["old"] == []


def test_meta_quality_updates_carry_no_deprecated_fields_when_switched_off():
    yaml = META_YAML.replace(
        "    access_key_id: app-1\n    waba:",
        "    access_key_id: app-1\n    extra: {deprecated_limit_fields: false}\n    waba:",
    )
    with Receiver() as rx, MetaEmulator(loads_scenario(yaml)) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= META_EVENTS, what="the Meta events")
        quality = [v for f, v in meta_events(rx.got()) if f == "phone_number_quality_update"]
        assert sorted(v["event"] for v in quality) == ["ONBOARDING", "THROUGHPUT_UPGRADE"]
        assert all(set(v) == {"display_phone_number", "event", "max_daily_conversations_per_business"} for v in quality)


def test_meta_legacy_switch_sends_the_relays_forms():
    scenario = meta_scenario(
        "",
        """      - phone_number: "15550000001"
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10K
        timeline:
          - {at: 300ms, set: {quality_rating: RED}}
          - {at: 600ms, set: {quality_rating: GREEN, messaging_limit_tier: TIER_1K}}""",
        extra="    extra: {legacy_quality_events: true}\n",
    )
    with Receiver() as rx, MetaEmulator(scenario) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)
        wait_for(lambda: len(rx.got()) >= 3, what="FLAGGED, UNFLAGGED and DOWNGRADE")
        events = [v for _, v in meta_events(rx.got())]
        assert events[0] == {"display_phone_number": "15550000001", "event": "FLAGGED", "current_limit": "TIER_10K"}
        assert sorted(events[1:], key=lambda v: v["event"]) == [
            {
                "display_phone_number": "15550000001",
                "event": "DOWNGRADE",
                "old_limit": "TIER_10K",
                "current_limit": "TIER_1K",
            },
            {"display_phone_number": "15550000001", "event": "UNFLAGGED", "current_limit": "TIER_1K"},
        ]
        for req in rx.got():
            check_meta_envelope(req)
        quality = [c for c in emu.state_changes() if c["field"] == "quality_rating"]
        assert [(c["old"], c["new"]) for c in quality] == [("GREEN", "RED"), ("RED", "GREEN")]
        for c in quality:
            assert c["wall"] <= c["observed_wall"] and c["monotonic"] <= c["observed_monotonic"]
        assert quality[0]["scenario_time"] == pytest.approx(0.3) and quality[1]["scenario_time"] == pytest.approx(0.6)


def test_meta_fast_timeline_without_legacy_switch_sends_nothing():
    scenario = meta_scenario(
        "",
        """      - phone_number: "15550000001"
        status: CONNECTED
        quality_rating: GREEN
        timeline:
          - {at: 100ms, set: {quality_rating: RED}}
          - {at: 200ms, set: {quality_rating: GREEN, throughput_level: HIGH}}""",
    )
    with Receiver() as rx, MetaEmulator(scenario) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)
        wait_for(lambda: len(rx.got()) >= 1, what="the throughput upgrade")
        wait_for(
            lambda: len([c for c in emu.state_changes() if c["field"] == "quality_rating"]) == 2,
            what="both quality changes",
        )
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        assert [v["event"] for _, v in meta_events(rx.got())] == ["THROUGHPUT_UPGRADE"]


def test_meta_onboarding_when_a_number_goes_pending():
    with Receiver() as rx, MetaEmulator(loads_scenario(META_ONE_YAML)) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)
        emu.set_number(WABA, "15550000001", status="PENDING")
        wait_for(lambda: len(rx.got()) >= 1, what="ONBOARDING")
        emu.set_number(WABA, "15550000001", status="CONNECTED", quality_rating="RED")  # sends nothing
        wait_for(lambda: len([c for c in emu.state_changes() if c["field"] == "status"]) == 2, what="CONNECTED")
        emu.set_number(WABA, "15550000001", throughput_level="HIGH")  # a marker event
        wait_for(lambda: len(rx.got()) >= 2, what="THROUGHPUT_UPGRADE")
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        assert [check_meta_envelope(req)["value"]["event"] for req in rx.got()] == ["ONBOARDING", "THROUGHPUT_UPGRADE"]
        assert check_meta_envelope(rx.got()[0])["value"] == {
            "display_phone_number": "15550000001",
            "event": "ONBOARDING",
            "current_limit": "TIER_UNLIMITED",
            "max_daily_conversations_per_business": "TIER_UNLIMITED",
        }


def test_meta_waba_review_and_number_health_send_no_number_account_update():
    scenario = meta_scenario(
        """      account_review_status: APPROVED
      timeline:
        - {at: 60, set: {account_review_status: PENDING}}""",
        """      - {phone_number: "15550000001", status: CONNECTED, quality_rating: GREEN}
      - {phone_number: "15550000002", status: CONNECTED, quality_rating: GREEN,
         timeline: [{at: 60, set: {status: BANNED}}]}""",
    )
    with Receiver() as rx, MetaEmulator(scenario) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= 1, what="the review event")
        emu.set_number(WABA, "15550000001", can_send_message="BLOCKED")
        wait_for(
            lambda: [
                c
                for c in emu.state_changes()
                if c["field"] == "health" and c["new"] == "BLOCKED" and c["phone_number"] == "15550000001"
            ],
            what="the BLOCKED health change",
        )
        # an override of the WABA's restrictions starts now, and is told at once
        before = time.time()
        emu.set_waba(
            WABA, restrictions=[{"restriction_type": "RESTRICTED_CUSTOMER_INITIATED_MESSAGING", "duration": "2h"}]
        )
        wait_for(lambda: len(rx.got()) >= 2, what="the restriction")
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        events = meta_events(rx.got())
        assert events[0] == ("account_review_update", {"decision": "PENDING"})
        assert events[1][0] == "account_update" and events[1][1]["event"] == "ACCOUNT_RESTRICTION"
        [info] = events[1][1]["restriction_info"]
        assert info["restriction_type"] == "RESTRICTED_CUSTOMER_INITIATED_MESSAGING"
        assert before + 7200 - 1 <= info["expiration"] <= time.time() + 7200
        assert len(events) == 2  # neither the BANNED status nor the BLOCKED health sends an account_update
        change = [c for c in emu.state_changes() if c["field"] == "restrictions"][-1]
        assert before <= change["wall"] <= change["observed_wall"]


def test_meta_restriction_expires_and_health_follows():
    scenario = meta_scenario("""      timeline:
        - {at: 60, set: {restrictions: [{restriction_type: RESTRICTED_BIZ_INITIATED_MESSAGING, duration: 5m}]}}
        - {at: 120, set: {restrictions: [{restriction_type: RESTRICTED_BIZ_INITIATED_MESSAGING, duration: 4m},
                                        {restriction_type: RESTRICTED_CUSTOMER_INITIATED_MESSAGING, duration: 1m}]}}
        - {at: 600, set: {restrictions: [{restriction_type: RESTRICTED_UTILITY_TEMPLATES, duration: 10m}]}}
        - {at: 660, set: {restrictions: []}}""")
    with Receiver() as rx, MetaEmulator(scenario) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)

        def health():
            top = graph_get(emu, "/v24.0/106000000000001?fields=health_status")["health_status"]
            return top["can_send_message"], top["entities"][1]

        def restrictions():
            return [c["new"] for c in emu.state_changes() if c["field"] == "restrictions"]

        assert health()[0] == "AVAILABLE"
        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= 1, what="the first restriction")
        state, waba = health()
        assert state == "LIMITED" and waba["entity_type"] == "WABA" and waba["can_send_message"] == "LIMITED"
        assert "RESTRICTED_BIZ_INITIATED_MESSAGING" in waba["additional_info"][0] and "errors" not in waba
        emu.advance(60)  # 121 s: both messaging restrictions -> nothing can be sent
        wait_for(lambda: len(rx.got()) >= 2, what="the second restriction")
        state, waba = health()
        assert state == "BLOCKED" and waba["can_send_message"] == "BLOCKED" and "additional_info" not in waba
        assert [e["error_code"] for e in waba["errors"]] == [368]
        second = meta_events(rx.got())[1][1]["restriction_info"]
        assert [r["restriction_type"] for r in second] == [
            "RESTRICTED_BIZ_INITIATED_MESSAGING",
            "RESTRICTED_CUSTOMER_INITIATED_MESSAGING",
        ]
        assert second[0]["expiration"] - second[1]["expiration"] in (179, 180, 181)
        emu.advance(60)  # 181 s: the one-minute restriction has expired (no event)
        wait_for(lambda: len(restrictions()) >= 3, what="the expiry")
        assert [r["restriction_type"] for r in restrictions()[-1]] == ["RESTRICTED_BIZ_INITIATED_MESSAGING"]
        assert health()[0] == "LIMITED"
        emu.advance(200)  # 381 s: past 120 + 4 min, nothing left
        wait_for(lambda: restrictions()[-1] == [], what="the last expiry")
        assert health()[0] == "AVAILABLE"
        emu.advance(240)  # 621 s: a new restriction arrives, then is lifted early at 660 s
        wait_for(lambda: len(rx.got()) >= 3, what="the third restriction")
        emu.advance(60)
        wait_for(lambda: restrictions()[-1] == [], what="the lift")
        assert health()[0] == "AVAILABLE"
        emu.set_waba(WABA, violation_type="SCAM")  # a marker: every earlier event was sent before it
        wait_for(lambda: len(rx.got()) >= 4, what="the marker")
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        # Meta documents no event for an expiry or a lift
        assert [v["event"] for _, v in meta_events(rx.got())] == ["ACCOUNT_RESTRICTION"] * 3 + ["ACCOUNT_VIOLATION"]


def test_meta_ban_states_and_their_health():
    scenario = meta_scenario("""      timeline:
        - {at: 60, set: {ban_state: SCHEDULE_FOR_DISABLE, ban_after: 7d}}
        - {at: 120, set: {ban_state: DISABLE, ban_after: null}}
        - {at: 180, set: {ban_state: REINSTATE}}""")
    with Receiver() as rx, MetaEmulator(scenario) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)

        def waba_health():
            return graph_get(emu, f"/v24.0/{WABA}?fields=health_status")["health_status"]

        emu.advance(61)
        wait_for(lambda: len(rx.got()) >= 1, what="SCHEDULE_FOR_DISABLE")
        assert waba_health()["can_send_message"] == "AVAILABLE"  # scheduled, not yet disabled
        emu.advance(60)
        wait_for(lambda: len(rx.got()) >= 2, what="DISABLE")
        health = waba_health()
        assert health["can_send_message"] == "BLOCKED"
        [entity] = [e for e in health["entities"] if e["entity_type"] == "WABA"]
        [error] = entity["errors"]
        assert error["error_code"] == 368 and error["error_description"] and error["possible_solution"]
        emu.advance(60)
        wait_for(lambda: len(rx.got()) >= 3, what="REINSTATE")
        assert waba_health()["can_send_message"] == "AVAILABLE"
        bans = [v for _, v in meta_events(rx.got())]
        assert [b["ban_info"]["waba_ban_state"] for b in bans] == ["SCHEDULE_FOR_DISABLE", "DISABLE", "REINSTATE"]
        assert all(set(b) == {"event", "ban_info"} and b["event"] == "DISABLED_UPDATE" for b in bans)
        sent = [r["sent_wall"] for r in emu.webhooks_sent()]
        assert bans[0]["ban_info"]["waba_ban_date"] in {
            date_text(sent[0] - 2 + 7 * 86400),
            date_text(sent[0] + 7 * 86400),
        }
        assert bans[1]["ban_info"]["waba_ban_date"] in {date_text(sent[1] - 2), date_text(sent[1])}


PORTFOLIO_STEPS = [(60, "2000"), (120, "UNLIMITED"), (180, "TIER_250")]


def test_meta_portfolio_limit_forms_and_business_capability_update():
    # both WABAs belong to one business, whose portfolio limit changes at 60, 120 and 180 s
    changes = ", ".join(f"{{at: {at}, set: {{portfolio_messaging_limit: {limit}}}}}" for at, limit in PORTFOLIO_STEPS)
    portfolio = f"""      business_id: "{BUSINESS}"
      portfolio_messaging_limit: TIER_250
      timeline: [{changes}]
"""
    yaml = (
        META_PRELUDE
        + f"""    waba:
      id: "{WABA}"
{portfolio}      max_phone_numbers_per_business: 2
    numbers:
      - {{phone_number: "15550000001", id: "106000000000001", status: CONNECTED, messaging_limit_tier: TIER_1K}}
      - {{phone_number: "15550000002", id: "106000000000002", status: CONNECTED}}
  - space_id: "102000000000002"
    access_key_id: app-1
    waba:
      id: "102000000000002"
{portfolio}    numbers: [{{phone_number: "15550000003", id: "106000000000003", status: CONNECTED}}]
"""
    )
    with Receiver() as rx, MetaEmulator(loads_scenario(yaml)) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET)

        def limits():
            return {
                graph_get(emu, f"/v24.0/{node}?fields=whatsapp_business_manager_messaging_limit").get(
                    "whatsapp_business_manager_messaging_limit"
                )
                for node in ("106000000000001", "106000000000002", "106000000000003")
            }

        assert limits() == {"TIER_250"}  # every number of the portfolio reports its limit
        for step, tier in ((61, "TIER_2K"), (60, "TIER_UNLIMITED"), (60, "TIER_250")):
            count = len(rx.got())
            emu.advance(step)
            wait_for(
                lambda count=count: len(rx.got()) >= count + 2, what=f"the {tier} capability updates of both WABAs"
            )
            assert limits() == {tier}
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        entries = []
        for req in rx.got():
            payload = json.loads(req["body"])
            assert req["headers"]["X-Hub-Signature-256"] == independent_meta_signature(APP_SECRET, req["body"])
            [entry] = payload["entry"]
            [change] = entry["changes"]
            assert change["field"] == "business_capability_update"
            entries.append((entry["id"], change["value"]))
        values = [v for wid, v in entries if wid == WABA]
        assert values == [
            {"max_daily_conversations_per_business": 2000, "max_phone_numbers_per_waba": 25},
            {"max_daily_conversations_per_business": "UNLIMITED", "max_phone_numbers_per_waba": 25},
            {"max_daily_conversations_per_business": "TIER_250", "max_phone_numbers_per_business": 2},
        ]
        assert sorted(wid for wid, _ in entries) == [WABA] * 3 + ["102000000000002"] * 3
        # the deprecated per-number tier is left alone, and a number's limit changes send no quality event
        assert graph_get(emu, "/v23.0/106000000000001?fields=messaging_limit_tier")["messaging_limit_tier"] == "TIER_1K"


def test_meta_demo_shows_each_new_state_within_three_minutes():
    demo = load_builtin_scenario("demo-meta")
    market, outlet = (s.space_id for s in demo.spaces)
    token = demo.credentials[0].access_key_secret
    with Receiver() as rx, MetaEmulator(demo) as emu:
        emu.set_webhook(rx.url + "/webhooks/meta", secret=APP_SECRET)

        def events():
            out = []
            for req in rx.got():
                assert req["headers"]["X-Hub-Signature-256"] == independent_meta_signature(APP_SECRET, req["body"])
                [entry] = json.loads(req["body"])["entry"]
                [change] = entry["changes"]
                out.append((entry["id"], change["field"], change["value"]))
            return out

        def waba_state(waba):
            return waba_entity(emu, waba, token)["can_send_message"]

        before = time.time()
        emu.advance(61)  # restriction 45 s, violation 50 s, ban scheduled 60 s
        wait_for(lambda: len(events()) >= 3, what="the demo's first Meta events")
        after = time.time()
        emu.advance(30)  # portfolio limit raised at 75 s
        wait_for(lambda: len(events()) >= 4, what="the capability update")
        emu.advance(89)  # 180 s: nothing more until the restriction expires
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        got = {(waba, field, value.get("event")): value for waba, field, value in events()}
        assert set(got) == {
            (market, "account_update", "ACCOUNT_RESTRICTION"),
            (market, "account_update", "ACCOUNT_VIOLATION"),
            (market, "business_capability_update", None),
            (outlet, "account_update", "DISABLED_UPDATE"),
        }
        [restriction] = got[(market, "account_update", "ACCOUNT_RESTRICTION")]["restriction_info"]
        assert restriction["restriction_type"] == "RESTRICTED_BIZ_INITIATED_MESSAGING"
        # set at 45 s for 4 minutes, seen at 61 s: it ends 224 s after that moment, a countdown to watch
        assert before + 224 - 2 <= restriction["expiration"] <= after + 224
        assert got[(market, "business_capability_update", None)] == {
            "max_daily_conversations_per_business": 100000,
            "max_phone_numbers_per_waba": 25,
        }
        ban = got[(outlet, "account_update", "DISABLED_UPDATE")]["ban_info"]
        assert ban["waba_ban_state"] == "SCHEDULE_FOR_DISABLE"
        assert ban["waba_ban_date"] in {date_text(before - 2 + 30 * 86400), date_text(after + 30 * 86400)}
        assert waba_state(market) == "LIMITED"
        emu.advance(110)  # 290 s: the restriction has expired
        wait_for(
            lambda: any(c["field"] == "restrictions" and c["new"] == [] for c in emu.state_changes()),
            what="the restriction's expiry",
        )
        assert waba_state(market) == "AVAILABLE"
        emu.advance(15)  # 305 s: reinstated
        wait_for(lambda: len(events()) >= 5, what="REINSTATE")
        assert events()[-1][0] == outlet and events()[-1][2]["ban_info"]["waba_ban_state"] == "REINSTATE"


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
            assert {"accessKey", "ts", "bizType", "action", "sign"} <= set(req["header_names"])  # case kept
            assert int(h["ts"]) >= before_ms - 1000
            assert h["sign"] == independent_nx_sign("nx-ak-1", h["action"], "2", h["ts"], req["body"], "nx-secret-1")
            payload = json.loads(req["body"].decode("utf-8"))
            assert payload["field"] == "phone_number_quality_update"
            value = payload["value"]
            assert value["business_phone"] == "8613800000001" and value["wabaId"] == "209000000000001"
            assert isinstance(value["time"], int) and value["current_limit"] == "TIER_10K"
            events.append(value["event"])
        assert sorted(events) == ["FLAGGED", "UPGRADE"]
        # the receiver answered, but the sender records the answer after that: wait for it to settle
        wait_for(emu.webhooks_idle, what="deliveries to settle")
        sent = emu.webhooks_sent()
        assert sorted(r["event"] for r in sent) == ["FLAGGED", "UPGRADE"]
        assert all(r["status"] == "delivered" for r in sent), sent


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
        assert len(got) == 3  # the name change has no Kaleyra webhook
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


@pytest.mark.parametrize(
    "cls,yaml,phone",
    [
        (MetaEmulator, META_YAML, "15550000001"),
        (NxCloudEmulator, NX_YAML, "8613800000001"),
        (KaleyraEmulator, KALEYRA_YAML, "919876500001"),
        (CamsEmulator, NX_YAML, "8613800000001"),
    ],
)
def test_state_changes_are_recorded_without_a_webhook(cls, yaml, phone):
    with cls(loads_scenario(yaml)) as emu:
        assert emu.state_changes() == []
        emu.advance(61)
        changes = wait_for(lambda: [c for c in emu.state_changes() if c["phone_number"] == phone], what="state changes")
        for change in changes:
            assert change["scenario_time"] == 60.0
            assert set(change) == {
                "wall",
                "monotonic",
                "scenario_time",
                "observed_wall",
                "observed_monotonic",
                "space_id",
                "phone_number",
                "field",
                "old",
                "new",
            }
            assert change["wall"] <= change["observed_wall"]
        assert emu.webhooks_sent() == []


def test_dead_receiver_never_crashes_the_emulator():
    scenario = loads_scenario(META_YAML)
    with MetaEmulator(scenario) as emu:
        emu.set_webhook(f"http://127.0.0.1:{dead_port()}/hook", secret=APP_SECRET, timeout=0.5, retries=1, backoff=0.05)
        emu.advance(61)
        wait_for(lambda: len(emu.webhooks_sent()) >= META_EVENTS and emu.webhooks_idle(), what="the failed deliveries")
        records = emu.webhooks_sent()
        assert all(r["status"] == "failed" and len(r["attempts"]) == 2 for r in records)
        assert all(a["status"] is None and a["error"] for r in records for a in r["attempts"])
        # the emulator still answers, and still watches
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        conn.request("GET", f"/v24.0/{WABA}/phone_numbers", headers={"Authorization": "Bearer token-1"})
        assert conn.getresponse().status == 200
        conn.close()
        emu.set_number(WABA, "15550000005", throughput_level="HIGH")
        wait_for(lambda: len(emu.webhooks_sent()) >= META_EVENTS + 1, what="a new event after the failures")


def test_a_receiver_that_hangs_is_timed_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections, never answers
    try:
        with MetaEmulator(loads_scenario(META_YAML)) as emu:
            emu.set_webhook(f"http://127.0.0.1:{listener.getsockname()[1]}/", secret=APP_SECRET, timeout=0.2, retries=0)
            emu.advance(61)
            wait_for(lambda: len(emu.webhooks_sent()) >= META_EVENTS and emu.webhooks_idle(), what="timeouts")
            assert all(r["status"] == "failed" for r in emu.webhooks_sent())
    finally:
        listener.close()


def test_retries_until_the_receiver_recovers():
    answers = iter([503, 500])

    def verify(entry):
        return next(answers, 200)

    with Receiver(verify) as rx, MetaEmulator(loads_scenario(META_ONE_YAML)) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET, retries=2, backoff=0.05)
        emu.advance(61)
        wait_for(lambda: emu.webhooks_sent() and emu.webhooks_sent()[0]["status"] == "delivered", what="delivery")
        record = emu.webhooks_sent()[0]
        assert [a["status"] for a in record["attempts"]] == [503, 500, 200]
        assert [r["answered"] for r in rx.got()] == [503, 500, 200]
        assert len({r["body"] for r in rx.got()}) == 1  # the same bytes each time


def test_meta_forged_signature_and_faults_never_touch_answers():
    def verify(entry):
        good = independent_meta_signature(APP_SECRET, entry["body"])
        return 200 if hmac.compare_digest(good, entry["headers"].get("X-Hub-Signature-256", "")) else 403

    scenario = loads_scenario(
        META_YAML
        + """
faults:
  - {kind: webhook_bad_signature, phone_number: "15550000001"}
  - {kind: webhook_drop, action: business_capability_update}
"""
    )
    with Receiver(verify) as rx, MetaEmulator(scenario) as emu:
        emu.set_webhook(rx.url, secret=APP_SECRET, retries=0)
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        conn.request("GET", f"/v24.0/{WABA}/phone_numbers", headers={"Authorization": "Bearer token-1"})
        assert conn.getresponse().status == 200  # webhook faults never alter an answer
        conn.close()
        emu.advance(61)
        wait_for(lambda: len(emu.webhooks_sent()) >= META_EVENTS and emu.webhooks_idle(), what="events")
        by_event = {(r["field"], r["event"]): r for r in emu.webhooks_sent()}
        assert by_event[("phone_number_quality_update", "THROUGHPUT_UPGRADE")]["http_status"] == 403
        assert by_event[("business_capability_update", None)]["status"] == "dropped"
        assert sorted(r["answered"] for r in rx.got()) == [200] * (META_EVENTS - 2) + [403]


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
            [
                sys.executable,
                "-m",
                "emulators",
                "--provider",
                "meta",
                "--scenario",
                str(scenario_file),
                "--listen",
                "127.0.0.1:0",
                "--webhook-url",
                rx.url + "/hook",
                "--webhook-secret-file",
                str(secret_file),
                "--log-level",
                "WARNING",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            assert proc.stdout.readline().startswith("Meta emulator listening on http://127.0.0.1:")
            wait_for(lambda: len(rx.got()) >= META_EVENTS, what="webhooks from the standalone emulator")
            for req in rx.got():
                assert req["headers"]["X-Hub-Signature-256"] == independent_meta_signature(APP_SECRET, req["body"])
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert APP_SECRET not in " ".join(proc.args)


def test_standalone_runner_refuses_bad_webhook_options(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "emulators", "--listen", "127.0.0.1:0", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    result = run("--provider", "meta", "--webhook-url", "http://127.0.0.1:9/")
    assert result.returncode == 2 and "secret" in result.stderr
    result = run("--provider", "cams", "--webhook-url", "http://127.0.0.1:9/")
    assert result.returncode == 2 and "no webhooks" in result.stderr
    result = run(
        "--provider", "meta", "--webhook-url", "http://127.0.0.1:9/", "--webhook-secret-file", str(tmp_path / "missing")
    )
    assert result.returncode == 2 and "cannot read" in result.stderr
