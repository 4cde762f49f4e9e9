"""State of the Meta emulator: the portfolio limit, WABA restrictions, runtime overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..common.state import _StateMixin
from ..scenario import Space, parse_duration
from .model import FLAGGED_REFUSED, WABA_LEVEL_ATTRIBUTES, _check_waba_attributes, portfolio_tier


class _MetaStateMixin(_StateMixin):
    """Portfolio and restriction state of :class:`MetaEmulator`."""

    # what this mixin uses of the emulator (see emulators.common's docstring)
    _waba_set_times: dict[tuple[str, str], float]

    # -- state: the portfolio limit and the WABA's restrictions ---------------

    def number_state(self, space: Space, phone_number: str, t: float | None = None) -> dict[str, Any] | None:
        """A number's state; under a WABA with ``portfolio_messaging_limit`` it reports that limit (as
        ``TIER_*``) in ``whatsapp_business_manager_messaging_limit``."""
        t = self.scenario_time() if t is None else t
        state = super().number_state(space, phone_number, t)
        if state is not None and space.waba is not None:
            waba = super().waba_state(space, t)
            if waba is not None and waba.get("portfolio_messaging_limit") is not None:
                state["whatsapp_business_manager_messaging_limit"] = portfolio_tier(waba["portfolio_messaging_limit"])
        return state

    def waba_state(self, space: Space, t: float | None = None) -> dict[str, Any] | None:
        """A WABA's state, plus the derived ``active_restrictions``: the ``restrictions`` still in force at
        ``t``, each ``{restriction_type, until (scenario time), remediation?}``."""
        t = self.scenario_time() if t is None else t
        state = super().waba_state(space, t)
        if state is not None:
            state["active_restrictions"] = self._active_restrictions(space, state, t)
        return state

    def _set_time(self, space: Space, attribute: str, t: float) -> float:
        """The scenario time at which the WABA attribute's value in force at ``t`` was set."""
        with self._lock:
            if attribute in self._waba_overrides.get(space.space_id, {}):
                return self._waba_set_times.get((space.space_id, attribute), 0.0)
        assert space.waba is not None
        return space.waba.timeline.set_time(attribute, t)

    def _active_restrictions(self, space: Space, state: Mapping[str, Any], t: float) -> list[dict[str, Any]]:
        entries = state.get("restrictions")
        if not isinstance(entries, list) or not entries:
            return []
        since = self._set_time(space, "restrictions", t)
        active = []
        for entry in entries:
            until = since + parse_duration(entry["duration"])
            if t < until:
                item = {"restriction_type": entry["restriction_type"], "until": until}
                if entry.get("remediation") is not None:
                    item["remediation"] = entry["remediation"]
                active.append(item)
        return active

    def set_number(self, space_id: str, phone_number: str, **attributes: Any) -> None:
        """As the base class; a Meta number cannot become FLAGGED, nor carry WABA-level attributes."""
        if attributes.get("status") == "FLAGGED":
            raise ValueError(FLAGGED_REFUSED)
        for key in WABA_LEVEL_ATTRIBUTES:
            if key in attributes:
                raise ValueError(f"{key} is a WABA-level attribute: use set_waba()")
        space = self.scenario.space(space_id)
        waba = super().waba_state(space) if space is not None else None
        if (
            waba is not None
            and waba.get("portfolio_messaging_limit") is not None
            and attributes.get("whatsapp_business_manager_messaging_limit") is not None
        ):
            raise ValueError(
                "the messaging limit lives on the business portfolio: set portfolio_messaging_limit with set_waba()"
            )
        super().set_number(space_id, phone_number, **attributes)

    def set_waba(self, space_id: str, **attributes: Any) -> None:
        """As the base class; a ``restrictions`` override starts its durations now (scenario time)."""
        _check_waba_attributes(attributes, "set_waba")
        now = self.scenario_time()
        with self._lock:
            for key in attributes:
                self._waba_set_times[(space_id, key)] = now
        super().set_waba(space_id, **attributes)

    def clear_overrides(self) -> None:
        super().clear_overrides()
        with self._lock:
            self._waba_set_times.clear()
