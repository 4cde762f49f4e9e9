"""Hostile files and many mistakes at once, as a user meets them: through --check-config, in real subprocesses.

A FIFO, a device or a huge file must be refused at once (a FIFO used to hang
--check-config, /dev/zero ended in a MemoryError); a file with many mistakes
must list them all in one run (the example used to take six runs).  How fast
this is is measured by bench/config.py; here a generous timeout only proves
that nothing blocks.
"""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from exporter.config import ConfigError, load_config, parse_config
from exporter.webconfig import WebConfigError, load_web_config
from exporter.yamlfile import MAX_NODES
from tests.helpers import run_exporter

SECRET = "S3cret-value-never-shown"
ENV = {"CF_SECRET": SECRET, "NX_SECRET": "nx-" + SECRET}


def check(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return run_exporter("--check-config", *args, env=ENV, timeout=timeout)


def good(secret_line: str = 'access_key_secret: "${CF_SECRET}"') -> str:
    return textwrap.dedent(f"""\
        accounts:
          - name: shop
            provider: alibaba_cams
            credentials:
              access_key_id: ak
              {secret_line}
            spaces: [{{cust_space_id: cams-1}}]
        """)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# --------------------------------------------------------------------------
# Files that are not what they claim to be
# --------------------------------------------------------------------------


def test_config_fifo_is_refused_without_blocking(fifo):
    line = one_error_line(check("--config.file", str(fifo)))
    assert line == f"error: {fifo}: cannot read config file: not a regular file (a named pipe)"


def test_config_device_is_refused():
    line = one_error_line(check("--config.file", "/dev/zero"))
    assert line == "error: /dev/zero: cannot read config file: not a regular file (a character device)"


def test_config_directory_is_refused(tmp_path):
    line = one_error_line(check("--config.file", str(tmp_path)))
    assert line == f"error: {tmp_path}: cannot read config file: Is a directory"


def test_huge_config_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as fh:  # 100 MB, sparse: written in no time, refused by its size alone
        fh.truncate(100 * 1024 * 1024)
    line = one_error_line(check("--config.file", str(path)))
    assert line == f"error: {path}: config file is too large (more than 4194304 bytes)"


def test_config_socket_is_refused(tmp_path):
    import socket

    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(ConfigError) as info:
            load_config(str(path))
    assert info.value.message == "cannot read config file: not a regular file (a socket)"


def test_secret_file_fifo_is_refused_without_blocking(tmp_path, fifo):
    path = tmp_path / "c.yaml"
    path.write_text(good(f"access_key_secret_file: {fifo}"))
    line = one_error_line(check("--config.file", str(path)))
    assert line == (
        f"error: accounts[0].credentials.access_key_secret_file: cannot read {fifo}: not a regular file (a named pipe)"
    )


def test_secret_file_device_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(good("access_key_secret_file: /dev/zero"))
    line = one_error_line(check("--config.file", str(path)))
    assert "cannot read /dev/zero: not a regular file (a character device)" in line


def test_web_config_fifo_and_certificate_fifo_are_refused(tmp_path, fifo):
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(fifo))
    assert str(info.value) == f"{fifo}: cannot read web config file: not a regular file (a named pipe)"
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config: {{cert_file: {fifo}, key_file: {fifo}}}\n")
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(web))
    assert str(info.value) == f"tls_server_config.cert_file: cannot read {fifo}: not a regular file (a named pipe)"


def test_aliases_may_not_expand_without_bound():
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(ConfigError) as info:
        parse_config("\n".join(laughs) + "\n", env=ENV)
    assert f"past {MAX_NODES} nodes" in info.value.message
    with pytest.raises(ConfigError) as info:
        parse_config("accounts: &a [*a]\n", env=ENV)
    assert "refers to a node that contains it" in info.value.message


# --------------------------------------------------------------------------
# Every problem in one run
# --------------------------------------------------------------------------

MANY_MISTAKES = """\
global:
  pol_interval: 30s
accounts:
  - name: shop
    provider: alibaba_cams
    credentials: {access_key_id: ak, access_key_secret: S3cret-value-never-shown}
    spaces: [{cust_space_id: cams-1}]
  - name: fast
    provider: alibaba_cams
    credentials: {access_key_id: ak2, access_key_secret: "${CF_SECRET}"}
    spaces: [{cust_space_id: cams-2}]
    poll_interval: 5s
    timeout: 2m
  - name: nx
    provider: nxcloud
    credentials: {access_key: nx, access_secret: "${NX_SECRET}"}
    apps: [{appkey: app-1, business_phones: ["+8613800000001", "not-a-number"]}]
    qps: 0
  - name: fast
    provider: meta
    credentials: {access_token: "${CF_SECRET}"}
    wabas: [{waba_id: "1029"}]
    graph_api_version: "24"
  - name: kal
    provider: kaleyra
    pod: MARS
    credentials: {sid: s, api_key: "${UNSET_IN_THIS_TEST}"}
    wabas: [{waba_id: "1030"}]
metrics: {state_sets: some}
webhooks: {listen_address: "10068", nxcloud: {}}
"""

EXPECTED = [
    'global.pol_interval: unknown key (did you mean "poll_interval"?)',
    "accounts[0].credentials.access_key_secret: inline secrets are not allowed",
    "accounts[1].timeout: must be less than poll_interval (5s), got 2m",
    "accounts[2].apps[0].business_phones[1]: invalid phone number",
    "accounts[2].qps: must be greater than 0",
    "accounts[3].graph_api_version: invalid Graph API version '24'",
    "accounts[4].pod: unknown pod 'MARS'",
    "accounts[4].credentials.api_key: environment variable UNSET_IN_THIS_TEST is not set",
    "metrics.state_sets: unknown state_sets mode 'some'",
    "webhooks.listen_address: invalid listen address '10068'",
]


def test_every_problem_is_reported_in_the_same_run(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MANY_MISTAKES)
    result = check("--config.file", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    for expected in EXPECTED:
        assert sum(line.startswith(f"error: {expected}") for line in lines) == 1, (expected, result.stderr)
    assert len(lines) == len(EXPECTED), result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_rules_between_accounts_are_checked_alongside_broken_accounts(tmp_path):
    """A duplicate name is found even while another account has problems of its own."""
    text = MANY_MISTAKES.replace('    graph_api_version: "24"\n', "")
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=ENV)
    assert 'accounts[3].name: duplicate account name "fast" (also accounts[1])' in info.value.lines()
    assert len(info.value.problems) == len(EXPECTED)  # one fixed, one found: the rest unchanged
    assert SECRET not in str(info.value)


def test_config_and_web_config_problems_are_listed_together(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(good().replace("cams-1", ""))
    web = tmp_path / "web.yml"
    web.write_text("rate_limit: {interval: soon, burst: 1}\nbasic_auth_users: {alice: 42}\n")
    result = check("--config.file", str(path), "--web.config.file", str(web))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: accounts[0].spaces[0].cust_space_id: required",
        "error: --web.config.file: basic_auth_users.alice: must be a bcrypt hash string, got an integer",
        "error: --web.config.file: rate_limit.interval: malformed duration 'soon'; expected e.g. 100ms, 1s or 1m",
    ]


def test_no_trace_of_pydantic_or_the_values_behind_the_error():
    """The ConfigError has no chained pydantic error that a logger could print with the raw values."""
    with pytest.raises(ConfigError) as info:
        parse_config(good(f"access_key_secret: {SECRET}"), env=ENV)
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert SECRET not in repr(info.value.problems)
    with pytest.raises(ConfigError) as info:
        parse_config(f'accounts:\n- credentials: {{access_key_secret: "{SECRET}\n', env=ENV)
    assert info.value.path == "<config>:3:1" and info.value.__context__ is None
