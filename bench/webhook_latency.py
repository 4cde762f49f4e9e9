"""Webhook latency: from a state change in a provider emulator to the changed metric, webhooks on and off.

What runs, once per mode (``on`` then ``off``):

* In this process, one emulator per provider that pushes events (Meta, NxCloud,
  Kaleyra), each with ``--numbers`` numbers.  Every NxCloud and Kaleyra number
  flips CONNECTED -> FLAGGED -> CONNECTED on a looping timeline (period 2
  minutes, a random phase per number), so about one number per provider
  changes every few seconds.  Meta's numbers cannot be FLAGGED since October
  2025: they flip CONNECTED -> PENDING -> CONNECTED instead, which Meta
  announces (``phone_number_quality_update`` ONBOARDING) when the number goes
  PENDING; the way back sends nothing, as at Meta, and only the polls see it.
  With webhooks on, each emulator sends its provider's signed event to the
  exporter's receiver (Meta: signed with the app secret; NxCloud: its
  envelope, signed with the app's key; Kaleyra: the GET callback with the
  token).
* The exporter as a real process (``python -m exporter``), polling every
  account every ``--poll-interval`` (60 s by default, the exporter's default)
  within its default QPS budgets, with ``webhooks:`` configured in mode ``on``
  (default ``debounce: 2s``) and absent in mode ``off``.
* A scraper in this process reads ``/metrics`` every 100 ms and notes when each
  number's status series changes.

Latency of a change = the first scrape that shows the new status minus the
time the emulator's timeline made the change (``state_changes()``; the same
clock, this machine's).  A change that is undone before any scrape shows it
cannot be seen and is counted as superseded; with 60 s between flips of one
number that only happens when a poll misses both.  The scrape period adds up
to 0.1 s.

Usage:  python -m bench.webhook_latency [--minutes 5] [--numbers 20] [--poll-interval 60] [--mode on|off|both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import ROOT, percentile
from emulators.kaleyra import KaleyraEmulator
from emulators.meta import MetaEmulator
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import loads_scenario

PERIOD = 120  # seconds: each number is FLAGGED (Meta: PENDING) for half of it
SCRAPE_EVERY = 0.1
FIXTURE = {  # secrets of this benchmark only; they reach the exporter through its environment
    "META_TOKEN": "EAAbenchTOKEN000000000000000001",
    "META_APP_SECRET": "bench-app-secret-0001",
    "META_VERIFY_TOKEN": "bench-verify-token-0001",
    "NX_SECRET": "bench-nx-secret-0001",
    "KAL_KEY": "bench-kaleyra-key-0001",
    "KAL_HOOK_TOKEN": "bench-kaleyra-hook-token-0001",
}
STATUS_RE = re.compile(
    r'^whatsapp_phone_number_status\{[^}]*?account="([^"]*)"[^}]*?phone_number="\+(\d+)"'
    r'[^}]*?status="([A-Z_]+)"\} 1$',
    re.M,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def numbers_yaml(prefix: str, count: int, rng: random.Random, meta: bool = False) -> str:
    lines = []
    flipped = "PENDING" if meta else "FLAGGED"  # Meta's numbers are never FLAGGED since October 2025
    for i in range(count):
        phase = rng.uniform(2, PERIOD / 2 - 2)
        extra = f'id: "{prefix}{i:04d}9", ' if meta else "messaging_limit_tier: TIER_10K, "
        lines.append(
            f'      - {{phone_number: "{prefix}{i:04d}", {extra}status: CONNECTED, quality_rating: GREEN, '
            f"repeat_every: {PERIOD}, timeline: ["
            f"{{at: {phase:.2f}, set: {{status: {flipped}}}}}, "
            f"{{at: {phase + PERIOD / 2:.2f}, set: {{status: CONNECTED}}}}]}}"
        )
    return "\n".join(lines)


def scenarios(count: int, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {
        "meta": f"""
credentials: [{{access_key_id: "7001", access_key_secret: {FIXTURE["META_TOKEN"]}, qps: null}}]
spaces:
  - space_id: "1022900001"
    access_key_id: "7001"
    extra: {{calls_per_hour: 100000}}
    waba: {{id: "1022900001", name: Bench, account_review_status: APPROVED, business_id: "5241000001",
           portfolio_messaging_limit: 10000}}
    numbers:
{numbers_yaml("1555010", count, rng, meta=True)}
""",
        "nxcloud": f"""
credentials: [{{access_key_id: nx-bench, access_key_secret: {FIXTURE["NX_SECRET"]}, qps: null}}]
spaces:
  - space_id: app-bench
    access_key_id: nx-bench
    numbers:
{numbers_yaml("6281310", count, rng)}
""",
        "kaleyra": f"""
credentials: [{{access_key_id: HXBENCH, access_key_secret: {FIXTURE["KAL_KEY"]}, qps: null}}]
spaces:
  - space_id: "1029384700"
    access_key_id: HXBENCH
    numbers:
{numbers_yaml("9198765", count, rng)}
""",
    }


def exporter_config(urls: dict[str, str], poll_interval: int, hook_port: int | None) -> str:
    hooks = (
        f"""
webhooks:
  listen_address: 127.0.0.1:{hook_port}
  meta: {{app_secret: "${{META_APP_SECRET}}", verify_token: "${{META_VERIFY_TOKEN}}"}}
  kaleyra: {{token: "${{KAL_HOOK_TOKEN}}"}}
  nxcloud: {{}}
"""
        if hook_port
        else ""
    )
    return f"""
metrics: {{state_sets: active}}
{hooks}
accounts:
  - name: meta
    provider: meta
    endpoint: {urls["meta"]}
    credentials: {{app_id: "7001", access_token: "${{META_TOKEN}}"}}
    poll_interval: {poll_interval}s
    wabas: [{{waba_id: "1022900001"}}]
  - name: nxcloud
    provider: nxcloud
    endpoint: {urls["nxcloud"]}
    credentials: {{access_key: nx-bench, access_secret: "${{NX_SECRET}}"}}
    poll_interval: {poll_interval}s
    apps: [{{appkey: app-bench}}]
  - name: kaleyra
    provider: kaleyra
    endpoint: {urls["kaleyra"]}
    credentials: {{sid: HXBENCH, api_key: "${{KAL_KEY}}"}}
    poll_interval: {poll_interval}s
    wabas: [{{waba_id: "1029384700"}}]
"""


def run_mode(mode: str, minutes: float, count: int, poll_interval: int, seed: int, workdir: Path) -> dict:
    texts = scenarios(count, seed)
    emulators = {
        "meta": MetaEmulator(loads_scenario(texts["meta"])),
        "nxcloud": NxCloudEmulator(loads_scenario(texts["nxcloud"])),
        "kaleyra": KaleyraEmulator(loads_scenario(texts["kaleyra"])),
    }
    port, hook_port = free_port(), (free_port() if mode == "on" else None)
    proc = None
    try:
        for emu in emulators.values():
            emu.start()
        config = workdir / f"config-{mode}.yml"
        config.write_text(exporter_config({p: e.url for p, e in emulators.items()}, poll_interval, hook_port))
        log = open(workdir / f"exporter-{mode}.log", "wb")  # noqa: SIM115 - the exporter's log, open while it runs
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.format=json",
            ],
            cwd=ROOT,
            env={**os.environ, **FIXTURE},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(timeout=5)
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.get(base + "/-/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the exporter did not become ready; see {workdir}")
            time.sleep(0.1)
        if hook_port:
            hook = f"http://127.0.0.1:{hook_port}/webhooks"
            emulators["meta"].set_webhook(f"{hook}/meta", FIXTURE["META_APP_SECRET"])
            emulators["nxcloud"].set_webhook(f"{hook}/nxcloud")
            emulators["kaleyra"].set_webhook(f"{hook}/kaleyra?token={FIXTURE['KAL_HOOK_TOKEN']}")
        started = time.time()
        seen: dict[tuple[str, str], list[tuple[float, str]]] = {}  # (account, digits) -> [(time, status)] on change
        last: dict[tuple[str, str], str] = {}
        end = time.monotonic() + minutes * 60
        while time.monotonic() < end:
            body = client.get(base + "/metrics").text
            now = time.time()
            for account, digits, status in STATUS_RE.findall(body):
                key = (account, digits)
                if last.get(key) != status:
                    last[key] = status
                    seen.setdefault(key, []).append((now, status))
            time.sleep(SCRAPE_EVERY)
        hooks_sent = {p: len(e.webhooks_sent()) for p, e in emulators.items()} if hook_port else {}
        counters = client.get(base + "/metrics").text
        events = {
            k: float(v)
            for k, v in re.findall(r"^(whatsapp_exporter_webhook_events_total\{[^}]*\}) (\S+)$", counters, re.M)
            if float(v) > 0
        }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        for emu in emulators.values():
            emu.stop()

    latencies: dict[str, list[float]] = {}
    superseded = 0
    for provider, emu in emulators.items():
        changes = [c for c in emu.state_changes() if c["field"] == "status" and c["phone_number"]]
        by_number: dict[str, list[dict]] = {}
        for c in changes:
            by_number.setdefault(str(c["phone_number"]).lstrip("+"), []).append(c)
        for digits, number_changes in by_number.items():
            observed = seen.get((provider, digits), [])
            for i, change in enumerate(number_changes):
                if change["wall"] < started + 1:
                    continue  # before the stack was watching
                following = number_changes[i + 1]["wall"] if i + 1 < len(number_changes) else float("inf")
                hit = next((t for t, status in observed if t >= change["wall"] and status == change["new"]), None)
                if hit is None or hit > following:
                    if following < end_wall(started, minutes):
                        superseded += 1
                    continue
                latencies.setdefault(provider, []).append(hit - change["wall"])
    return {
        "mode": mode,
        "latencies": latencies,
        "superseded": superseded,
        "webhooks_sent": hooks_sent,
        "events": events,
    }


def end_wall(started: float, minutes: float) -> float:
    return started + minutes * 60


def summary(values: list[float]) -> str:
    if not values:
        return "no changes measured"
    return (
        f"{len(values)} changes: p50 {percentile(values, 50):.2f} s, p90 {percentile(values, 90):.2f} s, "
        f"p99 {percentile(values, 99):.2f} s, max {max(values):.2f} s"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_latency")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--numbers", type=int, default=20, help="numbers per provider")
    parser.add_argument("--poll-interval", type=int, default=60)
    parser.add_argument("--mode", choices=("on", "off", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="webhook-latency-"))
    modes = ("on", "off") if args.mode == "both" else (args.mode,)
    print(
        f"{args.numbers} numbers per provider (Meta, NxCloud, Kaleyra), "
        f"each flipping FLAGGED (Meta: PENDING)/CONNECTED every "
        f"{PERIOD // 2} s; poll interval {args.poll_interval} s; {args.minutes:g} min per mode; workdir {workdir}",
        flush=True,
    )
    for mode in modes:
        result = run_mode(mode, args.minutes, args.numbers, args.poll_interval, args.seed, workdir)
        every = [v for values in result["latencies"].values() for v in values]
        print(f"\nwebhooks {mode}: {summary(every)}; superseded before any scrape showed them: {result['superseded']}")
        for provider, values in sorted(result["latencies"].items()):
            print(f"  {provider:8s} {summary(values)}")
        if result["webhooks_sent"]:
            print(f"  webhooks sent by the emulators: {json.dumps(result['webhooks_sent'])}")
            print(f"  exporter's event counters: {json.dumps(result['events'])}")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
