"""The NxCloud emulator: errors, request processing and the getPhone answer."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from ..common import (
    UNKNOWN_ENUM_VALUES,
    ApiError,
    BodyError,
    Context,
    ProviderEmulator,
    Reply,
    Request,
    display_number,
    json_bytes,
    merge_wire_extra,
)
from ..common.faults import data_faults
from ..scenario import Credential, Fault, Scenario, ScenarioError, Space
from ..webhooks import Event, OutgoingRequest
from .model import (
    _NUMBER_KNOWN,
    ACTION,
    ALGORITHMS,
    BIZ_TYPE,
    COMMON_HEADERS,
    ENDPOINTS,
    ERROR_TABLE,
    JSON_CONTENT_TYPE,
    MAX_TS_SKEW_MS,
    NUMBER_FIELDS,
    RESPONSE_SHAPES,
    THROTTLE_MESSAGE,
    THROTTLE_STATUS,
    WRITE_ACTIONS,
    logger,
)
from .signing import sign, verify

# ---------------------------------------------------------------------------
# errors


class _NxError(ApiError):
    ERRORS = ERROR_TABLE
    DEFAULT = (200, "Request failed")


def _header_text(value: str) -> str:
    """Header values arrive decoded as ISO-8859-1; give back the UTF-8 text the client sent."""
    try:
        return value.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _wire_code(code: Any) -> Any:
    if isinstance(code, str) and re.fullmatch(r"-?\d{1,9}", code.strip()):
        return int(code)
    return code


def _meta_error(message: str | None) -> dict[str, Any]:
    """A Graph API error as NxCloud passes it through with code 9099."""
    return {
        "message": message or "(#131000) Something went wrong",
        "type": "OAuthException",
        "code": 131000,
        "error_data": {"messaging_product": "whatsapp", "details": "Something went wrong"},
        "fbtrace_id": uuid.uuid4().hex[:23],
    }


# ---------------------------------------------------------------------------
# the emulator


class NxCloudEmulator(ProviderEmulator):
    """NxCloud's ``getPhone`` on loopback, driven by a :class:`~emulators.scenario.Scenario`.

    Same public API as :class:`~emulators.cams.CamsEmulator`: ``start()``,
    ``stop()``, ``url``, ``port``, ``advance()``, ``scenario_time()``, ``inject()``,
    ``clear_faults()``, ``set_number(appkey, phone, ...)``, ``requests``,
    ``per_second_counts()``, ``max_requests_in_any_second()``, ``write_action_calls()``.
    """

    provider_name = "NxCloud"
    json_content_type = JSON_CONTENT_TYPE
    known_number_attributes = _NUMBER_KNOWN
    known_waba_attributes = frozenset({"id", "name", "present"})
    write_actions = WRITE_ACTIONS
    webhooks_supported = True
    data_fault_actions = data_faults({ACTION})
    _logger = logger

    def _check_scenario(self, scenario: Scenario) -> None:
        for i, space in enumerate(scenario.spaces):
            shape = space.extra.get("response_shape", "map")
            if shape not in RESPONSE_SHAPES:
                raise ScenarioError(
                    f"spaces[{i}].extra.response_shape", f"must be one of {', '.join(RESPONSE_SHAPES)}, got {shape!r}"
                )

    # -- hooks ---------------------------------------------------------------

    def _webhook_request(
        self, space: Space, event: Event, target: Mapping[str, Any], wall: float, *, forged: bool
    ) -> OutgoingRequest | None:
        owner = self.scenario.credential(space.access_key_id)
        if owner is None:
            return None
        value = dict(event.value)
        if event.phone_number is not None:
            value["business_phone"] = event.phone_number
        waba_id = (self.waba_state(space) or {}).get("id")
        if waba_id is not None:
            value["wabaId"] = str(waba_id)
        value["time"] = int(wall)
        if event.event is not None:
            value["event"] = event.event
        body = json_bytes({"field": event.field, "value": value})
        ts = str(int(wall * 1000))
        secret = owner.access_key_secret + ("-forged" if forged else "")
        headers = [
            ("Content-Type", "application/json"),
            ("accessKey", owner.access_key_id),
            ("ts", ts),
            ("bizType", BIZ_TYPE),
            ("action", event.field),
            ("sign", sign(owner.access_key_id, event.field, BIZ_TYPE, ts, body, secret)),
        ]
        return OutgoingRequest("POST", target["url"], headers, body)

    def _new_context(self, req: Request | None) -> Context:
        return Context(request_id=uuid.uuid4().hex)

    def _internal_error(self) -> ApiError:
        return _NxError(9001)

    def _body_error(self, exc: BodyError) -> ApiError:
        return _NxError(9000, f"Parameter exception: {exc.message}", exc.status)

    def _fault_error(self, ctx: Context, fault: Fault) -> ApiError:
        code = _wire_code(fault.code)
        status = fault.http_status
        if fault.http200:
            status = 200
        detail = {"error": _meta_error(None)} if code == 9099 else None
        message = fault.message
        if message is None and status == THROTTLE_STATUS and code == -1:
            message = THROTTLE_MESSAGE
        return _NxError(code, message, status, retry_after=fault.retry_after, detail=detail)

    def _error_reply(self, ctx: Context, err: ApiError) -> Reply:
        headers = {}
        if err.retry_after is not None:
            headers["Retry-After"] = str(err.retry_after)
        payload = {"code": err.code, "message": err.message, "data": err.detail}
        return Reply(err.status, json_bytes(payload), JSON_CONTENT_TYPE, headers, code=str(err.code))

    def _ok_reply(self, data: Any, ctx: Context | None = None) -> Reply:
        if ctx is not None:
            data = self._data_fault(ctx, data)
        payload = {"code": 0, "message": "Request successful", "data": data}
        return Reply(200, json_bytes(payload), JSON_CONTENT_TYPE, code="0")

    # -- request processing ------------------------------------------------

    def _process(self, req: Request, ctx: Context) -> Reply:
        path = ctx.path.rstrip("/") or "/"
        action = ENDPOINTS.get(path)
        if action is None:
            raise _NxError(-1, f"Not found: {path[:200]}", 404)
        ctx.action = action
        if req.method != "POST":
            raise _NxError(-1, f"Request method '{req.method}' not supported", 405)

        headers = {name: _header_text((req.header(name) or "").strip()) for name in COMMON_HEADERS}
        ctx.access_key_id = headers["accessKey"] or None
        missing = [name for name in COMMON_HEADERS if not headers[name]]
        if missing:
            raise _NxError(1001, f"Missing common parameters: {', '.join(missing)}")
        if headers["bizType"] != BIZ_TYPE:
            raise _NxError(1002, f"Parameter error: bizType must be {BIZ_TYPE!r} for WhatsApp")
        if headers["action"] != action:
            raise _NxError(1002, f"Parameter error: action must be {action!r} for {path}")
        cred = self.scenario.credential(headers["accessKey"])
        if cred is None or not cred.enabled:
            raise _NxError(1005, "Insufficient permissions: unknown or disabled accessKey")
        self._check_ts(headers["ts"], req.arrival)
        self._check_sign(req, ctx, headers, cred)
        if not cred.allows(action):
            raise _NxError(1005, f"Insufficient permissions: the account may not call {action}")
        ctx.authenticated = True

        if not self._admit(req.arrival, [((cred.account_key,), cred.qps)]):
            ctx.throttled = True
            raise _NxError(-1, THROTTLE_MESSAGE, THROTTLE_STATUS)

        body = self._peek_body(req.body, ctx)
        fault_reply = self._apply_faults(ctx)
        if fault_reply is not None:
            return fault_reply
        if action in WRITE_ACTIONS:
            raise _NxError(
                -1,
                f"Request failed: the emulator records {action} calls and refuses them "
                "(an exporter must never send anything)",
            )
        return self._ok_reply(self._get_phone(cred, body), ctx)

    def _corrupt_answer(self, kind: str, action: str | None, payload: Any) -> Any:
        if not isinstance(payload, dict):
            return payload
        array = isinstance(payload.get("business_phones"), list)
        entries = payload["business_phones"] if array else list(payload.items())
        if kind == "duplicate_numbers":
            if array:
                return {**payload, "business_phones": [c for e in entries for c in (e, dict(e))]}
            out: dict[str, Any] = {}
            for key, value in entries:
                out[key] = value
                out[f"+{key.lstrip('+')}"] = [dict(v) for v in value] if isinstance(value, list) else value
            return out

        def alter(obj: Any) -> Any:
            if not isinstance(obj, dict):
                return obj
            obj = dict(obj)
            for key, role in (("status", "status"), ("quality_rating", "quality"), ("current_limit", "tier")):
                obj[key] = UNKNOWN_ENUM_VALUES[role] if kind == "unknown_enum" else None
            if kind == "null_fields":
                for key in ("verified_name", "name_status", "code_verification_status"):
                    obj.pop(key, None)
            return obj

        if array:
            return {**payload, "business_phones": [alter(e) for e in entries]}
        return {key: [alter(v) for v in value] if isinstance(value, list) else alter(value) for key, value in entries}

    def _check_ts(self, ts: str, arrival: float) -> None:
        if not ts.isdigit() or len(ts) > 16:
            raise _NxError(1004, f"Timestamp has expired: ts {ts[:40]!r} is not epoch milliseconds")
        skew = abs(int(arrival * 1000) - int(ts))
        if skew > MAX_TS_SKEW_MS:
            raise _NxError(
                1004,
                f"Timestamp has expired: ts is {skew} ms away from the server time "
                f"(at most {MAX_TS_SKEW_MS} ms allowed)",
            )

    def _check_sign(self, req: Request, ctx: Context, headers: Mapping[str, str], cred: Credential) -> None:
        content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise _NxError(1003, "Invalid signature: Content-Type must be application/json")
        algorithm = (req.header("algorithm") or "").strip().lower() or "md5"
        if algorithm not in ALGORITHMS:
            raise _NxError(1003, f"Invalid signature: unsupported algorithm {algorithm[:20]!r} (md5 or sha256)")
        ctx.signature_version = algorithm
        if not verify(
            headers["accessKey"],
            headers["action"],
            headers["bizType"],
            headers["ts"],
            req.body,
            cred.access_key_secret,
            headers["sign"],
            algorithm,
        ):
            raise _NxError(1003)

    def _peek_body(self, raw: bytes, ctx: Context) -> Any:
        """Decode the body (None if it is not JSON) and note the appkey and numbers for fault selectors."""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            return None
        if isinstance(body, dict):
            if isinstance(body.get("appkey"), str):
                ctx.space_id = body["appkey"] or None
            phones = _split_phones(body.get("business_phones"))
            if phones:
                ctx.phone_numbers = tuple(phones)
                ctx.phone_number = phones[0]
        return body

    # -- getPhone ------------------------------------------------------------

    def _get_phone(self, cred: Credential, body: Any) -> Any:
        if not isinstance(body, dict):
            raise _NxError(9000, "Parameter exception: the body must be a JSON object")
        appkey = body.get("appkey")
        if not isinstance(appkey, str) or not appkey:
            raise _NxError(9000, "Parameter exception: appkey is required")
        if body.get("messaging_product") != "whatsapp":
            raise _NxError(9000, 'Parameter exception: messaging_product must be "whatsapp"')
        raw_phones = body.get("business_phones")
        if raw_phones is not None and not isinstance(raw_phones, str):
            raise _NxError(9000, "Parameter exception: business_phones must be a comma-separated string")
        space = self.scenario.space(appkey)
        if space is None:
            raise _NxError(9003, f"The application does not exist or is unavailable: {appkey[:100]}")
        owner = self.scenario.credential(space.access_key_id)
        if owner is None or owner.account_key != cred.account_key:
            raise _NxError(1005, "Insufficient permissions: the appkey belongs to another account")
        requested = _split_phones(raw_phones)
        for phone in requested:
            if not phone.isdigit():
                raise _NxError(9002, f"Merchant phone number error: {phone[:40]}")

        t = self.scenario_time()
        states: list[dict[str, Any]] = []
        if requested:
            for phone in requested:
                state = self.number_state(space, phone, t)
                if state is None or not state.get("present", True):
                    raise _NxError(9006, f"WhatsApp number not bound to the application: {phone}")
                states.append(state)
        else:
            for number in space.numbers:
                state = self.number_state(space, number.phone_number, t)
                if state is not None and state.get("present", True):
                    states.append(state)
        return self._shape(space, states)

    def _shape(self, space: Space, states: list[dict[str, Any]]) -> Any:
        if space.extra.get("response_shape", "map") == "array":
            return {"business_phones": [{**_phone_object(s), "business_phone": s["phone_number"]} for s in states]}
        return {s["phone_number"]: [_phone_object(s)] for s in states}


def _split_phones(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    out: list[str] = []
    for piece in value.split(","):
        piece = piece.strip()
        if piece and piece not in out:
            out.append(piece)
    return out


def _phone_object(state: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(state)
    if values.get("display_phone_number") is None:
        values["display_phone_number"] = display_number(state["phone_number"])
    out: dict[str, Any] = {}
    for attr, key in NUMBER_FIELDS:
        value = values.get(attr)
        if value is None and key == "current_limit":
            value = ""  # NxCloud's example sends an empty string
        if value is not None:
            out[key] = value
    return merge_wire_extra(out, state)
