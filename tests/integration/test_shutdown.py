"""Shutdown of a running exporter process: SIGTERM cancels every poll at once, even one waiting on a provider
that never answers, and no provider call starts after the signal."""

from __future__ import annotations

import signal
import time

import httpx

from emulators.scenario import Fault
from tests.helpers import SECRETS, cams_account, free_port, start_exporter, wait_for


def config_text(url: str) -> str:
    # shop: two spaces polled one at a time, the first never answers (timeout 2m: the client would wait);
    # other: two spaces at 0.2 calls per second, the second waits about 5 s for its token.
    common = dict(poll_interval="5m", timeout="2m", waba_poll_interval=0)
    return (
        "accounts:\n"
        + cams_account(url, "shop", "ak-one", "SK_ONE", ["cams-shop", "cams-support"], **common, concurrency=1)
        + cams_account(url, "other", "ak-two", "SK_TWO", ["cams-other", "cams-shop"], **common, qps=0.2)
    )


def test_sigterm_while_a_poll_waits_on_a_provider_that_never_answers(emulator, tmp_path):
    emulator.inject(Fault(kind="hang", access_key_id="ak-one"))
    path = tmp_path / "config.yaml"
    path.write_text(config_text(emulator.url))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "exporter.log", "w") as log:
        proc = start_exporter(path, port, log, SECRETS)
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
