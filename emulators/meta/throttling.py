"""Usage headers and throttling of the Meta emulator: the hourly windows, BUC and app usage."""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import TYPE_CHECKING

from ..common import Context, json_bytes
from ..common.server import _ServerMixin
from ..scenario import Credential, Scenario
from .graph import GraphError, _MetaContext
from .model import BUC_TYPE, DEFAULT_API_VERSION, HOUR


class _Window:
    """Calls in a rolling hour of scenario time."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def prune(self, now: float) -> None:
        while self.times and self.times[0] <= now - HOUR:
            self.times.popleft()

    def percent(self, budget: int | None) -> int:
        if not budget:
            return 0
        return min(100, math.ceil(100 * len(self.times) / budget))

    def regain_minutes(self, now: float, budget: int | None) -> int:
        if not budget or len(self.times) < budget or not self.times:
            return 0
        # the call that must leave the window before one more fits
        oldest = self.times[len(self.times) - budget]
        return max(1, math.ceil((oldest + HOUR - now) / 60))


class _ThrottlingMixin(_ServerMixin):
    """Usage counters and usage headers of :class:`MetaEmulator`."""

    # what this mixin uses of the emulator (see emulators.common's docstring)
    scenario: Scenario
    calls_per_hour: int | None
    app_calls_per_hour: int | None
    throttle_status: int
    _rate_lock: threading.Lock
    _buc: dict[tuple[str, str], _Window]
    _app: dict[str, _Window]

    if TYPE_CHECKING:

        def scenario_time(self) -> float: ...

    # -- public helpers ----------------------------------------------------

    def budget_of(self, waba_id: str) -> int | None:
        """The hourly BUC budget of a WABA (its space's ``extra.calls_per_hour``, else the constructor's)."""
        space = self.scenario.waba_space(waba_id)
        if space is not None and "calls_per_hour" in space.extra:
            budget: int | None = space.extra["calls_per_hour"]  # checked by MetaEmulator.__init__
            return budget
        return self.calls_per_hour

    def buc_usage(self, waba_id: str, app: str | None = None) -> dict[str, int]:
        """``{"calls", "call_count", "estimated_time_to_regain_access"}`` of one WABA now
        (``app``: the token's ``account`` or label; default: the WABA owner's)."""
        space = self.scenario.waba_space(waba_id)
        key_waba = space.space_id if space is not None else waba_id
        if app is None:
            owner = self.scenario.credential(space.access_key_id) if space is not None else None
            app = owner.account_key if owner is not None else ""
        now = self.scenario_time()
        budget = self.budget_of(key_waba)
        with self._rate_lock:
            window = self._buc.get((app, key_waba)) or _Window()
            window.prune(now)
            return {
                "calls": len(window.times),
                "call_count": window.percent(budget),
                "estimated_time_to_regain_access": window.regain_minutes(now, budget),
            }

    def app_usage(self, app: str) -> dict[str, int]:
        now = self.scenario_time()
        with self._rate_lock:
            window = self._app.get(app) or _Window()
            window.prune(now)
            return {"calls": len(window.times), "call_count": window.percent(self.app_calls_per_hour)}

    def reset_rate_limits(self) -> None:
        """Forget every hourly call (the per-second counters are the base class's)."""
        with self._rate_lock:
            self._buc.clear()
            self._app.clear()

    def _count_hourly(self, ctx: _MetaContext, cred: Credential) -> None:
        """Count one call against the app and (when known) the WABA budget, or refuse it."""
        now = self.scenario_time()
        app = cred.account_key
        buc_budget = self.budget_of(ctx.waba_id) if ctx.waba_id is not None else None
        with self._rate_lock:
            app_window = self._app.setdefault(app, _Window())
            app_window.prune(now)
            buc_window = None
            if ctx.waba_id is not None:
                buc_window = self._buc.setdefault((app, ctx.waba_id), _Window())
                buc_window.prune(now)
            app_full = self.app_calls_per_hour is not None and len(app_window.times) >= self.app_calls_per_hour
            buc_full = buc_window is not None and buc_budget is not None and len(buc_window.times) >= buc_budget
            if not (app_full or buc_full):
                app_window.times.append(now)
                if buc_window is not None:
                    buc_window.times.append(now)
                return
        ctx.throttled = True
        if buc_full:
            raise GraphError(80007, status=self.throttle_status)
        raise GraphError(4, status=self.throttle_status)

    def _common_headers(self, ctx: Context) -> dict[str, str]:
        headers = {"x-fb-request-id": ctx.request_id, "x-fb-trace-id": ctx.request_id}
        if not isinstance(ctx, _MetaContext):
            return headers
        headers["facebook-api-version"] = ctx.api_version or DEFAULT_API_VERSION
        cred = ctx.credential
        if cred is None or not ctx.authenticated:
            return headers
        now = self.scenario_time()
        app = cred.account_key
        with self._rate_lock:
            app_window = self._app.get(app) or _Window()
            app_window.prune(now)
            app_percent = 100 if ctx.forced_app_full else app_window.percent(self.app_calls_per_hour)
            headers["X-App-Usage"] = json_bytes(
                {"call_count": app_percent, "total_cputime": app_percent // 4, "total_time": app_percent // 2}
            ).decode()
            if ctx.waba_id is not None:
                budget = self.budget_of(ctx.waba_id)
                window = self._buc.get((app, ctx.waba_id)) or _Window()
                window.prune(now)
                percent, minutes = window.percent(budget), window.regain_minutes(now, budget)
                if ctx.forced_buc_minutes is not None:
                    percent, minutes = 100, max(minutes, ctx.forced_buc_minutes)
                usage = {
                    ctx.waba_id: [
                        {
                            "type": BUC_TYPE,
                            "call_count": percent,
                            "total_cputime": percent // 4,
                            "total_time": percent // 2,
                            "estimated_time_to_regain_access": minutes,
                        }
                    ]
                }
                headers["X-Business-Use-Case-Usage"] = json_bytes(usage).decode()
        return headers
