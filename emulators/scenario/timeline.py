"""Timelines of scenario attributes: transitions and their evaluation at scenario time."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .validation import ScenarioError, _attributes, _check_keys, _join, _list, _mapping, parse_duration

# ---------------------------------------------------------------------------
# timelines


@dataclass(frozen=True)
class Transition:
    """At scenario time ``at`` (seconds), apply ``set`` to the entity's attributes."""

    at: float
    set: Mapping[str, Any]


@dataclass(frozen=True)
class Timeline:
    transitions: tuple[Transition, ...] = ()
    repeat_every: float | None = None

    def local_time(self, t: float) -> float:
        t = max(0.0, float(t))
        if self.repeat_every:
            t = math.fmod(t, self.repeat_every)
        return t

    def evaluate(self, base: Mapping[str, Any], t: float) -> dict[str, Any]:
        """The attributes at scenario time ``t``: ``base`` plus every transition with ``at <= t``."""
        state = dict(base)
        local = self.local_time(t)
        for transition in self.transitions:
            if transition.at > local:
                break
            state.update(transition.set)
        return state

    def set_time(self, attribute: str, t: float) -> float:
        """The scenario time at which the value of ``attribute`` in force at ``t`` was set: the latest
        transition at or before ``t`` that sets it, else the start of the current period (0 without
        ``repeat_every``), when the base value took effect."""
        t = max(0.0, float(t))
        local = self.local_time(t)
        start = t - local
        latest = None
        for transition in self.transitions:
            if transition.at > local:
                break
            if attribute in transition.set:
                latest = transition.at
        return start + (latest if latest is not None else 0.0)

    def next_change_after(self, t: float) -> float | None:
        """The scenario time of the next transition strictly after ``t`` (None if nothing changes any more)."""
        t = max(0.0, float(t))
        points = sorted({tr.at for tr in self.transitions})
        if not self.repeat_every:
            later = [p for p in points if p > t]
            return later[0] if later else None
        if not points:
            return None
        period = self.repeat_every
        cycle_start = math.floor(t / period) * period
        candidates = sorted(set(points) | {0.0})  # every period starts again from the base state
        for cycle in (cycle_start, cycle_start + period):
            for p in candidates:
                if cycle + p > t:
                    return cycle + p
        return None  # pragma: no cover - unreachable


def _parse_timeline(raw: Mapping[str, Any], path: str, reserved: Iterable[str]) -> Timeline:
    repeat = raw.get("repeat_every")
    repeat_every = None
    if repeat is not None:
        repeat_every = parse_duration(repeat, _join(path, "repeat_every"))
        if repeat_every <= 0:
            raise ScenarioError(_join(path, "repeat_every"), "must be > 0")
    tpath = _join(path, "timeline")
    transitions = []
    for i, item in enumerate(_list(raw.get("timeline"), tpath)):
        ipath = _join(tpath, i)
        item = _mapping(item, ipath)
        _check_keys(item, ("at", "set"), ipath)
        if "at" not in item:
            raise ScenarioError(_join(ipath, "at"), "is required")
        at = parse_duration(item["at"], _join(ipath, "at"))
        if repeat_every is not None and at >= repeat_every:
            raise ScenarioError(
                _join(ipath, "at"), f"{at:g}s is not before repeat_every ({repeat_every:g}s), so it would never apply"
            )
        spath = _join(ipath, "set")
        changes = _mapping(item.get("set"), spath)
        if not changes:
            raise ScenarioError(spath, "must set at least one attribute")
        for key in changes:
            if key in reserved:
                raise ScenarioError(_join(spath, key), "cannot be changed by a timeline")
        transitions.append(Transition(at=at, set=_attributes(changes, (), spath)))
    transitions.sort(key=lambda tr: tr.at)  # stable: equal times keep file order
    return Timeline(tuple(transitions), repeat_every)
