"""The CAMS emulator class: request processing on top of its concern mixins."""

from __future__ import annotations

import uuid
from collections import deque
from typing import Unpack
from urllib.parse import urlsplit

from ..common import BodyError, Context, EmulatorOptions, ProviderEmulator
from ..common.faults import data_faults
from ..common.wire import WRITE_REFUSED
from ..scenario import Scenario
from .actions import _ActionsMixin
from .auth import _access_denied_detail, _AuthMixin, _claimed_v3_key
from .model import (
    _ENUM_FAULT_ACTIONS,
    _NUMBER_KNOWN,
    _WABA_KNOWN,
    API_VERSION,
    DEFAULT_HOST_ID,
    JSON_CONTENT_TYPE,
    KNOWN_ACTIONS,
    WRITE_ACTIONS,
    logger,
)
from .replies import _RepliesMixin
from .wire import _ApiError, _Ctx, _missing, _parse_pairs, _Reply, _Request

# ---------------------------------------------------------------------------
# the emulator


class CamsEmulator(_AuthMixin, _RepliesMixin, _ActionsMixin, ProviderEmulator):
    """A CAMS endpoint on loopback, driven by a :class:`~emulators.scenario.Scenario`.

    ``clock`` is the wall clock (epoch seconds) used for signature freshness,
    nonce expiry and the per-second flow-control windows; scenario time is
    ``clock() - start time + advance()`` offsets.  Lifecycle, scenario time,
    faults, overrides and the request log come from
    :class:`~emulators.common.ProviderEmulator`.
    """

    provider_name = "CAMS"

    server_software = "Tengine"

    json_content_type = JSON_CONTENT_TYPE

    known_number_attributes = frozenset(_NUMBER_KNOWN)

    known_waba_attributes = frozenset(_WABA_KNOWN)

    write_actions = WRITE_ACTIONS

    data_fault_actions = data_faults(_ENUM_FAULT_ACTIONS, {"QueryChatappPhoneNumbers"})

    padding_key = "EmulatorPadding"

    _logger = logger

    def __init__(
        self,
        scenario: Scenario,
        *,
        host_id: str | None = None,
        flow_control: bool = True,
        **options: Unpack[EmulatorOptions],
    ):
        super().__init__(scenario, **options)
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
        host_id = (
            self._host_id or (host.rsplit(":", 1)[0] if host and not host.endswith("]") else host) or DEFAULT_HOST_ID
        )
        return _Ctx(request_id=str(uuid.uuid4()).upper(), host_id=host_id)

    def _internal_error(self) -> _ApiError:
        return _ApiError("InternalError")

    def _body_error(self, exc: BodyError) -> _ApiError:
        return _ApiError("RequestEntityTooLarge" if exc.status == 413 else "InvalidParameter", exc.message)

    def _common_headers(self, ctx: Context) -> dict[str, str]:
        return {"x-acs-request-id": ctx.request_id}

    def _process(self, req: _Request, ctx: Context) -> _Reply:
        assert isinstance(ctx, _Ctx)  # see _new_context
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
            raise _ApiError("Ram.PermissionDeny", detail=_access_denied_detail(cred, action))
        if action in WRITE_ACTIONS:
            raise _ApiError(
                WRITE_REFUSED,
                f"{action} has side effects; the emulator records the call and refuses it.",
            )
        handler = self._actions.get(action)
        if handler is None:
            raise _ApiError("Emulator.ActionNotEmulated", f"{action} exists in CAMS but is not emulated.")
        payload = handler(cred, params)
        return self._ok_reply(ctx, payload)
