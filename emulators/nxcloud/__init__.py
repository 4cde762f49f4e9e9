"""An emulator of NxCloud's WhatsApp number-information API (``POST /api/wa/getPhone``).

It follows NxCloud's "API interface call convention" and the ``getPhone`` page:

* Common headers ``accessKey``, ``ts`` (epoch milliseconds), ``bizType`` (``2`` =
  WhatsApp), ``action`` (``getPhone``) and ``sign``; optional ``algorithm``
  (``md5``, the default, or ``sha256``; documented in the Chinese version only).
* ``sign`` is the lowercase hex digest of
  ``accessKey=<ak>&action=<action>&bizType=<bizType>&ts=<ts>`` + ``&body=<raw body>``
  (left out when the body is empty) + ``&accessSecret=<secret>``.  The emulator
  recomputes it over the exact bytes it received, never over a re-serialisation,
  so a client that signs one JSON text and sends another fails with ``1003``.
  The ``algorithm`` header is not part of the signed string.
* The envelope is ``{"code": int, "message": str, "data": ...}``; ``data`` is
  ``null`` on failure.

Scenario mapping: ``credentials[].access_key_id`` / ``access_key_secret`` are the
accessKey / accessSecret; ``qps`` (default 10, ``null`` = unlimited: NxCloud
documents no limit for its WhatsApp APIs) bounds the requests per accessKey per
calendar second; ``permissions`` denied (or a list without ``getPhone``) gives
``1005``.  A space is an application: its ``cust_space_id``/``space_id`` is the
``appkey``, owned by the space's ``access_key_id``; ``extra.response_shape`` is
``map`` (default) or ``array``.  Numbers use ``phone_number`` (digits with country
code), ``verified_name``, ``status``, ``quality_rating``, ``name_status``,
``code_verification_status``, ``messaging_limit_tier`` (sent as ``current_limit``;
null is sent as ``""``, like NxCloud's own example) and optionally
``display_phone_number`` (derived as ``+<cc> <rest>`` when absent).  Values are sent
verbatim, so NxCloud's ``UNKNOW`` spelling works; ``wire_extra`` adds raw keys.

Choices where the documents are silent (clients should rely on codes, never on
the wording of messages):

* Every NxCloud code is answered with HTTP 200 (the documents never show a status).
* The order of checks is: path and method, missing common header (``1001``),
  ``bizType``/``action`` (``1002``), unknown or disabled ``accessKey`` (``1005``),
  ``ts`` (``1004``: not digits or more than 60000 ms from the server clock),
  ``Content-Type`` not ``application/json`` or bad ``sign`` (``1003``), permissions
  (``1005``), flow control, faults, then the body.
* Body problems (not a JSON object, no ``appkey``, ``messaging_product`` not
  ``whatsapp``, ``business_phones`` not a string) are ``9000``; an unknown appkey is
  ``9003`` (the code NxCloud documents for "application does not exist" on its
  send API); an appkey of another accessKey is ``1005``; a listed number that is
  not all digits is ``9002``; a listed number not bound to the appkey fails the
  whole request with ``9006`` naming the first such number.
* ``business_phones`` is split on commas, spaces around each number ignored
  (the page writes the separator both as "," and ", "); empty or absent means
  every number of the application.  Duplicates are answered once.
* Past ``qps`` the answer is HTTP 429 with ``{"code": -1, "message": "Request is
  too frequent", "data": null}``: NxCloud documents no throttling code for its
  WhatsApp APIs, so this borrows its generic failure code and the wording of its
  OTA product's rate-limit error.  Refused requests do not consume quota.
* Paths other than ``/api/wa/getPhone`` are HTTP 404 (code ``-1``); other methods
  than POST are HTTP 405 (code ``-1``).  ``/api/wa/mt`` (sending a message) is
  recognised, authenticated, recorded as a write call and refused with code
  ``-1``, so tests can assert the exporter never sends anything.
* An ``error`` fault's ``code`` is sent as an integer when it is one (``"1004"`` ->
  ``1004``).  Code ``9099`` carries a Meta Graph error in ``data.error``.  The
  throttling answer is ``{kind: error, code: -1, http_status: 429}`` (its message
  defaults to the one above).

Faults (see :mod:`.scenario` for the kinds), as ``getPhone`` answers carry them:

* ``oversize`` adds an unknown top-level string field ``emulator_padding`` to the
  envelope (next to ``code``, ``message`` and ``data``).
* ``unknown_enum``: every answered number gets ``status: BRAND_NEW_STATE``,
  ``quality_rating: BRAND_NEW_RATING`` and ``current_limit: TIER_BRAND_NEW``.
* ``null_fields``: those three are sent as ``null``, and ``verified_name``,
  ``name_status`` and ``code_verification_status`` are left out.
* ``duplicate_numbers``: in the map shape every number is listed a second time
  under the key ``"+<digits>"`` (same number, E.164 spelling; a JSON object cannot
  repeat a key); in the array shape every entry appears twice in a row.

Webhooks (``set_webhook(url)``, no secret; see :mod:`.webhooks`).  NxCloud pushes
phone and WABA events to the application's webhook URL (reference A.3, "Push
webhooks", from the newer Chinese wiki): a POST of ``{"field": "<Meta webhook
field>", "value": {..., "business_phone": "<digits>", "wabaId": "...", "time":
<unix s>, "event": "..."}}``.  The emulator derives the events of the BSP relays'
vocabulary (see :mod:`.webhooks` for the mapping of changes to fields and
events: the legacy quality events, and ``account_update`` derived from a
number's status or health), keeps Meta's value keys and adds ``business_phone`` (number events only),
``wabaId`` (the space's ``waba.id``, when it has one), ``time`` and ``event`` (when
the Meta event has one; ``phone_number_name_update`` and the capability and
review updates carry their ``decision``/limits instead).  The body is compact
UTF-8 JSON.  The page says callbacks can be signed with "the same signature
algorithm" as API calls; it does not show the headers, so the header set is an
inference: ``accessKey`` (the space owner's), ``ts`` (epoch ms), ``bizType: 2``,
``action`` (= the field, e.g. ``phone_number_quality_update``) and ``sign`` =
lowercase hex MD5 of ``accessKey=<AK>&action=<ACTION>&bizType=2&ts=<TS>&body=<exact
body bytes>&accessSecret=<owner's secret>`` (:func:`sign`), plus
``Content-Type: application/json``.  Only what the scenario models is sent (no
template events).
"""

from __future__ import annotations

from .emulator import (
    NxCloudEmulator,
)
from .model import (
    ACTION,
    BIZ_TYPE,
    ERROR_TABLE,
    PATH,
    RESPONSE_SHAPES,
    WRITE_ACTIONS,
)
from .model import (
    ALGORITHMS as ALGORITHMS,
)
from .model import (
    COMMON_HEADERS as COMMON_HEADERS,
)
from .model import (
    ENDPOINTS as ENDPOINTS,
)
from .model import (
    JSON_CONTENT_TYPE as JSON_CONTENT_TYPE,
)
from .model import (
    MAX_TS_SKEW_MS as MAX_TS_SKEW_MS,
)
from .model import (
    NUMBER_FIELDS as NUMBER_FIELDS,
)
from .model import (
    THROTTLE_MESSAGE as THROTTLE_MESSAGE,
)
from .model import (
    THROTTLE_STATUS as THROTTLE_STATUS,
)
from .signing import (
    sign,
    string_to_sign,
    verify,
)

__all__ = [
    "ACTION",
    "BIZ_TYPE",
    "ERROR_TABLE",
    "PATH",
    "RESPONSE_SHAPES",
    "WRITE_ACTIONS",
    "NxCloudEmulator",
    "sign",
    "string_to_sign",
    "verify",
]
