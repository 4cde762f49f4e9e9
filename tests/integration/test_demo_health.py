"""The demo shows each post-October-2025 health state within its first 3 minutes (issue 12).

The demo's emulators are moved 90 scenario-seconds ahead instead of waiting in
real time: their watchers then see the changes and push Meta's signed webhooks
as they would at that moment, and the CAMS health sweep reads the blocked
number. Everything else is the demo as ``--demo`` runs it: its generated
configuration, the real Poller, Store and webhook receiver, the status board.
"""

from __future__ import annotations

import time

import pytest

from exporter import statusboard
from exporter.demo import Demo
from exporter.poller import Poller
from exporter.store import Store
from exporter.webhooks import WebhookManager
from tests.helpers import active_state, samples, value, wait_for

AHEAD = 90  # scenario seconds: everything below has happened by then, well within 3 minutes


@pytest.fixture
def demo():
    demo = Demo().start()
    store = Store(options=demo.config.metrics)
    poller = Poller(demo.config, store)
    webhooks = WebhookManager(poller, store)
    webhooks.apply(demo.config)
    demo.connect_webhooks(webhooks.receiver.url)
    try:
        yield demo, poller, store
    finally:
        webhooks.stop()
        poller.stop()
        demo.stop()


def test_every_new_health_state_shows_within_three_minutes(demo):
    demo, poller, store = demo
    names = [a.name for a in demo.config.accounts]
    for name in names:
        poller.poll_account(name)
    s = samples(store.exposition.body.decode())
    # the portfolio limit is there from the first poll of the Meta account
    assert [k for k in s if k[0] == "whatsapp_business_messaging_limit_tier" and dict(k[1])["provider"] == "meta"]

    for fleet in demo.fleets:
        fleet.emulator.advance(AHEAD)
    current = lambda: samples(store.exposition.body.decode())  # noqa: E731
    # Meta's account_update webhooks: a restriction with its expiry ahead, a WABA scheduled for disable, a violation
    wait_for(lambda: value(current(), "whatsapp_waba_violations_total", provider="meta"), "the violation")
    wait_for(
        lambda: [
            k
            for k, v in current().items()
            if k[0] == "whatsapp_waba_ban_state" and v == 1 and dict(k[1])["ban_state"] == "SCHEDULE_FOR_DISABLE"
        ],
        "the WABA scheduled for disable",
    )
    restriction = wait_for(
        lambda: [v for k, v in current().items() if k[0] == "whatsapp_waba_restriction_expiration_timestamp_seconds"],
        "the restriction",
    )
    assert restriction[0] > time.time()  # a countdown, not a past date

    # CAMS: the sweep reads the number that its business's payment method blocks
    for account in demo.config.accounts:
        if account.provider == "alibaba_cams":
            poller.poll_account(account.name)
            poller.sweep_health(account.name)
    s = current()
    blocked = [
        dict(k[1])
        for k, v in s.items()
        if k[0] == "whatsapp_phone_number_can_send_message"
        and v == 1
        and dict(k[1])["provider"] == "alibaba_cams"
        and dict(k[1])["can_send_message"] == "BLOCKED"
    ]
    assert blocked, "a CAMS number is BLOCKED"
    phone = blocked[0]["phone_number"]
    [error] = [
        dict(k[1])
        for k in s
        if k[0] == "whatsapp_phone_number_blocking_error_info" and dict(k[1])["phone_number"] == phone
    ]
    assert (error["error_code"], error["entity_type"]) == ("141006", "BUSINESS")  # the payment method
    assert (
        active_state(
            s,
            "whatsapp_entity_can_send_message",
            "can_send_message",
            provider="alibaba_cams",
            entity_type="BUSINESS",
            entity_id=error["entity_id"],
        )
        == "BLOCKED"
    )

    # ... and the status board shows them: the blocked CAMS number among the numbers that cannot send, and the
    # restriction and the scheduled ban in their own section
    page = statusboard.render(store, "/metrics", time.time()).decode()
    assert f'data-phone="{phone}"' in page and 'data-reason="health BLOCKED"' in page
    assert 'class="restriction"' in page and "left</td>" in page
    assert 'data-state="SCHEDULE_FOR_DISABLE"' in page
