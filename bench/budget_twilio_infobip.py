"""QPS budget accuracy for Twilio and Infobip, next to the floor of calls / budget.

An Infobip account with SENDERS configured senders (one call per 100) and a
Twilio account with SIDS configured sender SIDs (one fetch each, at most 2 in
flight) are polled once, each with a 10 QPS budget. Both emulators' own
limits are off, so nothing hides a breach; they record every arrival.
Usage:  python -m bench.budget_twilio_infobip [SENDERS] [SIDS]
"""

from __future__ import annotations

import sys
import time

from emulators.infobip import InfobipEmulator
from emulators.scenario import Fault, loads_scenario
from emulators.twilio import TwilioEmulator, sender_sid
from exporter.config import parse_config
from exporter.poller import Poller
from exporter.store import Store

QPS = 10


def sliding_max(arrivals: list[float]) -> int:
    best, j = 0, 0
    for i, t in enumerate(arrivals):
        while arrivals[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def main(argv: list[str]) -> None:
    senders = int(argv[0]) if argv else 5000
    sids = int(argv[1]) if len(argv) > 1 else 60
    ib_numbers = "\n".join(
        f'      - {{phone_number: "4477009{i:05d}", status: CONNECTED, quality_rating: HIGH, current_limit: LIMIT_10K}}'
        for i in range(senders)
    )
    tw_numbers = "\n".join(f'      - {{phone_number: "1415600{i:04d}", status: ONLINE}}' for i in range(sids))
    ib = InfobipEmulator(
        loads_scenario(
            "credentials: [{access_key_id: k, access_key_secret: KEY, qps: null}]\n"
            f"spaces:\n  - space_id: g\n    access_key_id: k\n    numbers:\n{ib_numbers}\n"
        ),
        max_records=1_000_000,
    ).start()
    tw = TwilioEmulator(
        loads_scenario(
            "credentials: [{access_key_id: SK1, access_key_secret: S, account: AC1, qps: null}]\n"
            f"spaces:\n  - space_id: AC1\n    access_key_id: SK1\n    numbers:\n{tw_numbers}\n"
        ),
        max_concurrent=None,
    ).start()
    tw.inject(Fault(kind="delay", seconds=0.05))  # answers take a while: requests could overlap
    listed = ", ".join(f'"4477009{i:05d}"' for i in range(senders))
    sid_list = ", ".join(f'"{sender_sid(f"1415600{i:04d}")}"' for i in range(sids))
    config = parse_config(
        f"""accounts:
  - name: ib
    provider: infobip
    endpoint: {ib.url}
    qps: {QPS}
    credentials: {{api_key: "${{K}}"}}
    sender_groups: [{{group: g, senders: [{listed}]}}]
  - name: tw
    provider: twilio
    endpoint: {tw.url}
    qps: {QPS}
    max_concurrent_requests: 2
    credentials: {{sid: SK1, secret: "${{S}}"}}
    twilio_accounts: [{{account_sid: AC1, senders: [{sid_list}]}}]
""",
        env={"K": "KEY", "S": "S"},
    )
    poller = Poller(config, Store())
    print(
        "| provider | requests | max in a calendar second | max in a sliding 1 s window | max in flight | cycle | "
        "floor (calls ÷ budget) | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    try:
        for name, account, emulator, key in (("infobip", "ib", ib, "k"), ("twilio", "tw", tw, "SK1")):
            start = time.monotonic()
            poller.poll_account(account)
            elapsed = time.monotonic() - start
            arrivals = sorted(r.time for r in emulator.requests)
            floor = len(arrivals) / QPS
            flight = str(max(tw.max_in_flight_seen.values())) + " (cap 2)" if name == "twilio" else "-"
            print(
                f"| {name} | {len(arrivals)} | {emulator.max_requests_in_any_second(key)} | {sliding_max(arrivals)} | "
                f"{flight} | {elapsed:.1f} s | {floor:.1f} s | {elapsed / floor:.3f} |"
            )
    finally:
        poller.stop()
        ib.stop()
        tw.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
