"""An emulator of Alibaba Cloud CAMS (Chat App Message Service, API version 2020-06-06).

It serves the read-only number-health actions over real HTTP on loopback and
behaves, on the wire, like the POP gateway in front of CAMS:

* RPC style, ``GET`` or ``POST`` on ``/``; parameters from the query string and
  from an ``application/x-www-form-urlencoded`` body.
* Signature checks for V3 (``ACS3-HMAC-SHA256`` ``Authorization`` header) and the
  legacy V2 (``Signature`` parameter, HMAC-SHA1), with the 15 minute clock-skew
  window and nonce replay protection.
* Gateway error envelope ``{RequestId, HostId, Code, Message, Recommend}`` with the
  documented HTTP statuses, per-key flow control (``Throttling.User``), and
  scenario-driven data and faults.

This module is deliberately written only against the public documentation and
the recorded vectors: it must never import the exporter's own client code, so a
bug shared by both sides cannot hide.  Standard library only (plus the scenario
module, which needs PyYAML).

Choices where the documentation is silent (clients should not depend on the
exact wording of messages):

* A wrong ``x-acs-version`` / ``Version`` is ``400 InvalidVersion``; a missing one
  ``400 MissingVersion``; a missing action ``400 MissingAction``.
* Action names from the SDK catalogue that are not emulated answer
  ``400 Emulator.ActionNotEmulated``; the ones with side effects answer
  ``400 Emulator.WriteActionCalled``.  Names outside the catalogue are
  ``404 InvalidApi.NotFound``.
* V3 requests missing ``x-acs-date``, ``x-acs-signature-nonce`` or
  ``x-acs-content-sha256``, or whose ``SignedHeaders`` leave out ``host``, an
  ``x-acs-*`` header or ``content-type``, are ``400 IncompleteSignature``.  An
  ``x-acs-content-sha256`` that does not hash the body is ``400 SignatureDoesNotMatch``.
* V2 requests missing a common parameter get ``400 Missing<Parameter>``.  A V2
  request without ``Format=JSON`` (any case) is answered in XML, like the real
  gateway (whose default format is XML); the XML layout here is an approximation.
* A ``CustSpaceId`` that does not exist or belongs to another account is
  ``400 Unknown.ResourceOwnerId``.  When a space declares an ``isv_code``, a request
  to an action that takes ``IsvCode`` (QueryChatappPhoneNumbers, QueryChatappBindWaba) whose
  ``IsvCode`` is missing or different is ``400 Ram.PermissionDeny``; GetPhoneNumberVerificationStatus
  and GetWhatsappHealthStatus have no such parameter and never check it.  A
  credential with ``permissions: denied`` (or a list not naming the action) gets
  ``400 Ram.PermissionDeny`` with an ``AccessDeniedDetail`` object.
* Flow control counts accepted requests per account (the key itself unless the
  scenario groups keys with ``account``) per calendar second of arrival, across
  all actions, against the credential's ``qps`` (default 10; null = no overall
  limit), and per action against the documented per-user limits
  (:data:`DOCUMENTED_ACTION_QPS`: ``GetWhatsappHealthStatus`` 5/s), which apply
  whatever ``qps`` says; a credential's ``action_qps`` overrides them.  Excess
  requests get the gateway's ``400 Throttling.User`` envelope and do not consume
  quota.  ``CamsEmulator(..., flow_control=False)`` switches all of it off (for
  a measurement that must see every request answered).
  ``per_second_counts(key, action=...)`` counts the requests of one action.
* ``GetWhatsappHealthStatus`` (Meta's ``health_status`` relayed): ``CustSpaceId``
  and ``NodeType`` are required (``400 MissingParameter`` naming the one
  missing); ``NodeType`` is ``phone`` (with ``PhoneNumber``; without it
  ``400 InvalidParameter``; an unknown number ``InvalidParameter.PhoneNumberError``)
  or ``waba`` (an optional ``WabaId`` must be the space's); ``template`` is not
  emulated (``400 InvalidParameter``).  ``Data.Entities`` lists, in this order,
  the ``PHONE_NUMBER`` (``phone`` only; ``PhoneNumber``), ``WABA`` (``WabaId``),
  ``BUSINESS`` (when the WABA names a ``business_id``; ``BusinessId``) and, only
  when the WABA sets ``app_can_send_message``, ``APP`` entity (no id: CAMS has
  no field for it), each ``{EntityType, CanSendMessage, <id field>, Errors}``;
  ``Data.CanSendMessage`` is the worst one (BLOCKED > LIMITED > AVAILABLE).
  Scenario attributes, all following timelines: a number's
  ``can_send_message`` (default derived from ``status``) and ``health_errors``;
  the WABA's ``can_send_message`` (default derived from
  ``account_review_status``) and ``health_errors``,
  ``business_can_send_message`` (default AVAILABLE) and ``business_errors``,
  ``app_can_send_message`` and ``app_errors``.  Errors are given snake_case
  (``error_code``, ``error_description``, ``possible_solution``, as Meta's) or
  PascalCase and are answered as ``{ErrorCode, ErrorDescription,
  PossibleSolution}`` with ``ErrorCode`` a string (``"141006"``), as CAMS sends
  it.  There is never an ``AdditionalInfo`` (CAMS' SDK has none).
* ``QueryChatappPhoneNumbers`` without ``CustSpaceId`` uses the caller's space
  marked ``default`` (else its first space): an inference from the docs.

Faults (see :mod:`.scenario` for the kinds), as CAMS answers carry them:

* ``oversize`` adds an unknown top-level string field ``EmulatorPadding`` to the
  answer (an element of that name in XML answers).
* ``unknown_enum``: ``QueryChatappPhoneNumbers`` gets ``Status: BRAND_NEW_STATE``,
  ``QualityRating: BRAND_NEW_RATING`` and ``MessagingLimitTier: TIER_BRAND_NEW`` on
  every number; ``QueryChatappBindWaba`` ``Data.AccountReviewStatus``,
  ``GetPhoneNumberVerificationStatus`` ``Data.CodeVerificationStatus`` and every
  ``CanSendMessage`` of ``GetWhatsappHealthStatus`` become ``BRAND_NEW_STATE``.
* ``null_fields``: the same fields are sent as ``null``, and ``VerifiedName``,
  ``CodeVerificationStatus``, ``NameStatus``, ``NewNameStatus`` and ``IsOfficial``
  (numbers), ``Name`` and ``Currency`` (WABA), ``Id`` (verification) and ``Errors``
  (health) are left out.
* ``duplicate_numbers``: ``QueryChatappPhoneNumbers`` lists every number twice in a
  row (only that action).
"""

from __future__ import annotations

from ..common import MAX_BODY_BYTES as MAX_BODY_BYTES
from ..common import RequestRecord as RequestRecord
from .emulator import (
    CamsEmulator,
)
from .model import (
    API_VERSION,
    EMULATED_ACTIONS,
    ERROR_TABLE,
    READ_ACTIONS,
    WRITE_ACTIONS,
)
from .model import (
    DEFAULT_HOST_ID as DEFAULT_HOST_ID,
)
from .model import (
    DOCUMENTED_ACTION_QPS as DOCUMENTED_ACTION_QPS,
)
from .model import (
    EMPTY_BODY_SHA256 as EMPTY_BODY_SHA256,
)
from .model import (
    JSON_CONTENT_TYPE as JSON_CONTENT_TYPE,
)
from .model import (
    KNOWN_ACTIONS as KNOWN_ACTIONS,
)
from .model import (
    MAX_CLOCK_SKEW as MAX_CLOCK_SKEW,
)
from .model import (
    MAX_PARAMS as MAX_PARAMS,
)
from .model import (
    NONCE_TTL as NONCE_TTL,
)
from .model import (
    NUMBER_FIELDS as NUMBER_FIELDS,
)
from .model import (
    V3_ALGORITHM as V3_ALGORITHM,
)
from .model import (
    WABA_FIELDS as WABA_FIELDS,
)
from .model import (
    XML_CONTENT_TYPE as XML_CONTENT_TYPE,
)
from .signing import (
    canonical_query_string,
    rfc3986,
    v2_signature,
    v2_string_to_sign,
    v3_authorization,
    v3_canonical_request,
    v3_signature,
    v3_string_to_sign,
)

__all__ = [
    "API_VERSION",
    "EMULATED_ACTIONS",
    "ERROR_TABLE",
    "READ_ACTIONS",
    "WRITE_ACTIONS",
    "CamsEmulator",
    "RequestRecord",
    "canonical_query_string",
    "rfc3986",
    "v2_signature",
    "v2_string_to_sign",
    "v3_authorization",
    "v3_canonical_request",
    "v3_signature",
    "v3_string_to_sign",
]
