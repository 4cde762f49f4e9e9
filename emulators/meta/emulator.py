"""The Meta emulator class, assembled from its concern mixins."""

from __future__ import annotations

import logging
import threading
from typing import Unpack

from ..common import EmulatorOptions, ProviderEmulator
from ..common.faults import data_faults
from ..common.wire import PHONE_NODE_OBSERVED_FIELDS
from ..scenario import Scenario
from .answers import _AnswersMixin
from .events import _MetaEventsMixin
from .model import (
    _NUMBER_KNOWN,
    _VERSION,
    _WABA_KNOWN,
    JSON_CONTENT_TYPE,
    LIST_ACTION,
    NUMBER_ACTION,
    WABA_ACTION,
    WABA_STANDING_ATTRIBUTES,
    WRITE_ACTIONS,
    validate_meta_scenario,
)
from .routes import _RoutesMixin
from .state import _MetaStateMixin
from .throttling import _ThrottlingMixin, _Window

logger = logging.getLogger("emulators.meta")


class MetaEmulator(_ThrottlingMixin, _MetaStateMixin, _MetaEventsMixin, _RoutesMixin, _AnswersMixin, ProviderEmulator):
    """Meta's Graph API number-health reads on loopback, driven by a scenario.

    Same public API as the other emulators (``start``/``stop``, ``url``,
    ``advance``, ``inject``, ``set_number``/``set_waba`` taking the WABA id as the
    space, ``requests``/``calls``/``write_action_calls``), plus
    :meth:`buc_usage`, :meth:`app_usage`, :meth:`reset_rate_limits` and
    :meth:`api_versions`.
    """

    provider_name = "Meta"

    server_software = "proxygen-bolt"

    json_content_type = JSON_CONTENT_TYPE

    known_number_attributes = _NUMBER_KNOWN

    known_waba_attributes = _WABA_KNOWN

    write_actions = WRITE_ACTIONS

    observed_number_fields = PHONE_NODE_OBSERVED_FIELDS

    observed_waba_fields = (
        "present",
        "account_review_status",
        "can_send_message",
        *WABA_STANDING_ATTRIBUTES,
    )

    webhooks_supported = True

    webhook_secret_required = True

    data_fault_actions = data_faults({LIST_ACTION, NUMBER_ACTION, WABA_ACTION}, {LIST_ACTION})

    _logger = logger

    def __init__(
        self,
        scenario: Scenario,
        *,
        calls_per_hour: int | None = 200,
        app_calls_per_hour: int | None = 10_000,
        throttle_status: int = 429,
        **options: Unpack[EmulatorOptions],
    ):
        for name, value in (("calls_per_hour", calls_per_hour), ("app_calls_per_hour", app_calls_per_hour)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None")
        validate_meta_scenario(scenario)
        self._waba_set_times: dict[tuple[str, str], float] = {}  # (space, attribute) -> scenario time of set_waba
        super().__init__(scenario, **options)
        self.calls_per_hour = calls_per_hour
        self.app_calls_per_hour = app_calls_per_hour
        self.throttle_status = throttle_status
        self._buc: dict[tuple[str, str], _Window] = {}
        self._app: dict[str, _Window] = {}
        self._rate_lock = threading.Lock()
        for space in scenario.spaces:
            value = space.extra.get("calls_per_hour")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"space {space.space_id}: extra.calls_per_hour must be a positive integer or null")

    def api_versions(self) -> list[str | None]:
        """The Graph version of every recorded request, oldest first (None: no version in the path)."""
        out: list[str | None] = []
        for record in self.requests:
            first = record.path.lstrip("/").split("/", 1)[0]
            out.append(first if _VERSION.match(first) else None)
        return out
