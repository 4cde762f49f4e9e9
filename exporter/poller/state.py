"""The poller's shared pieces: constants, per-account counters, credentials and the state an actor owns."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx

from exporter import model
from exporter.config import Account
from exporter.providers.transport import new_http_client
from exporter.ratelimit import TokenBucket

#: what a caller awaits until its request is done (resolved with None)
Waiter = asyncio.Future[None]
#: a request in an actor's inbox: its kind and its arguments
Request = tuple[str, tuple[Any, ...]]

log = logging.getLogger("exporter.poller")  # one logger for the whole package, as before the split

HINTS = {
    "auth": "check the credential (id and secret) of this account, and the host clock",
    "permission": "check that this credential may read this space/app/WABA "
    "(see the minimal policy in docs/providers/cams.md)",
    "request": "check the configured space/app/WABA id and phone numbers of this account",
    "throttled": "the provider throttled the calls; lower qps or raise poll_interval if this persists",
}

#: consecutive polls refused for auth/permission reasons before the account's polls pause
REFUSALS_BEFORE_PAUSE = 2
#: the provider action of a health read (CAMS)
HEALTH_ACTION = "GetWhatsappHealthStatus"
#: a sweep publishes what it read at most this often
HEALTH_PUBLISH_INTERVAL = 1.0
#: polls and snapshots with more numbers than this are folded and rendered in slices between scrapes
OFFLOAD_NUMBERS = 500


class _Stats:
    """Request counters of one account, updated by its client on every attempt (on the loop)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()

    def observe(self, action: str, reason: str | None) -> None:
        self.requests[action] += 1
        if reason is not None:
            self.errors[(action, reason)] += 1

    def copy(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        return dict(self.requests), dict(self.errors)


class _Credential:
    """The budget and the pooled HTTP client of one credential, shared by the accounts that sign with it."""

    def __init__(self, account: Account):
        self.key = account.credential_key
        self.qps = account.qps
        self.action_qps = dict(account.action_qps)
        self.bucket = TokenBucket(account.qps, action_qps=account.action_qps)
        # as many connections as requests of the account can be in flight at once (units polled at once,
        # or Twilio's own cap); accounts that share the credential share them (their requests are paced anyway)
        in_flight = max(account.concurrency, account.max_concurrent_requests)
        self.http: httpx.AsyncClient = new_http_client(account.timeout, in_flight)
        self.users = 0  # actors (live or retiring) that use it

    def fits(self, account: Account) -> bool:
        return self.qps == account.qps and self.action_qps == dict(account.action_qps)

    async def aclose(self) -> None:
        self.bucket.close()
        await self.http.aclose()


@dataclasses.dataclass
class _AccountState:
    """What an account knows besides its published snapshot; written only by its actor."""

    facts: model.WabaFacts = model.NO_FACTS  # WABA restrictions, bans, violations (webhooks; the state file)
    told_limits: dict[str, model.BusinessLimit] = dataclasses.field(default_factory=dict)
    number_last_success: dict[str, float] = dataclasses.field(default_factory=dict)
    space_last_success: dict[str, float] = dataclasses.field(default_factory=dict)
    last_success_at: float | None = None
    hold_until: float = 0.0  # auth/permission failures: no polls before this time
    rejections: int = 0  # consecutive polls refused for auth/permission reasons
    refreshed_at: dict[str, float] = dataclasses.field(default_factory=dict)  # numbers re-read by a refresh, when
    health_read_at: dict[str, float] = dataclasses.field(default_factory=dict)  # number -> its last health read
    slow_sweep_warned: bool = False
    tiers_read_at: float = 0.0  # when the last poll that read the numbers' tiers started


def _now_utc() -> datetime:
    return datetime.now(UTC)
