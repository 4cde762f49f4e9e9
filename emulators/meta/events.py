"""Observed state and outgoing webhooks of the Meta emulator."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..common.watcher import SpaceChanges, _WatcherMixin
from ..scenario import Space, parse_duration
from ..webhooks import Event, OutgoingRequest, ban_date_text, meta_number_events, meta_signature, review_event
from .answers import _AnswersMixin
from .model import _DEFAULTS, MAX_NUMBERS_PER_BUSINESS, MAX_NUMBERS_PER_WABA, portfolio_tier


class _MetaEventsMixin(_AnswersMixin, _WatcherMixin):
    """Observed state and webhooks of :class:`MetaEmulator`; a number's observed health is the one its
    answers carry (:class:`_AnswersMixin`)."""

    # what this mixin uses of the emulator (see emulators.common's docstring)
    if TYPE_CHECKING:

        def _set_time(self, space: Space, attribute: str, t: float) -> float: ...

    # -- hooks ---------------------------------------------------------------

    def _observe_number(self, space: Space, state: Mapping[str, Any], waba: Mapping[str, Any] | None) -> dict[str, Any]:
        observed = super()._observe_number(space, state, waba)
        owner = self.scenario.credential(space.access_key_id)
        if owner is not None:
            values = dict(state)
            for key, default in _DEFAULTS.items():
                values.setdefault(key, default)
            node_id = str(values.get("id") or state.get("phone_number"))
            observed["health"] = self._health_status(space, values, owner, node_id, waba or {})["can_send_message"]
            observed["throughput_level"] = values.get("throughput_level")  # as served (default STANDARD)
        return observed

    def _observe_waba(self, space: Space, waba: Mapping[str, Any], t: float) -> dict[str, Any]:
        observed = super()._observe_waba(space, waba, t)
        observed["restrictions"] = [dict(r) for r in waba.get("active_restrictions") or []]
        return observed

    def _next_due(self, space: Space, t: float) -> float | None:
        due = super()._next_due(space, t)
        waba = self.waba_state(space, t) if space.waba is not None else None
        ends = [r["until"] for r in (waba or {}).get("active_restrictions", [])]
        return min([x for x in [due, *ends] if x is not None and x > t], default=None)

    def _events(self, space: Space, space_changes: SpaceChanges, t: float, wall: float) -> list[Event]:
        legacy = space.extra.get("legacy_quality_events") is True
        deprecated = space.extra.get("deprecated_limit_fields") is not False
        events: list[Event] = []
        for key, old, new, changes in space_changes:
            if key is None:
                events.extend(self._waba_events(space, old, new, changes, t, wall))
            else:
                events.extend(meta_number_events(key, old, new, changes, legacy=legacy, deprecated_fields=deprecated))
        return events

    def _waba_events(
        self,
        space: Space,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        changes: list[dict[str, Any]],
        t: float,
        wall: float,
    ) -> list[Event]:
        """The WABA-level events: review, portfolio limit, restrictions, ban state and violations."""
        if new.get("present") is False:
            return []
        changed = {c["field"] for c in changes}

        def related(*names: str) -> list[dict[str, Any]]:
            return [c for c in changes if c["field"] in names]

        events: list[Event] = []
        review = review_event(new, changes)
        if review is not None:
            events.append(review)
        limit = new.get("portfolio_messaging_limit")
        if "portfolio_messaging_limit" in changed and limit is not None:
            waba = super().waba_state(space, t) or {}
            value: dict[str, Any] = {"max_daily_conversations_per_business": limit}
            key, default = (
                ("max_phone_numbers_per_business", MAX_NUMBERS_PER_BUSINESS)
                if portfolio_tier(limit) == "TIER_250"
                else ("max_phone_numbers_per_waba", MAX_NUMBERS_PER_WABA)
            )
            numbers = waba.get(key, default)
            if numbers is not None:
                value[key] = numbers
            events.append(Event("business_capability_update", value, None, related("portfolio_messaging_limit")))
        restrictions = new.get("restrictions") or []
        if any(r not in (old.get("restrictions") or []) for r in restrictions):
            info = []
            for r in restrictions:
                item = {"restriction_type": r["restriction_type"], "expiration": int(wall - (t - r["until"]))}
                if "remediation" in r:
                    item["remediation"] = r["remediation"]
                info.append(item)
            events.append(
                Event(
                    "account_update",
                    {"event": "ACCOUNT_RESTRICTION", "restriction_info": info},
                    None,
                    related("restrictions"),
                )
            )
        if changed & {"ban_state", "ban_date", "ban_after"} and new.get("ban_state") is not None:
            date = new.get("ban_date")
            if date is None:
                since = self._set_time(space, "ban_state", t)
                after = parse_duration(new["ban_after"]) if new.get("ban_after") is not None else 0.0
                date = ban_date_text(wall - (t - since) + after)
            events.append(
                Event(
                    "account_update",
                    {
                        "event": "DISABLED_UPDATE",
                        "ban_info": {"waba_ban_state": new["ban_state"], "waba_ban_date": date},
                    },
                    None,
                    related("ban_state", "ban_date", "ban_after"),
                )
            )
        if "violation_type" in changed and new.get("violation_type") is not None:
            events.append(
                Event(
                    "account_update",
                    {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": new["violation_type"]}},
                    None,
                    related("violation_type"),
                )
            )
        return events

    def _webhook_request(
        self, space: Space, event: Event, target: Mapping[str, Any], wall: float, *, forged: bool
    ) -> OutgoingRequest | None:
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": space.space_id, "time": int(wall), "changes": [{"field": event.field, "value": event.value}]}
            ],
        }
        body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        secret = str(target["secret"]) + ("-forged" if forged else "")
        headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", "facebookexternalua"),
            ("X-Hub-Signature-256", meta_signature(secret, body)),
        ]
        return OutgoingRequest("POST", target["url"], headers, body)
