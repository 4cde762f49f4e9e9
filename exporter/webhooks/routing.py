"""Routing: which accounts an event is about, by the numbers and WABA ids they hold."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from exporter.config import Account, Config, WebhooksConfig
from exporter.webhooks.vocabulary import _digits

if TYPE_CHECKING:
    from exporter.store import AccountSnapshot, Store
    from exporter.wabafacts import WabaUpdate


class RefreshTarget(Protocol):
    """What the receiver asks of the poller (:class:`exporter.poller.Poller`): polls, and facts only webhooks carry."""

    def request_refresh(self, name: str, delay: float, phones: Iterable[str] | None) -> bool: ...

    def apply_waba_update(self, name: str, update: WabaUpdate) -> object: ...

    def apply_business_limit(self, name: str, waba_id: str, tier: str) -> object: ...


#: providers whose polling units are WABA ids
_WABA_UNIT_PROVIDERS = frozenset({"meta", "kaleyra"})


@dataclass(frozen=True)
class _State:
    """What one request needs, swapped as a whole on reload."""

    settings: WebhooksConfig
    accounts: Mapping[str, Account]
    #: NxCloud access key -> its accounts
    nx_by_key: Mapping[str, tuple[Account, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: WebhooksConfig, config: Config) -> _State:
        nx: dict[str, list[Account]] = {}
        for account in config.accounts:
            if account.provider == "nxcloud":
                nx.setdefault(account.credentials.access_key_id, []).append(account)
        return cls(settings, {a.name: a for a in config.accounts}, {k: tuple(v) for k, v in nx.items()})

    def routable(self) -> list[tuple[str, str]]:
        """(name, provider) of the accounts some enabled endpoint can route to (their counters are pre-initialized)."""
        providers = set(self.settings.providers)
        return [(a.name, a.provider) for a in self.accounts.values() if "meta" in providers or a.provider in providers]


class _Index:
    """Numbers and WABA ids of accounts, from the configuration and the store's current data.

    Built lazily and kept per account until its configuration or its snapshot
    changes (snapshots are immutable), so a burst of events does not walk
    every number of every account once per event.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        # (kind, account name) -> (account, weak reference to the snapshot, the ids)
        self._cache: dict[tuple[str, str], tuple[Account, Any, frozenset[str]]] = {}

    def _memo(self, kind: str, account: Account, build: Callable[[Any], set[str]]) -> frozenset[str]:
        snap = self._store.account(account.name)
        hit = self._cache.get((kind, account.name))
        if hit is not None and hit[0] is account and hit[1]() is snap:
            return hit[2]
        found = build(snap)
        found.discard("")
        ids = frozenset(found)
        self._cache[(kind, account.name)] = (account, weakref.ref(snap) if snap is not None else lambda: None, ids)
        return ids

    def numbers(self, account: Account) -> frozenset[str]:
        def build(snap: AccountSnapshot | None) -> set[str]:
            found = {_digits(p) for unit in account.units for p in unit.phone_numbers}
            if snap is not None:
                found.update(_digits(p) for p in snap.numbers)
                found.update(_digits(p) for p in snap.configured)
            return found

        return self._memo("numbers", account, build)

    def wabas(self, account: Account) -> frozenset[str]:
        def build(snap: AccountSnapshot | None) -> set[str]:
            found: set[str] = set()
            if account.provider in _WABA_UNIT_PROVIDERS:
                found.update(unit.id for unit in account.units)
            if snap is not None:
                found.update(t.number.waba_id for t in snap.numbers.values())
                found.update(w.waba_id for w in snap.wabas.values())
            return found

        return self._memo("wabas", account, build)
