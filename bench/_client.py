"""Scrape a URL N times over one keep-alive connection; print the latencies (seconds) as JSON.

A raw socket, so the client adds no cost of its own: the request is written,
the status line and headers are read up to the blank line, and then exactly
``Content-Length`` bytes are received into one preallocated buffer (no
decoding, no decompression, no copies).  Python's HTTP clients add tens of
milliseconds at 80 MB.

Usage: python -m bench._client URL N gzip|plain [EVERY]
(EVERY: seconds from the start of one request to the start of the next, as a
scrape interval; default 0, back to back.)
"""

import json
import socket
import sys
import time
from urllib.parse import urlsplit


def scrape(sock: socket.socket, request: bytes, buf: bytearray) -> tuple[int, int]:
    """(status, body length) of one request on a keep-alive connection (a negative length: the server closed it)."""
    sock.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    fields = {k.strip().lower(): v.strip().lower() for k, _, v in (line.partition(b":") for line in lines[1:])}
    closing = lines[0].startswith(b"HTTP/1.0") or fields.get(b"connection") == b"close"
    lengths = [int(fields[b"content-length"])] if b"content-length" in fields else []
    if not lengths:  # an HTTP/1.0 server (prometheus_client's): the body ends when it closes the connection
        got = len(rest)
        while chunk := sock.recv(1 << 20):
            got += len(chunk)
        return status, -got
    length = lengths[0]
    if len(buf) < length:
        buf.extend(bytes(length - len(buf)))
    view = memoryview(buf)
    view[: len(rest)] = rest
    got = len(rest)
    while got < length:
        n = sock.recv_into(view[got:length])
        if not n:
            raise ConnectionError("closed in the body")
        got += n
    return status, -length if closing else length


def main() -> None:
    url, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    every = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    parts = urlsplit(url)
    encoding = b"gzip" if mode == "gzip" else b"identity"
    request = b"GET %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: %s\r\n\r\n" % (
        parts.path.encode(),
        parts.netloc.encode(),
        encoding,
    )
    sock = socket.create_connection((parts.hostname, parts.port), timeout=600)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    latencies, size = [], 0
    for _ in range(n):
        start = time.perf_counter()
        status, size = scrape(sock, request, buf)
        if size < 0:  # the server closed the connection: the next request needs a new one
            size = -size
            sock.close()
            sock = socket.create_connection((parts.hostname, parts.port), timeout=600)
        latencies.append(time.perf_counter() - start)
        assert status == 200, status
        if every:
            time.sleep(max(0.0, every - (time.perf_counter() - start)))
    print(json.dumps({"latencies": latencies, "bytes": size}))


if __name__ == "__main__":
    main()
