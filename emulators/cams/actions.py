"""The CAMS actions the emulator answers: phone numbers, WABA binding, verification and health status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..common.state import _StateMixin
from ..scenario import Credential, Space
from .model import _HEALTH_BY_REVIEW, _HEALTH_BY_STATUS, _HEALTH_RANK, NUMBER_FIELDS, WABA_FIELDS
from .wire import _ApiError, _health_entity, _missing, _wire


class _ActionsMixin(_StateMixin):
    """The actions of :class:`CamsEmulator`: answers built on the scenario state (:class:`_StateMixin`)."""

    # -- actions -----------------------------------------------------------

    def _resolve_space(
        self, cred: Credential, params: Mapping[str, str], required: bool, takes_isv_code: bool
    ) -> Space:
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
            named = self.scenario.space(space_id)
            owner = self.scenario.credential(named.access_key_id) if named is not None else None
            if named is None or owner is None or owner.account_key != cred.account_key:
                raise _ApiError("Unknown.ResourceOwnerId")
            space = named
        if takes_isv_code and space.isv_code is not None and params.get("IsvCode") != space.isv_code:
            raise _ApiError(
                "Ram.PermissionDeny",
                "You are not authorized to perform the operation. (IsvCode does not match this space.)",
            )
        return space

    def _query_phone_numbers(self, cred: Credential, params: Mapping[str, str]) -> dict[str, Any]:
        space = self._resolve_space(cred, params, required=False, takes_isv_code=True)
        status_filter = params.get("Status") or None
        t = self.scenario_time()
        items = []
        for number in space.numbers:
            state = self.number_state(space, number.phone_number, t)
            assert state is not None  # a number of the space always has a state
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
        data = _wire(
            state,
            (("phone_number", "PhoneNumber"), ("id", "Id"), ("code_verification_status", "CodeVerificationStatus")),
            extra=False,
        )
        return {"RequestId": "", "Code": "OK", "Message": "None", "Data": data}

    def _get_health_status(self, cred: Credential, params: Mapping[str, str]) -> dict[str, Any]:
        for required in ("CustSpaceId", "NodeType"):
            if not params.get(required):
                raise _ApiError(
                    "MissingParameter",
                    f"The input parameter {required} that is mandatory for processing this request is not supplied.",
                )
        node_type = params["NodeType"]
        if node_type not in ("phone", "waba"):
            raise _ApiError(
                "InvalidParameter", f"NodeType {node_type!r} is not supported by the emulator (use phone or waba)."
            )
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
            entities.append(
                _health_entity(
                    "PHONE_NUMBER",
                    ("PhoneNumber", state["phone_number"]),
                    state.get("can_send_message"),
                    _HEALTH_BY_STATUS.get(str(state.get("status")), "AVAILABLE"),
                    state.get("health_errors"),
                )
            )
        elif params.get("WabaId") and params["WabaId"] != waba.get("id"):
            raise _ApiError("InvalidParameter", "The WabaId does not belong to this space.")
        if waba:
            entities.append(
                _health_entity(
                    "WABA",
                    ("WabaId", waba.get("id")),
                    waba.get("can_send_message"),
                    _HEALTH_BY_REVIEW.get(str(waba.get("account_review_status")), "AVAILABLE"),
                    waba.get("health_errors"),
                )
            )
            if waba.get("business_id") is not None:
                entities.append(
                    _health_entity(
                        "BUSINESS",
                        ("BusinessId", waba["business_id"]),
                        waba.get("business_can_send_message"),
                        "AVAILABLE",
                        waba.get("business_errors"),
                    )
                )
            if waba.get("app_can_send_message") is not None:
                entities.append(
                    _health_entity("APP", None, waba["app_can_send_message"], "AVAILABLE", waba.get("app_errors"))
                )
        overall = max(
            (e["CanSendMessage"] for e in entities), key=lambda v: _HEALTH_RANK.get(v, 1), default="AVAILABLE"
        )
        return {
            "RequestId": "",
            "Code": "OK",
            "Message": "SUCCESS",
            "Success": True,
            "Data": {"CanSendMessage": overall, "Entities": entities},
        }
