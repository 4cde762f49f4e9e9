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

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, quote, urlsplit
from xml.sax.saxutils import escape as _xml_escape

from .common import (
    HEALTH_BY_REVIEW,
    HEALTH_BY_STATUS,
    HEALTH_RANK,
    MAX_BODY_BYTES,  # noqa: F401 - re-exported (cams.MAX_BODY_BYTES)
    UNKNOWN_ENUM_VALUES,
    ApiError,
    BodyError,
    Context,
    ProviderEmulator,
    Reply,
    Request,
    RequestRecord,
    wire_fields,
)
from .scenario import Credential, Fault, Scenario, Space

__all__ = [
    "API_VERSION",
    "CamsEmulator",
    "EMULATED_ACTIONS",
    "ERROR_TABLE",
    "READ_ACTIONS",
    "RequestRecord",
    "WRITE_ACTIONS",
    "canonical_query_string",
    "rfc3986",
    "v2_signature",
    "v2_string_to_sign",
    "v3_authorization",
    "v3_canonical_request",
    "v3_signature",
    "v3_string_to_sign",
]

logger = logging.getLogger("emulators.cams")

API_VERSION = "2020-06-06"
DEFAULT_HOST_ID = "cams.ap-southeast-1.aliyuncs.com"
JSON_CONTENT_TYPE = "application/json;charset=utf-8"
XML_CONTENT_TYPE = "text/xml;charset=utf-8"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_CLOCK_SKEW = 15 * 60          # seconds either side of the server clock
NONCE_TTL = 15 * 60               # how long a nonce is remembered
MAX_PARAMS = 1000
V3_ALGORITHM = "ACS3-HMAC-SHA256"

# Documented per-action, per-user limits stricter than the general 10/s.
DOCUMENTED_ACTION_QPS = {"GetWhatsappHealthStatus": 5}

EMULATED_ACTIONS = frozenset({
    "QueryChatappPhoneNumbers", "QueryChatappBindWaba", "GetPhoneNumberVerificationStatus",
    "GetWhatsappHealthStatus",
})

# The SDK catalogue (alibabacloud-cams20200606 5.3.1), split by side effects.
READ_ACTIONS = frozenset("""
QueryChatappPhoneNumbers QueryChatappBindWaba GetPhoneNumberVerificationStatus GetWhatsappHealthStatus
GetChatappPhoneNumberMetric GetChatappPhoneNumberSetting QueryPhoneBusinessProfile QueryWabaBusinessInfo
GetCommerceSetting GetConversationalAutomation GetPhoneEncryptionPublicKey ListPhoneMessageQrdl GetWhatsappUserName
GetWhatsappUserNameSuggestions QueryMMLActive GetChatappOpenStatus ListInstance QueryInstance GetCustomerSite
IsvGetAppId GetPermissionByCode GetChatappUploadAuthorization GeneratePresignedUrl ListChatappTemplate
GetChatappTemplateDetail GetChatappTemplateMetric ListWhatAppTemplate GetAutoGeneratedTemplate
GetPledgeTemplateAddress CheckDirectSendMessageSample ListChatappMessage GetFlow GetFlowJSONAssest GetFlowPreviewUrl
ListFlow ReadChatFlow ListChatFlow ReadFlowVersion ListFlowVersion ListBindingRelationsForFlowVersion GetChatFlowMetric
GetChatFlowTemplate ListChatFlowTemplate ListFlowNodeGroup ListFlowNodePrototypeV2 ReadChatFlowLogSetting ListChatGroup
ListChatGroupParticipants ListAllGroups GetGroupExist GetDownloadExcelList ListMarketingFlow GetFbMessengerPages
ListInstagramPage GetFbInstagramPages ListInstagramPosts ListFacebookPosts ListPageAdAccount ListMessageCampaign
GetMessageCampaignInsights ListCustomAudience ListMessengerSubscriptionToken GetWhatsappConversionApi
GetWhatsappConnectionCatalog ListProductCatalog ListProduct GetViberByRequestNo GetViberPauseTimes
ListViberServiceMessage GetAuditRequestByTypeUnAudit ListBindDmAccount ListDmAccount ListDmTag
""".split())

WRITE_ACTIONS = frozenset("""
ChatappSyncPhoneNumber AddChatappPhoneNumber GetChatappVerifyCode ChatappVerifyAndRegister ChatappPhoneNumberRegister
ChatappPhoneNumberDeregister GetPreValidatePhoneId CreateChatappMigrationInitiate GetMigrationVerifyCode
ChatappMigrationVerified ChatappMigrationRegister UpdatePhoneWebhook UpdateAccountWebhook ModifyPhoneBusinessProfile
UpdateCommerceSetting UpdateConversationalAutomation UpdatePhoneEncryptionPublicKey CreatePhoneMessageQrdl
UpdatePhoneMessageQrdl DeletePhoneMessageQrdl UpdateWhatsappUserName DeleteWhatsappUserName SyncBusinessAppHistory
UpdateWabaMmlStatus EnableWhatsappROIMetric ChatappBindWaba CreateInstance UpdateInstance DeleteInstance
ChangeResourceGroup OpenChatappService CreateChatappTemplate ModifyChatappTemplate ModifyChatappTemplateProperties
DeleteChatappTemplate ArchiveChatappTemplate CopyTemplate SendChatappMessage SendChatappMassMessage WhatsappCall
SubmitVerifyCodeResult CreateFlow ModifyFlow DeleteFlow DeprecateFlow PublishFlow UpdateFlowJSONAsset SyncFlow
CreateChatFlow CreateChatFlowByImport UpdateChatFlow DeleteChatFlow TriggerChatFlow CreateFlowVersion
UpdateFlowVersion DeleteFlowVersion OnlineFlowVersion OfflineFlowVersion FlowBindPhone FlowRebindPhone
FlowUnbindPhone CreateChatFlowLogSetting UpdateChatFlowLogSetting AddChatGroup UpdateChatGroup DeleteChatGroup
AddChatGroupInviteLink DeleteChatGroupInviteLink DeleteChatGroupParticipants AddContacts DeleteContacts
DeleteContactsByIds UpdateContactById RemoveContactById MoveContactToGroup AddGroup DeleteGroupById UpdateGroupName
AddMarketingFlow UpdateMarketingFLow DeleteMarketingFlow PauseMarketingFLow BindMessengerPage CreateMessengerPage
DeleteMessengerPage BindInstagramPage DeleteInstagramPage CreateMessageCampaign DeleteMessageCampaign
SyncMessageCampaign CreateCustomAudience AddCustomAudienceUser SyncMessengerSubscriptionToken
CreateWhatsappConversionApi RequestWhatsappConversionApi AddAuditViberOpen AddAddressRecoverSuspend
UpdateAuditRequest BindDmAccount UnbindDmAccount
""".split())

KNOWN_ACTIONS = READ_ACTIONS | WRITE_ACTIONS

# code -> (HTTP status, message).  Gateway codes, then CAMS business codes, then emulator-only codes.
ERROR_TABLE: dict[str, tuple[int, str]] = {
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidAccessKeyId.Inactive": (400, "Specified access key is disabled."),
    "SignatureDoesNotMatch": (400, "Specified signature does not match our calculation."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "InvalidSignatureMethod": (400, "Specified signature method is not supported."),
    "InvalidSignatureVersion": (400, "Specified signature version is not supported."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "MissingAccessKeyId": (400, "AccessKeyId is mandatory for this action."),
    "InvalidApi.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidProduct.NotFound": (404, "Cannot find product according to your domain."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "UnsupportedHTTPMethod": (400, "This http method is not supported."),
    "Forbidden.RAM": (403, "User not authorized to operate on the specified resource, or this API doesn't support RAM."),
    "Forbidden": (403, "User not authorized to operate on the specified resource."),
    "Forbidden.RiskControl": (403, "This operation is forbidden by Aliyun RiskControl system."),
    "InvalidSecurityToken.Expired": (400, "Specified SecurityToken is expired."),
    "InvalidSecurityToken.Malformed": (400, "Specified SecurityToken is malformed."),
    "InvalidSecurityToken.MismatchWithAccessKey": (400, "Specified SecurityToken mismatch with the AccessKey."),
    "MissingSecurityToken": (400, "SecurityToken is mandatory for this action."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "Throttling": (400, "Request was denied due to request throttling."),
    "InternalError": (500, "The request processing has failed due to some unknown error, exception or failure."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "InvalidParameter": (400, "The specified parameter is not valid."),
    "MissingParameter": (400, "A required parameter is missing."),
    "RequestEntityTooLarge": (413, "The request body is too large."),
    # CAMS business errors (documented for every CAMS action as HTTP 400)
    "Product.Unsubscript": (400, "You have not subscribed to the specified product."),
    "Ram.PermissionDeny": (400, "You are not authorized to perform the operation."),
    "System.LimitControl": (400, "The system is under flow control."),
    "Unknown.ResourceOwnerId": (400, "The resource does not belong to the current user."),
    "Authentication.NoAuth": (400, "You are not authorized to perform the operation."),
    "InvalidParameter.PhoneNumberError": (400, "The phone number is invalid."),
    # emulator-only
    "Emulator.WriteActionCalled": (400, "The emulator refuses actions with side effects; an exporter must never call them."),
    "Emulator.ActionNotEmulated": (400, "This CAMS action exists but is not emulated."),
}

_HTML_502 = (b"<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
             b"<center><h1>502 Bad Gateway</h1></center>\n<hr><center>Tengine</center>\n</body>\n</html>\n")

# snake_case scenario attribute -> CAMS wire key, in documented order
NUMBER_FIELDS = (
    ("phone_number", "PhoneNumber"), ("verified_name", "VerifiedName"), ("status", "Status"),
    ("quality_rating", "QualityRating"), ("messaging_limit_tier", "MessagingLimitTier"),
    ("code_verification_status", "CodeVerificationStatus"), ("name_status", "NameStatus"),
    ("new_name_status", "NewNameStatus"), ("is_official", "IsOfficial"),
    ("status_callback_url", "StatusCallbackUrl"), ("status_queue", "StatusQueue"),
    ("up_callback_url", "UpCallbackUrl"), ("up_queue", "UpQueue"), ("calling_configure", "CallingConfigure"),
)
WABA_FIELDS = (
    ("id", "Id"), ("name", "Name"), ("account_review_status", "AccountReviewStatus"), ("currency", "Currency"),
    ("message_template_namespace", "MessageTemplateNamespace"), ("business_id", "BusinessId"),
    ("business_name", "BusinessName"), ("primary_business_location", "PrimaryBusinessLocation"),
    ("auth_international_rate_eligibility", "AuthInternationalRateEligibility"),
    ("marketing_message_lite_status", "MarketingMessageLiteStatus"), ("is_on_biz_app", "IsOnBizApp"),
)
_NUMBER_KNOWN = {k for k, _ in NUMBER_FIELDS} | {"id", "present", "wire_extra", "can_send_message", "health_errors"}
_WABA_KNOWN = {k for k, _ in WABA_FIELDS} | {"present", "wire_extra", "can_send_message", "health_errors",
                                             "business_can_send_message", "business_errors", "app_can_send_message",
                                             "app_errors"}

_NUMBER_ENUMS = (("Status", "status"), ("QualityRating", "quality"), ("MessagingLimitTier", "tier"))
_NUMBER_DROPPED = ("VerifiedName", "CodeVerificationStatus", "NameStatus", "NewNameStatus", "IsOfficial")
_ENUM_FAULT_ACTIONS = frozenset({"QueryChatappPhoneNumbers", "QueryChatappBindWaba",
                                 "GetPhoneNumberVerificationStatus", "GetWhatsappHealthStatus"})

_HEALTH_BY_STATUS = HEALTH_BY_STATUS
_HEALTH_BY_REVIEW = HEALTH_BY_REVIEW
_HEALTH_RANK = HEALTH_RANK


# ---------------------------------------------------------------------------
# signing primitives (pure functions; also used by the tests against the vectors)


def rfc3986(text: str) -> str:
    """Percent-encode UTF-8 ``text`` leaving only ``A-Za-z0-9-_.~`` (space -> %20, * -> %2A)."""
    return quote(text, safe="-_.~", encoding="utf-8", errors="strict")


def canonical_query_string(pairs: Iterable[tuple[str, str]]) -> str:
    """Sorted ``name=value`` pairs, each side RFC 3986 encoded, joined with ``&``."""
    return "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in sorted(pairs))


def v3_canonical_request(method: str, canonical_uri: str, query_pairs: Iterable[tuple[str, str]],
                         headers: Mapping[str, str | Sequence[str]], signed_headers: Sequence[str],
                         payload_hash: str) -> str:
    """The ACS3 canonical request.  ``headers`` keys may use any case; absent signed headers count as empty."""
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        values = [value] if isinstance(value, str) else list(value)
        lowered.setdefault(name.lower(), []).extend(values)
    names = sorted(h.lower() for h in signed_headers)
    lines = []
    for name in names:
        values = sorted(v.strip() for v in lowered.get(name, []))
        lines.append(f"{name}:{','.join(values)}\n")
    return "\n".join([
        method.upper(), canonical_uri or "/", canonical_query_string(query_pairs),
        "".join(lines), ";".join(names), payload_hash,
    ])


def v3_string_to_sign(canonical_request: str) -> str:
    return f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"


def v3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def v3_authorization(access_key_id: str, signed_headers: Sequence[str], signature: str) -> str:
    names = ";".join(sorted(h.lower() for h in signed_headers))
    return f"{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={signature}"


def v2_string_to_sign(method: str, params: Iterable[tuple[str, str]]) -> str:
    """``METHOD&%2F&pct(canonical query)``; ``params`` must not contain ``Signature``."""
    return f"{method.upper()}&{rfc3986('/')}&{rfc3986(canonical_query_string(params))}"


def v2_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(f"{secret}&".encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


# ---------------------------------------------------------------------------
# errors and request context


class _ApiError(ApiError):
    ERRORS = ERROR_TABLE

    def __init__(self, code: str, message: str | None = None, status: int | None = None, *,
                 access_denied: Any = None, retry_after: int | None = None, http200: bool = False):
        super().__init__(code, message, status, retry_after=retry_after, http200=http200)
        self.access_denied = access_denied


def _missing(param: str) -> _ApiError:
    return _ApiError(f"Missing{param}", f"{param} is mandatory for this action.", 400)


_Reply = Reply
_Request = Request


@dataclass
class _Ctx(Context):
    host_id: str = DEFAULT_HOST_ID
    fmt: str = "JSON"


_TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$")


def _parse_timestamp(value: str) -> float | None:
    match = _TIMESTAMP.match(value)
    if not match:
        return None
    try:
        moment = datetime(*(int(g) for g in match.groups()[:6]), tzinfo=timezone.utc)
    except ValueError:
        return None
    return moment.timestamp()


def _parse_pairs(text: str, where: str) -> list[tuple[str, str]]:
    if not text:
        return []
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, encoding="utf-8",
                         errors="strict", max_num_fields=MAX_PARAMS)
    except UnicodeDecodeError:
        raise _ApiError("InvalidParameter", f"The {where} is not valid percent-encoded UTF-8.") from None
    except ValueError:
        raise _ApiError("InvalidParameter", f"The {where} has too many parameters (limit {MAX_PARAMS}).") from None


def _xml_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"_{cleaned}"


def _to_xml(root: str, payload: Mapping[str, Any]) -> bytes:
    def emit(tag: str, value: Any) -> str:
        tag = _xml_name(tag)
        if isinstance(value, Mapping):
            return f"<{tag}>{''.join(emit(k, v) for k, v in value.items())}</{tag}>"
        if isinstance(value, list):
            return f"<{tag}>{''.join(emit(tag, v) for v in value)}</{tag}>"
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = ""
        else:
            text = _xml_escape(str(value))
        return f"<{tag}>{text}</{tag}>"

    return ("<?xml version='1.0' encoding='UTF-8'?>" + emit(root, payload)).encode("utf-8")


_wire = wire_fields


# ---------------------------------------------------------------------------
# the emulator


class CamsEmulator(ProviderEmulator):
    """A CAMS endpoint on loopback, driven by a :class:`~emulators.scenario.Scenario`.

    ``clock`` is the wall clock (epoch seconds) used for signature freshness,
    nonce expiry and the per-second flow-control windows; scenario time is
    ``clock() - start time + advance()`` offsets.  Lifecycle, scenario time,
    faults, overrides and the request log come from
    :class:`~emulators.common.ProviderEmulator`.
    """

    provider_name = "CAMS"
    thread_prefix = "cams"
    server_software = "Tengine"
    json_content_type = JSON_CONTENT_TYPE
    known_number_attributes = frozenset(_NUMBER_KNOWN)
    known_waba_attributes = frozenset(_WABA_KNOWN)
    write_actions = WRITE_ACTIONS
    data_fault_actions = {"unknown_enum": _ENUM_FAULT_ACTIONS, "null_fields": _ENUM_FAULT_ACTIONS,
                          "duplicate_numbers": frozenset({"QueryChatappPhoneNumbers"})}
    padding_key = "EmulatorPadding"
    _logger = logger

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time, *, max_records: int = 200_000,
                 log_level: int = logging.DEBUG, host_id: str | None = None, seed: int | None = None,
                 flow_control: bool = True):
        super().__init__(scenario, host, port, clock, max_records=max_records, log_level=log_level, seed=seed)
        self.flow_control = flow_control
        self._host_id = host_id
        self._nonces: dict[tuple[str, str], float] = {}
        self._nonce_order: deque[tuple[float, tuple[str, str]]] = deque()
        self._actions = {
            "QueryChatappPhoneNumbers": self._query_phone_numbers,
            "QueryChatappBindWaba": self._query_bind_waba,
            "GetPhoneNumberVerificationStatus": self._get_verification_status,
            "GetWhatsappHealthStatus": self._get_health_status,
        }

    # -- request processing ------------------------------------------------

    def _new_context(self, req: _Request | None) -> _Ctx:
        if req is None:
            return _Ctx(request_id=str(uuid.uuid4()).upper(), host_id=DEFAULT_HOST_ID)
        host = (req.header("host") or "").strip()
        host_id = self._host_id or (host.rsplit(":", 1)[0] if host and not host.endswith("]") else host) \
            or DEFAULT_HOST_ID
        return _Ctx(request_id=str(uuid.uuid4()).upper(), host_id=host_id)

    def _internal_error(self) -> _ApiError:
        return _ApiError("InternalError")

    def _body_error(self, exc: BodyError) -> _ApiError:
        return _ApiError("RequestEntityTooLarge" if exc.status == 413 else "InvalidParameter", exc.message)

    def _common_headers(self, ctx: _Ctx) -> dict[str, str]:
        return {"x-acs-request-id": ctx.request_id}

    def _process(self, req: _Request, ctx: _Ctx) -> _Reply:
        if req.method not in ("GET", "POST"):
            raise _ApiError("UnsupportedHTTPMethod", f"HTTP method {req.method} is not supported.")
        split = urlsplit(req.target)
        query_pairs = _parse_pairs(split.query, "query string")
        form_pairs: list[tuple[str, str]] = []
        content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
        if req.body and content_type == "application/x-www-form-urlencoded":
            try:
                text = req.body.decode("ascii")
            except UnicodeDecodeError:
                raise _ApiError("InvalidParameter", "The form body must be percent-encoded.") from None
            form_pairs = _parse_pairs(text, "form body")
        params: dict[str, str] = {}
        for key, value in query_pairs + form_pairs:
            params.setdefault(key, value)
        ctx.space_id = params.get("CustSpaceId") or None
        ctx.phone_number = params.get("PhoneNumber") or None

        authorization = (req.header("authorization") or "").strip()
        v2_markers = ("Signature", "AccessKeyId", "SignatureMethod", "SignatureNonce", "SignatureVersion")
        if authorization:
            style = "V3"
        elif any(k in params for k in v2_markers):
            style = "V2"
        elif req.header("x-acs-action") is not None:
            style = "V3"
        else:
            style = "V2"
        ctx.signature_version = style
        if style == "V2":
            ctx.fmt = "JSON" if (params.get("Format") or "").lower() == "json" else "XML"
            ctx.access_key_id = params.get("AccessKeyId") or None
            version, action = params.get("Version"), params.get("Action")
        else:
            ctx.access_key_id = _claimed_v3_key(authorization)
            version, action = req.header("x-acs-version"), req.header("x-acs-action")
        ctx.action = action or None

        if split.path not in ("", "/"):
            raise _ApiError("InvalidApi.NotFound")
        if not version:
            raise _missing("Version")
        if version.strip() != API_VERSION:
            raise _ApiError("InvalidVersion", f"Specified parameter Version is not valid: {version!r}.")
        if not action:
            raise _missing("Action")
        if action not in KNOWN_ACTIONS:
            raise _ApiError("InvalidApi.NotFound")

        if style == "V3":
            cred = self._authenticate_v3(req, ctx, authorization, query_pairs)
        else:
            cred = self._authenticate_v2(req, ctx, params, query_pairs + form_pairs)
        ctx.authenticated = True

        self._flow_control(cred, action, req.arrival, ctx)
        fault_reply = self._apply_faults(ctx)
        if fault_reply is not None:
            return fault_reply

        if not cred.allows(action):
            raise _ApiError("Ram.PermissionDeny", access_denied=_access_denied_detail(cred, action))
        if action in WRITE_ACTIONS:
            raise _ApiError("Emulator.WriteActionCalled",
                            f"{action} has side effects; the emulator records the call and refuses it.")
        handler = self._actions.get(action)
        if handler is None:
            raise _ApiError("Emulator.ActionNotEmulated", f"{action} exists in CAMS but is not emulated.")
        payload = handler(cred, params)
        return self._ok_reply(ctx, payload)

    # -- authentication ----------------------------------------------------

    def _lookup(self, access_key_id: str) -> Credential:
        cred = self.scenario.credential(access_key_id)
        if cred is None:
            raise _ApiError("InvalidAccessKeyId.NotFound")
        if not cred.enabled:
            raise _ApiError("InvalidAccessKeyId.Inactive")
        return cred

    def _check_fresh(self, value: str, now: float) -> None:
        moment = _parse_timestamp(value.strip())
        if moment is None:
            raise _ApiError("InvalidTimeStamp.Format",
                            f"Specified time stamp or date value is not well formatted: {value!r} "
                            "(expected YYYY-MM-DDThh:mm:ssZ in UTC).")
        if abs(now - moment) > MAX_CLOCK_SKEW:
            raise _ApiError("InvalidTimeStamp.Expired",
                            f"Specified time stamp or date value is expired: {value} is more than 15 minutes "
                            "away from the server time.")

    def _nonce_seen(self, cred: Credential, nonce: str, now: float) -> bool:
        with self._lock:
            while self._nonce_order and self._nonce_order[0][0] <= now:
                expiry, key = self._nonce_order.popleft()
                if self._nonces.get(key) == expiry:
                    del self._nonces[key]
            expiry = self._nonces.get((cred.access_key_id, nonce))
            return expiry is not None and expiry > now

    def _remember_nonce(self, cred: Credential, nonce: str, now: float) -> None:
        with self._lock:
            key = (cred.access_key_id, nonce)
            expiry = now + NONCE_TTL
            self._nonces[key] = expiry
            self._nonce_order.append((expiry, key))

    def _check_token(self, cred: Credential, token: str | None) -> None:
        if token:
            if cred.security_token is None:
                raise _ApiError("InvalidSecurityToken.Malformed")
            if not hmac.compare_digest(token.encode(), cred.security_token.encode()):
                raise _ApiError("InvalidSecurityToken.MismatchWithAccessKey")
        elif cred.security_token is not None:
            raise _ApiError("MissingSecurityToken")

    def _authenticate_v3(self, req: _Request, ctx: _Ctx, authorization: str,
                         query_pairs: list[tuple[str, str]]) -> Credential:
        if not authorization:
            raise _ApiError("MissingAccessKeyId", "The request carries neither an Authorization header nor an "
                                                  "AccessKeyId parameter.")
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != V3_ALGORITHM:
            raise _ApiError("IncompleteSignature", f"Unsupported or malformed Authorization scheme {algorithm[:40]!r}; "
                                                   f"expected {V3_ALGORITHM}.")
        parts = _auth_parts(rest)
        if parts is None:
            raise _ApiError("IncompleteSignature", "The Authorization header is malformed; expected "
                                                   "'ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..'.")
        if not parts.get("Credential"):
            raise _ApiError("MissingAccessKeyId")
        signed_raw, signature = parts.get("SignedHeaders", ""), parts.get("Signature", "")
        if not signed_raw or not re.fullmatch(r"[0-9a-f]{64}", signature):
            raise _ApiError("IncompleteSignature", "The Authorization header needs SignedHeaders and a 64-digit "
                                                   "lowercase hex Signature.")
        cred = self._lookup(parts["Credential"])
        signed = signed_raw.split(";")
        if any(not name or name != name.lower() or name.strip() != name for name in signed):
            raise _ApiError("IncompleteSignature", "SignedHeaders must be lowercase header names separated by ';'.")
        headers = req.header_map()
        must_sign = {"host"} | {h for h in headers if h.startswith("x-acs-")}
        if "content-type" in headers:
            must_sign.add("content-type")
        unsigned = sorted(must_sign - set(signed))
        if unsigned:
            raise _ApiError("IncompleteSignature", "These headers are present but not signed: "
                                                   f"{', '.join(unsigned)}.")
        for required in ("x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
            if not (headers.get(required) or [""])[0].strip():
                raise _ApiError("IncompleteSignature", f"The header {required} is required.")
        body_hash = hashlib.sha256(req.body).hexdigest()
        claimed_hash = headers["x-acs-content-sha256"][0].strip()
        if claimed_hash != body_hash:
            raise _ApiError("SignatureDoesNotMatch", "x-acs-content-sha256 does not match the SHA-256 of the "
                                                     f"request body (server computed {body_hash}).")
        now = req.arrival
        self._check_fresh(headers["x-acs-date"][0], now)
        nonce = headers["x-acs-signature-nonce"][0].strip()
        if self._nonce_seen(cred, nonce, now):
            raise _ApiError("SignatureNonceUsed")
        canonical = v3_canonical_request(req.method, "/", query_pairs, headers, signed, claimed_hash)
        string_to_sign = v3_string_to_sign(canonical)
        expected = v3_signature(cred.access_key_secret, string_to_sign)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            logger.debug("V3 signature mismatch; server canonical request:\n%s", canonical)
            raise _ApiError("SignatureDoesNotMatch", "Specified signature does not match our calculation. "
                                                     f"server StringToSign is [{string_to_sign}]")
        self._check_token(cred, (headers.get("x-acs-security-token") or [None])[0])
        self._remember_nonce(cred, nonce, now)
        return cred

    def _authenticate_v2(self, req: _Request, ctx: _Ctx, params: Mapping[str, str],
                         all_pairs: list[tuple[str, str]]) -> Credential:
        if not params.get("AccessKeyId"):
            raise _ApiError("MissingAccessKeyId")
        if not params.get("Signature"):
            raise _missing("Signature")
        cred = self._lookup(params["AccessKeyId"])
        method = params.get("SignatureMethod")
        if not method:
            raise _missing("SignatureMethod")
        if method != "HMAC-SHA1":
            raise _ApiError("InvalidSignatureMethod", f"Specified signature method {method!r} is not supported; "
                                                      "use HMAC-SHA1.")
        version = params.get("SignatureVersion")
        if not version:
            raise _missing("SignatureVersion")
        if version != "1.0":
            raise _ApiError("InvalidSignatureVersion", f"Specified signature version {version!r} is not supported; "
                                                       "use 1.0.")
        timestamp = params.get("Timestamp")
        if not timestamp:
            raise _missing("Timestamp")
        now = req.arrival
        self._check_fresh(timestamp, now)
        nonce = params.get("SignatureNonce")
        if not nonce:
            raise _missing("SignatureNonce")
        if self._nonce_seen(cred, nonce, now):
            raise _ApiError("SignatureNonceUsed")
        string_to_sign = v2_string_to_sign(req.method, [(k, v) for k, v in all_pairs if k != "Signature"])
        expected = v2_signature(cred.access_key_secret, string_to_sign)
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
            raise _ApiError("SignatureDoesNotMatch", "Specified signature is not matched with our calculation. "
                                                     f"server string to sign is:{string_to_sign}")
        self._check_token(cred, params.get("SecurityToken"))
        self._remember_nonce(cred, nonce, now)
        return cred

    # -- flow control and faults -------------------------------------------

    def _flow_control(self, cred: Credential, action: str, arrival: float, ctx: _Ctx) -> None:
        if not self.flow_control:
            return
        scope = cred.account_key
        action_limit = cred.action_qps.get(action, DOCUMENTED_ACTION_QPS.get(action))
        if cred.qps is None and action_limit is None:
            return
        if not self._admit(arrival, [((scope,), cred.qps), ((scope, action), action_limit)]):
            ctx.throttled = True
            raise _ApiError("Throttling.User")

    def _fault_error(self, ctx: _Ctx, fault: Fault) -> _ApiError:
        return _ApiError(fault.code, fault.message, fault.http_status, retry_after=fault.retry_after,
                         http200=fault.http200,
                         access_denied=_access_denied_detail(None, ctx.action) if fault.code in
                         ("Ram.PermissionDeny", "Forbidden.RAM") else None)

    def _html_reply(self, ctx: _Ctx) -> _Reply:
        return _Reply(502, _HTML_502, "text/html", {"x-acs-request-id": ctx.request_id}, code="fault:html")

    def _corrupt_answer(self, kind: str, action: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        unknown = kind == "unknown_enum"
        state = UNKNOWN_ENUM_VALUES["status"] if unknown else None
        if action == "QueryChatappPhoneNumbers":
            items = [dict(item) for item in payload.get("PhoneNumbers") or []]
            if kind == "duplicate_numbers":
                items = [copy for item in items for copy in (item, dict(item))]
            else:
                for item in items:
                    for key, role in _NUMBER_ENUMS:
                        item[key] = UNKNOWN_ENUM_VALUES[role] if unknown else None
                    if not unknown:
                        for key in _NUMBER_DROPPED:
                            item.pop(key, None)
            payload["PhoneNumbers"] = items
            return payload
        data = payload.get("Data")
        if not isinstance(data, dict):
            return payload
        data = dict(data)
        if action == "QueryChatappBindWaba":
            data["AccountReviewStatus"] = state
            dropped: tuple[str, ...] = ("Name", "Currency")
        elif action == "GetPhoneNumberVerificationStatus":
            data["CodeVerificationStatus"] = state
            dropped = ("Id",)
        else:  # GetWhatsappHealthStatus
            data["CanSendMessage"] = state
            entities = [dict(e, CanSendMessage=state) for e in data.get("Entities") or []]
            if not unknown:
                for entity in entities:
                    entity.pop("Errors", None)
            data["Entities"] = entities
            dropped = ()
        if not unknown:
            for key in dropped:
                data.pop(key, None)
        payload["Data"] = data
        return payload

    # -- replies -----------------------------------------------------------

    def _encode(self, ctx: _Ctx, root: str, payload: Mapping[str, Any]) -> tuple[bytes, str]:
        if ctx.fmt == "XML":
            return _to_xml(root, payload), XML_CONTENT_TYPE
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), JSON_CONTENT_TYPE

    def _ok_reply(self, ctx: _Ctx, payload: Mapping[str, Any]) -> _Reply:
        payload = self._data_fault(ctx, dict(payload))
        payload["RequestId"] = ctx.request_id
        body, ctype = self._encode(ctx, f"{ctx.action}Response", payload)
        return _Reply(200, body, ctype, {"x-acs-request-id": ctx.request_id}, code=str(payload.get("Code")))

    def _error_reply(self, ctx: _Ctx, err: _ApiError) -> _Reply:
        headers = {"x-acs-request-id": ctx.request_id}
        if err.retry_after is not None:
            headers["x-acs-retry-after"] = str(err.retry_after)
        if err.http200:
            payload: dict[str, Any] = {"RequestId": ctx.request_id, "Code": err.code, "Message": err.message}
            if err.access_denied is not None:
                payload["AccessDeniedDetail"] = json.dumps(err.access_denied, separators=(",", ":"))
            if ctx.action != "GetPhoneNumberVerificationStatus":
                payload["Success"] = False
            body, ctype = self._encode(ctx, f"{ctx.action or 'Unknown'}Response", payload)
            return _Reply(200, body, ctype, headers, code=err.code)
        payload = {
            "RequestId": ctx.request_id,
            "HostId": ctx.host_id,
            "Code": err.code,
            "Message": err.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={quote(err.code)}&product=cams"
                         f"&requestId={ctx.request_id}",
        }
        if err.access_denied is not None:
            payload["AccessDeniedDetail"] = err.access_denied
        body, ctype = self._encode(ctx, "Error", payload)
        return _Reply(err.status, body, ctype, headers, code=err.code)

    # -- actions -----------------------------------------------------------

    def _resolve_space(self, cred: Credential, params: Mapping[str, str], required: bool,
                       takes_isv_code: bool) -> Space:
        """The space named by CustSpaceId, after the ownership check; ``takes_isv_code`` for the actions
        whose documented parameters include IsvCode (the others never check it)."""
        space_id = params.get("CustSpaceId") or None
        if space_id is None:
            if required:
                raise _missing("CustSpaceId")
            owned = self.scenario.spaces_of(cred.access_key_id)
            if not owned:
                raise _ApiError("Unknown.ResourceOwnerId")
            space = next((s for s in owned if s.default), owned[0])
        else:
            space = self.scenario.space(space_id)
            owner = self.scenario.credential(space.access_key_id) if space is not None else None
            if space is None or owner is None or owner.account_key != cred.account_key:
                raise _ApiError("Unknown.ResourceOwnerId")
        if takes_isv_code and space.isv_code is not None and params.get("IsvCode") != space.isv_code:
            raise _ApiError("Ram.PermissionDeny", "You are not authorized to perform the operation. "
                                                  "(IsvCode does not match this space.)")
        return space

    def _query_phone_numbers(self, cred: Credential, params: Mapping[str, str]) -> dict[str, Any]:
        space = self._resolve_space(cred, params, required=False, takes_isv_code=True)
        status_filter = params.get("Status") or None
        t = self.scenario_time()
        items = []
        for number in space.numbers:
            state = self.number_state(space, number.phone_number, t)
            if not state.get("present", True):
                continue
            if status_filter is not None and state.get("status") != status_filter:
                continue
            items.append(_wire(state, NUMBER_FIELDS))
        return {"RequestId": "", "Code": "OK", "Message": "SUCCESS", "Success": True, "PhoneNumbers": items}

    def _query_bind_waba(self, cred: Credential, params: Mapping[str, str]) -> dict[str, Any]:
        space = self._resolve_space(cred, params, required=False, takes_isv_code=True)
        payload: dict[str, Any] = {"RequestId": "", "Code": "OK", "Message": "SUCCESS", "Success": True}
        state = self.waba_state(space)
        if state is not None:
            payload["Data"] = _wire(state, WABA_FIELDS)
        return payload

    def _get_verification_status(self, cred: Credential, params: Mapping[str, str]) -> dict[str, Any]:
        if not params.get("CustSpaceId"):
            raise _missing("CustSpaceId")
        if not params.get("PhoneNumber"):
            raise _missing("PhoneNumber")
        space = self._resolve_space(cred, params, required=True, takes_isv_code=False)
        state = self.number_state(space, params["PhoneNumber"])
        if state is None or not state.get("present", True):
            raise _ApiError("InvalidParameter.PhoneNumberError")
        data = _wire(state, (("phone_number", "PhoneNumber"), ("id", "Id"),
                             ("code_verification_status", "CodeVerificationStatus")), extra=False)
        return {"RequestId": "", "Code": "OK", "Message": "None", "Data": data}

    def _get_health_status(self, cred: Credential, params: Mapping[str, str]) -> dict[str, Any]:
        for required in ("CustSpaceId", "NodeType"):
            if not params.get(required):
                raise _ApiError("MissingParameter", f"The input parameter {required} that is mandatory for "
                                                    "processing this request is not supplied.")
        node_type = params["NodeType"]
        if node_type not in ("phone", "waba"):
            raise _ApiError("InvalidParameter", f"NodeType {node_type!r} is not supported by the emulator "
                                                "(use phone or waba).")
        space = self._resolve_space(cred, params, required=True, takes_isv_code=False)
        t = self.scenario_time()
        waba = self.waba_state(space, t) or {}
        entities = []
        if node_type == "phone":
            if not params.get("PhoneNumber"):
                raise _ApiError("InvalidParameter", "PhoneNumber is needed when NodeType is phone.")
            state = self.number_state(space, params["PhoneNumber"], t)
            if state is None or not state.get("present", True):
                raise _ApiError("InvalidParameter.PhoneNumberError")
            entities.append(_health_entity("PHONE_NUMBER", ("PhoneNumber", state["phone_number"]),
                                           state.get("can_send_message"),
                                           _HEALTH_BY_STATUS.get(str(state.get("status")), "AVAILABLE"),
                                           state.get("health_errors")))
        elif params.get("WabaId") and params["WabaId"] != waba.get("id"):
            raise _ApiError("InvalidParameter", "The WabaId does not belong to this space.")
        if waba:
            entities.append(_health_entity("WABA", ("WabaId", waba.get("id")), waba.get("can_send_message"),
                                           _HEALTH_BY_REVIEW.get(str(waba.get("account_review_status")), "AVAILABLE"),
                                           waba.get("health_errors")))
            if waba.get("business_id") is not None:
                entities.append(_health_entity("BUSINESS", ("BusinessId", waba["business_id"]),
                                               waba.get("business_can_send_message"), "AVAILABLE",
                                               waba.get("business_errors")))
            if waba.get("app_can_send_message") is not None:
                entities.append(_health_entity("APP", None, waba["app_can_send_message"], "AVAILABLE",
                                               waba.get("app_errors")))
        overall = max((e["CanSendMessage"] for e in entities), key=lambda v: _HEALTH_RANK.get(v, 1),
                      default="AVAILABLE")
        return {"RequestId": "", "Code": "OK", "Message": "SUCCESS", "Success": True,
                "Data": {"CanSendMessage": overall, "Entities": entities}}


def _health_entity(kind: str, typed_id: tuple[str, Any] | None, explicit: Any, derived: str,
                   errors: Any) -> dict[str, Any]:
    """One ``Entities`` item: ``EntityType``, ``CanSendMessage``, the typed id field (none for APP) and
    ``Errors`` (always a list; never ``AdditionalInfo``, which CAMS does not relay)."""
    entity: dict[str, Any] = {"EntityType": kind, "CanSendMessage": explicit or derived}
    if typed_id is not None and typed_id[1] is not None:
        entity[typed_id[0]] = str(typed_id[1])
    entity["Errors"] = _health_errors(errors)
    return entity


def _health_errors(raw: Any) -> list[dict[str, Any]]:
    """Scenario errors (snake_case like Meta's, or CAMS' PascalCase) in CAMS' shape, ``ErrorCode`` a string."""
    if raw is None:
        return []
    out = []
    for item in raw if isinstance(raw, list) else [raw]:
        if not isinstance(item, Mapping):
            continue
        error = {}
        for wire, snake in (("ErrorCode", "error_code"), ("ErrorDescription", "error_description"),
                            ("PossibleSolution", "possible_solution")):
            value = item.get(wire, item.get(snake))
            if value is not None:
                error[wire] = str(value)
        out.append(error)
    return out


def _auth_parts(rest: str) -> dict[str, str] | None:
    """``Credential=..,SignedHeaders=..,Signature=..`` in that order, commas without spaces."""
    pieces = rest.split(",")
    expected = ("Credential", "SignedHeaders", "Signature")
    if len(pieces) != len(expected):
        return None
    parts: dict[str, str] = {}
    for piece, name in zip(pieces, expected):
        key, sep, value = piece.partition("=")
        if not sep or key != name:
            return None
        parts[key] = value
    return parts


def _claimed_v3_key(authorization: str) -> str | None:
    match = re.search(r"Credential=([^,\s]*)", authorization)
    return match.group(1) or None if match else None


def _access_denied_detail(cred: Credential | None, action: str | None) -> dict[str, str]:
    principal = cred.access_key_id if cred is not None else "emulated-user"
    owner = cred.account_key if cred is not None else "emulated-account"
    diagnostic = base64.b64encode(f"deny cams:{action} for {principal}".encode()).decode()
    return {
        "AuthAction": f"cams:{action}",
        "AuthPrincipalType": "SubUser",
        "AuthPrincipalDisplayName": principal,
        "AuthPrincipalOwnerId": owner,
        "PolicyType": "AccountLevelIdentityBasedPolicy",
        "NoPermissionType": "ImplicitDeny",
        "EncodedDiagnosticMessage": diagnostic,
    }
