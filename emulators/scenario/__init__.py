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
            status: CONNECTED               # health: status, quality, messaging limit
            quality_rating: GREEN
            messaging_limit_tier: TIER_1K
            verified_name: Demo Shop        # the display name and its reviews
            name_status: Approval
            new_name_status: Approval
            code_verification_status: VERIFIED
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

from .fleet import (
    clone_scenario,
    generate_fleet,
)
from .loader import (
    builtin_scenarios,
    load_builtin_scenario,
    load_scenario,
    loads_scenario,
    parse_scenario,
)
from .model import (
    Credential,
    Fault,
    Number,
    Scenario,
    Space,
    Waba,
)
from .timeline import (
    Timeline,
    Transition,
)
from .validation import (
    DATA_FAULT_KINDS,
    FAULT_KINDS,
    WEBHOOK_FAULT_KINDS,
    ScenarioError,
    parse_duration,
)
from .validation import (
    MAX_OVERSIZE_MEGABYTES as MAX_OVERSIZE_MEGABYTES,
)

__all__ = [
    "DATA_FAULT_KINDS",
    "FAULT_KINDS",
    "WEBHOOK_FAULT_KINDS",
    "Credential",
    "Fault",
    "Number",
    "Scenario",
    "ScenarioError",
    "Space",
    "Timeline",
    "Transition",
    "Waba",
    "builtin_scenarios",
    "clone_scenario",
    "generate_fleet",
    "load_builtin_scenario",
    "load_scenario",
    "loads_scenario",
    "parse_duration",
    "parse_scenario",
]
