"""Tests for exporter.config: loading, validation, defaults and secret hygiene."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import (
    PROVIDERS,
    RESERVED_LABEL_NAMES,
    Account,
    Config,
    ConfigError,
    Credentials,
    Labels,
    Unit,
    load_config,
    parse_config,
    parse_duration,
)

REPO = Path(__file__).resolve().parents[2]

SECRET = "EnvSecret-9f8e7d6c5b4a"
FILE_SECRET = "FileSecret-1a2b3c4d5e6f"
INLINE_SECRET = "InlineSecret-0z9y8x7w"
ENV = {
    "CAMS_ID": "LTAI5tIdValue",
    "CAMS_SECRET": SECRET,
    "CAMS_ID_2": "LTAI5tOther",
    "CAMS_SECRET_2": SECRET + "-two",
    "EMPTY": "",
    "SPACE_ID": "cams-from-env",
    "QPS": "25",
    "POLL": "2m",
    "SECRET_WITH_SPACE": "Secret With Space-" + SECRET,
}
ALL_SECRETS = (SECRET, FILE_SECRET, INLINE_SECRET, SECRET + "-two", "Secret With Space")

DEL = object()  # marks a key to delete in account()/doc()


def account(**overrides):
    """A valid account mapping, with keys overridden or deleted (value DEL)."""
    acct = {
        "name": "shop-prod",
        "provider": "alibaba_cams",
        "credentials": {"access_key_id": "${CAMS_ID}", "access_key_secret": "${CAMS_SECRET}"},
        "spaces": [{"cust_space_id": "cams-abc123"}],
    }
    return overridden(acct, overrides)


def creds(**overrides):
    return overridden({"access_key_id": "${CAMS_ID}", "access_key_secret": "${CAMS_SECRET}"}, overrides)


def overridden(d: dict, overrides: dict) -> dict:
    """``d`` with ``overrides`` applied; a value of DEL removes the key."""
    for key, value in overrides.items():
        if value is DEL:
            d.pop(key, None)
        else:
            d[key] = value
    return d


def doc(*accounts, glob=None, **top):
    d = {}
    if glob is not None:
        d["global"] = glob
    d["accounts"] = list(accounts) if accounts else [account()]
    d.update(top)
    return yaml.safe_dump(d, sort_keys=False)


def parse(text, env=ENV, source=None):
    return parse_config(text, source=source, env=env)


@pytest.fixture
def files(tmp_path):
    """Secret files used by table cases (placeholders in YAML text)."""
    good = tmp_path / "secret"
    good.write_text(FILE_SECRET + "\n")
    empty = tmp_path / "empty"
    empty.write_text("\n  \n")
    spaced = tmp_path / "spaced"
    spaced.write_text("FileSecret with\nTwoLines " + FILE_SECRET + "\n")
    big = tmp_path / "big"
    big.write_text(FILE_SECRET * 10000)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + FILE_SECRET.encode() + b"\xff")
    return {
        "good": str(good),
        "missing": str(tmp_path / "does-not-exist"),
        "empty": str(empty),
        "spaced": str(spaced),
        "big": str(big),
        "binary": str(binary),
        "dir": str(tmp_path),
    }


def fmt(text, files):
    return (
        text.replace("{SECRET_FILE}", files["good"])
        .replace("{MISSING_FILE}", files["missing"])
        .replace("{EMPTY_FILE}", files["empty"])
        .replace("{SPACED_FILE}", files["spaced"])
        .replace("{BIG_FILE}", files["big"])
        .replace("{BINARY_FILE}", files["binary"])
        .replace("{DIR}", files["dir"])
    )


# --------------------------------------------------------------------------
# Malformed configs: (id, yaml text, expected path, expected message fragment)
# --------------------------------------------------------------------------

# one CAMS account written out by hand, for values ``doc``/``account`` cannot express (YAML's .nan, bool, int keys)
_RAW_CAMS_ACCOUNT = (
    "accounts:\n- name: a\n  provider: alibaba_cams\n"
    '  credentials: {access_key_id: i, access_key_secret: "${CAMS_SECRET}"}\n  spaces: [{cust_space_id: s}]\n'
)


def secret_file_case(name, secret_file, message):
    """A BAD_CASES row: the account's secret read from ``secret_file``, refused with ``message``."""
    credentials = creds(access_key_secret=DEL, access_key_secret_file=secret_file)
    return (name, doc(account(credentials=credentials)), "accounts[0].credentials.access_key_secret_file", message)


def account_case(case_id, message, /, **keys):
    """A BAD_CASES row: the account with one key set (or deleted: DEL), refused at that key with ``message``."""
    ((key, _),) = keys.items()
    return (case_id, doc(account(**keys)), f"accounts[0].{key}", message)


def credentials_case(case_id, message, at=None, /, **overrides):
    """A BAD_CASES row: the account's credentials with ``overrides``, refused with ``message`` at the first key
    overridden (``at=""``: at the credentials themselves)."""
    where = next(iter(overrides)) if at is None else at
    path = "accounts[0].credentials" + (where and "." + where)
    return (case_id, doc(account(credentials=creds(**overrides))), path, message)


def label_case(case_id, name, label_value, message):
    """A BAD_CASES row: the account with the one label ``name: label_value``, refused at it with ``message``."""
    return (case_id, doc(account(labels={name: label_value})), f"accounts[0].labels.{name}", message)


BAD_CASES = [
    # --- file level ---
    ("yaml-syntax", "accounts:\n  - name: [unclosed\n", "<config>:3:1", "YAML syntax error"),
    ("yaml-tab", "accounts:\n\t- name: x\n", "<config>:2:1", "YAML syntax error"),
    ("yaml-duplicate-key", "accounts: []\naccounts: []\n", "<config>:2:1", "duplicate key 'accounts'"),
    ("yaml-two-documents", "accounts: []\n---\naccounts: []\n", "<config>:2:1", "YAML syntax error"),
    ("yaml-python-tag", "accounts: !!python/object:os.system x\n", "<config>:1:11", "YAML syntax error"),
    ("empty-file", "", "<config>", "config is empty"),
    ("only-comments", "# nothing here\n", "<config>", "config is empty"),
    ("top-level-list", "- a\n- b\n", "<config>", "top level must be a mapping"),
    ("top-level-scalar", "hello\n", "<config>", "top level must be a mapping"),
    ("top-level-int-key", "1: x\naccounts: []\n", "<config>", "keys must be strings"),
    ("unknown-top-key", doc(listen=":9000"), "listen", "unknown key"),
    ("typo-top-key", "acounts: []\n", "acounts", 'did you mean "accounts"'),
    ("no-accounts", "global: {}\n", "accounts", "required"),
    ("accounts-null", "accounts:\n", "accounts", "required"),
    ("accounts-empty", "accounts: []\n", "accounts", "at least one account"),
    ("accounts-mapping", "accounts: {name: x}\n", "accounts", "must be a list"),
    ("accounts-string", "accounts: shop\n", "accounts", "must be a list"),
    ("account-not-mapping", "accounts: [shop]\n", "accounts[0]", "must be a mapping"),
    # --- global ---
    ("global-not-mapping", "global: 5\naccounts: []\n", "global", "must be a mapping"),
    ("global-unknown-key", doc(glob={"pol_interval": 5}), "global.pol_interval", 'did you mean "poll_interval"'),
    ("global-name-not-allowed", doc(glob={"name": "x"}), "global.name", "unknown key"),
    ("global-poll-low", doc(glob={"poll_interval": "1s"}), "global.poll_interval", "between 5s and 1h"),
    ("global-jitter-gt-half", doc(glob={"poll_interval": 10, "poll_jitter": 6}), "global.poll_jitter", "at most half"),
    ("global-qps-bool", doc(glob={"qps": True}), "global.qps", "got boolean"),
    ("global-bad-label", doc(glob={"labels": {"job": "x"}}), "global.labels.job", "reserved"),
    # --- account keys ---
    account_case("unknown-account-key", 'unknown key (did you mean "poll_interval"?)', pol_interval=60),
    ("unknown-account-key-dash", doc(account(**{"poll-interval": 60})), "accounts[0].poll-interval", "unknown key"),
    account_case("missing-name", "required", name=DEL),
    account_case("name-null", "required", name=None),
    account_case("name-not-string", "must be a string", name=123),
    account_case("name-bad-chars", "invalid account name 'shop prod'", name="shop prod"),
    account_case("name-slash", "invalid account name", name="a/b"),
    account_case("name-too-long", "1-64 characters", name="x" * 65),
    account_case("name-empty", "invalid account name", name=""),
    account_case("name-empty-env", "invalid account name '${EMPTY}'", name="${EMPTY}"),
    (
        "duplicate-names",
        doc(account(), account(name="b", spaces=[{"cust_space_id": "s2"}]), account()),
        "accounts[2].name",
        'duplicate account name "shop-prod" (also accounts[0])',
    ),
    account_case("missing-provider", "required", provider=DEL),
    account_case("unknown-provider", "unknown provider 'gupshup'", provider="gupshup"),
    account_case("provider-typo", 'did you mean "alibaba_cams"', provider="alibaba_cam"),
    # --- credentials ---
    account_case("missing-credentials", "required", credentials=DEL),
    account_case("credentials-string", "must be a mapping", credentials="LTAI:secret"),
    credentials_case("credentials-unknown-key", 'did you mean "access_key_secret"', access_key_secrte="${CAMS_SECRET}"),
    credentials_case("missing-access-key-id", "required", access_key_id=DEL),
    credentials_case("access-key-id-not-string", "must be a string", access_key_id=12345),
    credentials_case("access-key-id-empty", "must not be empty", access_key_id="${EMPTY}"),
    account_case(
        "access-key-id-both",
        "only one of access_key_id and access_key_id_file",
        credentials=creds(access_key_id_file="{SECRET_FILE}"),
    ),
    (
        "access-key-id-file-missing",
        doc(account(credentials=creds(access_key_id=DEL, access_key_id_file="{MISSING_FILE}"))),
        "accounts[0].credentials.access_key_id_file",
        "cannot read",
    ),
    account_case(
        "secret-and-file",
        "only one of access_key_secret and access_key_secret_file",
        credentials=creds(access_key_secret_file="{SECRET_FILE}"),
    ),
    # Issue 15: a missing secret is reported at its own key, in the words of the webhook secrets.
    credentials_case("secret-neither", "required (as ${ENV_VAR} or access_key_secret_file)", access_key_secret=DEL),
    credentials_case(
        "secret-inline",
        "inline secrets are not allowed; use ${ENV_VAR} or access_key_secret_file",
        access_key_secret=INLINE_SECRET,
    ),
    credentials_case("secret-inline-number", "inline secrets are not allowed", access_key_secret=987654321),
    credentials_case(
        "secret-inline-partial-ref",
        "inline secrets are not allowed",
        access_key_secret=INLINE_SECRET + "${CAMS_SECRET}",
    ),
    credentials_case(
        "secret-inline-default", "fallback is an inline secret", access_key_secret="${NOPE:-" + INLINE_SECRET + "}"
    ),
    credentials_case(
        "secret-unset-env",
        "environment variable CAMS_SECRET_MISSING is not set",
        access_key_secret="${CAMS_SECRET_MISSING}",
    ),
    credentials_case("secret-empty-env", "environment variable EMPTY is empty", access_key_secret="${EMPTY}"),
    credentials_case("secret-env-whitespace", "contains whitespace", access_key_secret="${SECRET_WITH_SPACE}"),
    secret_file_case("secret-file-missing", "{MISSING_FILE}", "cannot read {MISSING_FILE}: No such file or directory"),
    secret_file_case("secret-file-is-dir", "{DIR}", "cannot read {DIR}: Is a directory"),
    secret_file_case("secret-file-empty", "{EMPTY_FILE}", "is empty"),
    secret_file_case("secret-file-two-lines", "{SPACED_FILE}", "contains whitespace"),
    secret_file_case("secret-file-too-big", "{BIG_FILE}", "too large"),
    secret_file_case("secret-file-binary", "{BINARY_FILE}", "not valid UTF-8"),
    secret_file_case("secret-file-not-string", ["a"], "must be a file path"),
    secret_file_case(
        "secret-file-unset-env", "${NO_SUCH_FILE_VAR}", "environment variable NO_SUCH_FILE_VAR is not set"
    ),
    # --- endpoint ---
    (
        "endpoint-no-scheme",
        doc(account(endpoint="cams.ap-southeast-1.aliyuncs.com")),
        "accounts[0].endpoint",
        "with a scheme",
    ),
    account_case("endpoint-host-port-no-scheme", "with a scheme", endpoint="localhost:8080"),
    account_case("endpoint-ftp", 'scheme must be http or https, got "ftp"', endpoint="ftp://cams.example.com"),
    account_case("endpoint-path", "must not have a path", endpoint="https://cams.example.com/api"),
    account_case("endpoint-query", "query", endpoint="https://cams.example.com/?x=1"),
    account_case("endpoint-no-host", "must have a host", endpoint="https://"),
    account_case("endpoint-bad-port", "invalid URL", endpoint="https://cams.example.com:99999"),
    account_case(
        "endpoint-userinfo",
        "must not contain user information",
        endpoint="https://id:" + INLINE_SECRET + "@cams.example.com",
    ),
    account_case("endpoint-not-string", "must be a string", endpoint=["https://x"]),
    # --- spaces ---
    account_case("spaces-missing", "required", spaces=DEL),
    account_case("spaces-empty", "at least one space", spaces=[]),
    account_case("spaces-not-list", "must be a list", spaces={"cust_space_id": "x"}),
    ("space-not-mapping", doc(account(spaces=["cams-abc"])), "accounts[0].spaces[0]", "must be a mapping"),
    (
        "space-no-id",
        doc(account(spaces=[{"cust_space_id": "a"}, {"isv_code": "x"}])),
        "accounts[0].spaces[1].cust_space_id",
        "required",
    ),
    ("space-id-int", doc(account(spaces=[{"cust_space_id": 123}])), "accounts[0].spaces[0].cust_space_id", "quote it"),
    (
        "space-id-blank",
        doc(account(spaces=[{"cust_space_id": "  "}])),
        "accounts[0].spaces[0].cust_space_id",
        "must not be empty",
    ),
    (
        "space-unknown-key",
        doc(account(spaces=[{"cust_space_id": "a", "isv": "x"}])),
        "accounts[0].spaces[0].isv",
        'did you mean "isv_code"',
    ),
    (
        "space-duplicate",
        doc(account(spaces=[{"cust_space_id": "a"}, {"cust_space_id": "b"}, {"cust_space_id": "a"}])),
        "accounts[0].spaces[2].cust_space_id",
        "duplicate cust_space_id 'a' (also accounts[0].spaces[0])",
    ),
    (
        "space-isv-not-string",
        doc(account(spaces=[{"cust_space_id": "a", "isv_code": 7}])),
        "accounts[0].spaces[0].isv_code",
        "must be a string",
    ),
    # --- poll_interval / jitter / timeout ---
    account_case("poll-interval-list", "must be a duration", poll_interval=[60]),
    account_case("poll-interval-bool", "got boolean", poll_interval=True),
    account_case("poll-interval-garbage", "invalid duration 'sixty'", poll_interval="sixty"),
    account_case("poll-interval-bad-unit", "invalid duration", poll_interval="60d"),
    account_case("poll-interval-unit-order", "invalid duration", poll_interval="30m1h"),
    account_case("poll-interval-too-low", "between 5s and 1h, got 4s", poll_interval=4),
    account_case("poll-interval-too-high", "between 5s and 1h, got 2h", poll_interval="2h"),
    ("poll-interval-nan", _RAW_CAMS_ACCOUNT + "  poll_interval: .nan\n", "accounts[0].poll_interval", "finite"),
    account_case("poll-interval-env-unset", "environment variable NOPE is not set", poll_interval="${NOPE}"),
    account_case("jitter-negative", "must not be negative", poll_jitter=-1),
    (
        "jitter-too-big",
        doc(account(poll_interval=10, poll_jitter=6)),
        "accounts[0].poll_jitter",
        "at most half of poll_interval (5s), got 6s",
    ),
    (
        "jitter-inherited-too-big",
        doc(account(poll_interval=5), glob={"poll_jitter": "5s"}),
        "accounts[0].poll_jitter",
        "(inherited from global.poll_jitter)",
    ),
    account_case("timeout-too-high", "between 100ms and 2m", timeout="5m"),
    account_case("timeout-zero", "between 100ms and 2m, got 0s", timeout=0),
    account_case("timeout-ms-too-low", "got 50ms", timeout="50ms"),
    # --- qps ---
    account_case("qps-zero", "greater than 0", qps=0),
    account_case("qps-negative", "greater than 0", qps=-5),
    account_case("qps-too-high", "at most 1000", qps=1001),
    account_case("qps-bool", "must be a number, got boolean", qps=True),
    account_case("qps-string", "must be a number, got string '10'", qps="10"),
    account_case("qps-env-not-number", "did not expand to a number", qps="${POLL}"),
    account_case("qps-null-list", "must be a number, got list", qps=[1]),
    # --- enums ---
    account_case("signature-version-bad", "unknown signature version 'v4'", signature_version="v4"),
    account_case("signature-version-int", "must be a string", signature_version=3),
    account_case("tier-vocabulary-bad", "unknown tier vocabulary 'meta'", tier_vocabulary="meta"),
    (
        "tier-vocabulary-typo",
        doc(glob={"tier_vocabulary": "legacy_consol"}),
        "global.tier_vocabulary",
        'did you mean "legacy_console"',
    ),
    # --- labels ---
    account_case("labels-not-mapping", "must be a mapping", labels=["team"]),
    label_case("label-bad-name", "team-name", "x", "invalid label name"),
    ("label-with-space", doc(account(labels={"my team": "x"})), "accounts[0].labels['my team']", "invalid label name"),
    label_case("label-starts-digit", "1team", "x", "invalid label name"),
    label_case("label-double-underscore", "__name__", "x", 'must not start with "__"'),
    label_case("label-reserved", "phone_number", "x", "reserved"),
    label_case("label-reserved-instance", "instance", "x", "reserved"),
    label_case("label-value-int", "team", 5, "label value must be a string, got integer"),
    ("label-value-bool", _RAW_CAMS_ACCOUNT + "  labels: {team: yes}\n", "accounts[0].labels.team", "got boolean"),
    label_case("label-value-null", "team", None, "got null"),
    ("label-key-int", _RAW_CAMS_ACCOUNT + "  labels: {1: x}\n", "accounts[0].labels", "label names must be strings"),
    label_case("label-value-env-unset", "team", "${TEAM}", "environment variable TEAM is not set"),
    # --- waba / verification / staleness ---
    (
        "waba-lt-poll",
        doc(account(poll_interval=120, waba_poll_interval=60)),
        "accounts[0].waba_poll_interval",
        "at least poll_interval (2m), got 1m",
    ),
    account_case("waba-negative", "must not be negative", waba_poll_interval=-1),
    (
        "waba-inherited-lt-poll",
        doc(account(poll_interval="15m"), glob={"waba_poll_interval": "10m"}),
        "accounts[0].waba_poll_interval",
        "inherited from global.waba_poll_interval",
    ),
    account_case("verification-lt-poll", "at least poll_interval (1m)", verification_poll_interval=30),
    account_case("max-staleness-lt-poll", "at least poll_interval", max_staleness=30),
    # --- env syntax ---
    label_case("env-unterminated", "team", "${TEAM", "unterminated ${"),
    label_case("env-bad-name", "team", "${1TEAM}", "invalid environment reference '${1TEAM}'"),
    label_case("env-unbraced", "team", "$TEAM", "use ${VAR}"),
    # --- shared credential ---
    (
        "shared-credential-qps",
        doc(account(qps=10), account(name="shop-2", qps=20)),
        "accounts[1].qps",
        "share one QPS budget, but declare different qps (10 vs 20)",
    ),
    (
        "shared-credential-qps-default-vs-explicit",
        doc(account(), account(name="shop-2", endpoint="https://CAMS.ap-southeast-1.aliyuncs.com/", qps=5)),
        "accounts[1].qps",
        "(10 vs 5)",
    ),
]


@pytest.mark.parametrize("text,path,fragment", [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_malformed_config(text, path, fragment, files):
    text = fmt(text, files)
    with pytest.raises(ConfigError) as info:
        parse(text)
    err = info.value
    assert type(err) is ConfigError
    assert err.path == fmt(path, files)
    assert fmt(fragment, files) in err.message
    # Every problem of the file is reported at once (issue 15): the case's problem is the first one.
    line = str(err.problems[0])
    assert line == f"{err.path}: {err.message}" and str(err).startswith(line)
    assert "\n" not in str(err) and "\r" not in str(err)
    assert line.strip() == line


def test_case_ids_unique_and_enough():
    ids = [c[0] for c in BAD_CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


def test_valid_base_doc_is_valid():
    # The table mutates this base; prove the base itself parses.
    cfg = parse(doc())
    assert [a.name for a in cfg.accounts] == ["shop-prod"]


def test_yaml_syntax_error_uses_source_name():
    with pytest.raises(ConfigError) as info:
        parse("accounts: [\n", source="/etc/wa/config.yaml")
    assert str(info.value).startswith("/etc/wa/config.yaml:2:1: YAML syntax error: ")
    assert "\n" not in str(info.value)


def test_unknown_key_without_close_match_has_no_hint():
    with pytest.raises(ConfigError) as info:
        parse(doc(account(zzzzzz=1)))
    assert str(info.value) == "accounts[0].zzzzzz: unknown key"


# --------------------------------------------------------------------------
# Secret hygiene
# --------------------------------------------------------------------------

SECRET_CASES = [
    ("inline", doc(account(credentials=creds(access_key_secret=INLINE_SECRET)))),
    ("inline-quoted-ref-suffix", doc(account(credentials=creds(access_key_secret="${CAMS_SECRET}" + INLINE_SECRET)))),
    ("inline-default", doc(account(credentials=creds(access_key_secret="${X:-" + INLINE_SECRET + "}")))),
    ("inline-number", doc(account(credentials=creds(access_key_secret=987654321)))),
    ("inline-list", doc(account(credentials=creds(access_key_secret=[INLINE_SECRET])))),
    ("unset-env", doc(account(credentials=creds(access_key_secret="${UNSET_VAR}")))),
    ("env-whitespace", doc(account(credentials=creds(access_key_secret="${SECRET_WITH_SPACE}")))),
    ("both", doc(account(credentials=creds(access_key_secret_file="{SECRET_FILE}")))),
    ("unknown-cred-key", doc(account(credentials=creds(secret=INLINE_SECRET)))),
    ("typo-cred-key", doc(account(credentials=creds(access_key_secert=INLINE_SECRET)))),
    ("missing-id-with-secret", doc(account(credentials=creds(access_key_id=DEL)))),
    ("file-missing", doc(account(credentials=creds(access_key_secret=DEL, access_key_secret_file="{MISSING_FILE}")))),
    ("file-two-lines", doc(account(credentials=creds(access_key_secret=DEL, access_key_secret_file="{SPACED_FILE}")))),
    ("file-big", doc(account(credentials=creds(access_key_secret=DEL, access_key_secret_file="{BIG_FILE}")))),
    ("file-binary", doc(account(credentials=creds(access_key_secret=DEL, access_key_secret_file="{BINARY_FILE}")))),
    ("file-empty", doc(account(credentials=creds(access_key_secret=DEL, access_key_secret_file="{EMPTY_FILE}")))),
    (
        "secret-file-as-id-file-ok-but-qps-clash",
        doc(
            account(credentials=creds(access_key_id=DEL, access_key_id_file="{SECRET_FILE}")),
            account(name="b", qps=3, credentials=creds(access_key_id=DEL, access_key_id_file="{SECRET_FILE}")),
        ),
    ),
    ("secret-env-used-as-duration", doc(account(poll_interval="${CAMS_SECRET}"))),
    ("secret-env-used-as-qps", doc(account(qps="${CAMS_SECRET}"))),
    ("secret-env-used-as-name", doc(account(name="${SECRET_WITH_SPACE}"))),
    ("secret-env-used-as-tier", doc(account(tier_vocabulary="${CAMS_SECRET}"))),
    ("secret-env-used-as-endpoint", doc(account(endpoint="${CAMS_SECRET}"))),
    ("endpoint-userinfo", doc(account(endpoint="https://id:" + INLINE_SECRET + "@cams.example.com"))),
    ("shared-credential-qps", doc(account(qps=1), account(name="b", qps=2))),
    ("yaml-unterminated-quote", 'accounts:\n- credentials:\n    access_key_secret: "' + INLINE_SECRET + "\n"),
    (
        "yaml-bad-indent-after-secret",
        "accounts:\n- credentials:\n    access_key_secret: " + INLINE_SECRET + "\n   x: : :\n",
    ),
    (
        "yaml-duplicate-secret",
        "accounts:\n- credentials:\n    access_key_secret: "
        + INLINE_SECRET
        + "\n    access_key_secret: "
        + INLINE_SECRET
        + "\n",
    ),
    ("yaml-bad-escape", 'accounts:\n- credentials:\n    access_key_secret: "' + INLINE_SECRET + '\\q"\n'),
]


@pytest.mark.parametrize("text", [c[1] for c in SECRET_CASES], ids=[c[0] for c in SECRET_CASES])
def test_errors_never_leak_secrets(text, files):
    with pytest.raises(ConfigError) as info:
        parse(fmt(text, files))
    err = info.value
    rendered = [str(err), repr(err), err.path, err.message, repr(err.args), pickle.dumps(err).decode("latin-1")]
    for secret in (*ALL_SECRETS, "987654321"):
        for r in rendered:
            assert secret not in r, (secret, r)
    assert "\n" not in str(err)


def test_secret_never_in_repr_or_str(files):
    text = doc(
        account(),
        account(
            name="filed",
            credentials=creds(
                access_key_id="${CAMS_ID_2}", access_key_secret=DEL, access_key_secret_file=files["good"]
            ),
        ),
    )
    cfg = parse(text)
    assert cfg.accounts[0].credentials.access_key_secret == SECRET
    assert cfg.accounts[1].credentials.access_key_secret == FILE_SECRET
    for obj in (cfg, *cfg.accounts, *(a.credentials for a in cfg.accounts)):
        for r in (repr(obj), str(obj), f"{obj}", f"{obj!r}"):
            assert SECRET not in r
            assert FILE_SECRET not in r
    assert "<redacted>" in repr(cfg.accounts[0].credentials)
    assert "LTAI5tIdValue" in repr(cfg.accounts[0].credentials)


@settings(max_examples=60, deadline=None)
@given(
    st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="$\"'\\#:{}[],&*!|>%@`"),
        min_size=6,
        max_size=40,
    )
)
def test_property_inline_secret_never_echoed(secret):
    secret = "ZqX" + secret
    text = doc(account(credentials=creds(access_key_secret=secret)))
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.path == "accounts[0].credentials.access_key_secret"
    assert secret not in str(info.value)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=6, max_size=40))
def test_property_env_secret_never_echoed_when_misused(secret):
    secret = "ZqX" + secret  # distinctive, so it cannot be a substring of a message by chance
    env = dict(ENV, CAMS_SECRET=secret)
    for field_name in ("poll_interval", "qps", "name", "endpoint", "tier_vocabulary", "signature_version"):
        text = doc(account(**{field_name: "${CAMS_SECRET}"}))
        try:
            parse(text, env=env)
        except ConfigError as e:
            assert secret not in str(e)


# --------------------------------------------------------------------------
# Valid configs
# --------------------------------------------------------------------------


def test_defaults_applied():
    cfg = parse(doc())
    assert isinstance(cfg, Config)
    assert cfg.source is None
    (a,) = cfg.accounts
    assert isinstance(a, Account)
    assert a.name == "shop-prod"
    assert a.provider == "alibaba_cams"
    assert a.credentials == Credentials("LTAI5tIdValue", SECRET)
    assert a.endpoint == "https://cams.ap-southeast-1.aliyuncs.com"
    assert a.endpoint == PROVIDERS["alibaba_cams"].default_endpoint
    assert a.units == (Unit("cams-abc123"),)
    assert a.poll_interval == 60.0
    assert a.poll_jitter == 5.0
    assert a.timeout == 10.0
    assert a.qps == 10.0
    assert a.signature_version == "v3"
    assert a.waba_poll_interval == 600.0
    assert a.verification_poll_interval == 0.0
    assert a.tier_vocabulary == "api_reference"
    assert dict(a.labels) == {}
    assert a.max_staleness == 600.0


def test_derived_defaults_follow_poll_interval():
    cfg = parse(
        doc(
            account(poll_interval="30m"),
            account(
                name="fast",
                poll_interval=10,
                spaces=[{"cust_space_id": "x"}],
                credentials=creds(access_key_id="${CAMS_ID_2}"),
            ),
        )
    )
    slow, fast = cfg.accounts
    assert slow.poll_jitter == 5.0  # min(5, 180)
    assert slow.waba_poll_interval == 1800.0  # max(600, interval)
    assert slow.max_staleness == 18000.0
    assert fast.poll_jitter == 1.0  # min(5, 10/10)
    assert fast.waba_poll_interval == 600.0
    assert fast.max_staleness == 100.0


def test_global_overrides_and_account_overrides_global():
    glob = {
        "poll_interval": "30s",
        "poll_jitter": "2s",
        "timeout": "2500ms",
        "qps": 4,
        "signature_version": "v2",
        "waba_poll_interval": "20m",
        "verification_poll_interval": "1h",
        "tier_vocabulary": "legacy_console",
        "max_staleness": "15m",
        "labels": {"env": "prod", "team": "global"},
    }
    cfg = parse(
        doc(
            account(),
            account(
                name="override",
                poll_interval="90s",
                qps=7,
                tier_vocabulary="api_reference",
                labels={"team": "growth"},
                spaces=[{"cust_space_id": "s"}],
                credentials=creds(access_key_id="${CAMS_ID_2}"),
            ),
            glob=glob,
        )
    )
    a, b = cfg.accounts
    assert (a.poll_interval, a.poll_jitter, a.timeout, a.qps) == (30.0, 2.0, 2.5, 4.0)
    assert a.signature_version == "v2"
    assert (a.waba_poll_interval, a.verification_poll_interval, a.max_staleness) == (1200.0, 3600.0, 900.0)
    assert a.tier_vocabulary == "legacy_console"
    assert dict(a.labels) == {"env": "prod", "team": "global"}
    assert (b.poll_interval, b.poll_jitter, b.qps, b.tier_vocabulary) == (90.0, 2.0, 7.0, "api_reference")
    assert dict(b.labels) == {"env": "prod", "team": "growth"}


def test_env_expansion_everywhere():
    env = dict(ENV, TEAM="growth", HOST="cams.eu-central-1.aliyuncs.com", ISV="isv-1")
    cfg = parse(
        doc(
            account(
                name="shop-${TEAM}",
                endpoint="https://${HOST}",
                spaces=[
                    {"cust_space_id": "${SPACE_ID}", "isv_code": "${ISV}"},
                    {"cust_space_id": "lit", "isv_code": "${NOPE:-}"},
                ],
                labels={"team": "${TEAM}", "cost": "$$5 ${MISSING:-none} ${EMPTY:-fallback}", "raw": "a$$b $ c 5$"},
                qps="${QPS}",
                poll_interval="${POLL}",
                tier_vocabulary="${TIER:-legacy_console}",
            )
        ),
        env=env,
    )
    (a,) = cfg.accounts
    assert a.name == "shop-growth"
    assert a.endpoint == "https://cams.eu-central-1.aliyuncs.com"
    assert a.units == (Unit("cams-from-env", params=Labels({"isv_code": "isv-1"})), Unit("lit"))
    assert dict(a.labels) == {"team": "growth", "cost": "$5 none fallback", "raw": "a$b $ c 5$"}
    assert a.qps == 25.0
    assert a.poll_interval == 120.0
    assert a.tier_vocabulary == "legacy_console"


def test_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("WA_TEST_ID", "LTAIfromOS")
    monkeypatch.setenv("WA_TEST_SECRET", "OsSecretValue")
    cfg = parse_config(
        doc(account(credentials={"access_key_id": "${WA_TEST_ID}", "access_key_secret": "${WA_TEST_SECRET}"}))
    )
    assert cfg.accounts[0].credentials == Credentials("LTAIfromOS", "OsSecretValue")
    monkeypatch.delenv("WA_TEST_SECRET")
    with pytest.raises(ConfigError, match="WA_TEST_SECRET is not set"):
        parse_config(doc(account(credentials={"access_key_id": "x", "access_key_secret": "${WA_TEST_SECRET}"})))


def test_access_key_id_inline_env_or_file(files):
    inline = parse(doc(account(credentials=creds(access_key_id="LTAIinline"))))
    assert inline.accounts[0].credentials.access_key_id == "LTAIinline"
    from_file = parse(doc(account(credentials=creds(access_key_id=DEL, access_key_id_file=files["good"]))))
    assert from_file.accounts[0].credentials.access_key_id == FILE_SECRET


def test_secret_file_strips_trailing_newline(tmp_path):
    f = tmp_path / "s"
    f.write_text("  abcDEF123/+=\r\n\n")
    cfg = parse(doc(account(credentials=creds(access_key_secret=DEL, access_key_secret_file=str(f)))))
    assert cfg.accounts[0].credentials.access_key_secret == "abcDEF123/+="


def test_secret_file_relative_to_config_file(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cams").write_text(FILE_SECRET + "\n")
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(doc(account(credentials=creds(access_key_secret=DEL, access_key_secret_file="secrets/cams"))))
    cfg = load_config(str(cfg_file), env=ENV)
    assert cfg.source == str(cfg_file)
    assert cfg.accounts[0].credentials.access_key_secret == FILE_SECRET


def test_secret_file_path_from_env(files):
    env = dict(ENV, SECRET_PATH=files["good"])
    cfg = parse(
        doc(account(credentials=creds(access_key_secret=DEL, access_key_secret_file="${SECRET_PATH}"))), env=env
    )
    assert cfg.accounts[0].credentials.access_key_secret == FILE_SECRET


@pytest.mark.parametrize(
    "value,seconds",
    [
        (60, 60.0),
        (7.5, 7.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1m500ms", 60.5),
        ("1.5m", 90.0),
        ("10500ms", 10.5),
        ("120", 120.0),
        (" 45s ", 45.0),
        ("0.5h", 1800.0),
    ],
)
def test_duration_parsing(value, seconds):
    cfg = parse(doc(account(max_staleness=value, poll_interval=5)))
    assert cfg.accounts[0].max_staleness == seconds


@pytest.mark.parametrize("bad", ["", "s", "1d", "5 m", "m5", "1h1h", "30s1m", "-5s", "1e3x", "5mm", "inf", "1e400"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=999),
)
def test_property_duration_compound(h, m, s, ms):
    parts = [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")]
    text = "".join(f"{v}{u}" for v, u in parts if v) or "0s"
    assert parse_duration(text) == pytest.approx(h * 3600 + m * 60 + s + ms / 1000)


def test_zero_disables_waba_and_verification():
    cfg = parse(doc(account(waba_poll_interval=0, verification_poll_interval="0s")))
    a = cfg.accounts[0]
    assert a.waba_poll_interval == 0.0
    assert a.verification_poll_interval == 0.0


def test_endpoint_normalisation_and_http_allowed():
    cfg = parse(doc(account(endpoint="http://127.0.0.1:8080/")))
    a = cfg.accounts[0]
    assert a.endpoint == "http://127.0.0.1:8080"
    assert a.endpoint_host == "127.0.0.1"


def test_credential_key_grouping():
    text = doc(
        account(name="a"),
        account(name="b", spaces=[{"cust_space_id": "other"}], endpoint="https://CAMS.ap-southeast-1.aliyuncs.com/"),
        account(name="c", credentials=creds(access_key_id="${CAMS_ID_2}", access_key_secret="${CAMS_SECRET_2}"), qps=3),
        account(name="d", endpoint="https://cams.cn-hangzhou.aliyuncs.com", qps=50),
    )
    cfg = parse(text)
    a, b, c, d = cfg.accounts
    assert a.credential_key == ("alibaba_cams", "cams.ap-southeast-1.aliyuncs.com", "LTAI5tIdValue")
    assert a.credential_key == b.credential_key
    assert c.credential_key != a.credential_key
    assert d.credential_key == ("alibaba_cams", "cams.cn-hangzhou.aliyuncs.com", "LTAI5tIdValue")
    groups = cfg.credential_groups()
    assert list(groups.values()) == [(a, b), (c,), (d,)]
    assert cfg.account("c") is c
    with pytest.raises(KeyError):
        cfg.account("zzz")


def test_shared_credential_same_qps_is_fine():
    cfg = parse(doc(account(name="a", qps=3), account(name="b", qps=3.0, spaces=[{"cust_space_id": "z"}])))
    assert [x.qps for x in cfg.accounts] == [3.0, 3.0]


def test_label_names_union_and_labels_immutable_hashable():
    cfg = parse(
        doc(
            account(name="a", labels={"team": "x"}),
            account(name="b", labels={"env": "y"}, credentials=creds(access_key_id="other")),
        )
    )
    assert cfg.label_names == ("env", "team")
    labels = cfg.accounts[0].labels
    with pytest.raises(TypeError):
        labels["team"] = "z"  # type: ignore[index]
    hash(cfg.accounts[0])
    hash(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.accounts[0].qps = 1  # type: ignore[misc]


def test_reserved_label_names_cover_spec():
    expected = {
        "provider",
        "account",
        "phone_number",
        "space_id",
        "waba_id",
        "status",
        "quality_rating",
        "tier",
        "code_verification_status",
        "name_status",
        "new_name_status",
        "account_review_status",
        "action",
        "reason",
        "verified_name",
        "le",
        "quantile",
        "instance",
        "job",
        # the labels of the health, portfolio and webhook families
        "phone_number_id",
        "platform_type",
        "account_mode",
        "limit_scope",
        "can_send_message",
        "throughput_level",
        "entity_type",
        "entity_id",
        "error_code",
        "error_description",
        "business_id",
        "restriction_type",
        "ban_state",
        "violation_type",
        "header",
        "type",
        "event",
        "result",
    }
    assert set(RESERVED_LABEL_NAMES) == expected
    for name in sorted(expected):
        with pytest.raises(ConfigError) as info:
            parse(doc(account(labels={name: "x"})))
        assert info.value.path == f"accounts[0].labels.{name}"


def test_null_optional_keys_mean_default():
    text = textwrap.dedent(
        """\
        global:
        accounts:
          - name: a
            provider: alibaba_cams
            endpoint:
            qps:
            labels:
            credentials:
              access_key_id: id
              access_key_secret: ${CAMS_SECRET}
              access_key_secret_file:
            spaces:
              - cust_space_id: s
                isv_code:
        """
    )
    a = parse(text).accounts[0]
    assert a.qps == 10.0 and a.endpoint.startswith("https://") and a.units[0].params == {}


def test_yaml_merge_keys_are_not_duplicates():
    text = textwrap.dedent(
        """\
        x-common: &common
          provider: alibaba_cams
          qps: 5
        accounts:
          - <<: *common
            name: a
            qps: 5
            credentials: {access_key_id: id, access_key_secret: "${CAMS_SECRET}"}
            spaces: [{cust_space_id: s}]
        """
    )
    # x-common is an unknown top-level key: anchors must live inside known keys.
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value) == "x-common: unknown key"
    text3 = textwrap.dedent(
        """\
        accounts:
          - &base
            name: a
            provider: alibaba_cams
            credentials: {access_key_id: id, access_key_secret: "${CAMS_SECRET}"}
            spaces: [{cust_space_id: s}]
          - <<: *base
            name: b
        """
    )
    cfg = parse(text3)
    assert [a.name for a in cfg.accounts] == ["a", "b"]


# --------------------------------------------------------------------------
# load_config and error type guarantees
# --------------------------------------------------------------------------


def test_load_config_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(str(missing))
    assert str(info.value) == f"{missing}: cannot read config file: No such file or directory"


def test_load_config_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert info.value.path == str(tmp_path)
    assert "cannot read config file" in info.value.message


def test_load_config_not_utf8(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_bytes(b"accounts: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(f))
    assert str(info.value) == f"{f}: config file is not valid UTF-8 (invalid byte at offset 10)"


def test_load_config_bom_and_empty(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_bytes(b"\xef\xbb\xbf" + doc().encode())
    assert load_config(str(f), env=ENV).accounts[0].name == "shop-prod"
    f.write_text("")
    with pytest.raises(ConfigError) as info:
        load_config(str(f))
    assert info.value.path == str(f)
    assert "empty" in info.value.message


def test_yaml_control_character():
    with pytest.raises(ConfigError) as info:
        parse("accounts: \x00\n")
    assert info.value.path == "<config>"
    assert "YAML syntax error" in info.value.message
    assert "\n" not in str(info.value)


def test_yaml_bad_timestamp_is_config_error():
    with pytest.raises(ConfigError) as info:
        parse("accounts: 2024-13-45\n")
    assert info.value.path == "<config>"


def test_config_error_is_pickleable_and_one_line():
    err = ConfigError("a.b", "line one\nline two")
    assert str(err) == "a.b: line one line two"
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.message, str(again)) == (err.path, err.message, str(err))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            sorted(
                {
                    "name",
                    "provider",
                    "endpoint",
                    "credentials",
                    "spaces",
                    "poll_interval",
                    "poll_jitter",
                    "timeout",
                    "qps",
                    "signature_version",
                    "waba_poll_interval",
                    "verification_poll_interval",
                    "tier_vocabulary",
                    "labels",
                    "max_staleness",
                    "bogus",
                }
            )
        ),
        json_values,
        max_size=6,
    )
)
def test_property_only_config_error_for_garbage_account(overrides):
    text = yaml.safe_dump({"accounts": [dict(account(), **overrides)]})
    try:
        parse(text)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith(e.path)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_property_only_config_error_for_garbage_text(text):
    try:
        parse(text)
    except ConfigError as e:
        assert "\n" not in str(e)


# --------------------------------------------------------------------------
# The shipped example
# --------------------------------------------------------------------------


def test_example_config_is_valid(tmp_path):
    secret_file = tmp_path / "support_secret"
    secret_file.write_text("SupportSecretValue\n")
    env = {
        "CAMS_ACCESS_KEY_ID": "LTAIexampleid",
        "CAMS_ACCESS_KEY_SECRET": "ExampleSecretValue",
        "CAMS_CUST_SPACE_ID": "cams-example",
        "CAMS_SUPPORT_ACCESS_KEY_ID": "LTAIsupportid",
        "CAMS_SUPPORT_SECRET_FILE": str(secret_file),
        "CAMS_SUPPORT_CUST_SPACE_ID": "cams-support",
    }
    path = REPO / "examples" / "config.yaml"
    cfg = load_config(str(path), env=env)
    assert [a.name for a in cfg.accounts] == ["shop-prod", "shop-support"]
    prod, support = cfg.accounts
    assert prod.credentials == Credentials("LTAIexampleid", "ExampleSecretValue")
    assert support.credentials.access_key_secret == "SupportSecretValue"
    assert dict(prod.labels) == {"team": "growth"}
    assert support.poll_interval == 120.0
    # No inline secrets in the example: without the env vars it must fail.
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    assert "is not set" in info.value.message


def test_example_config_has_no_literal_secret_values():
    raw = yaml.safe_load((REPO / "examples" / "config.yaml").read_text())
    for acct in raw["accounts"]:
        secret = acct["credentials"].get("access_key_secret")
        if secret is not None:
            assert secret.startswith("${") and secret.endswith("}")


def test_config_package_stands_on_pydantic_and_stays_small():
    """Issue 15: a package of small modules on pydantic, instead of one 1,409-line hand-written validator."""
    package = REPO / "exporter" / "config"
    stdlib = {
        "__future__",
        "collections",
        "dataclasses",
        "difflib",
        "hashlib",
        "json",
        "math",
        "os",
        "re",
        "typing",
        "urllib",
    }
    for path in package.glob("*.py"):
        src = path.read_text()
        assert len(src.splitlines()) <= 400, path.name
        imports = {line.split()[1] for line in src.splitlines() if line.startswith(("import ", "from "))}
        assert {i.split(".")[0] for i in imports if not i.startswith("exporter")} <= stdlib | {
            "pydantic",
            "pydantic_core",
        }
        assert {i for i in imports if i.startswith("exporter") and not i.startswith("exporter.config")} <= {
            "exporter",
            "exporter.exposition",
        }, path.name


def test_env_not_mutated():
    env = copy.deepcopy(ENV)
    parse(doc(account(labels={"x": "${UNSET:-d}"})), env=env)
    assert env == ENV
