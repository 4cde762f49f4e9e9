"""Flow control, faults and replies of the CAMS emulator."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..common import UNKNOWN_ENUM_VALUES, ApiError, Context
from ..common.server import _ServerMixin
from ..scenario import Credential, Fault
from .auth import _access_denied_detail
from .model import (
    _HTML_502,
    _NUMBER_DROPPED,
    _NUMBER_ENUMS,
    DOCUMENTED_ACTION_QPS,
    JSON_CONTENT_TYPE,
    XML_CONTENT_TYPE,
)
from .wire import _ApiError, _Ctx, _Reply, _to_xml


class _RepliesMixin(_ServerMixin):
    """Flow control, faults and replies of :class:`CamsEmulator`."""

    # what this mixin uses of the emulator (see emulators.common's docstring)
    flow_control: bool

    if TYPE_CHECKING:

        def _admit(self, arrival: float, buckets: Sequence[tuple[Hashable, int | None]]) -> bool: ...

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

    def _fault_error(self, ctx: Context, fault: Fault) -> _ApiError:
        assert fault.code is not None  # an error fault always has one (Fault validates it)
        return _ApiError(
            fault.code,
            fault.message,
            fault.http_status,
            retry_after=fault.retry_after,
            http200=fault.http200,
            detail=_access_denied_detail(None, ctx.action)
            if fault.code in ("Ram.PermissionDeny", "Forbidden.RAM")
            else None,
        )

    def _html_reply(self, ctx: Context) -> _Reply:
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
        answer: dict[str, Any] = self._data_fault(ctx, dict(payload))
        answer["RequestId"] = ctx.request_id
        body, ctype = self._encode(ctx, f"{ctx.action}Response", answer)
        return _Reply(200, body, ctype, {"x-acs-request-id": ctx.request_id}, code=str(answer.get("Code")))

    def _error_reply(self, ctx: Context, err: ApiError) -> _Reply:
        assert isinstance(ctx, _Ctx)  # see CamsEmulator._new_context
        access_denied = err.detail if isinstance(err, _ApiError) else None
        headers = {"x-acs-request-id": ctx.request_id}
        if err.retry_after is not None:
            headers["x-acs-retry-after"] = str(err.retry_after)
        if err.http200:
            payload: dict[str, Any] = {"RequestId": ctx.request_id, "Code": err.code, "Message": err.message}
            if access_denied is not None:
                payload["AccessDeniedDetail"] = json.dumps(access_denied, separators=(",", ":"))
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
        if access_denied is not None:
            payload["AccessDeniedDetail"] = access_denied
        body, ctype = self._encode(ctx, "Error", payload)
        return _Reply(err.status, body, ctype, headers, code=err.code)
