"""Shutdown of a running exporter process: SIGTERM cancels every poll at once, even one waiting on a provider
that never answers, and no provider call starts after the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from emulators.scenario import Fault
from tests.helpers import SECRETS, free_port, wait_for
from tests.integration.test_reload import CMD


def config_text(url: str) -> str:
    # shop: two spaces polled one at a time, the first never answers (timeout 2m: the client would wait);
    # other: two spaces at 0.2 calls per second, the second waits about 5 s for its token.
    return f"""
accounts:
  - name: shop
    provider: alibaba_cams
    endpoint: {url}
    credentials: {{access_key_id: ak-one, access_key_secret: "${{SK_ONE}}"}}
    poll_interval: 5m
    timeout: 2m
    concurrency: 1
    waba_poll_interval: 0
    spaces: [{{cust_space_id: cams-shop}}, {{cust_space_id: cams-support}}]
  - name: other
    provider: alibaba_cams
    endpoint: {url}
    credentials: {{access_key_id: ak-two, access_key_secret: "${{SK_TWO}}"}}
    poll_interval: 5m
    timeout: 2m
    qps: 0.2
    waba_poll_interval: 0
    spaces: [{{cust_space_id: cams-other}}, {{cust_space_id: cams-shop}}]
"""


def test_sigterm_while_a_poll_waits_on_a_provider_that_never_answers(emulator, tmp_path):
    emulator.inject(Fault(kind="hang", access_key_id="ak-one"))
    path = tmp_path / "config.yaml"
    path.write_text(config_text(emulator.url))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "exporter.log", "w") as log:
        proc = subprocess.Popen(
            [
                *CMD,
                "--config.file",
                str(path),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--log.level",
                "debug",
                "--log.format",
                "json",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SECRETS},
        )
        try:
            wait_for(
                lambda: httpx.get(url + "/-/healthy").status_code == 200,
                "the HTTP server",
                ignore=(httpx.TransportError,),
            )
            # shop's first call is held by the provider; other's first call was answered, its second waits
            wait_for(lambda: emulator.hanging() == 1, "a call that the provider holds")
            wait_for(lambda: any(r.access_key_id == "ak-two" for r in emulator.requests), "other's first call")
            assert httpx.get(url + "/metrics").status_code == 200  # scrapes answer while the poll waits
            signalled = time.time()  # the emulator's clock: request arrival times
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=2) == 0  # raises TimeoutExpired past 2 s
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    emulator.stop()  # releases the held call: it is recorded now, with its arrival time
    wait_for(lambda: any(r.fault == "hang" for r in emulator.requests), "the held call's record")
    after = [(r.access_key_id, r.action, r.space_id) for r in emulator.requests if r.time >= signalled]
    assert after == []
    # shop's second space and other's second call never started
    assert not [r for r in emulator.requests if r.access_key_id == "ak-one" and r.space_id == "cams-support"]
    assert len([r for r in emulator.requests if r.access_key_id == "ak-two"]) == 1
    text = (tmp_path / "exporter.log").read_text()
    assert "provider call failed" not in text
