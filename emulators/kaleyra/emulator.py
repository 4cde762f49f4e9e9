"""The Kaleyra emulator: routing, authentication, the two reads, faults and webhooks (see the package docstring)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..common import ProviderEmulator
from ..common.records import ApiError, BodyError, Context, Reply, Request
from ..common.wire import (
    HEALTH_BY_REVIEW,
    HEALTH_BY_STATUS,
    PHONE_NODE_OBSERVED_FIELDS,
    UNKNOWN_ENUM_VALUES,
    WRITE_REFUSED,
    json_bytes,
    merge_wire_extra,
    wire_fields,
    worst_health,
)
from ..scenario import Credential, Fault, Space
from ..webhooks import Event, OutgoingRequest, append_query
from .model import (
    _DEFAULTS,
    _NUMBER_KNOWN,
    _WABA_KNOWN,
    DETAILS_ACTION,
    JSON_CONTENT_TYPE,
    KALEYRA_EVENTS,
    LIST_ACTION,
    LIST_FIELDS,
    READ_ACTIONS,
    SUCCESS_CODE,
    SUCCESS_MESSAGE,
    WRITE_ACTIONS,
    WRITE_OPS,
    _auth_error,
    _entity,
    _KError,
    _with_display,
    logger,
)


class KaleyraEmulator(ProviderEmulator):
    """Kaleyra's WhatsApp v2 number reads on loopback, driven by a scenario.

    Same public API as :class:`~emulators.cams.CamsEmulator`; ``set_number``
    takes the WABA id as the space.
    """

    provider_name = "Kaleyra"
    json_content_type = JSON_CONTENT_TYPE
    known_number_attributes = _NUMBER_KNOWN
    known_waba_attributes = _WABA_KNOWN
    write_actions = WRITE_ACTIONS
    observed_number_fields = PHONE_NODE_OBSERVED_FIELDS
    observed_waba_fields = ("present", "account_review_status", "can_send_message")
    webhooks_supported = True
    data_fault_actions: ClassVar[Mapping[str, frozenset[str]]] = {
        "unknown_enum": READ_ACTIONS,
        "null_fields": READ_ACTIONS,
        "duplicate_numbers": frozenset({LIST_ACTION}),
    }
    _logger = logger

    # -- hooks ---------------------------------------------------------------

    def _observe_number(self, space: Space, state: Mapping[str, Any], waba: Mapping[str, Any] | None) -> dict[str, Any]:
        observed = super()._observe_number(space, state, waba)
        observed["health"] = self._health_status(space, _with_display(state))["can_send_message"]
        return observed

    def _webhook_request(
        self, space: Space, event: Event, target: Mapping[str, Any], wall: float, *, forged: bool
    ) -> OutgoingRequest | None:
        if (
            event.field != "phone_number_quality_update"
            or event.event not in KALEYRA_EVENTS
            or event.phone_number is None
        ):
            return None
        url = target["url"]
        if forged:
            parts = urlsplit(url)
            pairs = [(k, "forged-" + secrets.token_hex(4)) for k, _ in parse_qsl(parts.query, keep_blank_values=True)]
            url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), parts.fragment))
        params = [("display_phone_number", event.phone_number), ("event", event.event)]
        limit = event.value.get("current_limit") or event.value.get("max_daily_conversations_per_business")
        if limit is not None:
            params.append(("current_limit", str(limit)))
        return OutgoingRequest("GET", append_query(url, params), [("User-Agent", "Kaleyra-Webhook")])

    def _internal_error(self) -> ApiError:
        return _KError("WA500", detail={"error": "Internal server error"})

    def _body_error(self, exc: BodyError) -> ApiError:
        return _KError("WA400", exc.message, exc.status, detail={"payload": exc.message})

    def _fault_error(self, ctx: Context, fault: Fault) -> ApiError:
        status = 200 if fault.http200 else fault.http_status
        err = _KError(fault.code, fault.message, status, retry_after=fault.retry_after)
        err.detail = {"error": err.message}
        return err

    def _error_reply(self, ctx: Context, err: ApiError) -> Reply:
        headers = {}
        if err.retry_after is not None:
            headers["Retry-After"] = str(err.retry_after)
        error = err.detail if isinstance(err.detail, Mapping) else {"error": err.message}
        payload = {
            "code": err.code,
            "message": err.message,
            "data": [] if err.code == "RBC001" else {},
            "error": dict(error),
        }
        return Reply(err.status, json_bytes(payload), JSON_CONTENT_TYPE, headers, code=str(err.code))

    def _ok_reply(self, data: Any, ctx: Context | None = None) -> Reply:
        if ctx is not None:
            data = self._data_fault(ctx, data)
        payload = {"code": SUCCESS_CODE, "message": SUCCESS_MESSAGE, "data": data, "error": {}}
        return Reply(200, json_bytes(payload), JSON_CONTENT_TYPE, code=SUCCESS_CODE)

    # -- request processing ------------------------------------------------

    def _route(self, path: str) -> tuple[str, str | None, str | None]:
        """(action, sid, target) where target is the WABA id or the phone number of the path."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts and parts[0] == "v1":
            return "v1", parts[1] if len(parts) > 1 and parts[1] else None, None
        if len(parts) < 5 or parts[0] != "v2" or parts[2] != "whatsapp" or not parts[1]:
            raise _KError("WA404", f"No such endpoint: {path[:200]}")
        sid, target, rest = parts[1], parts[3], parts[4:]
        if rest == ["number"]:
            return LIST_ACTION, sid, target
        if rest == ["phone_number_details"]:
            return DETAILS_ACTION, sid, target
        if len(rest) == 2 and rest[0] == "number" and rest[1] in WRITE_OPS:
            return WRITE_OPS[rest[1]], sid, target
        raise _KError("WA404", f"No such endpoint: {path[:200]}")

    def _process(self, req: Request, ctx: Context) -> Reply:
        action, sid, target = self._route(ctx.path)
        ctx.action = action
        ctx.access_key_id = sid
        number = None
        if action == DETAILS_ACTION:
            number = target.lstrip("+") if target else None
            ctx.phone_number = number or None
        elif target is not None:
            ctx.space_id = target
        if action in READ_ACTIONS and req.method != "GET":
            raise _KError("WA405", f"{req.method} is not allowed here; use GET")

        cred = self._authenticate(req, sid)
        if not cred.allows(action):
            raise _KError(
                "WA401", "Unauthorized access: the account may not use this API", detail={"error": "permission denied"}
            )
        ctx.authenticated = True
        if not self._admit(req.arrival, [((cred.account_key,), cred.qps)]):
            ctx.throttled = True
            raise _KError("WA429", detail={"error": "rate limit exceeded"})

        located = self._locate_number(cred, number) if number is not None else None
        if located is not None and located[0] is not None:
            ctx.space_id = located[0].space_id
        fault_reply = self._apply_faults(ctx)
        if fault_reply is not None:
            return fault_reply
        if action in WRITE_ACTIONS:
            raise _KError(
                WRITE_REFUSED,
                detail={"error": f"{action} has side effects; the emulator records the call and refuses it"},
            )
        if action == LIST_ACTION:
            return self._ok_reply(self._list_numbers(cred, target or ""), ctx)
        return self._ok_reply(self._details(number or "", located), ctx)

    def _corrupt_answer(self, kind: str, action: str | None, payload: Any) -> Any:
        unknown = kind == "unknown_enum"
        status = UNKNOWN_ENUM_VALUES["status"] if unknown else None
        quality = UNKNOWN_ENUM_VALUES["quality"] if unknown else None
        tier = UNKNOWN_ENUM_VALUES["tier"] if unknown else None
        described = ("verified_name", "name_status", "new_name_status", "code_verification_status")
        if action == LIST_ACTION and isinstance(payload, list):
            entries = [dict(e) if isinstance(e, dict) else e for e in payload]
            if kind == "duplicate_numbers":
                return [c for e in entries for c in (e, dict(e) if isinstance(e, dict) else e)]
            for entry in entries:
                if isinstance(entry, dict):
                    entry.update(status=status, quality_rating=quality)
                    if not unknown:
                        for key in described:
                            entry.pop(key, None)
            return entries
        if action == DETAILS_ACTION and isinstance(payload, dict):
            obj = dict(payload)
            obj.update(status=status, quality_rating=quality, messaging_limit_tier=tier)
            if unknown:
                obj["quality_score"] = {"score": quality}
                if "whatsapp_business_manager_messaging_limit" in obj:
                    obj["whatsapp_business_manager_messaging_limit"] = tier
            else:
                for key in ("quality_score", "whatsapp_business_manager_messaging_limit", *described):
                    obj.pop(key, None)
            health = obj.get("health_status")
            if isinstance(health, dict):
                obj["health_status"] = {**health, "can_send_message": status}
            return obj
        return payload

    def _authenticate(self, req: Request, sid: str | None) -> Credential:
        api_key = (req.header("api-key") or "").strip()
        if not api_key:
            raise _auth_error("api-key header is missing")
        cred = self.scenario.credential(sid)
        if (
            cred is None
            or not cred.enabled
            or not hmac.compare_digest(cred.access_key_secret.encode(), api_key.encode("utf-8", "replace"))
        ):
            raise _auth_error("record not found")
        return cred

    # -- reads ---------------------------------------------------------------

    def _list_numbers(self, cred: Credential, waba_id: str) -> list[dict[str, Any]]:
        space = self.scenario.waba_space(waba_id)
        if space is None or not self.scenario.owned_by(space, cred):
            raise _KError(
                "WA401",
                "Waba_id is not present or does not belong to the account.",
                detail={"waba_id": "Waba_id is not present or does not belong to the account."},
            )
        t = self.scenario_time()
        out = []
        for number in space.numbers:
            state = self.number_state(space, number.phone_number, t)
            if state is None or not state.get("present", True):
                continue
            state = _with_display(state)
            out.append(wire_fields(state, LIST_FIELDS, extra=False))
        return out

    def _locate_number(self, cred: Credential, number: str) -> tuple[Space | None, bool]:
        """(space holding the number, owned by the caller); (None, False) if no space lists it."""
        if not number.isdigit():
            return None, False
        foreign: Space | None = None
        t = self.scenario_time()
        for space in self.scenario.spaces:
            state = self.number_state(space, number, t)
            if state is None or not state.get("present", True):
                continue
            if self.scenario.owned_by(space, cred):
                return space, True
            foreign = foreign or space
        return foreign, False

    def _details(self, number: str, located: tuple[Space | None, bool] | None) -> dict[str, Any]:
        if not number.isdigit():
            raise _KError("WA400", "invalid phone number", detail={"phone_number": "invalid phone number"})
        space, owned = located or (None, False)
        if space is None:
            raise _KError("WA400", "invalid phone number", detail={"phone_number": "invalid phone number"})
        if not owned:
            raise _KError(
                "WA401",
                "Phone number is not present or does not belong to the account.",
                detail={"phone_number": "Phone number is not present or does not belong to the account."},
            )
        state = self.number_state(space, number)
        return self._phone_object(space, state or {"phone_number": number})

    def _phone_object(self, space: Space, state: dict[str, Any]) -> dict[str, Any]:
        values = _with_display(state)
        for key, default in _DEFAULTS.items():
            values.setdefault(key, default)
        quality_score = values.get("quality_score")
        if isinstance(quality_score, str):
            quality_score = {"score": quality_score}
        elif quality_score is None and "quality_score" not in state and values.get("quality_rating") is not None:
            quality_score = {"score": values["quality_rating"]}
        throughput = values.get("throughput_level")
        out: dict[str, Any] = {}
        for key, value in (
            ("id", values.get("id")),
            ("display_phone_number", values.get("display_phone_number")),
            ("verified_name", values.get("verified_name")),
            ("quality_rating", values.get("quality_rating")),
            ("quality_score", quality_score),
            ("status", values.get("status")),
            ("messaging_limit_tier", values.get("messaging_limit_tier")),
            ("whatsapp_business_manager_messaging_limit", values.get("whatsapp_business_manager_messaging_limit")),
            ("name_status", values.get("name_status")),
            ("new_name_status", values.get("new_name_status")),
            ("code_verification_status", values.get("code_verification_status")),
            ("throughput", {"level": throughput} if throughput is not None else None),
            ("platform_type", values.get("platform_type")),
            ("account_mode", values.get("account_mode")),
            ("is_official_business_account", values.get("is_official_business_account")),
            ("health_status", self._health_status(space, values)),
        ):
            if value is not None:
                out[key] = value
        return merge_wire_extra(out, state)

    def _health_status(self, space: Space, state: Mapping[str, Any]) -> dict[str, Any]:
        phone = _entity(
            "PHONE_NUMBER", state.get("id"), state, HEALTH_BY_STATUS.get(str(state.get("status")), "AVAILABLE")
        )
        waba = self.waba_state(space) or {}
        waba_entity = _entity(
            "WABA",
            waba.get("id") or space.space_id,
            waba,
            HEALTH_BY_REVIEW.get(str(waba.get("account_review_status")), "AVAILABLE"),
        )
        entities = [phone, waba_entity]
        if waba.get("business_id") is not None:
            entities.append({"entity_type": "BUSINESS", "id": waba["business_id"], "can_send_message": "AVAILABLE"})
        return {"can_send_message": worst_health(e["can_send_message"] for e in entities), "entities": entities}
