"""Reloading the configuration (SIGHUP, POST /-/reload) on a running exporter process, and secrets."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
import pytest

from emulators.scenario import Fault
from tests.helpers import (
    EXPORTER,
    SECRETS,
    config_yaml,
    free_port,
    samples,
    start_exporter,
    value,
    wait_for,
    wait_ready,
)


@pytest.fixture
def running(emulator, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml(emulator.url))
    with open(tmp_path / "exporter.log", "w") as log:
        yield from _run_exporter(path, log, tmp_path / "exporter.log")


def _run_exporter(path, log, log_path):
    port = free_port()
    # --web.enable-lifecycle: since issue 13, POST/PUT /-/reload exists only with it (as in Prometheus)
    proc = start_exporter(path, port, log, SECRETS, "--web.enable-lifecycle")
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    yield proc, url, path, log_path
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def metrics(url):
    return samples(httpx.get(url + "/metrics").text)


def test_bad_reload_keeps_running_config_and_data_then_good_reload_applies(running, emulator):
    proc, url, path, _ = running
    before = metrics(url)
    assert value(before, "whatsapp_exporter_config_last_reload_successful") == 1
    assert value(before, "whatsapp_exporter_numbers", account="shop") == 3

    # a broken file: refused as a whole, reported, nothing lost
    path.write_text(config_yaml(emulator.url).replace("poll_interval: 30s", "poll_interval: forever", 1))
    response = httpx.post(url + "/-/reload")
    assert response.status_code == 500 and "accounts[0].poll_interval" in response.text
    s = metrics(url)
    assert value(s, "whatsapp_exporter_config_last_reload_successful") == 0
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3
    assert value(s, "whatsapp_exporter_numbers", account="other") == 1

    # SIGHUP with a broken file: same. A good reload first sets the gauge back to 1, so that the failed
    # SIGHUP reload is seen as the change it makes (1 -> 0), not as a value that was already there
    path.write_text(config_yaml(emulator.url))
    assert httpx.post(url + "/-/reload").status_code == 200
    assert value(metrics(url), "whatsapp_exporter_config_last_reload_successful") == 1
    path.write_text("accounts: [")
    proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: value(metrics(url), "whatsapp_exporter_config_last_reload_successful") == 0, "the SIGHUP reload to fail"
    )
    s = metrics(url)
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3
    assert value(s, "whatsapp_exporter_numbers", account="other") == 1
    assert proc.poll() is None

    # a good file: "other" changes (new label), a third account appears, "shop" is kept as it is
    requests_before = value(
        metrics(url), "whatsapp_exporter_api_requests_total", account="shop", action="QueryChatappPhoneNumbers"
    )
    good = config_yaml(emulator.url, extra_two="    labels: {team: support}")
    path.write_text(
        good
        + f"""
  - name: third
    provider: alibaba_cams
    endpoint: {emulator.url}
    credentials: {{access_key_id: ak-two, access_key_secret: "${{SK_TWO}}"}}
    spaces: [{{cust_space_id: cams-other}}]
"""
    )
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: value(metrics(url), "whatsapp_exporter_config_last_reload_successful") == 1, "a successful reload")
    wait_for(
        lambda: value(metrics(url), "whatsapp_exporter_poll_success", account="third") == 1, "the new account's poll"
    )
    # "other" changed (a new label): it is polled again under its new configuration
    wait_for(
        lambda: value(metrics(url), "whatsapp_phone_number_info", account="other", team="support") == 1,
        "the changed account's numbers with the new label",
    )
    s = metrics(url)
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3
    # the unchanged account kept its runtime: its counters did not restart from zero
    assert (
        value(s, "whatsapp_exporter_api_requests_total", account="shop", action="QueryChatappPhoneNumbers")
        >= requests_before
    )
    assert value(s, "whatsapp_exporter_config_last_reload_success_timestamp_seconds") > value(
        before, "whatsapp_exporter_config_last_reload_success_timestamp_seconds"
    )

    # removing an account removes its series
    path.write_text(config_yaml(emulator.url, two=False))
    response = httpx.put(url + "/-/reload")
    assert response.status_code == 200 and "removed" in response.text
    s = metrics(url)
    assert not [k for k in s if dict(k[1]).get("account") in ("other", "third")]
    assert httpx.get(url + "/-/reload").status_code == 405


def test_no_secret_in_anything_the_exporter_writes(running, emulator):
    proc, url, path, log_path = running
    for code in ("SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound", "Ram.PermissionDeny", "InternalError"):
        emulator.inject(Fault(kind="error", code=code, count=2))
        httpx.post(url + "/-/reload")  # re-applies the same config: nothing changes, but it is logged
    emulator.inject(Fault(kind="malformed", count=2))
    path.write_text(config_yaml(emulator.url).replace('"${SK_ONE}"', SECRETS["SK_ONE"]))  # an inline secret: refused
    refused = httpx.post(url + "/-/reload")
    assert refused.status_code == 500 and "inline secrets" in refused.text
    outputs = [
        refused.text,
        httpx.get(url + "/metrics").text,
        httpx.get(url + "/").text,
        httpx.get(url + "/metrics", headers={"Accept-Encoding": "gzip"}).text,
    ]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    outputs.append(log_path.read_text())
    assert '"level": "debug"' in outputs[-1]  # debug logging was on
    for secret in SECRETS.values():
        for output in outputs:
            assert secret not in output


def test_http_reload_needs_web_enable_lifecycle_and_sighup_always_reloads(emulator, tmp_path):
    """Issue 13: like Prometheus, /-/reload exists only with --web.enable-lifecycle; SIGHUP works regardless."""
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml(emulator.url))
    port = free_port()
    proc = subprocess.Popen(
        [*EXPORTER, "--config.file", str(path), "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **SECRETS},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        path.write_text(config_yaml(emulator.url, two=False))
        for method in ("POST", "PUT", "GET"):
            assert httpx.request(method, url + "/-/reload").status_code == 404, method
        assert value(metrics(url), "whatsapp_exporter_numbers", account="other") == 1  # nothing was reloaded
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: value(metrics(url), "whatsapp_exporter_numbers", account="other") is None, "the SIGHUP reload")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_reloads_are_refused_once_shutdown_began():
    from exporter.store import Store
    from exporter.web import App, HttpServer

    reloads = []
    app = App(Store(), reload=lambda: reloads.append(1) or (True, "configuration reloaded"), lifecycle=True)
    server = HttpServer(app, "127.0.0.1:0").start()
    try:
        assert httpx.post(server.url + "/-/reload").status_code == 200
        app.shutting_down = True  # what SIGTERM sets, before the polls are cancelled
        refused = httpx.post(server.url + "/-/reload")
        assert refused.status_code == 503 and "Shutting down" in refused.text
        assert reloads == [1]
    finally:
        server.stop()
