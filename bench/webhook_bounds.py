"""Webhooks, bounded: refreshes a steady stream of events causes, and the memory of the bounds at their caps.

One signed Meta event a second for an hour (simulated clock), each naming another number of one CAMS account
and one Meta account, fed to the real receiver (``handle_meta``: signature check, replay cache, routing,
refresh gate).  The poller side keeps the real poller's contract on the same clock (a pending refresh absorbs
requests until it runs).  Baseline: ``min_refresh_interval: 0s`` and no hourly budget to speak of, i.e. the
behaviour before issue 14 (a refresh every ``debounce``).  Then the replay cache and the unknown-number log
filled to their caps, measured with tracemalloc.

Usage:  python -m bench.webhook_bounds [--seconds 3600]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import tracemalloc

from exporter import model
from exporter.config import parse_config
from exporter.store import AccountSnapshot, Store
from exporter.webhooks import (
    REPLAY_CACHE_SIZE,
    UNKNOWN_LOG_SIZE,
    ExpiringSet,
    WebhookMetrics,
    WebhookReceiver,
    replay_key,
)

SECRET = "bench-meta-app-secret-0123456789"
CONFIG = """
accounts:
  - name: cams
    provider: alibaba_cams
    credentials: {{access_key_id: ak, access_key_secret: "${{SK}}"}}
    spaces: [{{cust_space_id: cams-1}}]
  - name: graph
    provider: meta
    credentials: {{app_id: "7001", access_token: "${{TOKEN}}"}}
    wabas: [{{waba_id: "2002"}}]
webhooks:
  listen_address: "127.0.0.1:0"
  debounce: 2s
  min_refresh_interval: {interval}
  meta_refreshes_per_hour: {per_hour}
  meta: {{app_secret: "${{SECRET}}", verify_token: "${{VT}}"}}
"""
ENV = {"SK": "sk", "TOKEN": "tok", "SECRET": SECRET, "VT": "vt"}


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


class Poller:
    """request_refresh with the real poller's contract on the simulated clock; counts refreshes per account."""

    def __init__(self, clock: Clock):
        self.clock, self.due, self.runs = clock, {}, {}

    def request_refresh(self, name, delay, phones=None) -> bool:
        now = self.clock()
        if now < self.due.get(name, float("-inf")):
            return False
        self.due[name] = now + delay
        self.runs[name] = self.runs.get(name, 0) + 1
        return True

    def apply_waba_update(self, *a) -> bool:
        return True

    def apply_business_limit(self, *a) -> bool:
        return True


def store() -> Store:
    """The CAMS account's current data: one number of WABA 1001 (how Meta events reach a CAMS account)."""
    tracked = model.TrackedNumber(
        model.PhoneNumber(phone_number="+8613800000001", waba_id="1001"), model.ChangeTimes.first_seen(0.0)
    )
    out = Store()
    out.update_many(
        [
            AccountSnapshot(
                name="cams", provider="alibaba_cams", poll_interval=60.0, qps=1.0, numbers={"+8613800000001": tracked}
            )
        ]
    )
    return out


def stream(seconds: int, interval: str, per_hour: int) -> dict[str, int]:
    clock = Clock()
    config = parse_config(CONFIG.format(interval=interval, per_hour=per_hour), env=ENV)
    poller = Poller(clock)
    st = store()
    receiver = WebhookReceiver(config.webhooks, config, poller, st, WebhookMetrics(st), timer=clock)
    for i in range(seconds):
        clock.t = float(i)
        for waba in ("1001", "2002"):
            body = json.dumps(
                {
                    "object": "whatsapp_business_account",
                    "entry": [
                        {
                            "id": waba,
                            "time": i,
                            "changes": [{"field": "account_update", "value": {"event": "ACCOUNT_UPDATE"}}],
                        }
                    ],
                }
            ).encode()
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert receiver.handle_meta({"x-hub-signature-256": [sig]}, body).status == 200
    return poller.runs


def cache_bytes(capacity: int, make_key) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = ExpiringSet(capacity)
    for i in range(capacity * 2):
        cache.add(make_key(i), float(i), 1e9)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(cache) == capacity
    return used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=3600, help="length of the event stream (one event a second)")
    args = ap.parse_args()
    rows = [
        ("before (min_refresh_interval 0s, budget 5000/h)", stream(args.seconds, "0s", 5000)),
        ("defaults (30s, 20/h for Meta)", stream(args.seconds, "30s", 20)),
    ]
    print(f"one Meta event a second for {args.seconds} s, per account:")
    print("| setting | refreshes of the CAMS account | refreshes of the Meta account |")
    print("|---|---|---|")
    for name, runs in rows:
        print(f"| {name} | {runs.get('cams', 0)} | {runs.get('graph', 0)} |")
    replay = cache_bytes(REPLAY_CACHE_SIZE, lambda i: replay_key("meta", "ab" * 32, str(i).encode()))
    unknown = cache_bytes(UNKNOWN_LOG_SIZE, lambda i: ("meta", f"4477009{i:05d}"))
    print()
    print(
        f"replay cache full ({REPLAY_CACHE_SIZE} entries): {replay / 1e6:.1f} MB, "
        f"{replay / REPLAY_CACHE_SIZE:.0f} B each"
    )
    print(
        f"unknown-number log full ({UNKNOWN_LOG_SIZE} entries): {unknown / 1e6:.1f} MB, "
        f"{unknown / UNKNOWN_LOG_SIZE:.0f} B each"
    )


if __name__ == "__main__":
    main()
