"""Graph lookups and answers of the Meta emulator: nodes, edges, pages, health status."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..common import (
    HEALTH_BY_REVIEW,
    HEALTH_BY_STATUS,
    UNKNOWN_ENUM_VALUES,
    Request,
    display_number,
    merge_wire_extra,
    worst_health,
)
from ..common.server import _ServerMixin
from ..scenario import Credential, Scenario, Space
from .graph import (
    GraphError,
    _corrupt_health,
    _corrupt_number,
    _decode_cursor,
    _encode_cursor,
    _entity,
    _first,
    _MetaContext,
    _split_fields,
    _Target,
    _version_tuple,
)
from .model import (
    _DEFAULTS,
    ALL_MESSAGING,
    DEFAULT_NUMBER_FIELDS,
    FIELDS_SINCE,
    LIST_ACTION,
    NON_MESSAGING_RESTRICTIONS,
    NUMBER_ACTION,
    NUMBER_FIELDS,
    POLICY_ERROR_CODE,
    WABA_ACTION,
)


class _AnswersMixin(_ServerMixin):
    """Lookups and answers of :class:`MetaEmulator`."""

    # what this mixin uses of the emulator (see emulators.common's docstring)
    scenario: Scenario

    if TYPE_CHECKING:

        @property
        def url(self) -> str: ...
        def scenario_time(self) -> float: ...
        def number_state(self, space: Space, phone_number: str, t: float | None = None) -> dict[str, Any] | None: ...
        def waba_state(self, space: Space, t: float | None = None) -> dict[str, Any] | None: ...

    # -- lookups -------------------------------------------------------------

    def _resolve(self, cred: Credential, node: str) -> _Target:
        space = self.scenario.waba_space(node)
        if space is not None and (space.waba is None or self.waba_state(space) is not None):
            return _Target("waba", space, owned=self.scenario.owned_by(space, cred))
        t = self.scenario_time()
        foreign: _Target | None = None
        for space in self.scenario.spaces:
            for number in space.numbers:
                if str(number.attributes.get("id") or number.phone_number) != node:
                    continue
                state = self.number_state(space, number.phone_number, t)
                if (
                    state is None
                    or not state.get("present", True)
                    or str(state.get("id") or number.phone_number) != node
                ):
                    continue
                found = _Target("number", space, number.phone_number, self.scenario.owned_by(space, cred))
                if found.owned:
                    return found
                foreign = foreign or found
        return foreign or _Target("unknown")

    # -- answers -------------------------------------------------------------

    def _fields(
        self,
        query: Mapping[str, str],
        known: frozenset[str],
        default: tuple[str, ...],
        node_type: str,
        version: str | None,
        *,
        wire_extra_keys: frozenset[str] = frozenset(),
    ) -> list[str]:
        raw = query.get("fields")
        if raw is None or not raw.strip():
            return list(default)
        names = _split_fields(raw)
        vt = _version_tuple(version)
        for name in names:
            since = FIELDS_SINCE.get(name)
            if (name not in known and name not in wire_extra_keys) or (since is not None and vt < since):
                raise GraphError(100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})")
        out = ["id"]
        for name in names:
            if name not in out:
                out.append(name)
        return out

    def _list(
        self, req: Request, query: Mapping[str, str], ctx: _MetaContext, space: Space, version: str | None
    ) -> dict[str, Any]:
        fields = self._fields(query, NUMBER_FIELDS, DEFAULT_NUMBER_FIELDS, "WhatsAppBusinessPhoneNumber", version)
        fields = [f for f in fields if f != "health_status"]  # not served on the edge (see the docstring)
        limit_raw = query.get("limit")
        limit = 25
        if limit_raw not in (None, ""):
            try:
                limit = int(limit_raw)
            except ValueError:
                raise GraphError(100, "(#100) Param limit must be a number") from None
            if limit < 1:
                raise GraphError(100, "(#100) Param limit must be a positive number")
            limit = min(limit, 100)
        t = self.scenario_time()
        states = []
        for number in space.numbers:
            state = self.number_state(space, number.phone_number, t)
            if state is not None and state.get("present", True):
                states.append(state)
        ids = [str(s.get("id") or s["phone_number"]) for s in states]

        def position(cursor: str) -> int:
            pos, node_id = _decode_cursor(cursor)
            return ids.index(node_id) if node_id in ids else pos

        if query.get("after"):
            start = position(query["after"]) + 1
            end = start + limit
        elif query.get("before"):
            end = max(0, position(query["before"]))
            start = max(0, end - limit)
        else:
            start, end = 0, limit
        start = max(0, min(start, len(states)))
        end = max(start, min(end, len(states)))
        cred = ctx.credential
        assert cred is not None
        data = [self._number_object(space, s, fields, cred, health=False) for s in states[start:end]]
        payload: dict[str, Any] = {"data": data}
        if not data:
            return payload
        before, after = _encode_cursor(start, ids[start]), _encode_cursor(end - 1, ids[end - 1])
        paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
        if start > 0:
            paging["previous"] = self._page_url(req, query, {"before": before})
        if end < len(states):
            paging["next"] = self._page_url(req, query, {"after": after})
        payload["paging"] = paging
        return payload

    def _page_url(self, req: Request, query: Mapping[str, str], cursor: Mapping[str, str]) -> str:
        host = (req.header("Host") or "").strip() or self.url.split("://", 1)[1]
        params = {k: v for k, v in query.items() if k not in ("after", "before")}
        params.setdefault("limit", "25")
        params.update(cursor)
        path = req.target.split("?", 1)[0]
        return f"http://{host}{path}?{urlencode(params, quote_via=quote, safe=',{}')}"

    def _number_object(
        self, space: Space, state: Mapping[str, Any], fields: list[str], cred: Credential, *, health: bool
    ) -> dict[str, Any]:
        values = dict(state)
        for key, default in _DEFAULTS.items():
            values.setdefault(key, default)
        node_id = str(values.get("id") or state.get("phone_number"))
        out: dict[str, Any] = {}
        for name in fields:
            if name == "id":
                value: Any = node_id
            elif name == "display_phone_number":
                value = values.get(name) if "display_phone_number" in state else display_number(state["phone_number"])
            elif name == "quality_score":
                value = values.get("quality_score")
                if isinstance(value, str):
                    value = {"score": value}
                elif value is None and "quality_score" not in state and values.get("quality_rating") is not None:
                    value = {"score": values["quality_rating"]}
            elif name == "throughput":
                level = values.get("throughput_level")
                value = {"level": level} if level is not None else values.get("throughput")
            elif name == "health_status":
                value = self._health_status(space, values, cred, node_id) if health else None
            else:
                value = values.get(name)
            if value is not None:
                out[name] = value
        return merge_wire_extra(out, state)

    def _waba_object(self, space: Space, fields: list[str], cred: Credential) -> dict[str, Any]:
        waba = self.waba_state(space) or {}
        out: dict[str, Any] = {}
        for name in fields:
            if name == "id":
                value: Any = space.space_id
            elif name == "health_status":
                entities = self._waba_entities(space, waba, cred)
                value = {
                    "can_send_message": worst_health(e["can_send_message"] for e in entities),
                    "entities": entities,
                }
            else:
                value = waba.get(name)
            if value is not None:
                out[name] = value
        return out

    def _health_status(
        self,
        space: Space,
        values: Mapping[str, Any],
        cred: Credential,
        node_id: str,
        waba: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        phone = _entity(
            "PHONE_NUMBER",
            node_id,
            values.get("can_send_message"),
            HEALTH_BY_STATUS.get(str(values.get("status")), "AVAILABLE"),
            _first(values, "errors", "health_errors"),
            _first(values, "additional_info", "health_additional_info"),
        )
        if waba is None:
            waba = self.waba_state(space) or {}
        entities = [phone, *self._waba_entities(space, waba, cred)]
        return {"can_send_message": worst_health(e["can_send_message"] for e in entities), "entities": entities}

    def _waba_health(self, waba: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]], list[str]]:
        """The WABA entity's derived ``(can_send_message, errors, additional_info)``: from its review status,
        its ban state and its active restrictions (see the module docstring)."""
        states = [HEALTH_BY_REVIEW.get(str(waba.get("account_review_status")), "AVAILABLE")]
        errors: list[dict[str, Any]] = []
        info: list[str] = []
        if waba.get("ban_state") == "DISABLE":
            states.append("BLOCKED")
            errors.append(
                {
                    "error_code": POLICY_ERROR_CODE,
                    "error_description": "This WhatsApp Business Account is disabled for violating "
                    "WhatsApp Business policies.",
                    "possible_solution": "Request a review of the decision in WhatsApp Manager.",
                }
            )
        restricted = [
            r for r in waba.get("active_restrictions") or [] if r["restriction_type"] not in NON_MESSAGING_RESTRICTIONS
        ]
        if {r["restriction_type"] for r in restricted} >= ALL_MESSAGING:
            states.append("BLOCKED")
            errors.append(
                {
                    "error_code": POLICY_ERROR_CODE,
                    "error_description": "Business-initiated and customer-initiated messaging are both "
                    "restricted for this WhatsApp Business Account.",
                    "possible_solution": "Wait for the restrictions to end, or request a review in WhatsApp Manager.",
                }
            )
        elif restricted:
            states.append("LIMITED")
            now_wall, now = self._clock(), self.scenario_time()
            for r in restricted:
                ends = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now_wall - (now - r["until"])))
                info.append(f"{r['restriction_type']}: this WhatsApp Business Account is restricted until {ends}.")
        state = worst_health(states)
        return state, errors if state == "BLOCKED" else [], info if state == "LIMITED" else []

    def _waba_entities(self, space: Space, waba: Mapping[str, Any], cred: Credential) -> list[dict[str, Any]]:
        explicit = waba.get("can_send_message")
        derived, errors, info = self._waba_health(waba) if explicit is None else (explicit, [], [])
        entities = [
            _entity(
                "WABA",
                space.space_id,
                explicit,
                derived,
                _first(waba, "errors", "health_errors") or errors,
                _first(waba, "additional_info", "health_additional_info") or info,
            )
        ]
        if waba.get("business_id") is not None:
            entities.append(
                _entity(
                    "BUSINESS",
                    waba["business_id"],
                    waba.get("business_can_send_message"),
                    "AVAILABLE",
                    waba.get("business_errors"),
                    waba.get("business_additional_info"),
                )
            )
        entities.append(
            _entity(
                "APP",
                cred.access_key_id,
                waba.get("app_can_send_message"),
                "AVAILABLE",
                waba.get("app_errors"),
                waba.get("app_additional_info"),
            )
        )
        return entities

    def _corrupt_answer(self, kind: str, action: str | None, payload: Any) -> Any:
        if not isinstance(payload, dict):
            return payload
        if action == LIST_ACTION and isinstance(payload.get("data"), list):
            entries = [dict(e) if isinstance(e, dict) else e for e in payload["data"]]
            if kind == "duplicate_numbers":
                entries = [c for e in entries for c in (e, dict(e) if isinstance(e, dict) else e)]
            else:
                entries = [_corrupt_number(kind, e) if isinstance(e, dict) else e for e in entries]
            return {**payload, "data": entries}
        if action == NUMBER_ACTION:
            return _corrupt_number(kind, payload)
        if action == WABA_ACTION:
            obj = dict(payload)
            unknown = kind == "unknown_enum"
            if "account_review_status" in obj:
                obj["account_review_status"] = UNKNOWN_ENUM_VALUES["status"] if unknown else None
            _corrupt_health(obj, unknown)
            return obj
        return payload
