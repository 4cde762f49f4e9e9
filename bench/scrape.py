"""Scrape cost: this exporter vs the naive design vs the serving limit, side by side.

For each fleet size the same numbers (polled from an emulated fleet) are served by
  ours   - this exporter's aiohttp server (pre-rendered exposition; gzip compressed
           once per generation, then cached);
  naive  - prometheus_client: a collector building the families from the same
           snapshot and generate_latest() on every scrape (its own HTTP server);
  static - a minimal stdlib HTTP server returning the identical bytes, prepared once
           (the serving limit).
Latency is measured by a raw-socket client in another process (one keep-alive
connection, whole body read, not decompressed: bench/_client.py); CPU is this
(server) process's user+system time per scrape.  The first gzip scrape of each
generation pays the compression; the table's gzip rows are cached scrapes, and
the compression cost per generation is reported on its own, with the gzip body
beside `gzip -1` of the same text.
Usage:  python -m bench.scrape [SIZES...] [--active]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily

from bench.common import ROOT, cpu_seconds, exporter_for, fleet, percentile, with_malloc_env
from exporter import exposition as ex
from exporter import model
from exporter.web import App, HttpServer

PER_SPACE = 100


class NaiveCollector:
    """What a straightforward exporter does: build every family from the data on each scrape."""

    def __init__(self, store, options: ex.RenderOptions):
        self.store = store
        self.options = options

    def describe(self):
        return []

    def collect(self):
        base = ["provider", "account", "phone_number"]
        sets = [
            (ex.N_STATUS, "status", model.STATUS.states, "status"),
            (ex.N_QUALITY, "quality_rating", model.QUALITY_RATING.states, "quality_rating"),
            (ex.N_TIER, "tier", model.TIER.states, "messaging_limit_tier"),
            (ex.N_CODE, "code_verification_status", model.CODE_VERIFICATION_STATUS.states, "code_verification_status"),
            (ex.N_NAME, "name_status", model.NAME_STATUS.states, "name_status"),
            (ex.N_NEW_NAME, "new_name_status", model.NAME_STATUS.states, "new_name_status"),
        ]
        info = GaugeMetricFamily(ex.N_INFO.name, ex.N_INFO.help, labels=[*base, *self.options.info_labels])
        families = [GaugeMetricFamily(f.name, f.help, labels=[*base, label]) for f, label, _, _ in sets]
        limit = GaugeMetricFamily(ex.N_LIMIT.name, ex.N_LIMIT.help, labels=base)
        changed = [
            GaugeMetricFamily(f.name, f.help, labels=base)
            for f in (ex.N_STATUS_CHANGED, ex.N_QUALITY_CHANGED, ex.N_TIER_CHANGED)
        ]
        for acc in self.store.accounts():
            for phone, t in acc.numbers.items():
                n, ids = t.number, [acc.provider, acc.name, phone]
                info.add_metric([*ids, *(getattr(n, k) for k in self.options.info_labels)], 1)
                for family, (_, _, states, attr) in zip(families, sets, strict=True):
                    current = getattr(n, attr)
                    for state in (current,) if self.options.active_only else states:
                        family.add_metric([*ids, state], 1 if state == current else 0)
                if n.messaging_limit is not None:
                    limit.add_metric(ids, n.messaging_limit)
                for family, ts in zip(
                    changed, (t.changes.status, t.changes.quality_rating, t.changes.messaging_limit_tier), strict=True
                ):
                    family.add_metric(ids, ts)
        yield info
        yield from families
        yield limit
        yield from changed


def static_server(plain: bytes, gz: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = gz if "gzip" in self.headers.get("Accept-Encoding", "") else plain
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            if body is gz:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def measure(url: str, n: int, mode: str) -> dict:
    before = cpu_seconds()
    out = subprocess.run(
        [sys.executable, "-m", "bench._client", url, str(n), mode], cwd=ROOT, capture_output=True, text=True, check=True
    )
    cpu = (cpu_seconds() - before) / n
    data = json.loads(out.stdout)
    lat = data["latencies"]
    return {
        "p50_ms": percentile(lat, 50) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
        "cpu_ms": cpu * 1e3,
        "bytes": data["bytes"],
        "n": n,
    }


def compression_cost(store, rounds: int = 5) -> dict:
    """Per generation: seconds and CPU of the one gzip compression, and the body beside `gzip -1` of the same text."""
    seconds, cpu = [], []
    for _ in range(rounds):
        store.set_exporter_state(reload_ok=True)  # a new generation, as after any change
        exposition = store.exposition
        before, started = cpu_seconds(), time.perf_counter()
        body = exposition.gzip().result()
        seconds.append(time.perf_counter() - started)
        cpu.append(cpu_seconds() - before)
    text = exposition.body
    started = time.perf_counter()
    reference = subprocess.run(["gzip", "-1", "-c"], input=text, capture_output=True, check=True).stdout
    gzip_seconds = time.perf_counter() - started
    return {
        "seconds": statistics.median(seconds),
        "cpu": statistics.median(cpu),
        "ours_bytes": len(body.prefix + body.finish()),
        "gzip1_bytes": len(reference),
        "gzip1_seconds": gzip_seconds,
        "plain_bytes": len(text),
    }


def run(size: int, options: ex.RenderOptions) -> dict:
    spaces = max(1, size // PER_SPACE)
    with fleet(spaces, PER_SPACE) as url:
        _config, store, poller = exporter_for(url, spaces, options=options, concurrency=16)
        poller.poll_account("bench")
        poller.stop()
    ours = HttpServer(App(store), "127.0.0.1:0").start()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NaiveCollector(store, options))
    naive_server, _naive_thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    naive_url = f"http://127.0.0.1:{naive_server.server_port}/metrics"
    exposition = store.exposition
    compression = compression_cost(store)
    exposition = store.exposition
    static = static_server(exposition.body, exposition.gzipped)
    static_url = f"http://127.0.0.1:{static.server_address[1]}/metrics"
    ours_url = ours.url + "/metrics"
    n_fast = 200 if size <= 10_000 else 40
    n_naive = 20 if size <= 1000 else 5 if size <= 10_000 else 2
    result = {
        "numbers": len(store.account("bench").numbers),
        "series": exposition.body.count(b"\n") - exposition.body.count(b"\n#"),
        "compression": compression,
    }
    for mode in ("plain", "gzip"):
        result[mode] = {
            "ours": measure(ours_url, n_fast, mode),
            "static": measure(static_url, n_fast, mode),
            "naive": measure(naive_url, n_naive, mode),
        }
    ours.stop()
    static.shutdown()
    naive_server.shutdown()
    return result


def main(argv: list[str]) -> None:
    with_malloc_env("bench.scrape")  # the container image's malloc settings, so the exporter here runs alike
    options = ex.RenderOptions(state_sets="active") if "--active" in argv else ex.DEFAULT_OPTIONS
    sizes = [int(a) for a in argv if a.isdigit()] or [1000, 10_000, 50_000]
    print(f"mode: state_sets={options.state_sets}")
    print(
        "| numbers | series | encoding | ours p50 / p99 (ms) | static p50 / p99 (ms) | naive p50 / p99 (ms) "
        "| CPU per scrape ours / static / naive (ms) | body (bytes) | naive ÷ ours (p99) | ours ÷ static (p99) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    compression_rows = []
    for size in sizes:
        r = run(size, options)
        compression_rows.append(r)
        for mode in ("plain", "gzip"):
            o, s, n = r[mode]["ours"], r[mode]["static"], r[mode]["naive"]
            print(
                f"| {r['numbers']:,} | {r['series']:,} | {mode} | {o['p50_ms']:.1f} / {o['p99_ms']:.1f} | "
                f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} | {n['p50_ms']:.0f} / {n['p99_ms']:.0f} | "
                f"{o['cpu_ms']:.1f} / {s['cpu_ms']:.1f} / {n['cpu_ms']:.0f} | {o['bytes']:,} | "
                f"{n['p99_ms'] / o['p99_ms']:.0f}× | {o['p99_ms'] / s['p99_ms']:.2f}× |",
                flush=True,
            )

    print()
    print(
        "| numbers | plain body | gzip body (ours) | `gzip -1` of the same text | ours ÷ gzip -1 "
        "| compression per generation: wall / CPU | `gzip -1` wall (a process) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in compression_rows:
        c = r["compression"]
        print(
            f"| {r['numbers']:,} | {c['plain_bytes'] / 1e6:.1f} MB | {c['ours_bytes'] / 1e6:.2f} MB | "
            f"{c['gzip1_bytes'] / 1e6:.2f} MB | "
            f"{c['ours_bytes'] / c['gzip1_bytes']:.3f}× | {c['seconds'] * 1e3:.0f} ms / {c['cpu'] * 1e3:.0f} ms | "
            f"{c['gzip1_seconds'] * 1e3:.0f} ms |",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
