"""The ``webhooks:`` section of the configuration: defaults, secrets, and one-line errors (exit code 2)."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, parse_config
from tests.helpers import cams_account, run_exporter

ENV = {
    "SK": "sk-account-SECRET",
    "MS": "meta-app-SECRET-value",
    "VT": "verify-TOKEN-value",
    "KT": "kaleyra-TOKEN-0123456789",
}
SECRET_VALUES = tuple(ENV.values())

ACCOUNTS = "\naccounts:\n" + cams_account(None, "shop", "ak", "SK", ["cams-1"])

FULL = (
    ACCOUNTS
    + """
webhooks:
  listen_address: ":10068"
  debounce: 5s
  meta:
    app_secret: ${MS}
    verify_token: ${VT}
  kaleyra:
    token: ${KT}
  nxcloud: {}
"""
)


def parse(text: str, env=None, source=None):
    return parse_config(text, source=source, env=ENV if env is None else env)


def test_absent_section_means_off():
    assert parse(ACCOUNTS).webhooks is None


def test_full_section():
    w = parse(FULL).webhooks
    assert w.listen_address == ":10068"
    assert w.debounce == 5.0
    assert (w.meta_app_secret, w.meta_verify_token, w.kaleyra_token) == (ENV["MS"], ENV["VT"], ENV["KT"])
    assert w.nxcloud is True
    assert w.providers == ("meta", "nxcloud", "kaleyra")
    for text in (repr(w), str(w), w.describe(), repr(parse(FULL))):
        for secret in SECRET_VALUES:
            assert secret not in text


def test_defaults_and_secret_files(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "app").write_text("meta-from-FILE\n")
    (tmp_path / "secrets" / "verify").write_text("verify-from-FILE")
    (tmp_path / "secrets" / "kaleyra").write_text("kaleyra-from-FILE-0123456789\n")
    text = (
        ACCOUNTS
        + """
webhooks:
  listen_address: "127.0.0.1:10068"
  meta: {app_secret_file: secrets/app, verify_token_file: secrets/verify}
  kaleyra: {token_file: secrets/kaleyra}
  nxcloud:
"""
    )
    w = parse(text, source=str(tmp_path / "config.yaml")).webhooks
    assert w.debounce == 2.0
    assert (w.meta_app_secret, w.meta_verify_token, w.kaleyra_token) == (
        "meta-from-FILE",
        "verify-from-FILE",
        "kaleyra-from-FILE-0123456789",
    )
    assert w.nxcloud and w.providers == ("meta", "nxcloud", "kaleyra")


def test_debounce_zero_is_allowed():
    assert parse(ACCOUNTS + "webhooks: {listen_address: ':1', debounce: 0s, nxcloud: {}}").webhooks.debounce == 0.0


def section(body: str) -> str:
    return ACCOUNTS + "webhooks:\n" + body


CASES = [
    ("missing listen_address", section("  nxcloud: {}\n"), "webhooks.listen_address: required"),
    (
        "bad listen_address",
        section("  listen_address: '10068'\n  nxcloud: {}\n"),
        "webhooks.listen_address: invalid listen address",
    ),
    (
        "bad duration",
        section("  listen_address: ':1'\n  debounce: soon\n  nxcloud: {}\n"),
        "webhooks.debounce: invalid duration",
    ),
    (
        "duration out of range",
        section("  listen_address: ':1'\n  debounce: 90s\n  nxcloud: {}\n"),
        "webhooks.debounce: must be between 0s and 1m",
    ),
    (
        "negative duration",
        section("  listen_address: ':1'\n  debounce: -1\n  nxcloud: {}\n"),
        "webhooks.debounce: must be between",
    ),
    (
        "inline secret",
        section("  listen_address: ':1'\n  meta: {app_secret: meta-app-SECRET-value, verify_token: '${VT}'}\n"),
        "webhooks.meta.app_secret: inline secrets are not allowed",
    ),
    (
        "fallback secret",
        section("  listen_address: ':1'\n  kaleyra: {token: '${NOPE:-kaleyra-TOKEN-0123456789}'}\n"),
        "webhooks.kaleyra.token: a ${VAR:-default} fallback is an inline secret",
    ),
    (
        "unset secret",
        section("  listen_address: ':1'\n  kaleyra: {token: '${NOT_SET_ANYWHERE}'}\n"),
        "webhooks.kaleyra.token: environment variable NOT_SET_ANYWHERE is not set",
    ),
    (
        "missing verify_token",
        section("  listen_address: ':1'\n  meta: {app_secret: '${MS}'}\n"),
        "webhooks.meta.verify_token: required",
    ),
    (
        "missing app_secret",
        section("  listen_address: ':1'\n  meta: {verify_token: '${VT}'}\n"),
        "webhooks.meta.app_secret: required",
    ),
    (
        "both value and file",
        section("  listen_address: ':1'\n  kaleyra: {token: '${KT}', token_file: /x}\n"),
        "webhooks.kaleyra: set only one of token and token_file",
    ),
    (
        "unreadable file",
        section("  listen_address: ':1'\n  kaleyra: {token_file: /nonexistent/token}\n"),
        "webhooks.kaleyra.token_file: cannot read /nonexistent/token",
    ),
    (
        "short kaleyra token",
        section("  listen_address: ':1'\n  kaleyra: {token: '${VT}'}\n").replace("${VT}", "${SHORT}"),
        "webhooks.kaleyra.token: too short",
    ),
    (
        "unknown key",
        section("  listen_adress: ':1'\n  nxcloud: {}\n"),
        'webhooks.listen_adress: unknown key (did you mean "listen_address"?)',
    ),
    (
        "unknown meta key",
        section("  listen_address: ':1'\n  meta: {secret: '${MS}'}\n"),
        "webhooks.meta.secret: unknown key",
    ),
    (
        "nxcloud takes no keys",
        section("  listen_address: ':1'\n  nxcloud: {access_secret: '${SK}'}\n"),
        "webhooks.nxcloud.access_secret: unknown key",
    ),
    ("no provider", section("  listen_address: ':1'\n"), "webhooks: enable at least one of meta, kaleyra or nxcloud"),
    ("not a mapping", ACCOUNTS + "webhooks: [a]\n", "webhooks: must be a mapping, got list"),
    (
        "provider not a mapping",
        section("  listen_address: ':1'\n  meta: yes\n"),
        "webhooks.meta: must be a mapping, got boolean",
    ),
]


@pytest.mark.parametrize("name,text,message", CASES, ids=[c[0] for c in CASES])
def test_errors_are_one_line_naming_the_key(name, text, message):
    with pytest.raises(ConfigError) as info:
        parse(text, env={**ENV, "SHORT": "short"})
    got = str(info.value)
    assert "\n" not in got
    assert got.startswith(message), got
    for secret in (*SECRET_VALUES, "kaleyra-TOKEN-0123456789"):
        assert secret not in got


@pytest.mark.parametrize(
    "name,text,message",
    [CASES[0], CASES[2], CASES[5], CASES[13], CASES[16]],
    ids=[CASES[i][0] for i in (0, 2, 5, 13, 16)],
)
def test_check_config_exits_2_with_one_line(tmp_path, name, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = run_exporter("--check-config", "--config.file", str(path), env=ENV)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr
    assert "Traceback" not in result.stderr
    for secret in SECRET_VALUES:
        assert secret not in result.stderr + result.stdout


def test_check_config_ok_describes_webhooks_without_secrets(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(FULL)
    result = run_exporter("--check-config", "--config.file", str(path), env=ENV)
    assert result.returncode == 0, result.stderr
    assert "webhooks OK: listening on :10068 for meta, nxcloud, kaleyra, debounce 5s" in result.stdout
    for secret in SECRET_VALUES:
        assert secret not in result.stdout + result.stderr


# -- the bounds of issue 14: replay window, minimum refresh interval, Meta's hourly budget ----------------------


def test_bounds_defaults():
    w = parse(FULL).webhooks
    assert (w.replay_window, w.min_refresh_interval, w.meta_refreshes_per_hour) == (600.0, 30.0, 20)


def test_bounds_set():
    w = parse(
        section(
            "  listen_address: ':1'\n  nxcloud: {}\n  replay_window: 1h\n  min_refresh_interval: 0s\n"
            "  meta_refreshes_per_hour: 100\n"
        )
    ).webhooks
    assert (w.replay_window, w.min_refresh_interval, w.meta_refreshes_per_hour) == (3600.0, 0.0, 100)
    assert isinstance(w.meta_refreshes_per_hour, int)
    assert "replay window 1h" in w.describe() and "100 per hour for Meta accounts" in w.describe()


#: each bound's bad values, with what the error says after "webhooks.<key>: "
BAD_BOUNDS = {
    "replay_window": {"0": "must be between 1s and 24h, got 0s", "2d": "invalid duration", "[1]": "must be a duration"},
    "min_refresh_interval": {"2h": "must be between 0s and 1h, got 2h", "-5": "must be between"},
    "meta_refreshes_per_hour": {
        "0": "must be a whole number from 1 to 5000, got 0",
        "2.5": "must be a whole number",
        "many": "must be a number",
    },
}
BOUNDS_CASES = [(key, value, message) for key, bad in BAD_BOUNDS.items() for value, message in bad.items()]


@pytest.mark.parametrize("key,value,message", BOUNDS_CASES, ids=[f"{k}={v}" for k, v, _ in BOUNDS_CASES])
def test_bounds_errors_name_the_key(key, value, message):
    with pytest.raises(ConfigError) as info:
        parse(section(f"  listen_address: ':1'\n  nxcloud: {{}}\n  {key}: {value}\n"))
    got = str(info.value)
    assert "\n" not in got and got.startswith(f"webhooks.{key}: {message}"), got


def test_bad_bounds_exit_2_one_line_per_problem(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        section(
            "  listen_address: ':1'\n  nxcloud: {}\n  replay_window: 0\n  min_refresh_interval: 2h\n"
            "  meta_refreshes_per_hour: 0\n"
        )
    )
    result = run_exporter("--check-config", "--config.file", str(path), env=ENV)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    for key, line in zip(("replay_window", "min_refresh_interval", "meta_refreshes_per_hour"), lines, strict=True):
        assert line.startswith(f"error: webhooks.{key}: "), result.stderr
