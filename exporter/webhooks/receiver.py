"""The receiver: a provider event verified, routed and turned into refresh requests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from exporter import model, wabafacts
from exporter.config import Account, Config, WebhooksConfig
from exporter.webhooks.bounds import ExpiringSet, RefreshGate, replay_key
from exporter.webhooks.handler import _Listener
from exporter.webhooks.metrics import WebhookMetrics
from exporter.webhooks.routing import RefreshTarget, _Index, _State
from exporter.webhooks.signatures import nxcloud_sign
from exporter.webhooks.vocabulary import (
    _CHALLENGE_RE,
    _HEX64_RE,
    _TEXT,
    BUDGETED_PROVIDERS,
    HEALTH_FIELDS,
    KALEYRA_EVENTS,
    NUMBER_EVENTS,
    NXCLOUD_MAX_SKEW,
    OTHER,
    REASONS,
    REPLAY_CACHE_SIZE,
    UNKNOWN,
    UNKNOWN_LOG_INTERVAL,
    UNKNOWN_LOG_SIZE,
    _digits,
)

if TYPE_CHECKING:
    from exporter.store import Store

log = logging.getLogger("exporter.webhooks")  # the name of the module this package was split from


@dataclass
class Reply:
    status: int
    body: bytes = b"ok\n"
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = _TEXT


class _Rejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WebhookReceiver:
    """Turns provider events into refresh requests; the HTTP side is :class:`_Handler`.

    ``poller`` needs ``request_refresh(name, delay) -> bool``; ``store`` needs
    ``account(name)`` (routing by the numbers and WABAs it holds).  The
    ``handle_*`` methods take the parts of a request and return a
    :class:`Reply`, so the HTTP handler stays thin.
    """

    def __init__(
        self,
        settings: WebhooksConfig,
        config: Config,
        poller: RefreshTarget,
        store: Store,
        metrics: WebhookMetrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        loop: asyncio.AbstractEventLoop | None = None,
    ):
        self._loop = loop  # the event loop the listeners serve on (None: a loop thread of their own)
        self._poller = poller
        self._store = store
        self._clock = clock  # wall time (NxCloud's timestamps, facts)
        self._timer = timer  # monotonic: replay window, refresh gate, log throttling
        self._bounds_lock = threading.Lock()  # two listeners may serve during a change of address
        self._replays = ExpiringSet(REPLAY_CACHE_SIZE)
        self._gate = RefreshGate()
        self._unknown_logged = ExpiringSet(UNKNOWN_LOG_SIZE)
        self.metrics = metrics if metrics is not None else WebhookMetrics(store)
        self._state = _State.build(settings, config)
        self.metrics.prepare(settings.providers, self._state.routable())
        self._listener: _Listener | None = None
        self._index = _Index(store)
        self._log_limits: dict[tuple[str, str], tuple[float, int]] = {}
        self._log_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------

    @property
    def settings(self) -> WebhooksConfig:
        return self._state.settings

    def bind(self, listen_address: str | None = None) -> _Listener:
        """A new listener on ``listen_address`` (default: the configured one), bound but not serving; raises OSError."""
        return _Listener(listen_address or self._state.settings.listen_address, self, loop=self._loop)

    def start(self, listener: _Listener | None = None) -> WebhookReceiver:
        """Serve on ``listener`` (or a new one); raises OSError when the address cannot be bound."""
        listener = listener or self.bind()
        listener.start()
        old, self._listener = self._listener, listener
        if old is not None:
            old.stop()
        self.metrics.start()
        log.info(
            "webhook receiver listening",
            extra={
                "address": self.settings.listen_address,
                "url": listener.url + "/webhooks/",
                "providers": ",".join(self.settings.providers),
                "debounce_seconds": self.settings.debounce,
            },
        )
        return self

    def reconfigure(self, settings: WebhooksConfig, config: Config) -> None:
        """New secrets, debounce, bounds and routes take effect with the next request.

        The replay cache and each remaining account's refresh history carry over.
        """
        self._state = _State.build(settings, config)
        with self._bounds_lock:
            self._gate.keep(self._state.accounts)
        self.metrics.prepare(settings.providers, self._state.routable())

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()

    @property
    def url(self) -> str:
        assert self._listener is not None, "not started"
        return self._listener.url

    @property
    def port(self) -> int:
        assert self._listener is not None, "not started"
        return self._listener.port

    # -- requests ----------------------------------------------------------------

    def enabled(self, provider: str) -> bool:
        return provider in self._state.settings.providers

    def reject(self, provider: str, reason: str) -> Reply:
        """Count a rejected request and build its answer (the body names the reason, never a value)."""
        self.metrics.rejected(provider, reason)
        self._log_rejection(provider, reason)
        status = REASONS[reason][1]
        return Reply(status, f"{HTTPStatus(status).phrase}: {reason.replace('_', ' ')}\n".encode())

    def handle_meta_verify(self, query: str) -> Reply:
        """Meta's subscription handshake: echo hub.challenge when hub.verify_token matches."""
        state = self._state
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
        except ValueError:
            return self.reject("meta", "invalid_body")
        mode, token, challenge = (params.get(k, []) for k in ("hub.mode", "hub.verify_token", "hub.challenge"))
        if (
            len(mode) != 1
            or len(challenge) != 1
            or len(token) > 1
            or mode[0] != "subscribe"
            or not _CHALLENGE_RE.fullmatch(challenge[0])
        ):
            return self.reject("meta", "invalid_body")
        expected = (state.settings.meta_verify_token or "").encode()
        if not token or not hmac.compare_digest(token[0].encode("utf-8", "surrogateescape"), expected):
            return self.reject("meta", "bad_verify_token")
        log.info("meta webhook subscription verified")
        return Reply(
            200, challenge[0].encode("ascii"), {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
        )

    def handle_meta(self, headers: Mapping[str, list[str]], body: bytes) -> Reply:
        state = self._state
        given = headers.get("x-hub-signature-256", [])
        if not given:
            return self.reject("meta", "missing_signature")
        scheme, _, hexdigest = given[0].strip().partition("=")
        expected = hmac.new((state.settings.meta_app_secret or "").encode(), body, hashlib.sha256).hexdigest()
        if (
            len(given) != 1
            or scheme.lower() != "sha256"
            or not _HEX64_RE.fullmatch(hexdigest)
            or not hmac.compare_digest(hexdigest.lower().encode(), expected.encode())
        ):
            return self.reject("meta", "bad_signature")
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict) or not isinstance(doc.get("entry", []), list):
                raise ValueError("not an envelope")
        except (ValueError, RecursionError):
            return self.reject("meta", "invalid_body")
        if self._replayed("meta", hexdigest.lower(), body):
            return Reply(200)  # Meta retries a delivery until it gets a 200: answer it, act only once
        if doc.get("object") != "whatsapp_business_account":
            self.metrics.event("meta", OTHER, "ignored")
            return Reply(200)
        index = self._index
        for entry in doc.get("entry") or []:
            if not isinstance(entry, dict):
                continue
            waba_id = entry.get("id")
            waba_id = str(waba_id) if isinstance(waba_id, (str, int)) and not isinstance(waba_id, bool) else ""
            changes = entry.get("changes")
            for change in changes if isinstance(changes, list) else []:
                if not isinstance(change, dict):
                    continue
                event = change.get("field")
                if event not in HEALTH_FIELDS:
                    self.metrics.event("meta", OTHER, "ignored")
                    continue
                raw_value = change.get("value")
                value: dict[str, Any] = raw_value if isinstance(raw_value, dict) else {}
                phone = _digits(value.get("display_phone_number"))
                names = self._route_meta(state, index, waba_id, phone)
                self._record_facts(event, waba_id, value, names)
                self._refresh("meta", event, names, {"waba_id": waba_id, "phone_number": phone})
        return Reply(200)

    def handle_nxcloud(self, headers: Mapping[str, list[str]], body: bytes) -> Reply:
        state = self._state
        try:
            access_key, ts, biz_type, action, sign = (
                self._one(headers, h) for h in ("accesskey", "ts", "biztype", "action", "sign")
            )
        except _Rejected as e:
            return self.reject("nxcloud", e.reason)
        algorithms = headers.get("algorithm", ["md5"])
        algorithm = algorithms[0].strip().lower() if len(algorithms) == 1 else ""
        candidates = state.nx_by_key.get(access_key, ())
        if not candidates:
            return self.reject("nxcloud", "unknown_access_key")
        if algorithm not in ("md5", "sha256"):
            return self.reject("nxcloud", "bad_signature")
        try:
            # Header values arrive decoded as ISO-8859-1: encoding them back gives the bytes as sent.
            raw = [v.encode("latin-1").decode("utf-8") for v in (access_key, action, biz_type, ts)]
        except (UnicodeError, ValueError):
            return self.reject("nxcloud", "bad_signature")
        given = sign.strip().lower().encode("latin-1", "replace")
        matched: list[Account] = []
        for secret in dict.fromkeys(a.credentials.access_key_secret for a in candidates):
            expected = nxcloud_sign(raw[0], raw[1], raw[2], raw[3], body, secret, algorithm).encode()
            if hmac.compare_digest(given, expected):
                matched = [a for a in candidates if a.credentials.access_key_secret == secret]
                break
        if not matched:
            return self.reject("nxcloud", "bad_signature")
        if not ts.isdigit() or abs(self._clock() - int(ts) / 1000.0) > NXCLOUD_MAX_SKEW:
            return self.reject("nxcloud", "expired")
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict) or not isinstance(doc.get("field"), str):
                raise ValueError("not an envelope")
        except (ValueError, RecursionError):
            return self.reject("nxcloud", "invalid_body")
        if self._replayed("nxcloud", given, body):  # the signature covers ts: a re-sent event is signed anew
            return Reply(200)
        event = doc["field"]
        if event not in HEALTH_FIELDS:
            self.metrics.event("nxcloud", OTHER, "ignored")
            return Reply(200)
        raw_value = doc.get("value")
        value: dict[str, Any] = raw_value if isinstance(raw_value, dict) else {}
        phone = _digits(value.get("business_phone"))
        if phone:
            index = self._index
            narrowed = [a for a in matched if phone in index.numbers(a)]
            matched = narrowed or matched
        self._refresh("nxcloud", event, [a.name for a in matched], {"phone_number": phone})
        return Reply(200)

    def handle_kaleyra(self, query: str) -> Reply:
        state = self._state
        try:
            params = parse_qs(query, keep_blank_values=True, max_num_fields=20)
        except ValueError:
            return self.reject("kaleyra", "invalid_body")
        token = params.get("token", [])
        if not token:
            return self.reject("kaleyra", "missing_token")
        if len(token) != 1 or not hmac.compare_digest(
            token[0].encode("utf-8", "surrogateescape"), (state.settings.kaleyra_token or "").encode()
        ):
            return self.reject("kaleyra", "bad_token")
        raw_event = params.get("event", [""])
        raw_phone = params.get("display_phone_number", [""])
        if len(raw_event) != 1 or len(raw_phone) != 1 or not (raw_event[0].strip() or raw_phone[0].strip()):
            return self.reject("kaleyra", "invalid_body")
        # Unsigned: the query itself (token, number, event, limit) identifies a delivery, in any order
        if self._replayed("kaleyra", b"", "&".join(sorted(query.split("&"))).encode("utf-8", "surrogateescape")):
            return Reply(200)
        folded = raw_event[0].strip().upper()
        event = folded if folded in KALEYRA_EVENTS else OTHER
        phone = _digits(raw_phone[0])
        accounts = [a for a in state.accounts.values() if a.provider == "kaleyra"]
        if phone:
            index = self._index
            accounts = [a for a in accounts if phone in index.numbers(a)] or accounts
        self._refresh("kaleyra", event, [a.name for a in accounts], {"phone_number": phone})
        return Reply(200)

    # -- helpers -----------------------------------------------------------------

    def _record_facts(self, event: str, waba_id: str, value: Mapping[str, Any], names: list[str]) -> None:
        """Facts that only webhooks carry, handed to the accounts as they arrive (a poll follows anyway).

        ``account_update``: a WABA's restrictions, ban state and violations.
        ``business_capability_update`` and ``phone_number_quality_update``:
        the portfolio's limit (``max_daily_conversations_per_business``; the
        older ``max_daily_conversation_per_phone`` carries the same value until
        Meta removes it).
        """
        if event == "account_update":
            update = wabafacts.parse_account_update(waba_id, value, self._clock())
            if update is not None:
                for name in names:
                    self._poller.apply_waba_update(name, update)
            return
        if event not in ("business_capability_update", "phone_number_quality_update"):
            return
        raw = value.get("max_daily_conversations_per_business")
        if raw is None and event == "business_capability_update":
            raw = value.get("max_daily_conversation_per_phone")
        if raw is None or not waba_id:
            return
        tier = model.tier_of_limit(raw, "meta")
        for name in names:
            self._poller.apply_business_limit(name, waba_id, tier)

    @staticmethod
    def _one(headers: Mapping[str, list[str]], name: str) -> str:
        values = headers.get(name, [])
        if not values or not values[0].strip():
            raise _Rejected("missing_signature")
        if len(values) != 1:
            raise _Rejected("bad_signature")
        return values[0].strip()

    @staticmethod
    def _route_meta(state: _State, index: _Index, waba_id: str, phone: str) -> list[str]:
        names = []
        for account in state.accounts.values():
            if (waba_id and waba_id in index.wabas(account)) or (phone and phone in index.numbers(account)):
                names.append(account.name)
        return names

    def _replayed(self, provider: str, signature: str | bytes, payload: bytes) -> bool:
        """True (counted as ``replayed``) when this signed delivery was accepted within the replay window."""
        key = replay_key(provider, signature, payload)
        with self._bounds_lock:
            fresh = self._replays.add(key, self._timer(), self._state.settings.replay_window)
        if fresh:
            return False
        self.metrics.event(provider, UNKNOWN, "replayed")
        log.debug("webhook replay ignored", extra={"provider": provider})
        return True

    def _refresh(self, provider: str, event: str, names: list[str], context: dict[str, str]) -> None:
        """Ask for one extra poll of every account in ``names``, as each one's :class:`RefreshGate` allows;
        count the event once, and each account's share of it (scheduled, coalesced or over_budget).

        An event about one number (a quality or name update naming it, any
        Kaleyra callback) asks to read just that number again; the poller
        widens it to the whole account when the number is new or the provider
        reads whole units only.  Events about a WABA or the business (limits,
        reviews, account updates) ask for the whole account.
        """
        state = self._state
        settings = state.settings
        phone = context.get("phone_number", "")
        phones = ["+" + phone] if phone and (provider == "kaleyra" or event in NUMBER_EVENTS) else None
        scheduled = []
        outcomes = {}
        for name in names:
            account = state.accounts.get(name)
            kind = account.provider if account is not None else provider
            per_hour = settings.meta_refreshes_per_hour if kind in BUDGETED_PROVIDERS else None
            with self._bounds_lock:
                now = self._timer()
                outcome, delay = self._gate.plan(name, now, settings.debounce, settings.min_refresh_interval, per_hour)
                # A pending refresh is joined by asking again: the poller adds the numbers to it.
                if self._poller.request_refresh(name, delay, phones):
                    if outcome == "coalesced":  # the poller ran it early (or lost it): this is a new one
                        outcome = "scheduled"
                    self._gate.commit(name, now, delay, per_hour)
                    scheduled.append(name)
                else:
                    outcome = "coalesced"
            outcomes[name] = outcome
            self.metrics.refreshed(kind, name, outcome)
        if not names:
            result = "unmatched"
        elif scheduled:
            result = "accepted"
        else:
            result = "debounced"
        self.metrics.event(provider, event, result)
        extra = {"provider": provider, "event": event, "result": result, "accounts": ",".join(names)}
        extra.update({k: v for k, v in context.items() if v})
        deferred = [n for n in scheduled if outcomes[n] == "over_budget"]
        if deferred:
            extra["over_budget"] = ",".join(deferred)
        if result == "debounced":
            log.debug("webhook event", extra=extra)
        elif result == "unmatched":
            self._log_unmatched(provider, extra, context)
        else:
            log.info("webhook event", extra=extra)

    def _log_unmatched(self, provider: str, extra: dict[str, str], context: Mapping[str, str]) -> None:
        """An event no account matched: logged at most once an hour per number (or WABA), the rest at debug."""
        subject = context.get("phone_number") or ("waba:" + context["waba_id"] if context.get("waba_id") else "")
        key = (provider, subject)
        with self._bounds_lock:
            loud = self._unknown_logged.add(key, self._timer(), UNKNOWN_LOG_INTERVAL)
        if loud:
            log.info("webhook event about a number no account knows (logged once an hour per number)", extra=extra)
        else:
            log.debug("webhook event", extra=extra)

    def _log_rejection(self, provider: str, reason: str) -> None:
        """A warning per provider and reason at most once a minute; the rest at debug level."""
        now = time.monotonic()
        key = (provider, reason)
        with self._log_lock:
            last, suppressed = self._log_limits.get(key, (float("-inf"), 0))
            if now - last < 60:
                self._log_limits[key] = (last, suppressed + 1)
                loud = False
            else:
                self._log_limits[key] = (now, 0)
                loud = True
        extra: dict[str, object] = {"provider": provider, "reason": reason}
        if loud:
            if suppressed:
                extra["suppressed_since_last"] = suppressed
            log.warning("webhook request rejected", extra=extra)
        else:
            log.debug("webhook request rejected", extra=extra)
