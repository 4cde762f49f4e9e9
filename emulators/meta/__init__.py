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

from .emulator import (
    MetaEmulator,
)
from .graph import (
    GraphError as GraphError,
)
from .model import (
    ALL_MESSAGING as ALL_MESSAGING,
)
from .model import (
    BUC_TYPE as BUC_TYPE,
)
from .model import (
    DEFAULT_API_VERSION,
    ERROR_TABLE,
    LIST_ACTION,
    MESSAGING_RESTRICTIONS,
    NUMBER_ACTION,
    PORTFOLIO_TIERS,
    READ_ACTIONS,
    WABA_ACTION,
    WRITE_ACTIONS,
)
from .model import (
    DEFAULT_NUMBER_FIELDS as DEFAULT_NUMBER_FIELDS,
)
from .model import (
    DEFAULT_WABA_FIELDS as DEFAULT_WABA_FIELDS,
)
from .model import (
    FIELDS_SINCE as FIELDS_SINCE,
)
from .model import (
    FLAGGED_REFUSED as FLAGGED_REFUSED,
)
from .model import (
    HOUR as HOUR,
)
from .model import (
    JSON_CONTENT_TYPE as JSON_CONTENT_TYPE,
)
from .model import (
    MAX_NUMBERS_PER_BUSINESS as MAX_NUMBERS_PER_BUSINESS,
)
from .model import (
    MAX_NUMBERS_PER_WABA as MAX_NUMBERS_PER_WABA,
)
from .model import (
    NON_MESSAGING_RESTRICTIONS as NON_MESSAGING_RESTRICTIONS,
)
from .model import (
    NUMBER_FIELDS as NUMBER_FIELDS,
)
from .model import (
    POLICY_ERROR_CODE as POLICY_ERROR_CODE,
)
from .model import (
    SPACE_SWITCHES as SPACE_SWITCHES,
)
from .model import (
    THROTTLING_CODES as THROTTLING_CODES,
)
from .model import (
    TRANSIENT_CODES as TRANSIENT_CODES,
)
from .model import (
    UNKNOWN_EDGE_ACTION as UNKNOWN_EDGE_ACTION,
)
from .model import (
    UNKNOWN_NODE_ACTION as UNKNOWN_NODE_ACTION,
)
from .model import (
    WABA_FIELDS as WABA_FIELDS,
)
from .model import (
    WABA_LEVEL_ATTRIBUTES as WABA_LEVEL_ATTRIBUTES,
)
from .model import (
    WRITE_EDGES as WRITE_EDGES,
)
from .model import (
    WRITE_METHODS as WRITE_METHODS,
)
from .model import (
    portfolio_tier as portfolio_tier,
)
from .model import (
    validate_meta_scenario as validate_meta_scenario,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "ERROR_TABLE",
    "LIST_ACTION",
    "MESSAGING_RESTRICTIONS",
    "NUMBER_ACTION",
    "PORTFOLIO_TIERS",
    "READ_ACTIONS",
    "WABA_ACTION",
    "WRITE_ACTIONS",
    "MetaEmulator",
]
