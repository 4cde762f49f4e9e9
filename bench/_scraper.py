"""Scrape an exporter's /metrics with gzip at a steady pace; print every scrape as JSON (benchmarks only).

Usage: python -m bench._scraper PORT SECONDS EVERY

A real HTTP client (``http.client``, one keep-alive connection, reconnecting
if the server closes it) asks for gzip, as Prometheus does, every ``EVERY``
seconds (start to start; back to back when a scrape takes longer) for
``SECONDS``.  Each scrape's latency runs from sending the request to having
read the whole body (not decompressed).  Outside the timed part, the body is
compared with the previous one, all but their last 8 KiB, to tell a new
generation of the exposition from the same one without decompressing it (the
end of the gzip stream changes on every scrape: it carries the process
metrics).

Prints one JSON object: ``scrapes``: [[wall start, latency, status, bytes, generation], ...]
(generation: a counter, increased at every scrape whose body differs from the one before).
"""

from __future__ import annotations

import http.client
import json
import sys
import time

TAIL = 8192  # bytes left out of the comparison: the process metrics and the gzip trailer


def main(argv: list[str]) -> None:
    port, seconds, every = int(argv[0]), float(argv[1]), float(argv[2])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    scrapes: list[list] = []
    previous, generation = b"", 0
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        wall = time.time()
        started = time.perf_counter()
        try:
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            body = resp.read()
        except (http.client.HTTPException, OSError):
            conn.close()  # the server closed the keep-alive connection: the next request reconnects
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            continue
        latency = time.perf_counter() - started
        n = max(0, min(len(body), len(previous)) - TAIL)
        if n == 0 or body[:n] != previous[:n]:
            generation += 1
        previous = body
        scrapes.append([wall, latency, resp.status, len(body), generation])
        next_at += every
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic())
    print(json.dumps({"scrapes": scrapes}))


if __name__ == "__main__":
    main(sys.argv[1:])
