"""The scenario data model: numbers, WABAs, spaces, credentials, faults, the scenario."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .timeline import Timeline
from .validation import (
    FAULT_KINDS,
    MAX_OVERSIZE_MEGABYTES,
    WEBHOOK_FAULT_KINDS,
    ScenarioError,
    _bool,
    _int,
    _join,
    _string,
    _type_name,
    parse_duration,
)

# ---------------------------------------------------------------------------
# model


@dataclass
class Number:
    """A phone number.  ``attributes`` are the base (time 0) values, keyed snake_case."""

    phone_number: str
    attributes: dict[str, Any] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline)

    @property
    def id(self) -> str | None:
        return self.attributes.get("id")

    def state_at(self, t: float) -> dict[str, Any]:
        state = self.timeline.evaluate(self.attributes, t)
        state.setdefault("present", True)
        state["phone_number"] = self.phone_number
        return state


@dataclass
class Waba:
    attributes: dict[str, Any] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline)

    def state_at(self, t: float) -> dict[str, Any]:
        return self.timeline.evaluate(self.attributes, t)


@dataclass
class Space:
    space_id: str
    access_key_id: str
    isv_code: str | None = None
    waba: Waba | None = None
    numbers: list[Number] = field(default_factory=list)
    default: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cust_space_id(self) -> str:
        return self.space_id

    def number(self, phone_number: str) -> Number | None:
        for number in self.numbers:
            if number.phone_number == phone_number:
                return number
        return None


@dataclass
class Credential:
    access_key_id: str
    access_key_secret: str
    qps: int | None = 10
    action_qps: dict[str, int] = field(default_factory=dict)
    permissions: str | frozenset[str] = "allowed"  # "allowed", "denied" or the set of allowed actions
    enabled: bool = True
    account: str | None = None
    security_token: str | None = None

    @property
    def account_key(self) -> str:
        """Quota and resource-ownership scope: the account, else the key itself."""
        return self.account or self.access_key_id

    def allows(self, action: str) -> bool:
        if self.permissions == "allowed":
            return True
        if self.permissions == "denied":
            return False
        return action in self.permissions


@dataclass
class Fault:
    """An injected failure; see the module docstring.  ``from_`` is the YAML key ``from``."""

    kind: str
    code: str | None = None
    http_status: int | None = None
    message: str | None = None
    retry_after: int | None = None
    http200: bool = False
    seconds: float | None = None
    access_key_id: str | None = None
    action: str | None = None
    space_id: str | None = None
    phone_number: str | None = None
    from_: float | None = None
    until: float | None = None
    count: int | None = None
    probability: float | None = None
    megabytes: float | None = None

    def __post_init__(self) -> None:
        _validate_fault(self, "Fault")

    def selects(
        self, *, access_key_id: str | None, action: str | None, space_id: str | None, phone_number: str | None, t: float
    ) -> bool:
        """True if the selectors and the time window match (``count`` is tracked by the emulator)."""
        if self.access_key_id is not None and self.access_key_id != access_key_id:
            return False
        if self.action is not None and self.action != action:
            return False
        if self.space_id is not None and self.space_id != space_id:
            return False
        if self.phone_number is not None and self.phone_number != phone_number:
            return False
        if self.from_ is not None and t < self.from_:
            return False
        return not (self.until is not None and t >= self.until)


def _validate_fault(fault: Fault, path: str) -> None:
    if fault.kind not in FAULT_KINDS and fault.kind not in WEBHOOK_FAULT_KINDS:
        raise ScenarioError(
            _join(path, "kind"), f"must be one of {', '.join(FAULT_KINDS + WEBHOOK_FAULT_KINDS)}, got {fault.kind!r}"
        )
    if fault.kind == "error":
        code: object = fault.code  # as written in the YAML or passed to Fault(): possibly a number
        if isinstance(code, int) and not isinstance(code, bool):
            fault.code = str(code)  # numeric provider codes (NxCloud's 1003, 9099, ...)
        _string(fault.code, _join(path, "code"))
    elif fault.code is not None:
        raise ScenarioError(_join(path, "code"), "only valid with kind: error")
    if fault.kind == "delay":
        if fault.seconds is None:
            raise ScenarioError(_join(path, "seconds"), "is required for kind: delay")
        fault.seconds = parse_duration(fault.seconds, _join(path, "seconds"))
    elif fault.seconds is not None:
        raise ScenarioError(_join(path, "seconds"), "only valid with kind: delay")
    if fault.kind == "oversize":
        mpath = _join(path, "megabytes")
        if fault.megabytes is None:
            raise ScenarioError(mpath, "is required for kind: oversize")
        if isinstance(fault.megabytes, bool) or not isinstance(fault.megabytes, (int, float)):
            raise ScenarioError(mpath, f"expected a number, got {_type_name(fault.megabytes)} {fault.megabytes!r}")
        if not (0 < fault.megabytes <= MAX_OVERSIZE_MEGABYTES) or math.isnan(fault.megabytes):
            raise ScenarioError(mpath, f"must be > 0 and <= {MAX_OVERSIZE_MEGABYTES}, got {fault.megabytes!r}")
        fault.megabytes = float(fault.megabytes)
    elif fault.megabytes is not None:
        raise ScenarioError(_join(path, "megabytes"), "only valid with kind: oversize")
    if fault.probability is not None:
        ppath = _join(path, "probability")
        if isinstance(fault.probability, bool) or not isinstance(fault.probability, (int, float)):
            raise ScenarioError(
                ppath, f"expected a number from 0 to 1, got {_type_name(fault.probability)} {fault.probability!r}"
            )
        if not 0 <= fault.probability <= 1:
            raise ScenarioError(ppath, f"must be between 0 and 1, got {fault.probability!r}")
        fault.probability = float(fault.probability)
    if fault.kind == "refuse":
        for name in ("access_key_id", "action", "space_id", "phone_number"):
            if getattr(fault, name) is not None:
                raise ScenarioError(
                    _join(path, name),
                    "kind: refuse acts on connections before any request is "
                    "read; it takes only from/until, count and probability",
                )
    if fault.kind != "error":
        for name in ("http_status", "message", "retry_after"):
            if getattr(fault, name) is not None:
                raise ScenarioError(_join(path, name), "only valid with kind: error")
        if fault.http200:
            raise ScenarioError(_join(path, "http200"), "only valid with kind: error")
    _int(fault.http_status, _join(path, "http_status"), minimum=100, maximum=599)
    _int(fault.retry_after, _join(path, "retry_after"), minimum=0)
    _int(fault.count, _join(path, "count"), minimum=1)
    _bool(fault.http200, _join(path, "http200"), False)
    _string(fault.message, _join(path, "message"), required=False, allow_empty=True)
    for name in ("access_key_id", "action", "space_id", "phone_number"):
        _string(getattr(fault, name), _join(path, name), required=False)
    if fault.from_ is not None:
        fault.from_ = parse_duration(fault.from_, _join(path, "from"))
    if fault.until is not None:
        fault.until = parse_duration(fault.until, _join(path, "until"))
    if fault.from_ is not None and fault.until is not None and fault.until <= fault.from_:
        raise ScenarioError(_join(path, "until"), "must be later than from")


_T = TypeVar("_T")


@dataclass
class Scenario:
    credentials: list[Credential] = field(default_factory=list)
    spaces: list[Space] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the lookup indexes (call after editing ``credentials`` or ``spaces`` in place)."""
        self._cred_index = {c.access_key_id: c for c in self.credentials}
        self._space_index = {s.space_id: s for s in self.spaces}

    def credential(self, access_key_id: str | None) -> Credential | None:
        return self._find(lambda: self._cred_index, len(self.credentials), access_key_id)

    def space(self, space_id: str | None) -> Space | None:
        return self._find(lambda: self._space_index, len(self.spaces), space_id)

    def _find(self, index: Callable[[], dict[str, _T]], count: int, key: str | None) -> _T | None:
        """``index()[key]``, after a :meth:`reindex` if the index misses it and no longer counts ``count`` items."""
        if key is None:
            return None
        found = index().get(key)
        if found is None and len(index()) != count:
            self.reindex()
            found = index().get(key)
        return found

    def spaces_of(self, access_key_id: str) -> list[Space]:
        """Spaces the key may use: those owned by any key of the same account."""
        cred = self.credential(access_key_id)
        if cred is None:
            return []
        return [space for space in self.spaces if self.owned_by(space, cred)]

    def owned_by(self, space: Space, cred: Credential) -> bool:
        """Whether the space belongs to the credential's account (to any key of it)."""
        owner = self.credential(space.access_key_id)
        return owner is not None and owner.account_key == cred.account_key

    def waba_space(self, waba_id: str) -> Space | None:
        """The space whose ``space_id`` is ``waba_id``, else the first whose WABA has that ``id`` attribute."""
        space = self.space(waba_id)
        if space is not None:
            return space
        for candidate in self.spaces:
            if candidate.waba is not None and candidate.waba.attributes.get("id") == waba_id:
                return candidate
        return None

    def number_count(self) -> int:
        return sum(len(s.numbers) for s in self.spaces)
