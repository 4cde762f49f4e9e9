"""Facts only Meta's webhooks tell, through the real receiver, Poller, Store and state file:
WABA restrictions (until they expire), bans, violations, and a portfolio's new limit; and a restart."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from emulators.meta import MetaEmulator
from emulators.scenario import loads_scenario
from exporter.config import parse_config
from exporter.poller import Poller
from exporter.store import Store
from exporter.wabafacts import StateFile
from exporter.webhooks import WebhookManager
from tests.helpers import active_state, samples, value, wait_for
from tests.integration.test_integration_providers import META_SCENARIO
from tests.integration.test_webhooks import ENV, meta_signature

WABA = "1022900001"
BIZ = "RESTRICTED_BIZ_INITIATED_MESSAGING"


def config(endpoint: str = "https://graph.invalid"):
    return parse_config(
        f"""
accounts:
  - name: meta
    provider: meta
    endpoint: {endpoint}
    poll_interval: 1h
    credentials: {{app_id: "7001", access_token: "${{META}}"}}
    wabas: [{{waba_id: "{WABA}"}}]
webhooks:
  listen_address: "127.0.0.1:0"
  debounce: 1m
  meta: {{app_secret: "${{META_APP_SECRET}}", verify_token: "${{META_VERIFY_TOKEN}}"}}
""",
        env={**ENV, "META": "EAAmetaTOKENvalue0001"},
    )


class Exporter:
    """The poller, store and webhook receiver of one exporter process, on a state file."""

    def __init__(self, path, endpoint: str = "https://graph.invalid", start: bool = False):
        cfg = config(endpoint)
        self.store = Store()
        self.poller = Poller(cfg, self.store, state_file=StateFile(str(path)))
        self.webhooks = WebhookManager(self.poller, self.store)
        plan = self.webhooks.prepare(cfg)
        if start:
            self.poller.start()
        plan.commit()

    def post(self, field: str, value: dict, waba: str = WABA, at: int | None = None) -> httpx.Response:
        at = int(time.time()) if at is None else at
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": waba, "time": at, "changes": [{"field": field, "value": value}]}],
            }
        ).encode()
        response = httpx.post(
            self.webhooks.receiver.url + "/webhooks/meta",
            content=body,
            timeout=10,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)},
        )
        assert response.status_code == 200, response.text
        return response

    def samples(self):
        return samples(self.store.exposition.body.decode())

    def stop(self):
        self.webhooks.stop()
        self.poller.stop()


@pytest.fixture
def exporters():
    made: list[Exporter] = []

    def build(*args, **kw) -> Exporter:
        made.append(Exporter(*args, **kw))
        return made[-1]

    yield build
    for exporter in made:
        exporter.stop()


def restriction(expiration: float, kind: str = BIZ) -> dict:
    return {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [{"restriction_type": kind, "expiration": int(expiration)}],
    }


def test_a_restart_in_the_middle_of_a_restriction_keeps_it(tmp_path, exporters):
    state = tmp_path / "data" / "state.db"
    first = exporters(state)
    until = time.time() + 3600
    first.post("account_update", restriction(until))
    first.post(
        "account_update",
        {
            "event": "DISABLED_UPDATE",
            "ban_info": {"waba_ban_state": "SCHEDULE_FOR_DISABLE", "waba_ban_date": "April 17, 2027"},
        },
    )
    # two violations: two deliveries (the same signed bytes twice would be a replay, counted once)
    first.post(
        "account_update",
        {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}},
        at=int(time.time()),
    )
    first.post(
        "account_update",
        {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}},
        at=int(time.time()) + 1,
    )
    s = first.samples()
    assert value(s, "whatsapp_waba_restriction_info", waba_id=WABA, restriction_type=BIZ) == 1
    first.stop()

    second = exporters(state)  # a new process: nothing polled, no webhook yet
    s = second.samples()
    assert value(s, "whatsapp_waba_restriction_info", account="meta", waba_id=WABA, restriction_type=BIZ) == 1
    assert value(s, "whatsapp_waba_restriction_expiration_timestamp_seconds", restriction_type=BIZ) == int(until)
    assert active_state(s, "whatsapp_waba_ban_state", "ban_state", waba_id=WABA) == "SCHEDULE_FOR_DISABLE"
    assert value(s, "whatsapp_waba_ban_timestamp_seconds", waba_id=WABA) == 1807920000  # 2027-04-17T00:00Z
    assert value(s, "whatsapp_waba_violations_total", waba_id=WABA, violation_type="SCAM") == 2


def test_a_restriction_disappears_when_it_expires(tmp_path, exporters):
    exporter = exporters(tmp_path / "state.db", start=True)
    exporter.post("account_update", restriction(time.time() + 1.5))
    exporter.post("account_update", restriction(time.time() + 3600, kind="RESTRICTED_ADD_PHONE_NUMBER_ACTION"))

    def kinds():
        return {dict(k[1])["restriction_type"] for k in exporter.samples() if k[0] == "whatsapp_waba_restriction_info"}

    assert kinds() == {BIZ, "RESTRICTED_ADD_PHONE_NUMBER_ACTION"}
    wait_for(lambda: kinds() == {"RESTRICTED_ADD_PHONE_NUMBER_ACTION"}, "the expired restriction to go")
    # ... and is gone from the state file too
    assert {k[1] for k in StateFile(str(tmp_path / "state.db")).load(time.time())["meta"].restrictions} == {
        "RESTRICTED_ADD_PHONE_NUMBER_ACTION"
    }


def test_an_empty_restriction_list_lifts_them(tmp_path, exporters):
    exporter = exporters(tmp_path / "state.db")
    exporter.post("account_update", restriction(time.time() + 3600))
    exporter.post("account_update", {"event": "ACCOUNT_RESTRICTION", "restriction_info": []})
    assert not [k for k in exporter.samples() if k[0] == "whatsapp_waba_restriction_info"]


def test_facts_about_a_waba_no_account_knows_are_not_kept(tmp_path, exporters):
    exporter = exporters(tmp_path / "state.db")
    exporter.post("account_update", restriction(time.time() + 3600), waba="999")
    assert not [k for k in exporter.samples() if k[0] == "whatsapp_waba_restriction_info"]
    assert StateFile(str(tmp_path / "state.db")).load(time.time()) == {}


def test_a_corrupt_state_file_keeps_the_exporter_on_memory(tmp_path, exporters, caplog):
    state = tmp_path / "state.db"
    state.write_bytes(b"garbage" * 1000)
    exporter = exporters(state)
    exporter.post("account_update", restriction(time.time() + 3600))
    assert value(exporter.samples(), "whatsapp_waba_restriction_info", restriction_type=BIZ) == 1
    assert len([r for r in caplog.records if "state file unusable" in r.getMessage()]) == 1


@pytest.fixture
def meta():
    emu = MetaEmulator(loads_scenario(META_SCENARIO)).start()
    yield emu
    emu.stop()


@pytest.mark.parametrize(
    "told, tier, limit",
    [
        (100000, "TIER_100K", 100_000),  # Meta's own example: an integer
        ("TIER_UNLIMITED", "TIER_UNLIMITED", float("inf")),
        ("UNLIMITED", "TIER_UNLIMITED", float("inf")),
        (-1, "TIER_UNLIMITED", float("inf")),
    ],
)
def test_business_capability_update_sets_the_portfolio_limit_at_once(tmp_path, exporters, meta, told, tier, limit):
    exporter = exporters(tmp_path / "state.db", endpoint=meta.url)
    exporter.poller.poll_account("meta")
    s = exporter.samples()
    assert active_state(s, "whatsapp_business_messaging_limit_tier", "tier", business_id="5241000001") == "TIER_10K"
    exporter.post(
        "business_capability_update", {"max_daily_conversations_per_business": told, "max_phone_numbers_per_waba": 25}
    )
    s = exporter.samples()
    assert active_state(s, "whatsapp_business_messaging_limit_tier", "tier", business_id="5241000001") == tier
    assert value(s, "whatsapp_business_messaging_limit", business_id="5241000001") == limit
    # the next poll reads the portfolio's limit again: the emulator still says TIER_10K
    exporter.poller.poll_account("meta")
    assert (
        active_state(exporter.samples(), "whatsapp_business_messaging_limit_tier", "tier", business_id="5241000001")
        == "TIER_10K"
    )
