"""The validated configuration as the rest of the exporter sees it: provider-neutral and immutable.

Each provider names its credential and its polling units in its own words
(CAMS: AccessKey and CustSpaceId; NxCloud: accessKey and appkey; Kaleyra and
Meta: a key and WABA ids); :mod:`exporter.config.providers` maps them onto
:class:`Credentials` and :class:`Unit`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from exporter.config.errors import fmt_seconds
from exporter.exposition import DEFAULT_OPTIONS, RenderOptions


class Labels(Mapping[str, Any]):
    """An immutable, hashable mapping sorted by key (static labels, per-action limits, unit parameters)."""

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(sorted((data or {}).items())))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Labels is immutable")

    def __repr__(self) -> str:
        return f"Labels({self._data!r})"


@dataclass(frozen=True)
class Unit:
    """One polling unit: a CAMS space, an NxCloud app, a Kaleyra or Meta WABA.

    ``id`` (CustSpaceId, appkey, WABA id) is the ``space_id`` label; ``phone_numbers``
    (digits with country code) restricts the poll, empty means all; ``params`` holds
    what only its provider reads (CAMS: ``isv_code``).
    """

    id: str
    phone_numbers: tuple[str, ...] = ()
    params: Labels = field(default_factory=Labels)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={self.access_key_id!r}, access_key_secret=<redacted>)"


@dataclass(frozen=True)
class Account:
    name: str
    provider: str
    credentials: Credentials
    endpoint: str
    units: tuple[Unit, ...]
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
    retries: int = 3  # retries of a call after a transient failure
    #: CAMS: seconds between two sweeps of GetWhatsappHealthStatus over the account's numbers (0: off)
    health_poll_interval: float = 0.0
    #: calls per second per action inside the credential's qps: the provider's documented
    #: per-action limits, updated with the configured ``action_qps``
    action_qps: Mapping[str, float] = field(default_factory=Labels)
    #: Twilio: senders per list page (PageSize)
    page_size: int = 0
    #: Twilio: requests of the account in flight at once
    max_concurrent_requests: int = 0

    @property
    def endpoint_host(self) -> str:
        return (urlsplit(self.endpoint).hostname or "").lower()

    @property
    def credential_key(self) -> tuple[str, str, str]:
        """``(provider, endpoint host, credential id)``: accounts with one key share one rate limiter."""
        return (self.provider, self.endpoint_host, self.credentials.access_key_id)


@dataclass(frozen=True)
class WebhooksConfig:
    """The ``webhooks:`` section: a listener that turns provider events into early polls."""

    listen_address: str
    debounce: float = 2.0
    #: a signed event seen again within this many seconds (same provider, body and signature) is a replay
    replay_window: float = 600.0
    #: at most one webhook refresh of an account per this many seconds; later events join the next one
    min_refresh_interval: float = 30.0
    #: webhook refreshes of a Meta account per hour (within Graph's 200 calls/hour per app per WABA)
    meta_refreshes_per_hour: int = 20
    meta_app_secret: str | None = None
    meta_verify_token: str | None = None
    kaleyra_token: str | None = None
    nxcloud: bool = False

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers whose endpoint is enabled, in a fixed order."""
        return tuple(
            p
            for p, on in (
                ("meta", self.meta_app_secret is not None),
                ("nxcloud", self.nxcloud),
                ("kaleyra", self.kaleyra_token is not None),
            )
            if on
        )

    def describe(self) -> str:
        return (
            f"listening on {self.listen_address} for {', '.join(self.providers)}, "
            f"debounce {fmt_seconds(self.debounce)}, replay window {fmt_seconds(self.replay_window)}, "
            f"at most one refresh per account every {fmt_seconds(self.min_refresh_interval)}, "
            f"{self.meta_refreshes_per_hour} per hour for Meta accounts"
        )

    def __repr__(self) -> str:
        return (
            f"WebhooksConfig(listen_address={self.listen_address!r}, debounce={self.debounce!r}, "
            f"replay_window={self.replay_window!r}, min_refresh_interval={self.min_refresh_interval!r}, "
            f"meta_refreshes_per_hour={self.meta_refreshes_per_hour!r}, providers={self.providers!r}, "
            "secrets=<redacted>)"
        )


@dataclass(frozen=True)
class Config:
    accounts: tuple[Account, ...]
    source: str | None = None
    metrics: RenderOptions = DEFAULT_OPTIONS
    #: the optional webhook receiver (``webhooks:``); None: off
    webhooks: WebhooksConfig | None = None

    @property
    def label_names(self) -> tuple[str, ...]:
        """Sorted union of the static label names of all accounts (missing values render as "")."""
        return tuple(sorted({k for a in self.accounts for k in a.labels}))

    def credential_groups(self) -> dict[tuple[str, str, str], tuple[Account, ...]]:
        """Accounts grouped by :attr:`Account.credential_key` (config order)."""
        groups: dict[tuple[str, str, str], list[Account]] = {}
        for account in self.accounts:
            groups.setdefault(account.credential_key, []).append(account)
        return {k: tuple(v) for k, v in groups.items()}

    def account(self, name: str) -> Account:
        return {a.name: a for a in self.accounts}[name]
