"""Scenarios for the provider emulators: data model, YAML loader, timeline evaluation.

A scenario describes, for one emulated provider account landscape, which API
credentials exist, which "spaces" (CAMS: ``CustSpaceId``; other providers: their
app / account container) each credential owns, the phone numbers and WABA of
every space, how their attributes change over *scenario time*, and which faults
the emulator should inject.  It is provider-neutral: attribute names are plain
``snake_case`` keys and each emulator decides which of them it puts on the wire
(the CAMS emulator maps ``quality_rating`` to ``QualityRating`` and so on).

Format (YAML; every key not marked "required" is optional)::

    name: demo                          # free text
    description: ...                    # free text
    credentials:
      - access_key_id: demo-ak-1        # required, unique
        access_key_secret: demo-secret  # required (fixtures only: never real secrets)
        qps: 10                         # requests/second allowed for this key; null = unlimited
        action_qps: {GetWhatsappHealthStatus: 5}   # extra per-action limits
        permissions: allowed            # allowed | denied | [Action, ...] (the allowed actions)
        enabled: true                   # false = the key exists but is disabled
        account: acct-1                 # keys with the same account share quota and spaces
        security_token: null            # if set, requests must carry this STS token
    spaces:
      - cust_space_id: cams-demo-shop   # required, unique (alias: space_id)
        access_key_id: demo-ak-1        # required: the owning credential
        isv_code: null                  # if set, requests must send the same IsvCode
        default: false                  # the space used when a request names none
        extra: {}                       # free-form, for other providers' emulators
        waba:                           # null = no WABA bound
          id: "102938475610001"
          name: Demo Shop
          account_review_status: APPROVED
          currency: USD
          message_template_namespace: "..."
          timeline: [...]               # as for numbers, see below
          repeat_every: 5m
        numbers:
          - phone_number: "8613800000001"   # required, a string of digits as on the wire
            id: "109876543210001"           # the Meta phone-number id
            verified_name: Demo Shop
            status: CONNECTED
            quality_rating: GREEN
            messaging_limit_tier: TIER_1K
            code_verification_status: VERIFIED
            name_status: Approval
            new_name_status: Approval
            is_official: "N"
            status_callback_url: ...        # also status_queue, up_callback_url, up_queue
            present: true                   # false = the number is not listed at all
            wire_extra: {SomeKey: value}    # raw wire keys added verbatim to the JSON object
            timeline:
              - {at: 90, set: {quality_rating: YELLOW}}
              - {at: 3m, set: {quality_rating: RED, status: FLAGGED}}
            repeat_every: 6m                # the timeline loops with this period
    faults:
      - kind: error                     # one of the kinds below
        code: Throttling.User           # error: required (a provider's code; integers such as 9099 allowed)
        http_status: 400                # error: default from the provider's table
        message: ...                    # error: default from the provider's table
        retry_after: 2                  # error: adds a retry-after header (seconds)
        http200: false                  # error: send the business error with HTTP 200
        seconds: 3                      # delay: required; sleep before answering
        megabytes: 40                   # oversize: required; size of the padded answer in MiB (> 0, <= 1024)
        access_key_id: demo-ak-1        # selectors, all optional (AND-ed); not allowed with kind: refuse
        action: QueryChatappPhoneNumbers
        space_id: cams-demo-shop
        phone_number: "8613800000001"
        from: 60                        # active while from <= scenario time < until
        until: 2m
        count: 3                        # only the next 3 matching requests
        probability: 0.1                # applied at random to each matching request, 0..1 (default: always)

Fault kinds (a request is checked against the faults after authentication and
flow control, so throttling and auth answers of the emulator itself come first):

* ``error``: the provider's own error answer for ``code`` (see each emulator's
  table).  Every documented throttling answer is one: CAMS ``Throttling.User``,
  ``Throttling.Api``, ``Throttling`` and ``System.LimitControl`` (HTTP 400, or
  HTTP 200 with ``http200: true``); NxCloud ``code: -1`` with ``http_status: 429``
  (its rate-limit answer); Kaleyra ``WA429`` (HTTP 429).  So are the auth and
  permission errors (CAMS ``SignatureDoesNotMatch``, ``InvalidAccessKeyId.NotFound``,
  ``InvalidTimeStamp.Expired``, ``Ram.PermissionDeny``; NxCloud 1003, 1004, 1005;
  Kaleyra ``RBC001``) and HTTP 5xx (CAMS ``InternalError``/``ServiceUnavailable``,
  NxCloud any code with ``http_status: 5xx``, Kaleyra ``WA500``).
* ``delay``: sleep ``seconds`` before answering (every matching delay adds up;
  the answer is then chosen by the other faults).  A delay longer than the
  client's timeout is a timeout.
* ``malformed``: HTTP 200 with the first half of the real body (invalid JSON).
* ``html``: an HTML error page of a proxy (HTTP 502, ``text/html``).
* ``reset``: the connection is reset (RST) before any byte of the answer.
* ``truncate``: the real status line and headers, with the full ``Content-Length``,
  then the first half of the body, then the connection is closed: the client
  sees a body cut short mid-way.
* ``oversize``: the real answer padded with one large ignored string field to
  about ``megabytes`` MiB (each emulator names its padding field; the exporter
  caps bodies at 32 MiB, so 40 tests the cap and 5 a big but valid answer).
* ``refuse``: the endpoint refuses connections.  It acts on connections, before
  any request is read, so it takes no request selectors (``access_key_id``,
  ``action``, ``space_id``, ``phone_number``): only ``from``/``until``, ``count``
  and ``probability``.  A new connection is accepted and at once closed with a
  reset, without a byte; a request on a keep-alive connection opened earlier is
  answered the same way.  Each connection and each reused-connection request is
  one match (``count``, ``probability``).  A real "connection refused"
  (ECONNREFUSED) is ``emulator.stop()``; ``start()`` binds the same port again.
  Refusal is per endpoint: give an account its own emulator to refuse only it.
* ``unknown_enum``, ``null_fields``, ``duplicate_numbers``: data faults applied
  to a successful answer of the actions that describe numbers (for CAMS also its
  WABA and health answers; ``duplicate_numbers`` only where numbers are listed;
  details in each emulator's module docstring); a matching request of another
  action is not faulted and does not consume ``count``.  ``unknown_enum`` replaces the
  status, quality rating and tier of every answered number (and a WABA's review
  status, a health answer's states) with unknown strings (``BRAND_NEW_STATE``,
  ``BRAND_NEW_RATING``, ``TIER_BRAND_NEW``); ``null_fields`` sets the status,
  quality rating and tier to null and drops the other descriptive fields (the
  phone number itself stays); ``duplicate_numbers`` lists every number twice.

Webhook fault kinds act on the events an emulator pushes to its configured
webhook URL (Meta, NxCloud and Kaleyra; see :mod:`.webhooks`), never on an
answer.  Selectors match the event: ``space_id`` and ``phone_number`` (a WABA-level
event has none), ``action`` = the Meta webhook field (e.g.
``phone_number_quality_update``), ``access_key_id`` = the space's owner; ``from``/``until``
use the scenario time the change was observed; ``count``/``probability`` as usual:

* ``webhook_bad_signature``: the event is sent with a forged signature (Meta: an
  ``X-Hub-Signature-256`` keyed by a wrong secret; NxCloud: a ``sign`` computed
  with a wrong accessSecret; Kaleyra, which signs nothing: every query parameter
  of the configured URL, e.g. its token, gets a wrong value).  A receiver must
  refuse it.
* ``webhook_drop``: the event is recorded (status ``dropped``) but never sent,
  as when a provider loses one; only polling then reports the change.

``probability`` uses a random generator private to each emulator (``seed`` on
the emulator's constructor), so a run with the same requests in the same order
draws the same faults.  ``count`` counts only the faults actually applied.

How each emulator reads the neutral model (see each module's docstring for details):

* CAMS (:mod:`.cams`): credentials are AccessKey pairs; a space is a ``CustSpaceId``.
  ``GetWhatsappHealthStatus`` reads ``can_send_message``/``health_errors`` of a
  number and of the WABA, and the WABA's ``business_can_send_message``/
  ``business_errors`` (and ``app_can_send_message``/``app_errors``).
* Meta (:mod:`.meta`): a credential is a token; a space is a WABA.  Meta since
  October 2025: no number may be ``FLAGGED`` (refused when the emulator is
  built); the WABA carries the portfolio limit (``portfolio_messaging_limit``),
  ``restrictions`` (``[{restriction_type, duration, remediation?}]``, expiring by
  themselves), ``ban_state``/``ban_date``/``ban_after`` and ``violation_type``;
  ``extra: {legacy_quality_events: true}`` and ``extra: {deprecated_limit_fields:
  false}`` shape its webhooks.
* NxCloud (:mod:`.nxcloud`): a credential is an ``accessKey``/``accessSecret`` pair;
  a space is an application ``appkey`` (``extra: {response_shape: array}`` selects
  the field-table shape of ``getPhone``); ``messaging_limit_tier`` is sent as
  ``current_limit``.
* Kaleyra (:mod:`.kaleyra`): a credential is an account SID (``access_key_id``) and
  its API key (``access_key_secret``); a space is a WABA id.

Attribute values are the raw wire values: strings are emitted as-is (unknown
strings are allowed on purpose), ``null`` means "omit the field", and mappings
or lists are emitted verbatim.  Durations (``at``, ``repeat_every``, ``from``,
``until``, ``seconds``) are numbers of seconds or strings such as ``"90s"``,
``"5m"``, ``"1h"``, ``"1m30s"`` or ``"250ms"``.

Timeline semantics: the state at scenario time ``t`` is the base attributes with
every ``set`` whose ``at <= t`` applied in order.  With ``repeat_every: P`` the
timeline is evaluated at ``t mod P`` so the entity returns to its base state at
every multiple of ``P``; every ``at`` must then be smaller than ``P``.

Any validation problem raises :class:`ScenarioError`, whose message starts with
the key path, e.g. ``spaces[1].numbers[0].timeline[2].at: ...``.
"""

from __future__ import annotations

import copy
import math
import random
import re
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from exporter.yamlfile import YAMLProblem, load_yaml  # the exporter's neutral YAML loader, nothing else

__all__ = [
    "Credential",
    "Fault",
    "DATA_FAULT_KINDS",
    "FAULT_KINDS",
    "Number",
    "Scenario",
    "ScenarioError",
    "Space",
    "Timeline",
    "Transition",
    "WEBHOOK_FAULT_KINDS",
    "Waba",
    "builtin_scenarios",
    "generate_fleet",
    "load_builtin_scenario",
    "load_scenario",
    "loads_scenario",
    "clone_scenario",
    "parse_duration",
    "parse_scenario",
]

FAULT_KINDS = ("error", "delay", "malformed", "html", "reset", "truncate", "oversize", "refuse", "unknown_enum",
               "null_fields", "duplicate_numbers", "hang")
#: faults that alter the content of a successful answer (only actions that list numbers)
DATA_FAULT_KINDS = frozenset({"unknown_enum", "null_fields", "duplicate_numbers"})
#: faults that alter the emulator's outgoing webhooks, never an answer (see the module docstring)
WEBHOOK_FAULT_KINDS = ("webhook_bad_signature", "webhook_drop")
MAX_OVERSIZE_MEGABYTES = 1024

_ATTR_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ScenarioError(ValueError):
    """A scenario is invalid; ``path`` names the offending key (e.g. ``spaces[0].numbers[1].status``)."""

    def __init__(self, path: str, message: str, source: str | None = None):
        self.path = path or "<root>"
        self.message = message
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{self.path}: {message}")


# ---------------------------------------------------------------------------
# small validation helpers


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string",
            list: "list", dict: "mapping"}.get(type(value), type(value).__name__)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(path, f"expected a mapping, got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ScenarioError(path, f"keys must be strings, got {key!r}")
    return value


def _list(value: Any, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScenarioError(path, f"expected a list, got {_type_name(value)}")
    return value


def _check_keys(value: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    allowed = set(allowed)
    for key in value:
        if key not in allowed:
            raise ScenarioError(_join(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _string(value: Any, path: str, *, required: bool = True, allow_empty: bool = False) -> str | None:
    if value is None:
        if required:
            raise ScenarioError(path, "is required")
        return None
    if not isinstance(value, str):
        hint = " (quote it in YAML)" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise ScenarioError(path, f"expected a string, got {_type_name(value)} {value!r}{hint}")
    if not value and not allow_empty:
        raise ScenarioError(path, "must not be empty")
    return value


def _bool(value: Any, path: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ScenarioError(path, f"expected true or false, got {_type_name(value)} {value!r}")
    return value


def _int(value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None,
         nullable: bool = True) -> int | None:
    if value is None:
        if nullable:
            return None
        raise ScenarioError(path, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(path, f"expected an integer, got {_type_name(value)} {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(path, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ScenarioError(path, f"must be <= {maximum}, got {value}")
    return value


def parse_duration(value: Any, path: str = "duration") -> float:
    """Seconds from a number or a string like ``"90s"``, ``"5m"``, ``"1m30s"``, ``"250ms"``."""
    if isinstance(value, bool) or value is None:
        raise ScenarioError(path, f"expected a duration, got {_type_name(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ScenarioError(path, f"invalid duration {value!r} (use seconds or e.g. '90s', '5m', '1h', '1m30s')")
    else:
        raise ScenarioError(path, f"expected a duration, got {_type_name(value)}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ScenarioError(path, f"must be a finite duration >= 0, got {value!r}")
    return seconds


def _json_like(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ScenarioError(path, "NaN and infinity cannot be sent as JSON")
        return value
    if isinstance(value, list):
        return [_json_like(v, _join(path, i)) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _json_like(v, _join(path, k)) for k, v in _mapping(value, path).items()}
    raise ScenarioError(path, f"unsupported value of type {type(value).__name__} (dates must be quoted)")


def _attributes(raw: Mapping[str, Any], reserved: Iterable[str], path: str) -> dict[str, Any]:
    """Attribute keys are snake_case; values are JSON-like; ``present`` must be a boolean."""
    reserved = set(reserved)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in reserved:
            continue
        kpath = _join(path, key)
        if not _ATTR_NAME.match(key):
            raise ScenarioError(kpath, "attribute names must be snake_case ([a-z][a-z0-9_]*)")
        if key == "present":
            out[key] = _bool(value, kpath, True)
        elif key == "wire_extra":
            out[key] = _json_like(_mapping(value, kpath), kpath) if value is not None else None
        else:
            out[key] = _json_like(value, kpath)
    return out


# ---------------------------------------------------------------------------
# timelines


@dataclass(frozen=True)
class Transition:
    """At scenario time ``at`` (seconds), apply ``set`` to the entity's attributes."""

    at: float
    set: Mapping[str, Any]


@dataclass(frozen=True)
class Timeline:
    transitions: tuple[Transition, ...] = ()
    repeat_every: float | None = None

    def local_time(self, t: float) -> float:
        t = max(0.0, float(t))
        if self.repeat_every:
            t = math.fmod(t, self.repeat_every)
        return t

    def evaluate(self, base: Mapping[str, Any], t: float) -> dict[str, Any]:
        """The attributes at scenario time ``t``: ``base`` plus every transition with ``at <= t``."""
        state = dict(base)
        local = self.local_time(t)
        for transition in self.transitions:
            if transition.at > local:
                break
            state.update(transition.set)
        return state

    def set_time(self, attribute: str, t: float) -> float:
        """The scenario time at which the value of ``attribute`` in force at ``t`` was set: the latest
        transition at or before ``t`` that sets it, else the start of the current period (0 without
        ``repeat_every``), when the base value took effect."""
        t = max(0.0, float(t))
        local = self.local_time(t)
        start = t - local
        latest = None
        for transition in self.transitions:
            if transition.at > local:
                break
            if attribute in transition.set:
                latest = transition.at
        return start + (latest if latest is not None else 0.0)

    def next_change_after(self, t: float) -> float | None:
        """The scenario time of the next transition strictly after ``t`` (None if nothing changes any more)."""
        t = max(0.0, float(t))
        points = sorted({tr.at for tr in self.transitions})
        if not self.repeat_every:
            later = [p for p in points if p > t]
            return later[0] if later else None
        if not points:
            return None
        period = self.repeat_every
        cycle_start = math.floor(t / period) * period
        candidates = sorted(set(points) | {0.0})  # every period starts again from the base state
        for cycle in (cycle_start, cycle_start + period):
            for p in candidates:
                if cycle + p > t:
                    return cycle + p
        return None  # pragma: no cover - unreachable


def _parse_timeline(raw: Mapping[str, Any], path: str, reserved: Iterable[str]) -> Timeline:
    repeat = raw.get("repeat_every")
    repeat_every = None
    if repeat is not None:
        repeat_every = parse_duration(repeat, _join(path, "repeat_every"))
        if repeat_every <= 0:
            raise ScenarioError(_join(path, "repeat_every"), "must be > 0")
    tpath = _join(path, "timeline")
    transitions = []
    for i, item in enumerate(_list(raw.get("timeline"), tpath)):
        ipath = _join(tpath, i)
        item = _mapping(item, ipath)
        _check_keys(item, ("at", "set"), ipath)
        if "at" not in item:
            raise ScenarioError(_join(ipath, "at"), "is required")
        at = parse_duration(item["at"], _join(ipath, "at"))
        if repeat_every is not None and at >= repeat_every:
            raise ScenarioError(_join(ipath, "at"),
                                f"{at:g}s is not before repeat_every ({repeat_every:g}s), so it would never apply")
        spath = _join(ipath, "set")
        changes = _mapping(item.get("set"), spath)
        if not changes:
            raise ScenarioError(spath, "must set at least one attribute")
        for key in changes:
            if key in reserved:
                raise ScenarioError(_join(spath, key), "cannot be changed by a timeline")
        transitions.append(Transition(at=at, set=_attributes(changes, (), spath)))
    transitions.sort(key=lambda tr: tr.at)  # stable: equal times keep file order
    return Timeline(tuple(transitions), repeat_every)


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
    permissions: str | frozenset[str] = "allowed"   # "allowed", "denied" or the set of allowed actions
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

    def selects(self, *, access_key_id: str | None, action: str | None, space_id: str | None,
                phone_number: str | None, t: float) -> bool:
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
        if self.until is not None and t >= self.until:
            return False
        return True


def _validate_fault(fault: Fault, path: str) -> None:
    if fault.kind not in FAULT_KINDS and fault.kind not in WEBHOOK_FAULT_KINDS:
        raise ScenarioError(_join(path, "kind"), f"must be one of {', '.join(FAULT_KINDS + WEBHOOK_FAULT_KINDS)}, "
                                                 f"got {fault.kind!r}")
    if fault.kind == "error":
        if isinstance(fault.code, int) and not isinstance(fault.code, bool):
            fault.code = str(fault.code)  # numeric provider codes (NxCloud's 1003, 9099, ...)
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
            raise ScenarioError(ppath, f"expected a number from 0 to 1, got {_type_name(fault.probability)} "
                                       f"{fault.probability!r}")
        if not 0 <= fault.probability <= 1:
            raise ScenarioError(ppath, f"must be between 0 and 1, got {fault.probability!r}")
        fault.probability = float(fault.probability)
    if fault.kind == "refuse":
        for name in ("access_key_id", "action", "space_id", "phone_number"):
            if getattr(fault, name) is not None:
                raise ScenarioError(_join(path, name), "kind: refuse acts on connections before any request is "
                                                       "read; it takes only from/until, count and probability")
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
        if access_key_id is None:
            return None
        found = self._cred_index.get(access_key_id)
        if found is None and len(self._cred_index) != len(self.credentials):
            self.reindex()
            found = self._cred_index.get(access_key_id)
        return found

    def space(self, space_id: str | None) -> Space | None:
        if space_id is None:
            return None
        found = self._space_index.get(space_id)
        if found is None and len(self._space_index) != len(self.spaces):
            self.reindex()
            found = self._space_index.get(space_id)
        return found

    def spaces_of(self, access_key_id: str) -> list[Space]:
        """Spaces the key may use: those owned by any key of the same account."""
        cred = self.credential(access_key_id)
        if cred is None:
            return []
        out = []
        for space in self.spaces:
            owner = self.credential(space.access_key_id)
            if owner is not None and owner.account_key == cred.account_key:
                out.append(space)
        return out

    def number_count(self) -> int:
        return sum(len(s.numbers) for s in self.spaces)


# ---------------------------------------------------------------------------
# parsing

_TOP_KEYS = ("name", "description", "credentials", "spaces", "faults")
_CRED_KEYS = ("access_key_id", "access_key_secret", "qps", "action_qps", "permissions", "enabled",
              "account", "security_token")
_SPACE_KEYS = ("cust_space_id", "space_id", "access_key_id", "isv_code", "default", "waba", "numbers", "extra")
_FAULT_KEYS = ("kind", "code", "http_status", "message", "retry_after", "http200", "seconds", "access_key_id",
               "action", "space_id", "phone_number", "from", "until", "count", "probability", "megabytes")
_NUMBER_RESERVED = ("phone_number", "timeline", "repeat_every")
_WABA_RESERVED = ("timeline", "repeat_every")


def _parse_credential(raw: Any, path: str) -> Credential:
    raw = _mapping(raw, path)
    _check_keys(raw, _CRED_KEYS, path)
    ak = _string(raw.get("access_key_id"), _join(path, "access_key_id"))
    secret = _string(raw.get("access_key_secret"), _join(path, "access_key_secret"))
    qps = _int(raw.get("qps", 10), _join(path, "qps"), minimum=1)
    action_qps: dict[str, int] = {}
    apath = _join(path, "action_qps")
    for action, limit in _mapping(raw.get("action_qps") or {}, apath).items():
        action_qps[action] = _int(limit, _join(apath, action), minimum=1, nullable=False)
    ppath = _join(path, "permissions")
    perms_raw = raw.get("permissions", "allowed")
    if perms_raw in ("allowed", "denied"):
        permissions: str | frozenset[str] = perms_raw
    elif isinstance(perms_raw, list):
        permissions = frozenset(_string(a, _join(ppath, i)) for i, a in enumerate(perms_raw))
    else:
        raise ScenarioError(ppath, f"expected 'allowed', 'denied' or a list of actions, got {perms_raw!r}")
    return Credential(
        access_key_id=ak, access_key_secret=secret, qps=qps, action_qps=action_qps, permissions=permissions,
        enabled=_bool(raw.get("enabled"), _join(path, "enabled"), True),
        account=_string(raw.get("account"), _join(path, "account"), required=False),
        security_token=_string(raw.get("security_token"), _join(path, "security_token"), required=False),
    )


def _parse_number(raw: Any, path: str) -> Number:
    raw = _mapping(raw, path)
    phone = _string(raw.get("phone_number"), _join(path, "phone_number"))
    attrs = _attributes(raw, _NUMBER_RESERVED, path)
    for key in ("id",):
        if key in attrs:
            _string(attrs[key], _join(path, key), required=False)
    return Number(phone_number=phone, attributes=attrs, timeline=_parse_timeline(raw, path, _NUMBER_RESERVED))


def _parse_waba(raw: Any, path: str) -> Waba | None:
    if raw is None:
        return None
    raw = _mapping(raw, path)
    return Waba(attributes=_attributes(raw, _WABA_RESERVED, path), timeline=_parse_timeline(raw, path, _WABA_RESERVED))


def _parse_space(raw: Any, path: str) -> Space:
    raw = _mapping(raw, path)
    _check_keys(raw, _SPACE_KEYS, path)
    if "cust_space_id" in raw and "space_id" in raw:
        raise ScenarioError(_join(path, "space_id"), "give either cust_space_id or space_id, not both")
    id_key = "space_id" if "space_id" in raw else "cust_space_id"
    space_id = _string(raw.get(id_key), _join(path, id_key))
    npath = _join(path, "numbers")
    numbers = [_parse_number(item, _join(npath, i)) for i, item in enumerate(_list(raw.get("numbers"), npath))]
    seen: dict[str, int] = {}
    for i, number in enumerate(numbers):
        if number.phone_number in seen:
            raise ScenarioError(_join(_join(npath, i), "phone_number"),
                                f"duplicate phone number {number.phone_number!r} (also numbers[{seen[number.phone_number]}])")
        seen[number.phone_number] = i
    extra_path = _join(path, "extra")
    return Space(
        space_id=space_id,
        access_key_id=_string(raw.get("access_key_id"), _join(path, "access_key_id")),
        isv_code=_string(raw.get("isv_code"), _join(path, "isv_code"), required=False),
        waba=_parse_waba(raw.get("waba"), _join(path, "waba")),
        numbers=numbers,
        default=_bool(raw.get("default"), _join(path, "default"), False),
        extra=dict(_json_like(_mapping(raw.get("extra") or {}, extra_path), extra_path)),
    )


def _parse_fault(raw: Any, path: str) -> Fault:
    raw = _mapping(raw, path)
    _check_keys(raw, _FAULT_KEYS, path)
    if "kind" not in raw:
        raise ScenarioError(_join(path, "kind"), "is required")
    kwargs = {k: v for k, v in raw.items() if k != "from"}
    if "from" in raw:
        kwargs["from_"] = raw["from"]
    kwargs.setdefault("http200", False)
    if kwargs["http200"] is None:
        kwargs["http200"] = False
    fault = Fault.__new__(Fault)
    for f in fields(Fault):
        setattr(fault, f.name, kwargs.get(f.name, f.default))
    if not isinstance(fault.kind, str):
        raise ScenarioError(_join(path, "kind"), f"expected a string, got {_type_name(fault.kind)}")
    _validate_fault(fault, path)
    return fault


def parse_scenario(data: Any, source: str | None = None) -> Scenario:
    """Build a validated :class:`Scenario` from already-decoded YAML/JSON data."""
    try:
        return _parse_scenario(data)
    except ScenarioError as exc:
        if source and not exc.source:
            raise ScenarioError(exc.path, exc.message, source) from None
        raise


def _parse_scenario(data: Any) -> Scenario:
    if data is None:
        data = {}
    data = _mapping(data, "")
    _check_keys(data, _TOP_KEYS, "")
    cpath, spath, fpath = "credentials", "spaces", "faults"
    credentials = [_parse_credential(c, _join(cpath, i)) for i, c in enumerate(_list(data.get(cpath), cpath))]
    by_ak: dict[str, int] = {}
    for i, cred in enumerate(credentials):
        if cred.access_key_id in by_ak:
            raise ScenarioError(_join(_join(cpath, i), "access_key_id"),
                                f"duplicate access key {cred.access_key_id!r} (also credentials[{by_ak[cred.access_key_id]}])")
        by_ak[cred.access_key_id] = i
    spaces = [_parse_space(s, _join(spath, i)) for i, s in enumerate(_list(data.get(spath), spath))]
    by_space: dict[str, int] = {}
    for i, space in enumerate(spaces):
        ipath = _join(spath, i)
        if space.space_id in by_space:
            raise ScenarioError(_join(ipath, "cust_space_id"),
                                f"duplicate space {space.space_id!r} (also spaces[{by_space[space.space_id]}])")
        by_space[space.space_id] = i
        if space.access_key_id not in by_ak:
            raise ScenarioError(_join(ipath, "access_key_id"),
                                f"{space.access_key_id!r} is not one of the credentials")
    faults = [_parse_fault(f, _join(fpath, i)) for i, f in enumerate(_list(data.get(fpath), fpath))]
    return Scenario(
        credentials=credentials, spaces=spaces, faults=faults,
        name=_string(data.get("name"), "name", required=False, allow_empty=True) or "",
        description=_string(data.get("description"), "description", required=False, allow_empty=True) or "",
    )


def loads_scenario(text: str, source: str | None = None) -> Scenario:
    """Parse scenario YAML text."""
    try:
        data = load_yaml(text, source or "<scenario>")
    except YAMLProblem as exc:
        raise ScenarioError("", f"invalid YAML: {exc}", source) from None
    return parse_scenario(data, source)


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError("", f"cannot read scenario file: {exc.strerror or exc}", str(path)) from None
    return loads_scenario(text, str(path))


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``emulators/scenarios``."""
    folder = resources.files("emulators").joinpath("scenarios")
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_builtin_scenario(name: str = "demo") -> Scenario:
    """Load a built-in scenario by name (e.g. ``"demo"``)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name or ""):
        raise ScenarioError("", f"invalid built-in scenario name {name!r}")
    entry = resources.files("emulators").joinpath("scenarios", f"{name}.yaml")
    if not entry.is_file():
        raise ScenarioError("", f"no built-in scenario {name!r} (available: {', '.join(builtin_scenarios())})")
    return loads_scenario(entry.read_text(encoding="utf-8"), f"builtin:{name}")


# ---------------------------------------------------------------------------
# generated fleets

_FLEET_STATUS = [("CONNECTED", 80), ("FLAGGED", 6), ("RATE_LIMITED", 4), ("PENDING", 4), ("RESTRICTED", 2),
                 ("DISCONNECTED", 2), ("BANNED", 1), ("UNKNOWN", 1)]
_FLEET_QUALITY = [("GREEN", 75), ("YELLOW", 12), ("RED", 6), ("UNKNOWN", 4), (None, 3)]
_FLEET_TIER = [("TIER_1K", 35), ("TIER_10K", 25), ("TIER_250", 15), ("TIER_100K", 10), ("TIER_UNLIMITED", 5),
               ("TIER_50", 4), ("TIER_10", 3), ("TIER_2K", 2), (None, 1)]
_FLEET_CODE = [("VERIFIED", 85), ("NOT_VERIFIED", 10), ("EXPIRED", 5)]
_FLEET_NAME = [("Approval", 50), ("APPROVED", 35), ("Pending_Review", 8), ("PENDING_REVIEW", 3), ("Rejected", 2),
               ("DECLINED", 2)]
_FLEET_REVIEW = [("APPROVED", 90), ("PENDING", 6), ("REJECTED", 2), ("DISABLED", 2)]


def _pick(rng: random.Random, table: list[tuple[Any, int]]) -> Any:
    values, weights = zip(*table)
    return rng.choices(values, weights=weights, k=1)[0]


def generate_fleet(spaces: int = 50, numbers_per_space: int = 5, access_key_id: str = "fleet-ak",
                   secret: str = "fleet-secret", qps: int | None = 10, seed: int = 0,
                   space_prefix: str = "cams-fleet-", timelines: bool = True) -> Scenario:
    """A large, deterministic (for a given ``seed``) scenario: ``spaces`` spaces owned by one key.

    Phone numbers are unique across the fleet.  Most numbers are healthy; the
    rest spread over the documented vocabulary.  With ``timelines`` some numbers
    get a looping quality/status timeline.
    """
    if spaces < 0 or numbers_per_space < 0:
        raise ScenarioError("generate_fleet", "spaces and numbers_per_space must be >= 0")
    rng = random.Random(seed)
    width = max(4, len(str(spaces)))
    space_list = []
    serial = 0
    for s in range(spaces):
        space_id = f"{space_prefix}{s + 1:0{width}d}"
        numbers = []
        for _ in range(numbers_per_space):
            serial += 1
            number: dict[str, Any] = {
                "phone_number": f"86139{serial:08d}",
                "id": f"1{seed % 1000:03d}{serial:011d}",
                "verified_name": f"Fleet Shop {s + 1}",
                "status": _pick(rng, _FLEET_STATUS),
                "quality_rating": _pick(rng, _FLEET_QUALITY),
                "messaging_limit_tier": _pick(rng, _FLEET_TIER),
                "code_verification_status": _pick(rng, _FLEET_CODE),
                "name_status": _pick(rng, _FLEET_NAME),
                "new_name_status": _pick(rng, _FLEET_NAME),
                "is_official": rng.choice(["N", "N", "N", "Y"]),
                "status_callback_url": f"https://fleet.example/{space_id}/status",
                "up_callback_url": f"https://fleet.example/{space_id}/inbound",
            }
            if timelines and rng.random() < 0.1:
                period = rng.choice([120, 180, 300])
                number["timeline"] = [{"at": period // 3, "set": {"quality_rating": "YELLOW"}},
                                      {"at": 2 * period // 3, "set": {"quality_rating": "RED", "status": "FLAGGED"}}]
                number["repeat_every"] = period
            numbers.append(number)
        space_list.append({
            "cust_space_id": space_id,
            "access_key_id": access_key_id,
            "waba": {
                "id": f"2{seed % 1000:03d}{s + 1:011d}",
                "name": f"Fleet Shop {s + 1}",
                "account_review_status": _pick(rng, _FLEET_REVIEW),
                "currency": "USD",
                "message_template_namespace": f"fleet_{seed}_{s + 1:06d}",
            },
            "numbers": numbers,
        })
    data = {
        "name": f"fleet-{spaces}x{numbers_per_space}-seed{seed}",
        "credentials": [{"access_key_id": access_key_id, "access_key_secret": secret, "qps": qps}],
        "spaces": space_list,
    }
    return parse_scenario(data, "generate_fleet")


def clone_scenario(scenario: Scenario) -> Scenario:
    """A deep copy (emulators never mutate a scenario, but tests may)."""
    return copy.deepcopy(scenario)
