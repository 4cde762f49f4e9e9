"""Configuration loading and validation.

The configuration is a YAML file (see ``examples/config.yaml``)::

    global:                 # optional defaults for every account
      poll_interval: 60s
      timeout: 10s
      qps: 10
    accounts:
      - name: shop-prod
        provider: alibaba_cams
        credentials:
          access_key_id: ${CAMS_ACCESS_KEY_ID}
          access_key_secret: ${CAMS_ACCESS_KEY_SECRET}
        spaces:
          - cust_space_id: cams-abc123

Design rules (modelled on fritz_exporter's typed config errors and
query-exporter's config):

* Every failure raises :class:`ConfigError`, whose ``str()`` is exactly one
  line ``"<key path>: <problem>"`` so that ``--check-config`` can print it
  as is.  YAML syntax errors use ``"<file>:<line>:<col>: YAML syntax error:
  <problem>"``.
* Unknown keys are errors (with a "did you mean" hint).
* ``${VAR}`` / ``${VAR:-default}`` are expanded in every string value;
  ``$$`` is a literal ``$``.
* Secrets never appear in error messages, ``repr()`` or ``str()``.  Error
  messages only ever quote the *raw* value written in the YAML file (before
  ``${VAR}`` expansion), never an expanded value or a file's contents; and
  values inside ``credentials`` are never quoted at all.

Only the standard library and PyYAML are used.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

import yaml

from exporter.exposition import DEFAULT_OPTIONS, DISABLEABLE, INFO_LABELS, RenderOptions

__all__ = [
    "Account",
    "Config",
    "ConfigError",
    "Credentials",
    "Labels",
    "PROVIDERS",
    "ProviderSpec",
    "RESERVED_LABEL_NAMES",
    "Space",
    "WebhooksConfig",
    "load_config",
    "parse_config",
    "parse_duration",
]


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class ConfigError(Exception):
    """An invalid configuration.

    ``str(err)`` is a single line: ``"<path>: <message>"``.  ``path`` is a key
    path such as ``accounts[1].spaces[0].cust_space_id``, or the file name
    (with ``:line:col`` for YAML syntax errors) for problems with the file as
    a whole.
    """

    def __init__(self, path: str, message: str) -> None:
        path = _one_line(path)
        message = _one_line(message)
        super().__init__(path, message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(path: str, message: str) -> NoReturn:
    raise ConfigError(path, message)


# --------------------------------------------------------------------------
# Provider registry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSpec:
    """Static facts about one provider, used for defaults and validation.

    Each provider names its credential and its polling units in its own
    vocabulary (CAMS: AccessKey + CustSpaceId; NxCloud: accessKey + appkey;
    Kaleyra: account SID + API key + WABA id).  Internally they all map onto
    :class:`Credentials` and :class:`Space`.
    """

    default_endpoint: str | None
    signature_versions: tuple[str, ...] = ()
    default_signature_version: str = ""
    description: str = ""
    default_qps: float = 10.0
    id_key: str = "access_key_id"
    secret_key: str = "access_key_secret"
    units_key: str = "spaces"
    unit_id_key: str = "cust_space_id"
    unit_keys: frozenset[str] = frozenset({"cust_space_id", "isv_code"})
    #: tunables that only make sense for this provider (others reject them)
    own_tunables: frozenset[str] = frozenset()
    #: named endpoints (Kaleyra pods)
    pods: Mapping[str, str] = field(default_factory=dict)
    #: the credential's id may be left out (Meta: a token alone); accounts then
    #: group by a digest of the secret instead (see _parse_credentials)
    id_optional: bool = False
    #: documented per-action limits (calls per second per credential) inside the
    #: credential's overall qps; ``action_qps`` in the config overrides them
    action_qps: Mapping[str, float] = field(default_factory=dict)


_CAMS_TUNABLES = frozenset({"signature_version", "waba_poll_interval", "verification_poll_interval", "tier_vocabulary",
                            "health_poll_interval"})
_META_TUNABLES = frozenset({"graph_api_version"})
#: every provider-specific tunable: an account of another provider rejects them
_PROVIDER_TUNABLES = _CAMS_TUNABLES | _META_TUNABLES

#: Supported providers.  To add one, add an entry here (and its client
#: elsewhere); the config schema picks it up automatically.
PROVIDERS: dict[str, ProviderSpec] = {
    "alibaba_cams": ProviderSpec(
        default_endpoint="https://cams.ap-southeast-1.aliyuncs.com",
        signature_versions=("v3", "v2"),
        default_signature_version="v3",
        description="Alibaba Cloud Chat App Message Service (CAMS)",
        own_tunables=_CAMS_TUNABLES,
        # The per-user QPS of each action's API page (alibaba-cams reference, section 7).
        action_qps={
            "QueryChatappPhoneNumbers": 10.0,
            "QueryChatappBindWaba": 10.0,
            "GetPhoneNumberVerificationStatus": 10.0,
            "GetWhatsappHealthStatus": 5.0,
        },
    ),
    "nxcloud": ProviderSpec(
        default_endpoint="https://api2.nxcloud.com",
        description="NxCloud WhatsApp API (getPhone)",
        # NxCloud documents no QPS for its WhatsApp API: stay conservative.
        default_qps=2.0,
        id_key="access_key",
        secret_key="access_secret",
        units_key="apps",
        unit_id_key="appkey",
        unit_keys=frozenset({"appkey", "business_phones"}),
    ),
    "kaleyra": ProviderSpec(
        default_endpoint=None,  # choose a pod or an endpoint
        description="Kaleyra WhatsApp API v2",
        # No public read limit; one call per WABA plus one per number each poll.
        default_qps=5.0,
        id_key="sid",
        secret_key="api_key",
        units_key="wabas",
        unit_id_key="waba_id",
        unit_keys=frozenset({"waba_id", "phone_numbers"}),
        pods={
            "IN": "https://api.in.kaleyra.io",
            "SG": "https://api.ap.kaleyra.io",
            "EU": "https://api.eu.kaleyra.io",
            "NA": "https://api.na.kaleyra.io",
        },
    ),
    "meta": ProviderSpec(
        default_endpoint="https://graph.facebook.com",
        description="Meta WhatsApp Cloud API (Graph API)",
        # Graph budgets these reads per hour (200, or 5,000 once the WABA has a
        # registered number, per app per WABA); the usage headers steer the rest.
        default_qps=2.0,
        id_key="app_id",
        secret_key="access_token",
        units_key="wabas",
        unit_id_key="waba_id",
        unit_keys=frozenset({"waba_id", "phone_numbers"}),
        own_tunables=_META_TUNABLES,
        id_optional=True,
    ),
}


# --------------------------------------------------------------------------
# Defaults and limits
# --------------------------------------------------------------------------

DEFAULT_POLL_INTERVAL = 60.0
POLL_INTERVAL_RANGE = (5.0, 3600.0)
DEFAULT_TIMEOUT = 10.0
TIMEOUT_RANGE = (0.1, 120.0)
DEFAULT_QPS = 10.0
QPS_MAX = 1000.0
DEFAULT_WABA_POLL_INTERVAL = 600.0
DEFAULT_VERIFICATION_POLL_INTERVAL = 0.0
DEFAULT_HEALTH_POLL_INTERVAL = 300.0
DEFAULT_MAX_STALENESS_FACTOR = 10.0
TIER_VOCABULARIES = ("api_reference", "legacy_console")
DEFAULT_TIER_VOCABULARY = "api_reference"
DEFAULT_GRAPH_API_VERSION = "v24.0"
_GRAPH_API_VERSION_RE = re.compile(r"v[0-9]{1,3}\.[0-9]{1,2}")
SECRET_FILE_MAX_BYTES = 64 * 1024


def default_poll_jitter(poll_interval: float) -> float:
    """Jitter used when none is configured: ``min(5s, interval / 10)``."""
    return min(5.0, poll_interval / 10.0)


#: Label names the exporter itself uses; static ``labels`` must not use them.
RESERVED_LABEL_NAMES = frozenset(
    {
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
        # labels of the health, portfolio and webhook families
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
)

_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ENV_REF_RE = re.compile(r"(" + _ENV_NAME + r")(?::-(.*))?", re.DOTALL)
_PURE_ENV_REF_RE = re.compile(r"\$\{(" + _ENV_NAME + r")\}")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_ORDER = ("h", "m", "s", "ms")
_PLAIN_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


# --------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------


class Labels(Mapping[str, Any]):
    """An immutable, hashable mapping with string keys (static labels, per-action limits)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        object.__setattr__(self, "_data", dict(sorted((data or {}).items())))

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Labels is immutable")

    def __repr__(self) -> str:
        return f"Labels({self._data!r})"


@dataclass(frozen=True)
class Space:
    """One polling unit: a CAMS space, an NxCloud app or a Kaleyra WABA.

    ``cust_space_id`` holds the unit's id whatever the provider (CAMS
    CustSpaceId, NxCloud appkey, Kaleyra WABA id); it is the ``space_id``
    label.  ``phone_numbers`` restricts the poll to those numbers (NxCloud
    ``business_phones``, Kaleyra ``phone_numbers``); empty means all.
    """

    cust_space_id: str
    isv_code: str | None = None
    phone_numbers: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.cust_space_id


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={self.access_key_id!r}, access_key_secret=<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True)
class Account:
    name: str
    provider: str
    credentials: Credentials
    endpoint: str
    spaces: tuple[Space, ...]
    poll_interval: float
    poll_jitter: float
    timeout: float
    qps: float
    signature_version: str
    waba_poll_interval: float
    verification_poll_interval: float
    tier_vocabulary: str
    labels: Mapping[str, str]
    max_staleness: float
    max_numbers: int = 0  # 0: no cap
    graph_api_version: str = ""  # Meta only: the Graph API version in every path
    concurrency: int = 1  # units polled at once (the QPS budget still applies)
    #: CAMS: seconds between two sweeps of GetWhatsappHealthStatus over the account's numbers (0: off)
    health_poll_interval: float = 0.0
    #: calls per second per action inside the credential's qps: the provider's documented
    #: per-action limits, updated with the configured ``action_qps``
    action_qps: Mapping[str, float] = field(default_factory=dict)

    @property
    def endpoint_host(self) -> str:
        return (urlsplit(self.endpoint).hostname or "").lower()

    @property
    def credential_key(self) -> tuple[str, str, str]:
        """``(provider, endpoint host, access_key_id)``.

        Accounts with the same key use the same credential and therefore
        must share one rate limiter (token bucket) in the scheduler.
        """
        return (self.provider, self.endpoint_host, self.credentials.access_key_id)


@dataclass(frozen=True)
class Config:
    accounts: tuple[Account, ...]
    source: str | None = None
    metrics: RenderOptions = DEFAULT_OPTIONS
    #: the optional webhook receiver (``webhooks:``); None: off
    webhooks: WebhooksConfig | None = None

    @property
    def label_names(self) -> tuple[str, ...]:
        """Sorted union of the static label names of all accounts.

        Accounts may declare different label sets; a metric family needs one
        fixed set of label names, so use this and fill missing values with "".
        """
        return tuple(sorted({k for a in self.accounts for k in a.labels}))

    def credential_groups(self) -> dict[tuple[str, str, str], tuple[Account, ...]]:
        """Accounts grouped by :attr:`Account.credential_key` (config order)."""
        groups: dict[tuple[str, str, str], list[Account]] = {}
        for account in self.accounts:
            groups.setdefault(account.credential_key, []).append(account)
        return {k: tuple(v) for k, v in groups.items()}

    def account(self, name: str) -> Account:
        for a in self.accounts:
            if a.name == name:
                return a
        raise KeyError(name)


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at *path*.

    Relative ``*_file`` paths inside the config are resolved against the
    directory of *path*.  Raises :class:`ConfigError` on any problem.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        _fail(path, f"cannot read config file: {e.strerror or type(e).__name__}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        _fail(path, f"config file is not valid UTF-8 (invalid byte at offset {e.start})")
    return parse_config(text, source=path, env=env)


def parse_config(
    text: str, source: str | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate config *text*.

    *source* is the file name used in messages and as the base directory for
    relative ``*_file`` paths (the current directory if None).  *env* defaults
    to ``os.environ``.
    """
    if env is None:
        env = os.environ
    root_name = source if source else "<config>"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            _fail(root_name, f"config is not valid UTF-8 (invalid byte at offset {e.start})")
    if not isinstance(text, str):
        _fail(root_name, f"config must be text, got {type(text).__name__}")
    doc = _load_yaml(text, root_name)
    ctx = _Ctx(env=env, base_dir=os.path.dirname(source) if source else "")
    accounts = _parse_root(doc, root_name, ctx)
    metrics = _parse_metrics(doc.get("metrics"), "metrics", ctx) if isinstance(doc, dict) else DEFAULT_OPTIONS
    webhooks = _parse_webhooks(doc.get("webhooks"), "webhooks", ctx) if isinstance(doc, dict) else None
    return Config(accounts=accounts, source=source, metrics=metrics, webhooks=webhooks)


# --------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable; SafeLoader reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_show(key)}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, root_name: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        # Deliberately not str(e): that includes a snippet of the offending
        # line, which could be a secret.
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "invalid YAML"
        where = root_name
        if mark is not None:
            where = f"{root_name}:{mark.line + 1}:{mark.column + 1}"
        _fail(where, f"YAML syntax error: {problem}")
    except yaml.YAMLError as e:
        _fail(root_name, f"YAML syntax error: {e}")
    except RecursionError:
        _fail(root_name, "YAML syntax error: document is nested too deeply")
    except Exception as e:  # e.g. ValueError from an impossible timestamp
        _fail(root_name, f"YAML error: {type(e).__name__}: {e}")


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


@dataclass
class _Ctx:
    env: Mapping[str, str]
    base_dir: str


def _typename(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _show(value: Any, limit: int = 60) -> str:
    """Quote a raw (pre-expansion, non-secret) value for a message."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _join(path: str, key: Any) -> str:
    """``path.key``; keys with spaces, dots, brackets or quotes as ``path['key']``."""
    if isinstance(key, str) and re.fullmatch(r"[^\s.\[\]'\"]+", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _fmt_seconds(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _require_mapping(raw: Any, path: str) -> dict:
    if not isinstance(raw, dict):
        _fail(path, f"must be a mapping, got {_typename(raw)}")
    return raw


def _check_keys(
    raw: dict, allowed: frozenset[str] | set[str], path: str, root_name: str = "<config>"
) -> None:
    for key in raw:
        if not isinstance(key, str):
            _fail(path or root_name, f"keys must be strings, got {_typename(key)} key {_show(key)}")
        if key not in allowed:
            hint = _suggest(key, allowed)
            suffix = f' (did you mean "{hint}"?)' if hint else ""
            _fail(_join(path, key), f"unknown key{suffix}")


def _suggest(word: str, options: Any) -> str | None:
    """The closest option to a misspelt *word*, or None."""
    options = sorted(options)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return close[0]
    if len(word) >= 3:
        prefixed = [o for o in options if o.startswith(word) or word.startswith(o)]
        if len(prefixed) == 1:
            return prefixed[0]
    return None


def _get(raw: dict, key: str) -> Any:
    """Value of an optional key; an explicit null counts as absent."""
    return raw.get(key)


def _expand(raw: str, path: str, ctx: _Ctx) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$`` in *raw*."""
    if "$" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = raw[i + 1] if i + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = raw.find("}", i + 2)
            if end < 0:
                _fail(path, "unterminated ${ (write $$ for a literal $)")
            inner = raw[i + 2 : end]
            m = _ENV_REF_RE.fullmatch(inner)
            if not m:
                _fail(path, f"invalid environment reference {_show('${' + inner + '}')}")
            name, default = m.group(1), m.group(2)
            value = ctx.env.get(name)
            if value is None or (default is not None and value == ""):
                if default is None:
                    _fail(path, f"environment variable {name} is not set")
                value = default
            out.append(value)
            i = end + 1
        elif nxt.isalpha() or nxt == "_":
            _fail(path, "use ${VAR} to reference an environment variable (write $$ for a literal $)")
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _string(raw: Any, path: str, ctx: _Ctx, *, required: bool = True) -> str | None:
    """A string value after ``${VAR}`` expansion."""
    if raw is None:
        if required:
            _fail(path, "required")
        return None
    if not isinstance(raw, str):
        hint = " (quote it in YAML)" if isinstance(raw, (bool, int, float)) else ""
        _fail(path, f"must be a string, got {_typename(raw)}{hint}")
    return _expand(raw, path, ctx)


def _choice(raw: Any, path: str, ctx: _Ctx, allowed: tuple[str, ...], what: str) -> str:
    value = _string(raw, path, ctx)
    assert value is not None
    if value not in allowed:
        hint = _suggest(value, allowed)
        suffix = f'; did you mean "{hint}"?' if hint else ""
        options = ", ".join(f'"{a}"' for a in allowed)
        _fail(path, f"unknown {what} {_show(raw)} (allowed: {options}){suffix}")
    return value


def _number(raw: Any, path: str, ctx: _Ctx) -> float:
    """A plain number.  Strings are accepted only from ``${VAR}`` expansion."""
    if isinstance(raw, bool):
        _fail(path, "must be a number, got boolean")
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str) and "${" in raw:
        text = _expand(raw, path, ctx).strip()
        if not _PLAIN_NUMBER_RE.fullmatch(text):
            _fail(path, f"must be a number ({_show(raw)} did not expand to a number)")
        value = float(text)
    elif isinstance(raw, str):
        _fail(path, f"must be a number, got string {_show(raw)}")
    else:
        _fail(path, f"must be a number, got {_typename(raw)}")
    if not math.isfinite(value):
        _fail(path, "must be a finite number")
    return value


def parse_duration(text: str) -> float:
    """Parse ``"90s"``, ``"5m"``, ``"1h30m"``, ``"250ms"`` or ``"60"`` to seconds.

    Raises ValueError on malformed input.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    if _PLAIN_NUMBER_RE.fullmatch(s):
        value = float(s)
        if not math.isfinite(value):
            raise ValueError("duration must be finite")
        return value
    pos, total, last_rank = 0, 0.0, -1
    for m in _DURATION_PART_RE.finditer(s):
        if m.start() != pos:
            raise ValueError("malformed duration")
        rank = _DURATION_ORDER.index(m.group(2))
        if rank <= last_rank:
            raise ValueError("duration units must be in the order h, m, s, ms, each at most once")
        last_rank = rank
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or last_rank < 0:
        raise ValueError("malformed duration")
    return total


def _duration(raw: Any, path: str, ctx: _Ctx) -> float:
    if isinstance(raw, bool):
        _fail(path, "must be a duration (e.g. 90s, 5m, 1h30m or a number of seconds), got boolean")
    if isinstance(raw, (int, float)):
        value = float(raw)
        if not math.isfinite(value):
            _fail(path, "must be a finite duration")
        return value
    if isinstance(raw, str):
        text = _expand(raw, path, ctx)
        try:
            return parse_duration(text)
        except ValueError:
            _fail(
                path,
                f"invalid duration {_show(raw)} (use e.g. 90s, 5m, 1h30m, 500ms or a number of seconds)",
            )
    _fail(path, f"must be a duration (e.g. 90s, 5m, 1h30m or a number of seconds), got {_typename(raw)}")


def _in_range(value: float, path: str, lo: float, hi: float, *, duration: bool = True) -> None:
    if not lo <= value <= hi:
        fmt = _fmt_seconds if duration else (lambda v: f"{v:g}")
        _fail(path, f"must be between {fmt(lo)} and {fmt(hi)}, got {fmt(value)}")


# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------

_ROOT_KEYS = frozenset({"global", "accounts", "metrics", "webhooks"})
_METRICS_KEYS = frozenset({"state_sets", "disable", "info_labels"})
# Keys that may appear both under ``global`` (as defaults) and in an account.
_TUNABLE_KEYS = frozenset(
    {
        "poll_interval",
        "poll_jitter",
        "timeout",
        "qps",
        "signature_version",
        "waba_poll_interval",
        "verification_poll_interval",
        "tier_vocabulary",
        "graph_api_version",
        "max_staleness",
        "max_numbers",
        "concurrency",
        "labels",
        "health_poll_interval",
        "action_qps",
    }
)
_GLOBAL_KEYS = _TUNABLE_KEYS
_UNITS_KEYS = frozenset(spec.units_key for spec in PROVIDERS.values())
_ACCOUNT_KEYS = _TUNABLE_KEYS | {"name", "provider", "endpoint", "pod", "credentials"} | _UNITS_KEYS
_ALL_SIGNATURE_VERSIONS = tuple(
    dict.fromkeys(v for spec in PROVIDERS.values() for v in spec.signature_versions)
)


def _parse_root(doc: Any, root_name: str, ctx: _Ctx) -> tuple[Account, ...]:
    if doc is None:
        _fail(root_name, 'config is empty; expected a mapping with an "accounts" list')
    if not isinstance(doc, dict):
        _fail(root_name, f'top level must be a mapping with an "accounts" list, got {_typename(doc)}')
    _check_keys(doc, _ROOT_KEYS, "", root_name)

    raw_global = doc.get("global")
    if raw_global is None:
        raw_global = {}
    _require_mapping(raw_global, "global")
    _check_keys(raw_global, _GLOBAL_KEYS, "global")
    glob = _parse_tunables(raw_global, "global", ctx)
    if "poll_interval" in glob and "poll_jitter" in glob:
        interval, jitter = glob["poll_interval"][0], glob["poll_jitter"][0]
        if jitter > interval / 2:
            _fail(
                "global.poll_jitter",
                f"must be at most half of global.poll_interval ({_fmt_seconds(interval / 2)}), "
                f"got {_fmt_seconds(jitter)}",
            )

    if "accounts" not in doc or doc["accounts"] is None:
        _fail("accounts", "required (a list of accounts)")
    raw_accounts = doc["accounts"]
    if not isinstance(raw_accounts, list):
        _fail("accounts", f"must be a list of accounts, got {_typename(raw_accounts)}")
    if not raw_accounts:
        _fail("accounts", "must contain at least one account")

    accounts: list[Account] = []
    seen_names: dict[str, int] = {}
    for i, raw_account in enumerate(raw_accounts):
        path = f"accounts[{i}]"
        account = _parse_account(raw_account, path, glob, ctx)
        if account.name in seen_names:
            _fail(
                f"{path}.name",
                f'duplicate account name "{account.name}" (also accounts[{seen_names[account.name]}])',
            )
        seen_names[account.name] = i
        accounts.append(account)

    # Accounts that use the same credential (same provider, endpoint host and
    # AccessKey ID) are rate limited by the provider as one caller, so the
    # scheduler gives them ONE shared token bucket (see
    # Account.credential_key).  A bucket has one budget, so their declared
    # qps must agree.
    first_by_key: dict[tuple[str, str, str], int] = {}
    for i, account in enumerate(accounts):
        key = account.credential_key
        if key not in first_by_key:
            first_by_key[key] = i
            continue
        j = first_by_key[key]
        other = accounts[j]
        if other.action_qps != account.action_qps:
            _fail(
                f"accounts[{i}].action_qps",
                f"accounts[{j}] ({other.name}) and accounts[{i}] ({account.name}) use the same "
                f"credential and share its per-action limits, but declare different action_qps; "
                f"set the same action_qps on both",
            )
        if other.qps != account.qps:
            _fail(
                f"accounts[{i}].qps",
                f"accounts[{j}] ({other.name}) and accounts[{i}] ({account.name}) use the same "
                f"credential (same provider, endpoint host and access_key_id) and share one QPS "
                f"budget, but declare different qps ({other.qps:g} vs {account.qps:g}); "
                f"set the same qps on both",
            )
    return tuple(accounts)


def _parse_labels(raw: Any, path: str, ctx: _Ctx) -> dict[str, str]:
    if raw is None:
        return {}
    _require_mapping(raw, path)
    labels: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            _fail(path, f"label names must be strings, got {_typename(key)} {_show(key)}")
        kpath = _join(path, key)
        if not _LABEL_NAME_RE.fullmatch(key):
            _fail(kpath, f"invalid label name {_show(key)} (must match [a-zA-Z_][a-zA-Z0-9_]*)")
        if key.startswith("__"):
            _fail(kpath, f'label name {_show(key)} must not start with "__" (reserved by Prometheus)')
        if key in RESERVED_LABEL_NAMES:
            _fail(kpath, f'label name "{key}" is reserved (used by the exporter itself)')
        if not isinstance(value, str):
            hint = " (quote it in YAML)" if isinstance(value, (bool, int, float)) else ""
            _fail(kpath, f"label value must be a string, got {_typename(value)}{hint}")
        labels[key] = _expand(value, kpath, ctx)
    return labels


def _parse_tunables(raw: dict, path: str, ctx: _Ctx) -> dict[str, tuple[Any, str]]:
    """Parse the keys shared by ``global`` and accounts.

    Returns ``{key: (value, defining path)}`` for the keys present.  Checks
    that need only the value itself are done here, at the defining path.
    """
    out: dict[str, tuple[Any, str]] = {}

    def present(key: str) -> bool:
        return _get(raw, key) is not None

    if present("poll_interval"):
        p = _join(path, "poll_interval")
        v = _duration(raw["poll_interval"], p, ctx)
        _in_range(v, p, *POLL_INTERVAL_RANGE)
        out["poll_interval"] = (v, p)
    if present("poll_jitter"):
        p = _join(path, "poll_jitter")
        v = _duration(raw["poll_jitter"], p, ctx)
        if v < 0:
            _fail(p, f"must not be negative, got {_fmt_seconds(v)}")
        out["poll_jitter"] = (v, p)
    if present("timeout"):
        p = _join(path, "timeout")
        v = _duration(raw["timeout"], p, ctx)
        _in_range(v, p, *TIMEOUT_RANGE)
        out["timeout"] = (v, p)
    if present("qps"):
        p = _join(path, "qps")
        v = _number(raw["qps"], p, ctx)
        if not 0 < v <= QPS_MAX:
            _fail(p, f"must be greater than 0 and at most {QPS_MAX:g}, got {v:g}")
        out["qps"] = (v, p)
    if present("signature_version"):
        p = _join(path, "signature_version")
        out["signature_version"] = (
            _choice(raw["signature_version"], p, ctx, _ALL_SIGNATURE_VERSIONS, "signature version"),
            p,
        )
    for key in ("waba_poll_interval", "verification_poll_interval", "max_staleness", "health_poll_interval"):
        if present(key):
            p = _join(path, key)
            v = _duration(raw[key], p, ctx)
            if v < 0:
                _fail(p, f"must not be negative, got {_fmt_seconds(v)}")
            out[key] = (v, p)
    for key, upper in (("max_numbers", 10_000_000), ("concurrency", 64)):
        if present(key):
            p = _join(path, key)
            v = _number(raw[key], p, ctx)
            if not float(v).is_integer() or not (0 if key == "max_numbers" else 1) <= v <= upper:
                low = "0 (no cap)" if key == "max_numbers" else "1"
                _fail(p, f"must be a whole number from {low} to {upper}, got {v:g}")
            out[key] = (int(v), p)
    if present("tier_vocabulary"):
        p = _join(path, "tier_vocabulary")
        out["tier_vocabulary"] = (
            _choice(raw["tier_vocabulary"], p, ctx, TIER_VOCABULARIES, "tier vocabulary"),
            p,
        )
    if present("graph_api_version"):
        p = _join(path, "graph_api_version")
        v = _string(raw["graph_api_version"], p, ctx)
        assert v is not None
        if not _GRAPH_API_VERSION_RE.fullmatch(v.strip()):
            _fail(p, f"invalid Graph API version {_show(raw['graph_api_version'])} (e.g. \"v24.0\")")
        out["graph_api_version"] = (v.strip(), p)
    if present("labels"):
        p = _join(path, "labels")
        out["labels"] = (_parse_labels(raw["labels"], p, ctx), p)
    if present("action_qps"):
        p = _join(path, "action_qps")
        _require_mapping(raw["action_qps"], p)
        limits: dict[str, float] = {}
        for action, value in raw["action_qps"].items():
            ap = _join(p, action)
            if not isinstance(action, str) or not action:
                _fail(p, f"action names must be strings, got {_typename(action)} {_show(action)}")
            v = _number(value, ap, ctx)
            if not 0 < v <= QPS_MAX:
                _fail(ap, f"must be greater than 0 and at most {QPS_MAX:g}, got {v:g}")
            limits[action] = v
        out["action_qps"] = (limits, p)
    return out


def _parse_account(raw: Any, path: str, glob: dict[str, tuple[Any, str]], ctx: _Ctx) -> Account:
    _require_mapping(raw, path)
    _check_keys(raw, _ACCOUNT_KEYS, path)

    name_path = f"{path}.name"
    name_raw = _get(raw, "name")
    name = _string(name_raw, name_path, ctx)
    assert name is not None
    if not _NAME_RE.fullmatch(name):
        _fail(
            name_path,
            f"invalid account name {_show(name_raw)} (1-64 characters from A-Z a-z 0-9 _ . : -)",
        )

    provider_path = f"{path}.provider"
    if _get(raw, "provider") is None:
        _fail(provider_path, f"required (one of: {', '.join(PROVIDERS)})")
    provider = _choice(raw["provider"], provider_path, ctx, tuple(PROVIDERS), "provider")
    spec = PROVIDERS[provider]
    for key in sorted(_UNITS_KEYS - {spec.units_key}):
        if key in raw:
            _fail(f"{path}.{key}", f'not valid for provider "{provider}" (use {spec.units_key})')
    for key in sorted((_PROVIDER_TUNABLES - spec.own_tunables) & set(raw)):
        _fail(f"{path}.{key}", f'not supported by provider "{provider}"')

    endpoint_path = f"{path}.endpoint"
    if _get(raw, "pod") is not None:
        if not spec.pods:
            _fail(f"{path}.pod", f'not valid for provider "{provider}"')
        if _get(raw, "endpoint") is not None:
            _fail(path, "set only one of pod and endpoint")
        pod = _choice(raw["pod"], f"{path}.pod", ctx, tuple(spec.pods), "pod")
        endpoint = spec.pods[pod]
    elif _get(raw, "endpoint") is None:
        if spec.default_endpoint is None:
            _fail(endpoint_path, f"required (or pod: one of {', '.join(spec.pods)})")
        endpoint = spec.default_endpoint
    else:
        endpoint = _parse_endpoint(raw["endpoint"], endpoint_path, ctx)

    cred_path = f"{path}.credentials"
    if _get(raw, "credentials") is None:
        _fail(cred_path, "required")
    credentials = _parse_credentials(raw["credentials"], cred_path, ctx, spec)

    spaces = _parse_spaces(raw.get(spec.units_key), f"{path}.{spec.units_key}", ctx, spec)

    local = _parse_tunables(raw, path, ctx)
    # Provider-specific tunables inherited from global do not apply to other providers.
    glob = {k: v for k, v in glob.items() if k not in _PROVIDER_TUNABLES or k in spec.own_tunables}

    def pick(key: str) -> tuple[Any, str, bool] | None:
        """(value, defining path, inherited from global) or None."""
        if key in local:
            return (*local[key], False)
        if key in glob:
            return (*glob[key], True)
        return None

    def where(key: str, origin: tuple[Any, str, bool]) -> tuple[str, str]:
        """Error path and message suffix for a cross-field check."""
        suffix = f" (inherited from {origin[1]})" if origin[2] else ""
        return f"{path}.{key}", suffix

    got = pick("poll_interval")
    poll_interval = got[0] if got else DEFAULT_POLL_INTERVAL

    got = pick("poll_jitter")
    if got:
        poll_jitter = got[0]
        if poll_jitter > poll_interval / 2:
            p, suffix = where("poll_jitter", got)
            _fail(
                p,
                f"must be at most half of poll_interval ({_fmt_seconds(poll_interval / 2)}), "
                f"got {_fmt_seconds(poll_jitter)}{suffix}",
            )
    else:
        poll_jitter = default_poll_jitter(poll_interval)

    got = pick("timeout")
    timeout = got[0] if got else DEFAULT_TIMEOUT

    got = pick("qps")
    qps = got[0] if got else spec.default_qps

    got = pick("signature_version")
    if got:
        signature_version = got[0]
        if signature_version not in spec.signature_versions:
            p, suffix = where("signature_version", got)
            _fail(p, f'provider "{provider}" does not support signature version '
                     f'"{signature_version}"{suffix}')
    else:
        signature_version = spec.default_signature_version

    def optional_interval(key: str, default: float) -> float:
        """0 disables the action; otherwise it may not run more often than the poll."""
        got = pick(key)
        if not got:
            return default
        interval = got[0]
        if 0 < interval < poll_interval:
            p, suffix = where(key, got)
            _fail(
                p,
                f"must be 0 (disabled) or at least poll_interval ({_fmt_seconds(poll_interval)}), "
                f"got {_fmt_seconds(interval)}{suffix}",
            )
        return interval

    default_waba = max(DEFAULT_WABA_POLL_INTERVAL, poll_interval) if "waba_poll_interval" in spec.own_tunables else 0.0
    waba_poll_interval = optional_interval("waba_poll_interval", default_waba)
    verification_poll_interval = optional_interval("verification_poll_interval", DEFAULT_VERIFICATION_POLL_INTERVAL)

    got = pick("tier_vocabulary")
    tier_vocabulary = got[0] if got else DEFAULT_TIER_VOCABULARY

    got = pick("graph_api_version")
    graph_api_version = "" if "graph_api_version" not in spec.own_tunables else (
        got[0] if got else DEFAULT_GRAPH_API_VERSION)

    got = pick("max_staleness")
    if got:
        max_staleness = got[0]
        if max_staleness < poll_interval:
            p, suffix = where("max_staleness", got)
            _fail(
                p,
                f"must be at least poll_interval ({_fmt_seconds(poll_interval)}), "
                f"got {_fmt_seconds(max_staleness)}{suffix}",
            )
    else:
        max_staleness = DEFAULT_MAX_STALENESS_FACTOR * poll_interval

    got = pick("health_poll_interval")
    if "health_poll_interval" not in spec.own_tunables:
        health_poll_interval = 0.0
    elif got and 0 < got[0] < 10:
        p, suffix = where("health_poll_interval", got)
        _fail(p, f"must be 0 (disabled) or at least 10s, got {_fmt_seconds(got[0])}{suffix}")
    else:
        health_poll_interval = got[0] if got else DEFAULT_HEALTH_POLL_INTERVAL

    action_qps = dict(spec.action_qps)
    got = pick("action_qps")
    if got:
        for action, value in got[0].items():
            if action not in spec.action_qps:
                p = f"{got[1]}.{action}"
                known = ", ".join(spec.action_qps) or "none"
                hint = _suggest(action, spec.action_qps)
                if got[2] and not spec.action_qps:
                    continue  # a global default for another provider's actions
                _fail(p, f'unknown action for provider "{provider}"'
                         + (f' (did you mean "{hint}"?)' if hint else f" (known: {known})"))
            action_qps[action] = value

    labels = dict(glob["labels"][0]) if "labels" in glob else {}
    if "labels" in local:
        labels.update(local["labels"][0])

    return Account(
        name=name,
        provider=provider,
        credentials=credentials,
        endpoint=endpoint,
        spaces=spaces,
        poll_interval=poll_interval,
        poll_jitter=poll_jitter,
        timeout=timeout,
        qps=qps,
        signature_version=signature_version,
        waba_poll_interval=waba_poll_interval,
        verification_poll_interval=verification_poll_interval,
        tier_vocabulary=tier_vocabulary,
        labels=Labels(labels),
        max_staleness=max_staleness,
        max_numbers=pick("max_numbers")[0] if pick("max_numbers") else 0,
        graph_api_version=graph_api_version,
        # By default as many units at once as the budget allows requests per second.
        concurrency=pick("concurrency")[0] if pick("concurrency") else max(1, min(16, math.ceil(qps))),
        health_poll_interval=health_poll_interval,
        action_qps=Labels(action_qps),
    )


def _parse_metrics(raw: Any, path: str, ctx: _Ctx) -> RenderOptions:
    """The ``metrics:`` section: cardinality controls for the whole exporter."""
    if raw is None:
        return DEFAULT_OPTIONS
    _require_mapping(raw, path)
    _check_keys(raw, _METRICS_KEYS, path)
    state_sets = "all"
    if _get(raw, "state_sets") is not None:
        state_sets = _choice(raw["state_sets"], f"{path}.state_sets", ctx, ("all", "active"), "state_sets mode")
    disabled: set[str] = set()
    if _get(raw, "disable") is not None:
        items = raw["disable"]
        if not isinstance(items, list):
            _fail(f"{path}.disable", f"must be a list of metric names, got {_typename(items)}")
        for i, item in enumerate(items):
            disabled.add(_choice(item, f"{path}.disable[{i}]", ctx, DISABLEABLE, "metric"))
    info_labels = INFO_LABELS
    if _get(raw, "info_labels") is not None:
        items = raw["info_labels"]
        if not isinstance(items, list):
            _fail(f"{path}.info_labels", f"must be a list of label names, got {_typename(items)}")
        chosen = [_choice(item, f"{path}.info_labels[{i}]", ctx, INFO_LABELS, "info label") for i, item in enumerate(items)]
        info_labels = tuple(label for label in INFO_LABELS if label in chosen)
    return RenderOptions(state_sets=state_sets, disabled=frozenset(disabled), info_labels=info_labels)


# -- webhooks ----------------------------------------------------------------
#
# The optional ``webhooks:`` section (see exporter/webhooks.py).  Its secrets
# follow the credential rules: only ${ENV} or <key>_file, never inline, never
# quoted in a message.

DEFAULT_WEBHOOK_DEBOUNCE = 2.0
WEBHOOK_DEBOUNCE_RANGE = (0.0, 60.0)
#: the Kaleyra token is the only thing that authenticates Kaleyra's callback
KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH = 16
_WEBHOOKS_KEYS = frozenset({"listen_address", "debounce", "meta", "kaleyra", "nxcloud"})
_WEBHOOKS_META_KEYS = frozenset({"app_secret", "app_secret_file", "verify_token", "verify_token_file"})
_WEBHOOKS_KALEYRA_KEYS = frozenset({"token", "token_file"})


@dataclass(frozen=True)
class WebhooksConfig:
    """The ``webhooks:`` section: a listener that turns provider events into early polls."""

    listen_address: str
    debounce: float = DEFAULT_WEBHOOK_DEBOUNCE
    meta_app_secret: str | None = field(default=None, repr=False)
    meta_verify_token: str | None = field(default=None, repr=False)
    kaleyra_token: str | None = field(default=None, repr=False)
    nxcloud: bool = False

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers whose endpoint is enabled, in a fixed order."""
        return tuple(p for p, on in (("meta", self.meta_app_secret is not None),
                                     ("nxcloud", self.nxcloud),
                                     ("kaleyra", self.kaleyra_token is not None)) if on)

    def describe(self) -> str:
        return (f"listening on {self.listen_address} for {', '.join(self.providers)}, "
                f"debounce {_fmt_seconds(self.debounce)}")

    def __repr__(self) -> str:
        return (f"WebhooksConfig(listen_address={self.listen_address!r}, debounce={self.debounce!r}, "
                f"providers={self.providers!r}, secrets=<redacted>)")

    __str__ = __repr__


def _parse_webhook_secret(raw: dict, key: str, path: str, ctx: _Ctx) -> str:
    """A required secret: exactly ``${ENV}`` or ``<key>_file``; never quoted in a message."""
    has_value = _get(raw, key) is not None
    has_file = _get(raw, f"{key}_file") is not None
    if has_value and has_file:
        _fail(path, f"set only one of {key} and {key}_file")
    if has_file:
        return _read_credential_file(raw[f"{key}_file"], f"{path}.{key}_file", ctx)
    if not has_value:
        _fail(f"{path}.{key}", f"required (as ${{ENV_VAR}} or {key}_file)")
    s_path = f"{path}.{key}"
    value = raw[key]
    inline = f"inline secrets are not allowed; use ${{ENV_VAR}} or {key}_file"
    if not isinstance(value, str):
        _fail(s_path, inline)
    m = _PURE_ENV_REF_RE.fullmatch(value.strip())
    if not m:
        if re.fullmatch(r"\$\{" + _ENV_NAME + r":-.*\}", value.strip(), re.DOTALL):
            _fail(s_path, f"a ${{VAR:-default}} fallback is an inline secret and is not allowed; "
                          f"use ${{ENV_VAR}} or {key}_file")
        _fail(s_path, inline)
    var = m.group(1)
    secret = ctx.env.get(var)
    if secret is None:
        _fail(s_path, f"environment variable {var} is not set")
    return _check_credential_value(secret, s_path, f"environment variable {var}")


def _parse_webhooks(raw: Any, path: str, ctx: _Ctx) -> WebhooksConfig | None:
    """The ``webhooks:`` section; None when it is absent (the receiver is off)."""
    if raw is None:
        return None
    _require_mapping(raw, path)
    _check_keys(raw, _WEBHOOKS_KEYS, path)

    la_path = f"{path}.listen_address"
    listen_address = _string(_get(raw, "listen_address"), la_path, ctx)
    assert listen_address is not None
    listen_address = listen_address.strip()
    # The rules of exporter.web.parse_listen_address (config does not import the web stack).
    host, sep, port = listen_address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        _fail(la_path, f"invalid listen address {_show(raw['listen_address'])} (expected [host]:port, e.g. \":10068\")")

    debounce = DEFAULT_WEBHOOK_DEBOUNCE
    if _get(raw, "debounce") is not None:
        d_path = f"{path}.debounce"
        debounce = _duration(raw["debounce"], d_path, ctx)
        _in_range(debounce, d_path, *WEBHOOK_DEBOUNCE_RANGE)

    app_secret = verify_token = kaleyra_token = None
    if "meta" in raw:
        m_path = f"{path}.meta"
        meta = raw["meta"]
        _require_mapping(meta, m_path)
        _check_keys(meta, _WEBHOOKS_META_KEYS, m_path)
        app_secret = _parse_webhook_secret(meta, "app_secret", m_path, ctx)
        verify_token = _parse_webhook_secret(meta, "verify_token", m_path, ctx)
    if "kaleyra" in raw:
        k_path = f"{path}.kaleyra"
        kaleyra = raw["kaleyra"]
        _require_mapping(kaleyra, k_path)
        _check_keys(kaleyra, _WEBHOOKS_KALEYRA_KEYS, k_path)
        kaleyra_token = _parse_webhook_secret(kaleyra, "token", k_path, ctx)
        if len(kaleyra_token) < KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH:
            where = f"{k_path}.token_file" if _get(kaleyra, "token_file") is not None else f"{k_path}.token"
            _fail(where, f"too short: the token is all that authenticates Kaleyra's callback, "
                         f"use at least {KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH} random characters")
    nxcloud = False
    if "nxcloud" in raw:
        n_path = f"{path}.nxcloud"
        nx = raw["nxcloud"]
        if nx is None:
            nx = {}
        _require_mapping(nx, n_path)
        _check_keys(nx, frozenset(), n_path)
        nxcloud = True
    if app_secret is None and kaleyra_token is None and not nxcloud:
        _fail(path, "enable at least one of meta, kaleyra or nxcloud")
    return WebhooksConfig(listen_address=listen_address, debounce=debounce, meta_app_secret=app_secret,
                          meta_verify_token=verify_token, kaleyra_token=kaleyra_token, nxcloud=nxcloud)


def _parse_endpoint(raw: Any, path: str, ctx: _Ctx) -> str:
    # The endpoint is never quoted in messages: a URL could carry userinfo.
    value = _string(raw, path, ctx)
    assert value is not None
    example = "e.g. https://cams.ap-southeast-1.aliyuncs.com"
    if not value or any(c.isspace() for c in value):
        _fail(path, f"must be an http(s) URL without spaces, {example}")
    if "://" not in value:
        _fail(path, f"must be an http(s) URL with a scheme, {example}")
    try:
        parts = urlsplit(value)
        port = parts.port  # validates the port
        del port
    except ValueError as e:
        _fail(path, f"invalid URL ({e})")
    if parts.scheme.lower() not in ("http", "https"):
        _fail(path, f'scheme must be http or https, got "{parts.scheme}"')
    if parts.username is not None or parts.password is not None:
        _fail(path, "must not contain user information (credentials belong under credentials)")
    if not parts.hostname:
        _fail(path, f"must have a host, {example}")
    if parts.path not in ("", "/"):
        _fail(path, "must not have a path (only scheme, host and optional port)")
    if parts.query or parts.fragment or value.rstrip("/").endswith(("?", "#")):
        _fail(path, "must not have a query or fragment")
    return value.rstrip("/")


def _parse_spaces(raw: Any, path: str, ctx: _Ctx, spec: ProviderSpec = PROVIDERS["alibaba_cams"]) -> tuple[Space, ...]:
    id_key = spec.unit_id_key
    if raw is None:
        _fail(path, f"required (a list of {{{id_key}: ...}})")
    if not isinstance(raw, list):
        _fail(path, f"must be a list, got {_typename(raw)}")
    if not raw:
        _fail(path, f"must contain at least one {spec.units_key[:-1]}")
    spaces: list[Space] = []
    seen: dict[str, int] = {}
    for i, raw_space in enumerate(raw):
        spath = f"{path}[{i}]"
        _require_mapping(raw_space, spath)
        _check_keys(raw_space, spec.unit_keys, spath)
        id_path = f"{spath}.{id_key}"
        unit_id = _string(_get(raw_space, id_key), id_path, ctx)
        assert unit_id is not None
        unit_id = unit_id.strip()
        if not unit_id:
            _fail(id_path, "must not be empty")
        if unit_id in seen:
            _fail(id_path, f"duplicate {id_key} {_show(raw_space[id_key])} (also {path}[{seen[unit_id]}])")
        seen[unit_id] = i
        isv_code = None
        if "isv_code" in spec.unit_keys:
            isv_code = _string(_get(raw_space, "isv_code"), f"{spath}.isv_code", ctx, required=False)
        numbers: tuple[str, ...] = ()
        numbers_key = next((k for k in ("business_phones", "phone_numbers") if k in spec.unit_keys), None)
        if numbers_key and _get(raw_space, numbers_key) is not None:
            numbers = _parse_phone_list(raw_space[numbers_key], f"{spath}.{numbers_key}", ctx)
        spaces.append(Space(cust_space_id=unit_id, isv_code=(isv_code or None), phone_numbers=numbers))
    return tuple(spaces)


_PHONE_RE = re.compile(r"\+?[0-9]{6,20}")


def _parse_phone_list(raw: Any, path: str, ctx: _Ctx) -> tuple[str, ...]:
    """Phone numbers with country code, as digits (an optional leading + is dropped)."""
    if not isinstance(raw, list) or not raw:
        _fail(path, "must be a non-empty list of phone numbers with country code")
    out: list[str] = []
    for i, item in enumerate(raw):
        ipath = f"{path}[{i}]"
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            _fail(ipath, f"must be a phone number string, got {_typename(item)}")
        value = _expand(item, ipath, ctx) if isinstance(item, str) else str(item)
        value = re.sub(r"[\s\-()]", "", value)
        if not _PHONE_RE.fullmatch(value):
            _fail(ipath, f"invalid phone number {_show(item)} (digits with country code, e.g. \"+8613800000000\")")
        digits = value.lstrip("+")
        if digits in out:
            _fail(ipath, f"duplicate phone number {_show(item)}")
        out.append(digits)
    return tuple(out)


# -- credentials -----------------------------------------------------------
#
# Nothing in this section may put a credential value (raw, expanded or read
# from a file) into an error message.


def _parse_credentials(raw: Any, path: str, ctx: _Ctx, spec: ProviderSpec = PROVIDERS["alibaba_cams"]) -> Credentials:
    _require_mapping(raw, path)
    id_key, secret_key = spec.id_key, spec.secret_key
    _check_keys(raw, frozenset({id_key, f"{id_key}_file", secret_key, f"{secret_key}_file"}), path)

    # access_key_id: inline, ${ENV} or a file.
    has_id = _get(raw, id_key) is not None
    has_id_file = _get(raw, f"{id_key}_file") is not None
    if has_id and has_id_file:
        _fail(path, f"set only one of {id_key} and {id_key}_file")
    if has_id:
        id_path = f"{path}.{id_key}"
        value = raw[id_key]
        if not isinstance(value, str):
            _fail(id_path, f"must be a string, got {_typename(value)}")
        access_key_id = _check_credential_value(_expand(value, id_path, ctx), id_path, None)
    elif has_id_file:
        access_key_id = _read_credential_file(
            raw[f"{id_key}_file"], f"{path}.{id_key}_file", ctx
        )
    elif spec.id_optional:
        access_key_id = ""  # derived from the secret below
    else:
        _fail(f"{path}.{id_key}", f"required (or {id_key}_file)")

    # access_key_secret: ONLY ${ENV} or a file, never inline.
    has_secret = _get(raw, secret_key) is not None
    has_secret_file = _get(raw, f"{secret_key}_file") is not None
    if has_secret and has_secret_file:
        _fail(path, f"set only one of {secret_key} and {secret_key}_file")
    if has_secret:
        s_path = f"{path}.{secret_key}"
        value = raw[secret_key]
        inline = f"inline secrets are not allowed; use ${{ENV_VAR}} or {secret_key}_file"
        if not isinstance(value, str):
            _fail(s_path, inline)
        m = _PURE_ENV_REF_RE.fullmatch(value.strip())
        if not m:
            if re.fullmatch(r"\$\{" + _ENV_NAME + r":-.*\}", value.strip(), re.DOTALL):
                _fail(s_path, "a ${VAR:-default} fallback is an inline secret and is not allowed; "
                              f"use ${{ENV_VAR}} or {secret_key}_file")
            _fail(s_path, inline)
        var = m.group(1)
        secret = ctx.env.get(var)
        if secret is None:
            _fail(s_path, f"environment variable {var} is not set")
        access_key_secret = _check_credential_value(
            secret, s_path, f"environment variable {var}"
        )
    elif has_secret_file:
        access_key_secret = _read_credential_file(
            raw[f"{secret_key}_file"], f"{path}.{secret_key}_file", ctx
        )
    else:
        _fail(path, f"{secret_key} (as ${{ENV_VAR}}) or {secret_key}_file is required")

    if not access_key_id:
        # No id (a Meta token alone): accounts with the same secret still share one
        # budget.  A short digest names it; the secret itself never leaves here.
        access_key_id = "sha256:" + hashlib.sha256(access_key_secret.encode("utf-8")).hexdigest()[:16]
    return Credentials(access_key_id=access_key_id, access_key_secret=access_key_secret)


def _check_credential_value(value: str, path: str, what: str | None) -> str:
    subject = f"{what} " if what else ""
    if value == "":
        _fail(path, f"{subject}is empty" if what else "must not be empty")
    if any(c.isspace() or not c.isprintable() for c in value):
        _fail(path, f"{subject}contains whitespace or control characters" if what
              else "must not contain whitespace or control characters")
    return value


def _read_credential_file(raw: Any, path: str, ctx: _Ctx) -> str:
    if not isinstance(raw, str):
        _fail(path, f"must be a file path (string), got {_typename(raw)}")
    file_name = _expand(raw, path, ctx).strip()
    if not file_name:
        _fail(path, "must not be empty")
    full = file_name
    if not os.path.isabs(full) and ctx.base_dir:
        full = os.path.join(ctx.base_dir, full)
    try:
        with open(full, "rb") as fh:
            data = fh.read(SECRET_FILE_MAX_BYTES + 1)
    except OSError as e:
        _fail(path, f"cannot read {full}: {e.strerror or type(e).__name__}")
    if len(data) > SECRET_FILE_MAX_BYTES:
        _fail(path, f"{full} is too large (more than {SECRET_FILE_MAX_BYTES} bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        _fail(path, f"{full} is not valid UTF-8 text")
    return _check_credential_value(text.strip(), path, f"file {full}")
