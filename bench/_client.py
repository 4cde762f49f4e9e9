"""Scrape a URL N times over one keep-alive connection; print the latencies (seconds) as JSON.

Usage: python -m bench._client URL N gzip|plain
"""

import http.client
import json
import sys
import time
from urllib.parse import urlsplit

url, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
parts = urlsplit(url)
conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
headers = {"Accept-Encoding": "gzip" if mode == "gzip" else "identity"}
latencies, size = [], 0
for _ in range(n):
    start = time.perf_counter()
    conn.request("GET", parts.path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    latencies.append(time.perf_counter() - start)
    size = len(body)
    assert response.status == 200, response.status
print(json.dumps({"latencies": latencies, "bytes": size}))
