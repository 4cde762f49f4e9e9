"""The command line, run as a user runs it: real subprocesses, real sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import httpx
import pytest

from exporter import __version__
from tests.helpers import EXPORTER, cams_account, free_port, run_exporter, samples, start_demo, wait_ready
from tests.tools import promtool_check_metrics

GOOD = "accounts:\n" + cams_account(None, "shop", "ak", "CLI_TEST_SECRET", ["cams-1"])


def test_version():
    result = run_exporter("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_check_config_ok(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    result = run_exporter("--check-config", "--config.file", str(path), env={"CLI_TEST_SECRET": "s3cr3t-cli"})
    assert result.returncode == 0, result.stderr
    assert "1 account" in result.stdout


@pytest.mark.parametrize(
    "text,key",
    [
        (GOOD.replace("cams-1", ""), "accounts[0].spaces[0].cust_space_id"),
        (GOOD.replace("name: shop", "nmae: shop"), "accounts[0].nmae"),
        (GOOD + "    qps: 0\n", "accounts[0].qps"),
        ("accounts: [", "c.yaml"),
    ],
)
def test_check_config_errors_are_one_line_exit_2(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = run_exporter("--check-config", "--config.file", str(path), env={"CLI_TEST_SECRET": "s3cr3t-cli"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "s3cr3t-cli" not in result.stderr


def test_missing_secret_env_is_named_without_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    env = {k: v for k, v in os.environ.items() if k != "CLI_TEST_SECRET"}
    result = subprocess.run(
        [*EXPORTER, "--config.file", str(path)], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 2
    assert "CLI_TEST_SECRET" in result.stderr and "Traceback" not in result.stderr


def test_missing_config_file(tmp_path):
    result = run_exporter("--config.file", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_config_is_required_without_demo():
    result = run_exporter()
    assert result.returncode == 2 and "--config.file" in result.stderr


def test_bad_listen_address():
    result = run_exporter("--demo", "--web.listen-address", "nonsense")
    assert result.returncode == 2 and "--web.listen-address" in result.stderr


def test_demo_serves_changing_metrics_and_stops_cleanly():
    port = free_port()
    proc = start_demo(EXPORTER, port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, "the demo's readiness", process=proc)
        body = httpx.get(url + "/metrics").content
        s = samples(body.decode())
        numbers = {dict(ls)["phone_number"] for (n, ls) in s if n == "whatsapp_phone_number_info"}
        assert len(numbers) >= 8
        successes = [v for (n, ls), v in s.items() if n == "whatsapp_exporter_poll_success"]
        assert successes and all(v == 1 for v in successes)
        # the demo's webhook receiver is on (its counters start at 0) and every provider is in it
        assert any(n == "whatsapp_exporter_webhook_events_total" for (n, _) in s)
        assert {dict(ls)["provider"] for (n, ls) in s if n == "whatsapp_phone_number_info"} == {
            "alibaba_cams",
            "nxcloud",
            "kaleyra",
            "meta",
            "twilio",
            "infobip",
        }
        check = promtool_check_metrics(body)
        assert check.returncode == 0 and not check.stdout and not check.stderr, check
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "listening" for r in records)
    assert not [r for r in records if r["level"] == "error"], err
    assert "Traceback" not in err
