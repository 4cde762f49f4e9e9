"""Slow-header clients against scrapes: 1,000 connections that drip one header line every 3 s.

Before issue 13 about 512 such clients made every scrape answer 503 for as long as
they kept going.  Here the exporter (10,000 numbers by default, polled from an
emulated fleet, in its own process) is scraped while ``--clients`` connections
each send a request line and then one header line every ``--drip`` seconds,
for ``--seconds``.  The server closes each of them at its 10 s header deadline;
a closed dripper reconnects at once and starts again, so the pressure holds
for the whole run.

The scrapes are made as Prometheus makes them: over one keep-alive connection,
gzip asked for, one every ``--every`` seconds, by the raw-socket client of
bench/_client.py in its own process (the body read whole, not decompressed);
first for ``--baseline`` seconds without drippers (the baseline of the same
run), then with them.  Reported: status codes, p50/p99 of both phases, and how many
dripping connections the server closed.  Open-file limits are raised in both
processes.

Usage:  python -m bench.hostile [--numbers 10000] [--clients 1000] [--seconds 60] [--drip 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time

from bench.common import ROOT, exporter_for, fleet, percentile, raise_open_files

PER_SPACE = 100


def serve(numbers: int) -> None:
    """The exporter side, in its own process: poll the fleet once, serve, print the URL, run until stdin closes."""
    from exporter.web import App, HttpServer

    raise_open_files()
    spaces = max(1, numbers // PER_SPACE)
    with fleet(spaces, PER_SPACE) as url:
        _, store, poller = exporter_for(url, spaces, concurrency=16)
        poller.poll_account("bench")
        poller.stop()
    server = HttpServer(App(store), "127.0.0.1:0").start()
    store.exposition.gzip().result()  # the generation's compression, as the first scrape would do it
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop()


def scrapes(url: str, seconds: float, every: float, out: list[tuple[int, float]]) -> None:
    """Scrape every ``every`` seconds for ``seconds`` over one keep-alive connection (bench/_client.py)."""
    n = max(1, int(seconds / every))
    result = subprocess.run(
        [sys.executable, "-m", "bench._client", url, str(n), "gzip", str(every)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:  # a refused or failed scrape: the client stops at the first non-200
        out.append((0, float("nan")))
        print(result.stderr.strip().splitlines()[-1], file=sys.stderr)
        return
    out.extend((200, t) for t in json.loads(result.stdout)["latencies"])


async def drippers(host: str, port: int, clients: int, seconds: float, drip: float, stats: dict) -> None:
    stop_at = time.monotonic() + seconds

    async def one(i: int) -> None:
        while time.monotonic() < stop_at:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                stats["connect_errors"] += 1
                await asyncio.sleep(0.5)
                continue
            stats["connections"] += 1
            try:
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n")
                n = 0
                while time.monotonic() < stop_at:
                    try:
                        data = await asyncio.wait_for(reader.read(4096), timeout=drip)
                    except TimeoutError:
                        writer.write(b"X-Drip-%d: %d\r\n" % (i, n))  # one more header line, never the blank one
                        n += 1
                        continue
                    if not data:
                        stats["closed_by_server"] += 1
                        break
                    stats["answered"] += 1  # the server answered a request it never got: must not happen
                    break
            except (ConnectionError, OSError):
                stats["closed_by_server"] += 1
            finally:
                writer.close()

    await asyncio.gather(*(one(i) for i in range(clients)))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.hostile")
    p.add_argument("--numbers", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--drip", type=float, default=3)
    p.add_argument("--every", type=float, default=0.25, help="seconds between two scrapes")
    p.add_argument("--baseline", type=float, default=20, help="seconds of scraping without drippers first")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.numbers)
        return
    limit = raise_open_files()
    if limit < args.clients + 100:
        sys.exit(f"RLIMIT_NOFILE is {limit}: too low for {args.clients} clients")
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.hostile", "--serve", "--numbers", str(args.numbers)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError("the exporter did not start")
        url = base_url + "/metrics"
        host, port = base_url.split("//")[1].rsplit(":", 1)
        baseline: list[tuple[int, float]] = []
        scrapes(url, args.baseline, args.every, baseline)
        loaded: list[tuple[int, float]] = []
        stats = {"connections": 0, "closed_by_server": 0, "answered": 0, "connect_errors": 0}
        scraper = threading.Thread(target=scrapes, args=(url, args.seconds - min(5.0, args.drip), args.every, loaded))
        loop = asyncio.new_event_loop()
        task = loop.create_task(drippers(host, int(port), args.clients, args.seconds, args.drip, stats))
        loop.run_until_complete(asyncio.sleep(min(5.0, args.drip)))  # let every dripper connect first
        scraper.start()
        loop.run_until_complete(task)
        scraper.join()
        loop.close()
    finally:
        server.stdin.close()
        server.wait(timeout=60)

    def row(name: str, scrapes: list[tuple[int, float]]) -> str:
        codes = sorted({c for c, _ in scrapes})
        ok = [t for c, t in scrapes if c == 200]
        return (
            f"| {name} | {len(scrapes)} | {sum(c == 200 for c, _ in scrapes)} | {','.join(map(str, codes))} | "
            f"{percentile(ok, 50) * 1e3:.1f} / {percentile(ok, 99) * 1e3:.1f} ms | {max(ok) * 1e3:.1f} ms |"
        )

    print(f"numbers={args.numbers:,} clients={args.clients} drip={args.drip}s for {args.seconds:.0f}s")
    print("| phase | scrapes | answered 200 | status codes | p50 / p99 | max |")
    print("|---|---|---|---|---|---|")
    print(row("no drippers (baseline)", baseline))
    print(row(f"{args.clients} dripping connections", loaded))
    print(
        f"dripping connections opened {stats['connections']}, closed by the server {stats['closed_by_server']}, "
        f"answered (must be 0) {stats['answered']}, connect errors {stats['connect_errors']}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
