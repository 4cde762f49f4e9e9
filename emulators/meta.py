"""An emulator of Meta's WhatsApp Cloud API (Graph API) reads of number health.

The Graph API authenticates with a bearer token (``Authorization: Bearer <token>``,
also ``OAuth <token>``, or the ``access_token`` query parameter; the header wins)
and versions every path: ``/v24.0/...`` (any ``vNN.N`` is accepted and recorded
in the request path; :meth:`MetaEmulator.api_versions` lists them; a path
without a version is served as :data:`DEFAULT_API_VERSION`).  Three reads are
emulated:

* ``GET /{ver}/{waba_id}/phone_numbers?fields=...&limit=N&after=C``: the numbers
  of one WABA (action ``list_phone_numbers``), with cursor paging: ``limit``
  defaults to 25 and is capped at 100; the answer is ``{"data": [...], "paging":
  {"cursors": {"before", "after"}, "next"?, "previous"?}}``; cursors are opaque
  base64 strings; ``next`` (only when more numbers follow) and ``previous`` (only
  after the first page) are absolute URLs built from the request's ``Host``
  header that repeat the query, so a client can simply follow them.  An empty
  page is ``{"data": []}``.
* ``GET /{ver}/{phone_number_id}?fields=...``: one number (``get_phone_number``).
* ``GET /{ver}/{waba_id}?fields=...``: the WABA itself (``get_waba``): ``id``,
  ``name``, ``currency``, ``timezone_id``, ``message_template_namespace``,
  ``account_review_status``, ``business_verification_status``, ``health_status``
  and a few more (default fields: ``id, name``).

Fields.  Without ``fields`` a number answers ``id, display_phone_number,
verified_name, quality_rating`` (the list edge too).  With ``fields`` only the
named fields plus ``id`` come back; a field whose value is null or unknown is
left out (as Graph does).  Nested selections such as ``throughput{level}`` are
accepted and answered with the whole sub-object.  A name that is not a field of
the node type is HTTP 400 code 100 ("Tried accessing nonexisting field");
``whatsapp_business_manager_messaging_limit`` exists from v24.0 only, so asking
for it under an older version is that error too.  ``health_status`` is *not*
served on the list edge: it is accepted and silently left out (Meta's support
for it there is unverified), so a client must ask each number node for it.
``filtering``, ``sort`` and other query parameters are accepted and ignored.

Scenario mapping: ``credentials[].access_key_id`` is a label for a system-user
token (e.g. the app id; it is the ``APP`` entity's id and what requests are
recorded under) and ``access_key_secret`` is the bearer token itself;
``enabled: false`` makes the token expired; ``permissions: denied`` (or a list
without the action) withholds ``whatsapp_business_management``; ``qps`` (default
10, null = unlimited) bounds requests per token (``account``) per second.  A
space is a WABA: ``space_id`` is its id (a ``waba.id`` that differs is accepted
as an alias in paths), owned by the token in ``access_key_id`` (tokens of the
same ``account`` share WABAs and quota).  ``extra: {calls_per_hour: N}`` on a
space overrides the constructor's ``calls_per_hour`` (null = unlimited).

Number attributes are Meta's field names, sent verbatim when requested
(``id``, ``display_phone_number``, ``verified_name``, ``status``,
``quality_rating``, ``code_verification_status``, ``name_status``,
``new_name_status``, ``messaging_limit_tier``,
``whatsapp_business_manager_messaging_limit``, ``platform_type``,
``account_mode``, ``is_official_business_account``, ...), with these derived
ones: ``display_phone_number`` defaults to ``+<cc> <rest>``; ``quality_score``
(string or mapping) defaults to ``{"score": <quality_rating>}``;
``throughput_level`` (default ``STANDARD``) is sent as ``throughput: {level}``;
``platform_type`` defaults to ``CLOUD_API`` and ``account_mode`` to ``LIVE``; a
number without ``id`` has its digits as node id.  Values are sent verbatim, so
the spellings Meta's own specs disagree on can be seeded: statuses ``LINKED``/
``UNLINKED`` (the list edge's) and ``MESSAGING_LIMIT_TIER_0..4``, quality
``NA``, and unknown strings.  ``wire_extra`` keys are merged into number objects
verbatim, requested or not.

Meta since 7 October 2025 (reference: meta-health-2025.md §1) is what the
emulator plays:

* **No number is ever FLAGGED.**  A scenario whose number (base or timeline)
  has ``status: FLAGGED`` is refused when the emulator is built
  (:class:`~emulators.scenario.ScenarioError` naming the key), and
  ``set_number(status="FLAGGED")`` raises ``ValueError``.  A ``RED`` quality
  rating changes no limit and no health (it is only served).
* **The messaging limit belongs to the business portfolio.**  WABA attribute
  ``portfolio_messaging_limit``: ``250``, ``2000``, ``10000``, ``100000`` or
  ``-1`` (unlimited), a ``TIER_*`` string, or ``UNLIMITED``.  Every number of
  the WABA reports it as ``whatsapp_business_manager_messaging_limit`` in its
  ``TIER_*`` form (``2000`` -> ``TIER_2K``, ``-1``/``UNLIMITED`` ->
  ``TIER_UNLIMITED``; other strings verbatim), under the version rule above
  (v24.0+).  A number of such a WABA must not set its own
  ``whatsapp_business_manager_messaging_limit`` (refused at load); without the
  WABA attribute a number's own value is served as before.  WABAs naming the
  same ``business_id`` must carry the same limit and timeline (refused
  otherwise).  The deprecated per-number ``messaging_limit_tier`` is left
  alone.
* **Restrictions, bans and violations are WABA-level state**, with timelines:

  - ``restrictions``: a list of ``{restriction_type, duration, remediation?}``.
    Each one is in force from the moment the list is set (a timeline
    transition, the start of a period for a base value, or a ``set_waba``
    call) for ``duration``, then expires by itself; setting another list (e.g.
    ``[]``) lifts the old one at once.
  - ``ban_state``: ``SCHEDULE_FOR_DISABLE``, ``DISABLE``, ``REINSTATE`` (or any
    string; null = none), with ``ban_date`` (free text, sent verbatim, e.g.
    ``"April 17, 2025"``) or else ``ban_after`` (a duration: the ban date is
    that long after the state was set; default 0), written Meta's way
    (``April 17, 2025``).
  - ``violation_type``: e.g. ``ADULT``; every change to a new non-null value
    is one violation.
  - ``max_phone_numbers_per_waba`` (default 25, Meta's example) and
    ``max_phone_numbers_per_business`` (default 2, the emulator's choice) for
    ``business_capability_update``.

``health_status`` is computed: entities ``PHONE_NUMBER`` (``can_send_message``,
default derived from ``status``; ``errors``/``health_errors``;
``additional_info``/``health_additional_info``), ``WABA``, ``BUSINESS`` when
the WABA names a ``business_id`` (its ``business_can_send_message``,
``business_errors``, ``business_additional_info``) and ``APP`` (id = the token's
label; ``app_can_send_message``, ``app_errors``, ``app_additional_info`` on the
WABA).  The WABA entity takes the WABA's explicit ``can_send_message``
(``errors``, ``additional_info``) when set; otherwise the worst of:

* its ``account_review_status`` (PENDING -> LIMITED, REJECTED/DISABLED ->
  BLOCKED);
* ``ban_state: DISABLE`` -> BLOCKED, with an error of code 368 (Graph's
  "temporarily blocked for policy violations" integrity code: Meta's
  health-status page lists no code for a disabled WABA, so this is the
  emulator's choice).  ``SCHEDULE_FOR_DISABLE`` and ``REINSTATE`` change
  nothing: the WABA can still send;
* its active restrictions.  The emulator's choice: a restriction of
  messaging (``RESTRICTED_BIZ_INITIATED_MESSAGING``,
  ``RESTRICTED_CUSTOMER_INITIATED_MESSAGING``, the utility-template ones, and
  any unknown type) makes the WABA LIMITED, with one ``additional_info``
  line per restriction naming it and its end: Meta's LIMITED means "can send,
  with limits", and a WABA barred from business-initiated messaging still
  answers its customers inside their service windows.  Business-initiated and
  customer-initiated messaging restricted together leave nothing to send:
  BLOCKED, with an error of code 368.  Calling and
  ``RESTRICTED_ADD_PHONE_NUMBER_ACTION`` restrictions do not affect
  ``can_send_message``.

``errors`` are attached only to a derived BLOCKED state and ``additional_info``
only to a derived LIMITED one (explicit scenario values are sent as given).  The
overall ``can_send_message`` is the worst entity (BLOCKED > LIMITED >
AVAILABLE).

Rate limits (using *scenario time*, so ``advance(3600)`` empties the windows):

* Business Use Case limit per app (token ``account``) per WABA, over a rolling
  hour: ``calls_per_hour`` (default 200, Meta's default; Meta raises it to
  5,000/h once the WABA has a registered number, so realistic scenarios set
  ``extra: {calls_per_hour: 5000}``).  Every authenticated read or write that
  resolves to an owned WABA counts.  Every answer about such a WABA carries
  ``X-Business-Use-Case-Usage: {"<waba_id>": [{"type":
  "whatsapp_business_management", "call_count": P, "total_cputime": C,
  "total_time": T, "estimated_time_to_regain_access": M}]}`` where ``P`` is the
  percentage of the budget used (rounded up; 100 = the next call is refused),
  ``C``/``T`` are invented (P/4, P/2) and ``M`` is minutes until a call leaves
  the window (0 unless throttled).  Past the budget: HTTP 429 (Meta's error-code
  table; several BSP copies say 400, so clients must key on the code, and
  ``throttle_status=400`` flips it), code **80007**, ``is_transient: true``;
  refused calls do not count.
* App limit per app over a rolling hour (``app_calls_per_hour``, default
  10,000, invented: these reads are governed by the BUC limit; None =
  unlimited): every authenticated answer carries ``X-App-Usage: {"call_count",
  "total_cputime", "total_time"}`` (percentages); past it, HTTP 429 code **4**.
* Past ``qps`` in one second: HTTP 429 code 4 as well (an emulator knob; Meta
  documents no per-second limit for these reads).

Errors are Graph's envelope ``{"error": {"message", "type", "code",
"error_subcode"?, "is_transient", "fbtrace_id"}}`` (plus ``x-fb-trace-id``,
``x-fb-request-id`` and ``facebook-api-version`` headers on every answer):

* no token: HTTP 401 code 104 (Meta's "access token required" code; the reference
  lists it under 401); an unknown token: 401 code 190 subcode 467; a disabled
  (expired) token: 401 code 190 subcode 463.  401s carry ``WWW-Authenticate``.
* token without the permission, or a WABA/number of another token's account:
  HTTP 403 code 200.  (Real Graph often answers a foreign object like an unknown
  one, 400/100/33; clients should treat both as "not ours".)
* unknown node: HTTP 400 code 100 subcode 33, type ``GraphMethodException``
  ("Unsupported get request..."); unknown edge or extra path parts: 400 code
  2500; bad field name, ``limit`` or cursor: 400 code 100.
* handler crash: HTTP 500 code 1; unreadable body: code 100 (400/413).

Write calls: any method other than GET, and any call to the ``register``,
``deregister``, ``request_code``, ``verify_code`` or ``messages`` edges, are
recognised, authenticated, counted, recorded (``write_action_calls()``) and
refused with HTTP 403 code 10 (``error_user_title: Emulator.WriteActionCalled``).

Faults (see :mod:`.scenario`): ``error`` takes a Graph code (integers or digit
strings); default statuses come from :data:`ERROR_TABLE` (190/104 -> 401,
200/10 -> 403, 100/33/2500 -> 400, 4/17/32/613/80007 -> 429 (``throttle_status``),
130429/131056/131048 -> 400, 1/3/131000 -> 500, 2 -> 503); throttling codes mark
``is_transient`` and, for 80007 and 4, the usage headers report 100% with
``estimated_time_to_regain_access`` >= 1.  ``oversize`` pads with
``emulator_padding``.  ``unknown_enum``/``null_fields`` alter the requested
status, quality, tier and health fields of list entries and number (and WABA)
nodes; ``duplicate_numbers`` lists each number of a page twice.

Webhooks (``set_webhook(url, secret=<app secret>)``; see :mod:`.webhooks`).  When a
number's or WABA's observable state changes (the watcher in :mod:`.common`),
the emulator POSTs, one event per request, ``{"object":
"whatsapp_business_account", "entry": [{"id": <WABA id = space id>, "time":
<unix s>, "changes": [{"field": F, "value": {...}}]}]}`` as compact JSON with
``Content-Type: application/json`` and ``X-Hub-Signature-256: sha256=<hex
HMAC-SHA256 of the exact body bytes keyed by the app secret>`` (Meta's webhook
signature; non-ASCII is escaped as JSON ``\\u`` escapes, as Meta does, so a receiver must
verify the raw bytes, never a re-serialisation).  ``display_phone_number`` is the
number's digits.  The watched fields are a number's ``present``, ``status``,
``quality_rating``, the two limit fields, ``name_status``, ``new_name_status``,
``code_verification_status``, ``throughput_level``, ``verified_name`` and
``health`` (its overall ``health_status.can_send_message``); a WABA's
``present``, ``account_review_status``, ``can_send_message``,
``portfolio_messaging_limit``, ``restrictions`` (the active ones: ``[{restriction_type,
until (scenario time), remediation?}]``), ``ban_state``, ``ban_date``,
``ban_after`` and ``violation_type``.  Events (Meta's current forms):

* ``phone_number_quality_update`` ``ONBOARDING`` when a number appears
  (``present`` false -> true) or its status becomes ``PENDING``, and
  ``THROUGHPUT_UPGRADE`` when its ``throughput_level`` goes up
  (NOT_APPLICABLE < STANDARD < HIGH).  Both carry
  ``max_daily_conversations_per_business`` = the limit the number reports
  (``TIER_*``) and, as the deprecated field Meta still documents,
  ``current_limit`` with the same value (``extra: {deprecated_limit_fields:
  false}`` on the space leaves it out, as after its removal).  A quality change
  alone sends nothing (Meta's payload never carried the rating): only polling
  sees it.
* ``business_capability_update`` when the WABA's ``portfolio_messaging_limit``
  changes: ``{max_daily_conversations_per_business: <the attribute as given:
  2000, -1, "TIER_2K", "UNLIMITED", ...>}`` plus ``max_phone_numbers_per_business``
  when the limit is 250, else ``max_phone_numbers_per_waba``.  Each WABA of a
  portfolio gets its own (entry id = its id).
* ``account_update`` (WABA-level: no phone number in the value):
  ``ACCOUNT_RESTRICTION`` ``{restriction_info: [{restriction_type, expiration
  (unix s), remediation?}]}`` listing every active restriction, when one that
  was not in force before starts (an expiry or a lift sends nothing: Meta
  documents no such event; the receiver has the expiration);
  ``DISABLED_UPDATE`` ``{ban_info: {waba_ban_state, waba_ban_date}}`` when
  ``ban_state`` (or its date) changes to a non-null value;
  ``ACCOUNT_VIOLATION`` ``{violation_info: {violation_type}}`` when
  ``violation_type`` changes to a non-null value.  A number's status or health
  sends no ``account_update``.
* ``phone_number_name_update`` ``{display_phone_number, decision,
  requested_verified_name, rejection_reason: null}`` when ``name_status``
  changes (``APPROVED``/``Approval`` -> APPROVED, ``DECLINED``/``Rejected`` ->
  REJECTED, ``PENDING_REVIEW`` -> PENDING, other values verbatim).
* ``account_review_update`` ``{decision}`` when the WABA's
  ``account_review_status`` changes.

``extra: {legacy_quality_events: true}`` on a space also sends the legacy
``phone_number_quality_update`` forms BSP relays still send (``FLAGGED`` when the
quality becomes RED, ``UNFLAGGED`` when it stops being RED, ``UPGRADE``/``DOWNGRADE``
with ``old_limit`` when ``messaging_limit_tier``, else the portfolio limit, rises
or drops; see :func:`~emulators.webhooks.legacy_quality_events`), so a
receiver can be tested for tolerance.  Other changes (e.g.
``code_verification_status``) are recorded by ``state_changes()`` but send
nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .common import (
    HEALTH_BY_REVIEW,
    HEALTH_BY_STATUS,
    UNKNOWN_ENUM_VALUES,
    ApiError,
    BodyError,
    Context,
    ProviderEmulator,
    Reply,
    Request,
    display_number,
    json_bytes,
    merge_wire_extra,
    worst_health,
)
from .scenario import Credential, Fault, Scenario, ScenarioError, Space, Timeline, parse_duration
from .webhooks import Event, OutgoingRequest, ban_date_text, meta_number_events, meta_signature, review_event

__all__ = [
    "DEFAULT_API_VERSION",
    "ERROR_TABLE",
    "MESSAGING_RESTRICTIONS",
    "PORTFOLIO_TIERS",
    "LIST_ACTION",
    "MetaEmulator",
    "NUMBER_ACTION",
    "READ_ACTIONS",
    "WABA_ACTION",
    "WRITE_ACTIONS",
]

logger = logging.getLogger("emulators.meta")

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
DEFAULT_API_VERSION = "v24.0"
LIST_ACTION = "list_phone_numbers"
NUMBER_ACTION = "get_phone_number"
WABA_ACTION = "get_waba"
UNKNOWN_NODE_ACTION = "get_node"
UNKNOWN_EDGE_ACTION = "get_edge"
READ_ACTIONS = frozenset({LIST_ACTION, NUMBER_ACTION, WABA_ACTION})
WRITE_EDGES = frozenset({"register", "deregister", "request_code", "verify_code", "messages"})
WRITE_METHODS = frozenset({"POST", "DELETE", "PUT", "PATCH", "OPTIONS"})
WRITE_ACTIONS = WRITE_EDGES | {m.lower() for m in WRITE_METHODS}
BUC_TYPE = "whatsapp_business_management"
HOUR = 3600.0

_VERSION = re.compile(r"^v(\d+)\.(\d+)$")
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

# Graph code -> (HTTP status, message)
ERROR_TABLE: dict[int, tuple[int, str]] = {
    0: (401, "(#0) The user could not be authenticated."),
    1: (500, "An unknown error occurred"),
    2: (503, "An unexpected error has occurred. Please retry your request later."),
    3: (500, "(#3) Application does not have the capability to make this API call."),
    4: (429, "(#4) Application request limit reached"),
    10: (403, "(#10) Application does not have permission for this action"),
    17: (429, "(#17) User request limit reached"),
    32: (429, "(#32) Page request limit reached"),
    33: (400, "(#33) This object does not exist or does not support this action"),
    100: (400, "(#100) Invalid parameter"),
    104: (401, "An access token is required to request this resource."),
    190: (401, "Invalid OAuth access token data."),
    200: (403, "(#200) Permissions error"),
    368: (403, "(#368) The action attempted has been deemed abusive or is otherwise disallowed"),
    613: (429, "(#613) Calls to this api have exceeded the rate limit."),
    803: (404, "(#803) Some of the aliases you requested do not exist"),
    2500: (400, "Unknown path components"),
    80007: (429, "(#80007) There have been too many calls to this WhatsApp Business account. Wait a bit and "
                 "try again."),
    130429: (400, "(#130429) Rate limit hit"),
    131000: (500, "(#131000) Something went wrong"),
    131048: (400, "(#131048) Spam rate limit hit"),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
}
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007})
TRANSIENT_CODES = THROTTLING_CODES | {1, 2, 130429, 131000, 131056}

# Graph fields of a phone-number node (WhatsAppBusinessPhoneNumber)
NUMBER_FIELDS = frozenset({
    "id", "display_phone_number", "verified_name", "quality_rating", "quality_score", "status",
    "code_verification_status", "name_status", "new_name_status", "messaging_limit_tier",
    "whatsapp_business_manager_messaging_limit", "throughput", "platform_type", "account_mode",
    "is_official_business_account", "is_pin_enabled", "is_on_biz_app", "is_preverified_number",
    "last_onboarded_time", "certificate", "new_certificate", "eligibility_for_api_business_global_search",
    "search_visibility", "conversational_automation", "health_status", "country_code", "country_dial_code",
    "unified_cert_status", "host_platform", "username", "webhook_configuration",
})
DEFAULT_NUMBER_FIELDS = ("id", "display_phone_number", "verified_name", "quality_rating")
# fields introduced with the October 2025 portfolio messaging limits
FIELDS_SINCE = {"whatsapp_business_manager_messaging_limit": (24, 0)}
WABA_FIELDS = frozenset({
    "id", "name", "currency", "timezone_id", "message_template_namespace", "account_review_status",
    "business_verification_status", "ownership_type", "country", "primary_funding_id", "purchase_order_number",
    "on_behalf_of_business_info", "health_status", "status", "is_enabled_for_insights",
    "auth_international_rate_eligibility",
})
DEFAULT_WABA_FIELDS = ("id", "name")

_NUMBER_KNOWN = (NUMBER_FIELDS - {"throughput", "health_status"}) | frozenset({
    "throughput_level", "can_send_message", "errors", "health_errors", "additional_info", "health_additional_info",
    "present", "wire_extra",
})
_WABA_KNOWN = (WABA_FIELDS - {"health_status"}) | frozenset({
    "business_id", "can_send_message", "errors", "health_errors", "additional_info", "health_additional_info",
    "business_can_send_message", "business_errors", "business_additional_info", "app_can_send_message",
    "app_errors", "app_additional_info", "present", "portfolio_messaging_limit", "restrictions", "ban_state",
    "ban_date", "ban_after", "violation_type", "max_phone_numbers_per_waba", "max_phone_numbers_per_business",
})
# attributes with a default when the scenario does not mention them (an explicit null omits them)
_DEFAULTS = {"throughput_level": "STANDARD", "platform_type": "CLOUD_API", "account_mode": "LIVE"}

# -- the business portfolio, restrictions, bans and violations (WABA-level state since October 2025) --------

#: a portfolio limit given as an integer (Meta's business_capability_update example form; -1 = unlimited)
#: -> the TIER_* string its numbers report in whatsapp_business_manager_messaging_limit
PORTFOLIO_TIERS = {250: "TIER_250", 2000: "TIER_2K", 10000: "TIER_10K", 100000: "TIER_100K", -1: "TIER_UNLIMITED"}
#: restriction types that do not restrict sending messages (calling, adding numbers); every other type does
NON_MESSAGING_RESTRICTIONS = frozenset({
    "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "RESTRICTED_BUSINESS_INITIATED_CALLING", "RESTRICTED_USER_INITIATED_CALLING",
    "RESTRICTED_BIZ_INITIATED_AND_USER_INITIATED_CALLING", "RESTRICTED_USER_INITIATED_CALLING_CALL_BUTTON_HIDDEN",
})
MESSAGING_RESTRICTIONS = frozenset({"RESTRICTED_BIZ_INITIATED_MESSAGING", "RESTRICTED_CUSTOMER_INITIATED_MESSAGING",
                                    "RESTRICTED_UTILITY_TEMPLATES", "RESTRICTED_DIRECT_SEND_UTILITY_TEMPLATES"})
#: restricted together, these leave a WABA nothing it can send: its entity is BLOCKED (see the docstring)
ALL_MESSAGING = frozenset({"RESTRICTED_BIZ_INITIATED_MESSAGING", "RESTRICTED_CUSTOMER_INITIATED_MESSAGING"})
#: Graph's integrity code ("temporarily blocked for policy violations"), the emulator's error for a WABA
#: that is disabled or cannot send because of restrictions (Meta's health-status page lists no code for it)
POLICY_ERROR_CODE = 368
MAX_NUMBERS_PER_WABA = 25           # Meta's business_capability_update example
MAX_NUMBERS_PER_BUSINESS = 2        # the emulator's choice for a portfolio at the 250 level
WABA_LEVEL_ATTRIBUTES = ("portfolio_messaging_limit", "restrictions", "ban_state", "ban_date", "ban_after",
                         "violation_type", "max_phone_numbers_per_waba", "max_phone_numbers_per_business")
SPACE_SWITCHES = ("legacy_quality_events", "deprecated_limit_fields")
_RESTRICTION_KEYS = ("restriction_type", "duration", "remediation")
FLAGGED_REFUSED = ("Meta numbers cannot be FLAGGED since 7 October 2025 (the state no longer exists and a low "
                   "rating no longer lowers a limit); use quality_rating RED, or the CAMS, NxCloud or Kaleyra "
                   "emulators, whose APIs still report FLAGGED (extra.legacy_quality_events sends Meta's legacy "
                   "webhook forms)")


def portfolio_tier(value: Any) -> Any:
    """The ``TIER_*`` form of a portfolio limit given as an integer, a ``TIER_*`` string or ``UNLIMITED``
    (other strings are kept: unknown values are served as they are)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return PORTFOLIO_TIERS.get(value, value)
    if value == "UNLIMITED":
        return "TIER_UNLIMITED"
    return value


def _attribute_sets(attributes: Mapping[str, Any], timeline: Timeline, path: str):
    """(key path, attributes) of an entity's base attributes and of each timeline ``set``."""
    yield path, attributes
    for transition in timeline.transitions:
        yield f"{path}.timeline[at={transition.at:g}s].set", transition.set


def _check_waba_attributes(attrs: Mapping[str, Any], path: str) -> None:
    """Validate the WABA-level attributes of one attribute set (raises :class:`ScenarioError`)."""
    if "portfolio_messaging_limit" in attrs:
        value = attrs["portfolio_messaging_limit"]
        if isinstance(value, bool) or not (value is None or isinstance(value, str) and value
                                           or isinstance(value, int) and value in PORTFOLIO_TIERS):
            raise ScenarioError(f"{path}.portfolio_messaging_limit",
                                f"expected 250, 2000, 10000, 100000, -1 (unlimited), a TIER_* string or UNLIMITED, "
                                f"got {value!r}")
    if "restrictions" in attrs and attrs["restrictions"] is not None:
        rpath = f"{path}.restrictions"
        entries = attrs["restrictions"]
        if not isinstance(entries, list):
            raise ScenarioError(rpath, "expected a list of {restriction_type, duration, remediation?}")
        seen = set()
        for k, entry in enumerate(entries):
            epath = f"{rpath}[{k}]"
            if not isinstance(entry, Mapping):
                raise ScenarioError(epath, "expected a mapping {restriction_type, duration, remediation?}")
            for key in entry:
                if key not in _RESTRICTION_KEYS:
                    raise ScenarioError(f"{epath}.{key}", f"unknown key (allowed: {', '.join(_RESTRICTION_KEYS)})")
            kind = entry.get("restriction_type")
            if not isinstance(kind, str) or not kind:
                raise ScenarioError(f"{epath}.restriction_type", "is required (a string such as "
                                                                 "RESTRICTED_BIZ_INITIATED_MESSAGING)")
            if kind in seen:
                raise ScenarioError(f"{epath}.restriction_type", f"duplicate restriction {kind!r}")
            seen.add(kind)
            if "duration" not in entry:
                raise ScenarioError(f"{epath}.duration", "is required (how long the restriction lasts, e.g. 10m)")
            if parse_duration(entry["duration"], f"{epath}.duration") <= 0:
                raise ScenarioError(f"{epath}.duration", "must be > 0")
            if entry.get("remediation") is not None and not isinstance(entry["remediation"], str):
                raise ScenarioError(f"{epath}.remediation", "expected a string")
    for key in ("ban_state", "ban_date", "violation_type"):
        value = attrs.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ScenarioError(f"{path}.{key}", f"expected a non-empty string or null, got {value!r}")
    if attrs.get("ban_after") is not None:
        parse_duration(attrs["ban_after"], f"{path}.ban_after")
    for key in ("max_phone_numbers_per_waba", "max_phone_numbers_per_business"):
        value = attrs.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ScenarioError(f"{path}.{key}", f"expected a positive integer or null, got {value!r}")


def _portfolio_signature(space: Space) -> tuple:
    waba = space.waba
    assert waba is not None
    return (waba.attributes.get("portfolio_messaging_limit"), waba.timeline.repeat_every,
            tuple((tr.at, tr.set["portfolio_messaging_limit"]) for tr in waba.timeline.transitions
                  if "portfolio_messaging_limit" in tr.set))


def validate_meta_scenario(scenario: Scenario) -> None:
    """The rules a Meta scenario must follow since October 2025 (raises :class:`ScenarioError`):
    no number is ever FLAGGED; the WABA-level attributes are valid and set on WABAs only; a WABA with a
    portfolio limit leaves the per-number limit alone; WABAs of one business share one limit."""
    portfolios: dict[str, tuple[int, tuple]] = {}
    for i, space in enumerate(scenario.spaces):
        spath = f"spaces[{i}]"
        for key in SPACE_SWITCHES:
            value = space.extra.get(key)
            if value is not None and not isinstance(value, bool):
                raise ScenarioError(f"{spath}.extra.{key}", f"expected true or false, got {value!r}")
        has_portfolio = False
        if space.waba is not None:
            for path, attrs in _attribute_sets(space.waba.attributes, space.waba.timeline, f"{spath}.waba"):
                _check_waba_attributes(attrs, path)
                has_portfolio = has_portfolio or attrs.get("portfolio_messaging_limit") is not None
                if "active_restrictions" in attrs:
                    raise ScenarioError(f"{path}.active_restrictions", "is derived by the emulator; set restrictions")
            business = space.waba.attributes.get("business_id")
            if business is not None and has_portfolio:
                signature = _portfolio_signature(space)
                other = portfolios.setdefault(str(business), (i, signature))
                if other[1] != signature:
                    raise ScenarioError(f"{spath}.waba.portfolio_messaging_limit",
                                        f"WABAs of one business portfolio share its limit, but business "
                                        f"{business} has another limit (or timeline) in spaces[{other[0]}].waba")
        for j, number in enumerate(space.numbers):
            for path, attrs in _attribute_sets(number.attributes, number.timeline, f"{spath}.numbers[{j}]"):
                if attrs.get("status") == "FLAGGED":
                    raise ScenarioError(f"{path}.status", FLAGGED_REFUSED)
                for key in WABA_LEVEL_ATTRIBUTES:
                    if key in attrs:
                        raise ScenarioError(f"{path}.{key}", "is a WABA-level attribute: set it on the space's waba")
                if has_portfolio and attrs.get("whatsapp_business_manager_messaging_limit") is not None:
                    raise ScenarioError(f"{path}.whatsapp_business_manager_messaging_limit",
                                        "the messaging limit lives on the business portfolio: this WABA sets "
                                        "portfolio_messaging_limit, which every number of it reports; leave "
                                        "the per-number value out")


class GraphError(ApiError):
    """A Graph error answer; ``code`` is an int (or a raw string from a fault)."""

    ERRORS = ERROR_TABLE
    DEFAULT = (400, "An unknown error has occurred.")

    def __init__(self, code: Any, message: str | None = None, status: int | None = None, *,
                 subcode: int | None = None, error_type: str = "OAuthException", transient: bool | None = None,
                 user_title: str | None = None, retry_after: int | None = None, http200: bool = False):
        super().__init__(code, message, status, retry_after=retry_after, http200=http200)
        self.subcode = subcode
        self.error_type = error_type
        self.transient = (code in TRANSIENT_CODES) if transient is None else transient
        self.user_title = user_title


@dataclass
class _MetaContext(Context):
    api_version: str | None = None
    credential: Credential | None = None
    waba_id: str | None = None             # the WABA whose BUC usage the answer reports
    forced_buc_minutes: int | None = None  # a throttling fault: report 100% and this wait
    forced_app_full: bool = False
    www_authenticate: str | None = None


@dataclass
class _Target:
    kind: str                     # "waba", "number", "unknown"
    space: Space | None = None
    phone_number: str | None = None
    owned: bool = False


def _int_code(code: Any) -> Any:
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        return int(code.strip())
    return code


def _fbtrace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(9)).decode("ascii")


def _encode_cursor(pos: int, node_id: str) -> str:
    return base64.b64encode(f"{pos}:{node_id}".encode()).decode("ascii")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        text = base64.b64decode(cursor.encode("ascii"), validate=True).decode("utf-8")
        pos, node_id = text.split(":", 1)
        return int(pos), node_id
    except (ValueError, UnicodeError, binascii.Error):
        raise GraphError(100, "(#100) The parameter after/before is not a valid cursor") from None


def _split_fields(raw: str) -> list[str]:
    """Top-level names of a ``fields`` value: ``a,b{c,d},e.limit(3)`` -> ``[a, b, e]``."""
    names: list[str] = []
    depth, current = 0, []
    for ch in raw:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            names.append("".join(current))
            current = []
        else:
            current.append(ch)
    names.append("".join(current))
    out = []
    for name in names:
        base = re.split(r"[{.(]", name.strip(), maxsplit=1)[0].strip()
        if not base:
            continue
        if not _FIELD_NAME.match(base):
            raise GraphError(100, f"(#100) Syntax error in the fields parameter near {base[:40]!r}")
        out.append(base)
    return out


def _version_tuple(version: str | None) -> tuple[int, int]:
    match = _VERSION.match(version or DEFAULT_API_VERSION)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


class _Window:
    """Calls in a rolling hour of scenario time."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def prune(self, now: float) -> None:
        while self.times and self.times[0] <= now - HOUR:
            self.times.popleft()

    def percent(self, budget: int | None) -> int:
        if not budget:
            return 0
        return min(100, math.ceil(100 * len(self.times) / budget))

    def regain_minutes(self, now: float, budget: int | None) -> int:
        if not budget or len(self.times) < budget or not self.times:
            return 0
        # the call that must leave the window before one more fits
        oldest = self.times[len(self.times) - budget]
        return max(1, math.ceil((oldest + HOUR - now) / 60))


class MetaEmulator(ProviderEmulator):
    """Meta's Graph API number-health reads on loopback, driven by a scenario.

    Same public API as the other emulators (``start``/``stop``, ``url``,
    ``advance``, ``inject``, ``set_number``/``set_waba`` taking the WABA id as the
    space, ``requests``/``calls``/``write_action_calls``), plus
    :meth:`buc_usage`, :meth:`app_usage`, :meth:`reset_rate_limits` and
    :meth:`api_versions`.
    """

    provider_name = "Meta"
    thread_prefix = "meta"
    server_software = "proxygen-bolt"
    json_content_type = JSON_CONTENT_TYPE
    known_number_attributes = _NUMBER_KNOWN
    known_waba_attributes = _WABA_KNOWN
    write_actions = WRITE_ACTIONS
    observed_number_fields = ("present", "status", "quality_rating", "messaging_limit_tier",
                              "whatsapp_business_manager_messaging_limit", "name_status", "new_name_status",
                              "code_verification_status", "throughput_level", "verified_name")
    observed_waba_fields = ("present", "account_review_status", "can_send_message", "portfolio_messaging_limit",
                            "restrictions", "ban_state", "ban_date", "ban_after", "violation_type")
    webhooks_supported = True
    webhook_secret_required = True
    data_fault_actions = {"unknown_enum": frozenset({LIST_ACTION, NUMBER_ACTION, WABA_ACTION}),
                          "null_fields": frozenset({LIST_ACTION, NUMBER_ACTION, WABA_ACTION}),
                          "duplicate_numbers": frozenset({LIST_ACTION})}
    _logger = logger

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time, *, calls_per_hour: int | None = 200,
                 app_calls_per_hour: int | None = 10_000, throttle_status: int = 429,
                 max_records: int = 200_000, log_level: int = logging.DEBUG, seed: int | None = None):
        for name, value in (("calls_per_hour", calls_per_hour), ("app_calls_per_hour", app_calls_per_hour)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None")
        validate_meta_scenario(scenario)
        self._waba_set_times: dict[tuple[str, str], float] = {}    # (space, attribute) -> scenario time of set_waba
        super().__init__(scenario, host, port, clock, max_records=max_records, log_level=log_level, seed=seed)
        self.calls_per_hour = calls_per_hour
        self.app_calls_per_hour = app_calls_per_hour
        self.throttle_status = throttle_status
        self._buc: dict[tuple[str, str], _Window] = {}
        self._app: dict[str, _Window] = {}
        self._rate_lock = threading.Lock()
        for space in scenario.spaces:
            value = space.extra.get("calls_per_hour")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"space {space.space_id}: extra.calls_per_hour must be a positive integer or null")

    # -- public helpers ----------------------------------------------------

    def budget_of(self, waba_id: str) -> int | None:
        """The hourly BUC budget of a WABA (its space's ``extra.calls_per_hour``, else the constructor's)."""
        space = self._waba_space(waba_id)
        if space is not None and "calls_per_hour" in space.extra:
            return space.extra["calls_per_hour"]
        return self.calls_per_hour

    def buc_usage(self, waba_id: str, app: str | None = None) -> dict[str, int]:
        """``{"calls", "call_count", "estimated_time_to_regain_access"}`` of one WABA now
        (``app``: the token's ``account`` or label; default: the WABA owner's)."""
        space = self._waba_space(waba_id)
        key_waba = space.space_id if space is not None else waba_id
        if app is None:
            owner = self.scenario.credential(space.access_key_id) if space is not None else None
            app = owner.account_key if owner is not None else ""
        now = self.scenario_time()
        budget = self.budget_of(key_waba)
        with self._rate_lock:
            window = self._buc.get((app, key_waba)) or _Window()
            window.prune(now)
            return {"calls": len(window.times), "call_count": window.percent(budget),
                    "estimated_time_to_regain_access": window.regain_minutes(now, budget)}

    def app_usage(self, app: str) -> dict[str, int]:
        now = self.scenario_time()
        with self._rate_lock:
            window = self._app.get(app) or _Window()
            window.prune(now)
            return {"calls": len(window.times), "call_count": window.percent(self.app_calls_per_hour)}

    def reset_rate_limits(self) -> None:
        """Forget every hourly call (the per-second counters are the base class's)."""
        with self._rate_lock:
            self._buc.clear()
            self._app.clear()

    def api_versions(self) -> list[str]:
        """The Graph version of every recorded request, oldest first (None: no version in the path)."""
        out = []
        for record in self.requests:
            first = record.path.lstrip("/").split("/", 1)[0]
            out.append(first if _VERSION.match(first) else None)
        return out

    # -- state: the portfolio limit and the WABA's restrictions ---------------

    def number_state(self, space: Space, phone_number: str, t: float | None = None) -> dict[str, Any] | None:
        """A number's state; under a WABA with ``portfolio_messaging_limit`` it reports that limit (as
        ``TIER_*``) in ``whatsapp_business_manager_messaging_limit``."""
        t = self.scenario_time() if t is None else t
        state = super().number_state(space, phone_number, t)
        if state is not None and space.waba is not None:
            waba = super().waba_state(space, t)
            if waba is not None and waba.get("portfolio_messaging_limit") is not None:
                state["whatsapp_business_manager_messaging_limit"] = portfolio_tier(waba["portfolio_messaging_limit"])
        return state

    def waba_state(self, space: Space, t: float | None = None) -> dict[str, Any] | None:
        """A WABA's state, plus the derived ``active_restrictions``: the ``restrictions`` still in force at
        ``t``, each ``{restriction_type, until (scenario time), remediation?}``."""
        t = self.scenario_time() if t is None else t
        state = super().waba_state(space, t)
        if state is not None:
            state["active_restrictions"] = self._active_restrictions(space, state, t)
        return state

    def _set_time(self, space: Space, attribute: str, t: float) -> float:
        """The scenario time at which the WABA attribute's value in force at ``t`` was set."""
        with self._lock:
            if attribute in self._waba_overrides.get(space.space_id, {}):
                return self._waba_set_times.get((space.space_id, attribute), 0.0)
        assert space.waba is not None
        return space.waba.timeline.set_time(attribute, t)

    def _active_restrictions(self, space: Space, state: Mapping[str, Any], t: float) -> list[dict[str, Any]]:
        entries = state.get("restrictions")
        if not isinstance(entries, list) or not entries:
            return []
        since = self._set_time(space, "restrictions", t)
        active = []
        for entry in entries:
            until = since + parse_duration(entry["duration"])
            if t < until:
                item = {"restriction_type": entry["restriction_type"], "until": until}
                if entry.get("remediation") is not None:
                    item["remediation"] = entry["remediation"]
                active.append(item)
        return active

    def set_number(self, space_id: str, phone_number: str, **attributes: Any) -> None:
        """As the base class; a Meta number cannot become FLAGGED, nor carry WABA-level attributes."""
        if attributes.get("status") == "FLAGGED":
            raise ValueError(FLAGGED_REFUSED)
        for key in WABA_LEVEL_ATTRIBUTES:
            if key in attributes:
                raise ValueError(f"{key} is a WABA-level attribute: use set_waba()")
        space = self.scenario.space(space_id)
        waba = super().waba_state(space) if space is not None else None
        if waba is not None and waba.get("portfolio_messaging_limit") is not None \
                and attributes.get("whatsapp_business_manager_messaging_limit") is not None:
            raise ValueError("the messaging limit lives on the business portfolio: set portfolio_messaging_limit "
                             "with set_waba()")
        super().set_number(space_id, phone_number, **attributes)

    def set_waba(self, space_id: str, **attributes: Any) -> None:
        """As the base class; a ``restrictions`` override starts its durations now (scenario time)."""
        _check_waba_attributes(attributes, "set_waba")
        now = self.scenario_time()
        with self._lock:
            for key in attributes:
                self._waba_set_times[(space_id, key)] = now
        super().set_waba(space_id, **attributes)

    def clear_overrides(self) -> None:
        super().clear_overrides()
        with self._lock:
            self._waba_set_times.clear()

    # -- hooks ---------------------------------------------------------------

    def _observe_number(self, space: Space, state: Mapping[str, Any],
                        waba: Mapping[str, Any] | None) -> dict[str, Any]:
        observed = super()._observe_number(space, state, waba)
        owner = self.scenario.credential(space.access_key_id)
        if owner is not None:
            values = dict(state)
            for key, default in _DEFAULTS.items():
                values.setdefault(key, default)
            node_id = str(values.get("id") or state.get("phone_number"))
            observed["health"] = self._health_status(space, values, owner, node_id, waba or {})["can_send_message"]
            observed["throughput_level"] = values.get("throughput_level")     # as served (default STANDARD)
        return observed

    def _observe_waba(self, space: Space, waba: Mapping[str, Any], t: float) -> dict[str, Any]:
        observed = super()._observe_waba(space, waba, t)
        observed["restrictions"] = [dict(r) for r in waba.get("active_restrictions") or []]
        return observed

    def _next_due(self, space: Space, t: float) -> float | None:
        due = super()._next_due(space, t)
        waba = self.waba_state(space, t) if space.waba is not None else None
        ends = [r["until"] for r in (waba or {}).get("active_restrictions", [])]
        return min([x for x in [due, *ends] if x is not None and x > t], default=None)

    def _events(self, space: Space, space_changes: list[tuple[str | None, dict, dict, list[dict[str, Any]]]],
                t: float, wall: float) -> list[Event]:
        legacy = space.extra.get("legacy_quality_events") is True
        deprecated = space.extra.get("deprecated_limit_fields") is not False
        events: list[Event] = []
        for key, old, new, changes in space_changes:
            if key is None:
                events.extend(self._waba_events(space, old, new, changes, t, wall))
            else:
                events.extend(meta_number_events(key, old, new, changes, legacy=legacy, deprecated_fields=deprecated))
        return events

    def _waba_events(self, space: Space, old: Mapping[str, Any], new: Mapping[str, Any],
                     changes: list[dict[str, Any]], t: float, wall: float) -> list[Event]:
        """The WABA-level events: review, portfolio limit, restrictions, ban state and violations."""
        if new.get("present") is False:
            return []
        changed = {c["field"] for c in changes}

        def related(*names: str) -> list[dict[str, Any]]:
            return [c for c in changes if c["field"] in names]

        events: list[Event] = []
        review = review_event(new, changes)
        if review is not None:
            events.append(review)
        limit = new.get("portfolio_messaging_limit")
        if "portfolio_messaging_limit" in changed and limit is not None:
            waba = super().waba_state(space, t) or {}
            value: dict[str, Any] = {"max_daily_conversations_per_business": limit}
            key, default = (("max_phone_numbers_per_business", MAX_NUMBERS_PER_BUSINESS)
                            if portfolio_tier(limit) == "TIER_250" else
                            ("max_phone_numbers_per_waba", MAX_NUMBERS_PER_WABA))
            numbers = waba[key] if key in waba else default
            if numbers is not None:
                value[key] = numbers
            events.append(Event("business_capability_update", value, None, related("portfolio_messaging_limit")))
        restrictions = new.get("restrictions") or []
        if any(r not in (old.get("restrictions") or []) for r in restrictions):
            info = []
            for r in restrictions:
                item = {"restriction_type": r["restriction_type"], "expiration": int(wall - (t - r["until"]))}
                if "remediation" in r:
                    item["remediation"] = r["remediation"]
                info.append(item)
            events.append(Event("account_update", {"event": "ACCOUNT_RESTRICTION", "restriction_info": info}, None,
                                related("restrictions")))
        if changed & {"ban_state", "ban_date", "ban_after"} and new.get("ban_state") is not None:
            date = new.get("ban_date")
            if date is None:
                since = self._set_time(space, "ban_state", t)
                after = parse_duration(new["ban_after"]) if new.get("ban_after") is not None else 0.0
                date = ban_date_text(wall - (t - since) + after)
            events.append(Event("account_update", {"event": "DISABLED_UPDATE",
                                                   "ban_info": {"waba_ban_state": new["ban_state"],
                                                                "waba_ban_date": date}},
                                None, related("ban_state", "ban_date", "ban_after")))
        if "violation_type" in changed and new.get("violation_type") is not None:
            events.append(Event("account_update", {"event": "ACCOUNT_VIOLATION",
                                                   "violation_info": {"violation_type": new["violation_type"]}},
                                None, related("violation_type")))
        return events

    def _webhook_request(self, space: Space, event: Event, target: Mapping[str, Any], wall: float, *,
                         forged: bool) -> OutgoingRequest | None:
        payload = {"object": "whatsapp_business_account",
                   "entry": [{"id": space.space_id, "time": int(wall),
                              "changes": [{"field": event.field, "value": event.value}]}]}
        body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        secret = str(target["secret"]) + ("-forged" if forged else "")
        headers = [("Content-Type", "application/json"), ("User-Agent", "facebookexternalua"),
                   ("X-Hub-Signature-256", meta_signature(secret, body))]
        return OutgoingRequest("POST", target["url"], headers, body)

    def _new_context(self, req: Request | None) -> Context:
        return _MetaContext(request_id=_fbtrace_id())

    def _internal_error(self) -> ApiError:
        return GraphError(1, status=500, transient=True)

    def _body_error(self, exc: BodyError) -> ApiError:
        return GraphError(100, f"(#100) {exc.message}", exc.status)

    def _fault_error(self, ctx: Context, fault: Fault) -> ApiError:
        code = _int_code(fault.code)
        status = fault.http_status
        if status is None and code in (4, 80007, 17, 32, 613):
            status = self.throttle_status
        err = GraphError(code, fault.message, status, retry_after=fault.retry_after, http200=fault.http200)
        if isinstance(ctx, _MetaContext):
            if code == 80007 and ctx.waba_id is not None:
                ctx.forced_buc_minutes = max(1, math.ceil((fault.retry_after or 60) / 60))
            elif code == 4:
                ctx.forced_app_full = True
        return err

    def _common_headers(self, ctx: Context) -> dict[str, str]:
        headers = {"x-fb-request-id": ctx.request_id, "x-fb-trace-id": ctx.request_id}
        if not isinstance(ctx, _MetaContext):
            return headers
        headers["facebook-api-version"] = ctx.api_version or DEFAULT_API_VERSION
        cred = ctx.credential
        if cred is None or not ctx.authenticated:
            return headers
        now = self.scenario_time()
        app = cred.account_key
        with self._rate_lock:
            app_window = self._app.get(app) or _Window()
            app_window.prune(now)
            app_percent = 100 if ctx.forced_app_full else app_window.percent(self.app_calls_per_hour)
            headers["X-App-Usage"] = json_bytes({"call_count": app_percent, "total_cputime": app_percent // 4,
                                                 "total_time": app_percent // 2}).decode()
            if ctx.waba_id is not None:
                budget = self.budget_of(ctx.waba_id)
                window = self._buc.get((app, ctx.waba_id)) or _Window()
                window.prune(now)
                percent, minutes = window.percent(budget), window.regain_minutes(now, budget)
                if ctx.forced_buc_minutes is not None:
                    percent, minutes = 100, max(minutes, ctx.forced_buc_minutes)
                usage = {ctx.waba_id: [{"type": BUC_TYPE, "call_count": percent, "total_cputime": percent // 4,
                                        "total_time": percent // 2, "estimated_time_to_regain_access": minutes}]}
                headers["X-Business-Use-Case-Usage"] = json_bytes(usage).decode()
        return headers

    def _error_reply(self, ctx: Context, err: ApiError) -> Reply:
        code = _int_code(err.code)
        error: dict[str, Any] = {"message": err.message,
                                 "type": getattr(err, "error_type", "OAuthException"), "code": code}
        subcode = getattr(err, "subcode", None)
        if subcode is not None:
            error["error_subcode"] = subcode
        title = getattr(err, "user_title", None)
        if title:
            error["error_user_title"] = title
        error["is_transient"] = bool(getattr(err, "transient", code in TRANSIENT_CODES))
        error["fbtrace_id"] = ctx.request_id
        headers = self._common_headers(ctx)
        if err.retry_after is not None:
            headers["Retry-After"] = str(err.retry_after)
        if isinstance(ctx, _MetaContext) and ctx.www_authenticate:
            headers["WWW-Authenticate"] = ctx.www_authenticate
        status = 200 if err.http200 else err.status
        return Reply(status, json_bytes({"error": error}), JSON_CONTENT_TYPE, headers, code=str(code))

    def _ok_reply(self, ctx: Context, payload: Any) -> Reply:
        payload = self._data_fault(ctx, payload)
        return Reply(200, json_bytes(payload), JSON_CONTENT_TYPE, self._common_headers(ctx), code="OK")

    # -- routing -----------------------------------------------------------

    @staticmethod
    def _route(method: str, path: str) -> tuple[str | None, str, str | None, str | None, bool]:
        """(version, action, node, edge, extra_parts) of a request path."""
        parts = [unquote(p) for p in path.strip("/").split("/") if p != ""]
        version = None
        if parts and _VERSION.match(parts[0]):
            version = parts.pop(0)
        node = parts[0] if parts else None
        edge = parts[1] if len(parts) > 1 else None
        extra = len(parts) > 2
        if edge in WRITE_EDGES:
            return version, edge, node, edge, extra
        if method in WRITE_METHODS:
            return version, method.lower(), node, edge, extra
        if node is None:
            return version, UNKNOWN_NODE_ACTION, None, None, False
        if edge is None:
            return version, UNKNOWN_NODE_ACTION, node, None, False   # refined once the node is resolved
        if edge == "phone_numbers" and not extra:
            return version, LIST_ACTION, node, edge, False
        return version, UNKNOWN_EDGE_ACTION, node, edge, extra

    # -- request processing ------------------------------------------------

    def _process(self, req: Request, ctx: Context) -> Reply:
        assert isinstance(ctx, _MetaContext)
        query = dict(parse_qsl(req.target.split("?", 1)[1], keep_blank_values=True)) if "?" in req.target else {}
        version, action, node, edge, extra = self._route(req.method, ctx.path)
        ctx.api_version = version
        ctx.action = action
        cred = self._authenticate(req, query, ctx)
        target = self._resolve(cred, node) if node is not None else _Target("unknown")
        if action == UNKNOWN_NODE_ACTION and node is not None and target.kind != "unknown":
            ctx.action = action = NUMBER_ACTION if target.kind == "number" else WABA_ACTION
        if target.space is not None:
            ctx.space_id = target.space.space_id
        if target.phone_number is not None:
            ctx.phone_number = target.phone_number
        if target.owned and target.space is not None:
            ctx.waba_id = target.space.space_id
        if not cred.allows(action):
            raise GraphError(200, "(#200) Requires whatsapp_business_management permission to manage the object")
        if not self._admit(req.arrival, [((cred.account_key,), cred.qps)]):
            ctx.throttled = True
            raise GraphError(4, "(#4) Application request limit reached (too many calls in one second)",
                             self.throttle_status)
        self._count_hourly(ctx, cred)

        fault_reply = self._apply_faults(ctx)
        if fault_reply is not None:
            return fault_reply
        if target.kind == "unknown" and node is not None or (node is None and action not in WRITE_ACTIONS):
            raise GraphError(100, f"Unsupported {'get' if req.method == 'GET' else req.method.lower()} request. "
                                  f"Object with ID '{(node or '')[:80]}' does not exist, cannot be loaded due to "
                                  "missing permissions, or does not support this operation.",
                             subcode=33, error_type="GraphMethodException")
        if not target.owned and target.kind != "unknown":
            raise GraphError(200, "(#200) The access token has no permission to access this object")
        if action in WRITE_ACTIONS:
            raise GraphError(10, f"(#10) Emulator: {req.method} {action} has side effects; the emulator records the "
                                 "call and refuses it", user_title="Emulator.WriteActionCalled")
        if extra or action == UNKNOWN_EDGE_ACTION or (action == LIST_ACTION and target.kind != "waba"):
            rest = ctx.path.strip("/").split("/", 2 if version else 1)[-1]
            raise GraphError(2500, f"Unknown path components: /{rest[:120]}")
        assert target.space is not None
        if action == LIST_ACTION:
            return self._ok_reply(ctx, self._list(req, query, ctx, target.space, version))
        if action == NUMBER_ACTION:
            state = self.number_state(target.space, target.phone_number or "") or {}
            extras = state.get("wire_extra")
            fields = self._fields(query, NUMBER_FIELDS, DEFAULT_NUMBER_FIELDS, "WhatsAppBusinessPhoneNumber", version,
                                  wire_extra_keys=frozenset(extras) if isinstance(extras, Mapping) else frozenset())
            return self._ok_reply(ctx, self._number_object(target.space, state, fields, cred, health=True))
        fields = self._fields(query, WABA_FIELDS, DEFAULT_WABA_FIELDS, "WhatsAppBusinessAccount", version)
        return self._ok_reply(ctx, self._waba_object(target.space, fields, cred))

    def _authenticate(self, req: Request, query: Mapping[str, str], ctx: _MetaContext) -> Credential:
        token = None
        header = (req.header("Authorization") or "").strip()
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() in ("bearer", "oauth") and value.strip():
                token = value.strip()
        if token is None and query.get("access_token"):
            token = query["access_token"].strip()
        if not token:
            ctx.www_authenticate = 'OAuth "Facebook Platform" "invalid_request" "An access token is required"'
            raise GraphError(104)
        cred = None
        for candidate in self.scenario.credentials:
            if hmac.compare_digest(candidate.access_key_secret.encode("utf-8"), token.encode("utf-8", "replace")):
                cred = candidate
                break
        if cred is None:
            ctx.www_authenticate = 'OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token"'
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token", subcode=467)
        ctx.access_key_id = cred.access_key_id
        if not cred.enabled:
            ctx.www_authenticate = 'OAuth "Facebook Platform" "invalid_token" "Session has expired"'
            raise GraphError(190, "Error validating access token: Session has expired.", subcode=463)
        ctx.credential = cred
        ctx.authenticated = True
        return cred

    def _count_hourly(self, ctx: _MetaContext, cred: Credential) -> None:
        """Count one call against the app and (when known) the WABA budget, or refuse it."""
        now = self.scenario_time()
        app = cred.account_key
        buc_budget = self.budget_of(ctx.waba_id) if ctx.waba_id is not None else None
        with self._rate_lock:
            app_window = self._app.setdefault(app, _Window())
            app_window.prune(now)
            buc_window = None
            if ctx.waba_id is not None:
                buc_window = self._buc.setdefault((app, ctx.waba_id), _Window())
                buc_window.prune(now)
            app_full = self.app_calls_per_hour is not None and len(app_window.times) >= self.app_calls_per_hour
            buc_full = buc_window is not None and buc_budget is not None and len(buc_window.times) >= buc_budget
            if not (app_full or buc_full):
                app_window.times.append(now)
                if buc_window is not None:
                    buc_window.times.append(now)
                return
        ctx.throttled = True
        if buc_full:
            raise GraphError(80007, status=self.throttle_status)
        raise GraphError(4, status=self.throttle_status)

    # -- lookups -------------------------------------------------------------

    def _owned(self, cred: Credential, space: Space) -> bool:
        owner = self.scenario.credential(space.access_key_id)
        return owner is not None and owner.account_key == cred.account_key

    def _waba_space(self, waba_id: str) -> Space | None:
        space = self.scenario.space(waba_id)
        if space is not None:
            return space
        for candidate in self.scenario.spaces:
            if candidate.waba is not None and candidate.waba.attributes.get("id") == waba_id:
                return candidate
        return None

    def _resolve(self, cred: Credential, node: str) -> _Target:
        space = self._waba_space(node)
        if space is not None and (space.waba is None or self.waba_state(space) is not None):
            return _Target("waba", space, owned=self._owned(cred, space))
        t = self.scenario_time()
        foreign: _Target | None = None
        for space in self.scenario.spaces:
            for number in space.numbers:
                if str(number.attributes.get("id") or number.phone_number) != node:
                    continue
                state = self.number_state(space, number.phone_number, t)
                if state is None or not state.get("present", True) \
                        or str(state.get("id") or number.phone_number) != node:
                    continue
                found = _Target("number", space, number.phone_number, self._owned(cred, space))
                if found.owned:
                    return found
                foreign = foreign or found
        return foreign or _Target("unknown")

    # -- answers -------------------------------------------------------------

    def _fields(self, query: Mapping[str, str], known: frozenset[str], default: tuple[str, ...], node_type: str,
                version: str | None, *, wire_extra_keys: frozenset[str] = frozenset()) -> list[str]:
        raw = query.get("fields")
        if raw is None or not raw.strip():
            return list(default)
        names = _split_fields(raw)
        vt = _version_tuple(version)
        for name in names:
            since = FIELDS_SINCE.get(name)
            if name not in known and name not in wire_extra_keys or (since is not None and vt < since):
                raise GraphError(100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})")
        out = ["id"]
        for name in names:
            if name not in out:
                out.append(name)
        return out

    def _list(self, req: Request, query: Mapping[str, str], ctx: _MetaContext, space: Space,
              version: str | None) -> dict[str, Any]:
        fields = self._fields(query, NUMBER_FIELDS, DEFAULT_NUMBER_FIELDS, "WhatsAppBusinessPhoneNumber", version)
        fields = [f for f in fields if f != "health_status"]      # not served on the edge (see the docstring)
        limit_raw = query.get("limit")
        limit = 25
        if limit_raw not in (None, ""):
            try:
                limit = int(limit_raw)
            except ValueError:
                raise GraphError(100, "(#100) Param limit must be a number") from None
            if limit < 1:
                raise GraphError(100, "(#100) Param limit must be a positive number")
            limit = min(limit, 100)
        t = self.scenario_time()
        states = []
        for number in space.numbers:
            state = self.number_state(space, number.phone_number, t)
            if state is not None and state.get("present", True):
                states.append(state)
        ids = [str(s.get("id") or s["phone_number"]) for s in states]

        def position(cursor: str) -> int:
            pos, node_id = _decode_cursor(cursor)
            return ids.index(node_id) if node_id in ids else pos

        if query.get("after"):
            start = position(query["after"]) + 1
            end = start + limit
        elif query.get("before"):
            end = max(0, position(query["before"]))
            start = max(0, end - limit)
        else:
            start, end = 0, limit
        start = max(0, min(start, len(states)))
        end = max(start, min(end, len(states)))
        cred = ctx.credential
        assert cred is not None
        data = [self._number_object(space, s, fields, cred, health=False) for s in states[start:end]]
        payload: dict[str, Any] = {"data": data}
        if not data:
            return payload
        before, after = _encode_cursor(start, ids[start]), _encode_cursor(end - 1, ids[end - 1])
        paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
        if start > 0:
            paging["previous"] = self._page_url(req, query, {"before": before})
        if end < len(states):
            paging["next"] = self._page_url(req, query, {"after": after})
        payload["paging"] = paging
        return payload

    def _page_url(self, req: Request, query: Mapping[str, str], cursor: Mapping[str, str]) -> str:
        host = (req.header("Host") or "").strip() or self.url.split("://", 1)[1]
        params = {k: v for k, v in query.items() if k not in ("after", "before")}
        params.setdefault("limit", "25")
        params.update(cursor)
        path = req.target.split("?", 1)[0]
        return f"http://{host}{path}?{urlencode(params, quote_via=quote, safe=',{}')}"

    def _number_object(self, space: Space, state: Mapping[str, Any], fields: list[str], cred: Credential,
                       *, health: bool) -> dict[str, Any]:
        values = dict(state)
        for key, default in _DEFAULTS.items():
            values.setdefault(key, default)
        node_id = str(values.get("id") or state.get("phone_number"))
        out: dict[str, Any] = {}
        for name in fields:
            if name == "id":
                value: Any = node_id
            elif name == "display_phone_number":
                value = values.get(name) if "display_phone_number" in state else display_number(state["phone_number"])
            elif name == "quality_score":
                value = values.get("quality_score")
                if isinstance(value, str):
                    value = {"score": value}
                elif value is None and "quality_score" not in state and values.get("quality_rating") is not None:
                    value = {"score": values["quality_rating"]}
            elif name == "throughput":
                level = values.get("throughput_level")
                value = {"level": level} if level is not None else values.get("throughput")
            elif name == "health_status":
                value = self._health_status(space, values, cred, node_id) if health else None
            else:
                value = values.get(name)
            if value is not None:
                out[name] = value
        return merge_wire_extra(out, state)

    def _waba_object(self, space: Space, fields: list[str], cred: Credential) -> dict[str, Any]:
        waba = self.waba_state(space) or {}
        out: dict[str, Any] = {}
        for name in fields:
            if name == "id":
                value: Any = space.space_id
            elif name == "health_status":
                entities = self._waba_entities(space, waba, cred)
                value = {"can_send_message": worst_health(e["can_send_message"] for e in entities),
                         "entities": entities}
            else:
                value = waba.get(name)
            if value is not None:
                out[name] = value
        return out

    def _health_status(self, space: Space, values: Mapping[str, Any], cred: Credential,
                       node_id: str, waba: Mapping[str, Any] | None = None) -> dict[str, Any]:
        phone = _entity("PHONE_NUMBER", node_id, values.get("can_send_message"),
                        HEALTH_BY_STATUS.get(str(values.get("status")), "AVAILABLE"),
                        _first(values, "errors", "health_errors"),
                        _first(values, "additional_info", "health_additional_info"))
        if waba is None:
            waba = self.waba_state(space) or {}
        entities = [phone] + self._waba_entities(space, waba, cred)
        return {"can_send_message": worst_health(e["can_send_message"] for e in entities), "entities": entities}

    def _waba_health(self, waba: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]], list[str]]:
        """The WABA entity's derived ``(can_send_message, errors, additional_info)``: from its review status,
        its ban state and its active restrictions (see the module docstring)."""
        states = [HEALTH_BY_REVIEW.get(str(waba.get("account_review_status")), "AVAILABLE")]
        errors: list[dict[str, Any]] = []
        info: list[str] = []
        if waba.get("ban_state") == "DISABLE":
            states.append("BLOCKED")
            errors.append({"error_code": POLICY_ERROR_CODE,
                           "error_description": "This WhatsApp Business Account is disabled for violating "
                                                "WhatsApp Business policies.",
                           "possible_solution": "Request a review of the decision in WhatsApp Manager."})
        restricted = [r for r in waba.get("active_restrictions") or []
                      if r["restriction_type"] not in NON_MESSAGING_RESTRICTIONS]
        if ALL_MESSAGING <= {r["restriction_type"] for r in restricted}:
            states.append("BLOCKED")
            errors.append({"error_code": POLICY_ERROR_CODE,
                           "error_description": "Business-initiated and customer-initiated messaging are both "
                                                "restricted for this WhatsApp Business Account.",
                           "possible_solution": "Wait for the restrictions to end, or request a review in "
                                                "WhatsApp Manager."})
        elif restricted:
            states.append("LIMITED")
            now_wall, now = self._clock(), self.scenario_time()
            for r in restricted:
                ends = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now_wall - (now - r["until"])))
                info.append(f"{r['restriction_type']}: this WhatsApp Business Account is restricted until {ends}.")
        state = worst_health(states)
        return state, errors if state == "BLOCKED" else [], info if state == "LIMITED" else []

    def _waba_entities(self, space: Space, waba: Mapping[str, Any], cred: Credential) -> list[dict[str, Any]]:
        explicit = waba.get("can_send_message")
        derived, errors, info = self._waba_health(waba) if explicit is None else (explicit, [], [])
        entities = [_entity("WABA", space.space_id, explicit, derived,
                            _first(waba, "errors", "health_errors") or errors,
                            _first(waba, "additional_info", "health_additional_info") or info)]
        if waba.get("business_id") is not None:
            entities.append(_entity("BUSINESS", waba["business_id"], waba.get("business_can_send_message"),
                                    "AVAILABLE", waba.get("business_errors"), waba.get("business_additional_info")))
        entities.append(_entity("APP", cred.access_key_id, waba.get("app_can_send_message"), "AVAILABLE",
                                waba.get("app_errors"), waba.get("app_additional_info")))
        return entities

    def _corrupt_answer(self, kind: str, action: str | None, payload: Any) -> Any:
        if not isinstance(payload, dict):
            return payload
        if action == LIST_ACTION and isinstance(payload.get("data"), list):
            entries = [dict(e) if isinstance(e, dict) else e for e in payload["data"]]
            if kind == "duplicate_numbers":
                entries = [c for e in entries for c in (e, dict(e) if isinstance(e, dict) else e)]
            else:
                entries = [_corrupt_number(kind, e) if isinstance(e, dict) else e for e in entries]
            return {**payload, "data": entries}
        if action == NUMBER_ACTION:
            return _corrupt_number(kind, payload)
        if action == WABA_ACTION:
            obj = dict(payload)
            unknown = kind == "unknown_enum"
            if "account_review_status" in obj:
                obj["account_review_status"] = UNKNOWN_ENUM_VALUES["status"] if unknown else None
            _corrupt_health(obj, unknown)
            return obj
        return payload


def _first(values: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if values.get(key) is not None:
            return values[key]
    return None


def _entity(kind: str, entity_id: Any, explicit: Any, derived: str, errors: Any, info: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {"entity_type": kind, "id": str(entity_id), "can_send_message": explicit or derived}
    if info:
        entity["additional_info"] = list(info) if isinstance(info, list) else [info]
    if errors:
        entity["errors"] = list(errors) if isinstance(errors, list) else [errors]
    return entity


def _corrupt_health(obj: dict[str, Any], unknown: bool) -> None:
    health = obj.get("health_status")
    if isinstance(health, dict):
        obj["health_status"] = {**health, "can_send_message": UNKNOWN_ENUM_VALUES["status"] if unknown else None}


def _corrupt_number(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """unknown_enum / null_fields on one number object, touching only the fields it carries."""
    obj = dict(payload)
    unknown = kind == "unknown_enum"
    replacements = {"status": UNKNOWN_ENUM_VALUES["status"], "quality_rating": UNKNOWN_ENUM_VALUES["quality"],
                    "messaging_limit_tier": UNKNOWN_ENUM_VALUES["tier"],
                    "whatsapp_business_manager_messaging_limit": UNKNOWN_ENUM_VALUES["tier"]}
    for key, value in replacements.items():
        if key in obj:
            obj[key] = value if unknown else None
    if "quality_score" in obj:
        if unknown:
            obj["quality_score"] = {"score": UNKNOWN_ENUM_VALUES["quality"]}
        else:
            obj.pop("quality_score")
    if not unknown:
        for key in ("verified_name", "name_status", "new_name_status", "code_verification_status"):
            obj.pop(key, None)
    _corrupt_health(obj, unknown)
    return obj
