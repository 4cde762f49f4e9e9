"""An emulator of Kaleyra's WhatsApp phone-number read APIs (v2).

Kaleyra authenticates with an ``api-key`` header and carries the account SID
in the path.  Two reads are emulated:

* ``GET /v2/<sid>/whatsapp/<waba_id>/number``: the numbers of one WABA (discovery).
* ``GET /v2/<sid>/whatsapp/<business_phone_number>/phone_number_details``: one
  number's details, which Kaleyra passes through from Meta's phone-number node.
  The number is digits with country code; a leading ``+`` (or ``%2B``) is accepted.

The envelope is ``{"code": str, "message": str, "data": ..., "error": {}}``.

Scenario mapping: ``credentials[].access_key_id`` is the account SID and
``access_key_secret`` its API key; ``qps`` (default 10, ``null`` = unlimited)
bounds requests per SID per calendar second; ``permissions`` denied (or a list
without the action) gives ``WA401``.  A space is a WABA: its ``space_id`` is the
WABA id (its ``waba.id``, if set, is accepted too), owned by the SID in
``access_key_id``.  Numbers carry Meta's attributes: ``id``, ``verified_name``,
``status``, ``quality_rating``, ``quality_score`` (string or mapping; default
``{"score": <quality_rating>}``), ``messaging_limit_tier``,
``whatsapp_business_manager_messaging_limit``, ``name_status``,
``new_name_status``, ``code_verification_status``, ``throughput_level`` (default
``STANDARD``), ``platform_type`` (default ``CLOUD_API``), ``account_mode`` (default
``LIVE``), ``is_official_business_account``, ``display_phone_number`` (derived as
``+<cc> <rest>`` when absent), ``can_send_message`` (default derived from
``status``), ``health_errors`` (a list of ``{error_code, error_description,
possible_solution}``, sent verbatim) and ``health_additional_info``.  An attribute
set to null is left out of the answer; ``wire_extra`` adds raw keys to the details.

Choices where the documents are silent (the response bodies of these two
endpoints are not in the stored documentation; clients should rely on the
codes and field names, never on the wording of messages):

* Success is HTTP 200 with code ``WA200`` (the code Kaleyra's v2 error table
  names as success) and message ``Request Processed Successfully``.
* Discovery ``data`` is a list of ``{id, display_phone_number, phone_number,
  verified_name, status, quality_rating, name_status}`` (``phone_number`` as digits),
  numbers with ``present: false`` left out.  Details ``data`` is Meta's
  phone-number object: ``id, display_phone_number, verified_name, quality_rating,
  quality_score{score}, status, messaging_limit_tier,
  whatsapp_business_manager_messaging_limit, name_status, new_name_status,
  code_verification_status, throughput{level}, platform_type, account_mode,
  health_status{can_send_message, entities[...]}``.  ``health_status`` has a
  ``PHONE_NUMBER`` entity, a ``WABA`` entity and, when the WABA names a
  ``business_id``, a ``BUSINESS`` entity; the overall value is the worst one.
* A missing ``api-key``, an unknown or disabled SID, or a wrong key: HTTP 401
  ``RBC001`` (the ``error`` object carries the detail).  A WABA (or number) that
  is not in the SID's account: HTTP 400 ``WA401``.  A number that is not digits,
  or is not known at all: HTTP 400 ``WA400``.  A crash: HTTP 500 ``WA500``.
* Past ``qps``: HTTP 429 ``{"code": "WA429", "message": "Too Many Requests"}``
  (Kaleyra documents no number for its read APIs, only that throttling exists).
* Unknown paths are HTTP 404 ``WA404`` and other methods than GET on the reads
  HTTP 405 ``WA405`` (invented codes).
* Every ``/v1/...`` path and the write endpoints ``.../<waba_id>/number/add``,
  ``/verify``, ``/retry_otp`` and ``/update`` (any method) are recognised,
  authenticated, recorded as write calls (``write_action_calls()``) and refused
  with HTTP 400 ``Emulator.WriteActionCalled``: an exporter must never call them.

Faults (see :mod:`emulators.scenario` for the kinds), as Kaleyra answers carry them:

* ``error`` with ``code: WA429`` is the throttling answer (HTTP 429), ``RBC001``
  the auth error (HTTP 401), ``WA500`` an HTTP 500.
* ``oversize`` adds an unknown top-level string field ``emulator_padding`` to the
  envelope.
* ``unknown_enum``: discovery entries get ``status: BRAND_NEW_STATE`` and
  ``quality_rating: BRAND_NEW_RATING``; details get those plus
  ``quality_score: {score: BRAND_NEW_RATING}``, ``messaging_limit_tier:
  TIER_BRAND_NEW`` (and ``whatsapp_business_manager_messaging_limit`` when sent)
  and ``health_status.can_send_message: BRAND_NEW_STATE``.
* ``null_fields``: the same fields are sent as ``null`` (``quality_score`` and the
  portfolio limit are left out instead), and ``verified_name``, ``name_status``,
  ``new_name_status`` and ``code_verification_status`` are left out.
* ``duplicate_numbers``: discovery lists every number twice in a row; it does not
  apply to the details of one number.

Webhooks (``set_webhook(url)``, no secret; see :mod:`emulators.webhooks`).  Kaleyra's
quality/limit webhook (reference B.2, "Receive updates about rating and limits
using webhooks") is an HTTP GET to the client's URL with query parameters:
``<url>?display_phone_number=<digits>&event=<FLAGGED|UNFLAGGED|UPGRADE|DOWNGRADE>&current_limit=<TIER_...>``.
Kaleyra signs nothing: a receiver authenticates it by a token it puts in the URL
it registers (e.g. ``http://host/webhooks/kaleyra?token=XYZ``); the emulator
appends its parameters after the URL's own (``?`` or ``&``).  Events are the
``phone_number_quality_update`` ones of the BSP relays' vocabulary (see
:mod:`emulators.webhooks`; a relay still sends the legacy forms Meta itself dropped):
FLAGGED/UNFLAGGED when the number becomes or stops being flagged (status
``FLAGGED`` or quality ``RED``), UPGRADE/DOWNGRADE when ``messaging_limit_tier``
(else the portfolio limit) rises or drops.  ``current_limit`` is
``messaging_limit_tier``, else ``whatsapp_business_manager_messaging_limit``,
and is left out when neither is set.  No other change sends anything.
"""

from __future__ import annotations

from .emulator import KaleyraEmulator
from .model import (
    DETAILS_ACTION,
    ERROR_TABLE,
    LIST_ACTION,
    READ_ACTIONS,
    WRITE_ACTIONS,
)

__all__ = [
    "DETAILS_ACTION",
    "ERROR_TABLE",
    "LIST_ACTION",
    "READ_ACTIONS",
    "WRITE_ACTIONS",
    "KaleyraEmulator",
]
