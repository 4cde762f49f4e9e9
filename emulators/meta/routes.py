"""Graph routes and request processing of the Meta emulator: routing, authentication, error replies."""

from __future__ import annotations

import hmac
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from ..common import ApiError, BodyError, Context, Reply, Request, json_bytes
from ..scenario import Credential, Fault
from .answers import _AnswersMixin
from .graph import GraphError, _fbtrace_id, _int_code, _MetaContext, _Target
from .model import (
    _VERSION,
    DEFAULT_NUMBER_FIELDS,
    DEFAULT_WABA_FIELDS,
    JSON_CONTENT_TYPE,
    LIST_ACTION,
    NUMBER_ACTION,
    NUMBER_FIELDS,
    TRANSIENT_CODES,
    UNKNOWN_EDGE_ACTION,
    UNKNOWN_NODE_ACTION,
    WABA_ACTION,
    WABA_FIELDS,
    WRITE_ACTIONS,
    WRITE_EDGES,
    WRITE_METHODS,
)


class _RoutesMixin(_AnswersMixin):
    """Routing, authentication and error replies of :class:`MetaEmulator`; the answers come from
    :class:`_AnswersMixin`, which the routes build on (so its methods need no declarations here)."""

    # what this mixin uses of the emulator (see emulators.common's docstring)
    throttle_status: int

    if TYPE_CHECKING:

        def _admit(self, arrival: float, buckets: Sequence[tuple[Hashable, int | None]]) -> bool: ...
        def _apply_faults(self, ctx: Context) -> Reply | None: ...
        def _count_hourly(self, ctx: _MetaContext, cred: Credential) -> None: ...

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

    def _error_reply(self, ctx: Context, err: ApiError) -> Reply:
        code = _int_code(err.code)
        error: dict[str, Any] = {
            "message": err.message,
            "type": getattr(err, "error_type", "OAuthException"),
            "code": code,
        }
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
            return version, UNKNOWN_NODE_ACTION, node, None, False  # refined once the node is resolved
        if edge == "phone_numbers" and not extra:
            return version, LIST_ACTION, node, edge, False
        return version, UNKNOWN_EDGE_ACTION, node, edge, extra

    # -- request processing ------------------------------------------------

    def _process(self, req: Request, ctx: Context) -> Reply:
        assert isinstance(ctx, _MetaContext)
        query = dict(parse_qsl(req.target.split("?", 1)[1], keep_blank_values=True)) if "?" in req.target else {}
        version, action, node, _edge, extra = self._route(req.method, ctx.path)
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
            raise GraphError(
                4, "(#4) Application request limit reached (too many calls in one second)", self.throttle_status
            )
        self._count_hourly(ctx, cred)

        fault_reply = self._apply_faults(ctx)
        if fault_reply is not None:
            return fault_reply
        if (target.kind == "unknown" and node is not None) or (node is None and action not in WRITE_ACTIONS):
            raise GraphError(
                100,
                f"Unsupported {'get' if req.method == 'GET' else req.method.lower()} request. "
                f"Object with ID '{(node or '')[:80]}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation.",
                subcode=33,
                error_type="GraphMethodException",
            )
        if not target.owned and target.kind != "unknown":
            raise GraphError(200, "(#200) The access token has no permission to access this object")
        if action in WRITE_ACTIONS:
            raise GraphError(
                10,
                f"(#10) Emulator: {req.method} {action} has side effects; the emulator records the call and refuses it",
                user_title="Emulator.WriteActionCalled",
            )
        if extra or action == UNKNOWN_EDGE_ACTION or (action == LIST_ACTION and target.kind != "waba"):
            rest = ctx.path.strip("/").split("/", 2 if version else 1)[-1]
            raise GraphError(2500, f"Unknown path components: /{rest[:120]}")
        assert target.space is not None
        if action == LIST_ACTION:
            return self._ok_reply(ctx, self._list(req, query, ctx, target.space, version))
        if action == NUMBER_ACTION:
            state = self.number_state(target.space, target.phone_number or "") or {}
            extras = state.get("wire_extra")
            fields = self._fields(
                query,
                NUMBER_FIELDS,
                DEFAULT_NUMBER_FIELDS,
                "WhatsAppBusinessPhoneNumber",
                version,
                wire_extra_keys=frozenset(extras) if isinstance(extras, Mapping) else frozenset(),
            )
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
