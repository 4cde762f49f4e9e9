"""An emulator of Infobip's WhatsApp sender quality API (``GET /whatsapp/1/senders/quality``).

Written from Infobip's API pages and its official SDK as summarised in the
provider reference; it never imports the exporter's client code.

* **Auth:** ``Authorization: App <api key>`` (the key is a scenario credential's
  ``access_key_secret``; its ``access_key_id`` only names it), and also
  ``Basic base64(access_key_id:access_key_secret)``.  Missing or wrong → 401
  with the legacy ``UNAUTHORIZED`` body.  ``permissions: denied`` (a key without
  the WhatsApp scope) → 403 ``FORBIDDEN``.
* **Params:** ``senders`` is required: comma-separated (``,`` or ``%2C``), or
  repeated (as Infobip's Java SDK sends it), de-duplicated; a leading ``+`` is
  stripped.  Missing, or more than 100 distinct → 400 ``BAD_REQUEST`` with
  ``validationErrors``.
* **Result:** ``{"results": [...]}``, one entry per requested number the account
  owns; unknown numbers and numbers of other accounts are silently left out
  (still 200; an empty list is valid).
* **Rate limit:** 10 requests per second per account (a scenario credential's
  ``qps``, 10 unless set; ``account`` groups keys of one account); beyond it 429 with the
  legacy ``TOO_MANY_REQUESTS`` body.  Refused requests count nothing.
* **Errors** use the legacy ``{"requestError": {"serviceException": {...}}}``
  body; ``error_format="new"`` answers the newer ``ApiError`` ``{errorCode,
  description, action, violations, resources}`` instead.
* **Faults** (see :mod:`.scenario`): ``error`` with a legacy ``messageId``
  (``GENERAL_ERROR`` is a 500, ``TOO_MANY_REQUESTS`` a 429, …), ``delay``,
  ``malformed``, ``html``, ``reset``, ``truncate``, ``oversize``, ``refuse`` and
  the data faults on the answer.

Scenario mapping: a space is a part of one Infobip account (its owner's
``account``); numbers carry the wire values ``status`` (Meta's), ``quality_rating``
(``HIGH``/``MEDIUM``/``LOW``/``UNKNOWN``), ``current_limit`` (``LIMIT_*``) and
optionally ``last_updated`` (ISO-8601; default: the scenario time of the number's
latest change, as wall time).
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Unpack
from urllib.parse import parse_qsl, urlsplit

from .common import UNKNOWN_ENUM_VALUES, ApiError, BodyError, Context, ProviderEmulator, Reply, Request, json_bytes
from .common.base import EmulatorOptions
from .common.faults import data_faults
from .scenario import Credential, Fault, Scenario

__all__ = ["ACTION", "MAX_SENDERS", "PATH", "InfobipEmulator"]

logger = logging.getLogger("emulators.infobip")

PATH = "/whatsapp/1/senders/quality"
ACTION = "getWhatsappSendersQuality"
MAX_SENDERS = 100
DEFAULT_QPS = 10
JSON = "application/json;charset=UTF-8"

#: the legacy errors' texts by HTTP status; the ``messageId`` is the status' name (``TOO_MANY_REQUESTS``)
_TEXTS = {
    400: "Bad request",
    401: "Invalid login details",
    403: "Forbidden",
    404: "Not found",
    429: "Too many requests",
}
#: messageId -> (HTTP status, text); but a 500 is ``GENERAL_ERROR``
ERRORS: dict[str, tuple[int, str]] = {HTTPStatus(status).name: (status, text) for status, text in _TEXTS.items()}
ERRORS["GENERAL_ERROR"] = (500, "Something went wrong. Please contact support.")
_NUMBER_KNOWN = frozenset({"status", "quality_rating", "current_limit", "last_updated", "present", "wire_extra"})


def new_code(message_id: Any) -> str:
    """The ``errorCode`` of the newer format for a legacy ``messageId``: ``E`` + its HTTP status (``E404``)."""
    known = ERRORS.get(message_id)
    return f"E{known[0]}" if known else str(message_id)


class _IbError(ApiError):
    ERRORS = ERRORS
    DEFAULT = (400, "Bad request")


class InfobipEmulator(ProviderEmulator):
    provider_name = "Infobip"
    server_software = "SMS API"
    json_content_type = JSON
    known_number_attributes = _NUMBER_KNOWN
    observed_number_fields = ("present", "status", "quality_rating", "current_limit")
    data_fault_actions = data_faults({ACTION})
    _logger = logger

    def __init__(
        self,
        scenario: Scenario,
        *,
        error_format: str = "legacy",
        reject_plus: bool = False,
        **options: Unpack[EmulatorOptions],
    ):
        super().__init__(scenario, **options)
        if error_format not in ("legacy", "new"):
            raise ValueError("error_format must be legacy or new")
        self.error_format = error_format
        self.reject_plus = reject_plus
        #: how many senders each accepted request asked for (distinct)
        self.batch_sizes: list[int] = []

    def _new_context(self, req: Request | None) -> Context:
        return Context(request_id=f"ib-{time.time_ns():x}")

    def _internal_error(self) -> ApiError:
        return _IbError("GENERAL_ERROR")

    def _body_error(self, exc: BodyError) -> ApiError:
        return _IbError("BAD_REQUEST", exc.message, exc.status)

    def _fault_error(self, ctx: Context, fault: Fault) -> ApiError:
        status = 200 if fault.http200 else fault.http_status
        return _IbError(str(fault.code), fault.message, status, retry_after=fault.retry_after, detail=None)

    def _error_reply(self, ctx: Context, err: ApiError) -> Reply:
        headers = {}
        if err.retry_after is not None:
            headers["Retry-After"] = str(err.retry_after)
        if self.error_format == "new":
            body: dict[str, Any] = {
                "errorCode": new_code(err.code),
                "description": err.message,
                "action": "Check the request and try again.",
                "violations": [{"property": k, "violation": m} for k, msgs in (err.detail or {}).items() for m in msgs],
                "resources": [{"name": "API reference", "url": "https://www.infobip.com/docs/api"}],
            }
        else:
            exception: dict[str, Any] = {"messageId": err.code, "text": err.message}
            if err.detail:
                exception["validationErrors"] = err.detail
            body = {"requestError": {"serviceException": exception}}
        return Reply(err.status, json_bytes(body), JSON, headers, code=str(err.code))

    # -- processing ----------------------------------------------------------

    def _authenticate(self, req: Request) -> Credential:
        header = (req.header("authorization") or "").strip()
        scheme, _, value = header.partition(" ")
        value = value.strip()
        scheme = scheme.lower()
        if scheme == "app":
            for cred in self.scenario.credentials:
                if cred.enabled and hmac.compare_digest(cred.access_key_secret.encode(), value.encode()):
                    return cred
        elif scheme == "basic":
            try:
                user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise _IbError("UNAUTHORIZED") from None
            owner = self.scenario.credential(user)
            if (
                sep
                and owner is not None
                and owner.enabled
                and hmac.compare_digest(owner.access_key_secret.encode(), password.encode())
            ):
                return owner
        raise _IbError("UNAUTHORIZED")

    def _process(self, req: Request, ctx: Context) -> Reply:
        path = ctx.path.rstrip("/")
        if path != PATH:
            raise _IbError("NOT_FOUND", f"Not found: {path[:200]}", 404)
        ctx.action = ACTION
        if req.method != "GET":
            raise _IbError("BAD_REQUEST", f"Request method {req.method} not supported", 405)
        cred = self._authenticate(req)
        ctx.access_key_id = cred.access_key_id
        if not cred.allows(ACTION):
            raise _IbError("FORBIDDEN", "Forbidden: the API key has no WhatsApp scope")
        ctx.authenticated = True
        if not self._admit(req.arrival, [((cred.account_key,), cred.qps)]):
            ctx.throttled = True
            raise _IbError("TOO_MANY_REQUESTS")
        senders = self._senders(req)
        ctx.phone_numbers = tuple(senders)
        ctx.phone_number = senders[0]
        fault = self._apply_faults(ctx)
        if fault is not None:
            return fault
        with self._lock:
            self.batch_sizes.append(len(senders))
        results = self._ok(ctx, {"results": self._results(cred, senders)})
        return results

    def _senders(self, req: Request) -> list[str]:
        values = [v for k, v in parse_qsl(urlsplit(req.target).query, keep_blank_values=True) if k == "senders"]
        senders: list[str] = []
        for value in values:
            for piece in value.split(","):
                piece = piece.strip()
                if piece.startswith("+"):
                    if self.reject_plus:
                        raise _IbError("BAD_REQUEST", detail={"senders": ["must contain digits only"]})
                    piece = piece[1:]
                if piece and piece not in senders:
                    senders.append(piece)
        if not senders:
            raise _IbError("BAD_REQUEST", detail={"senders": ["must not be empty"]})
        if len(senders) > MAX_SENDERS:
            raise _IbError("BAD_REQUEST", detail={"senders": [f"size must be between 1 and {MAX_SENDERS}"]})
        return senders

    def _ok(self, ctx: Context, payload: Any) -> Reply:
        payload = self._data_fault(ctx, payload)
        return Reply(200, json_bytes(payload), JSON, code="200")

    def _results(self, cred: Credential, senders: list[str]) -> list[dict[str, Any]]:
        t = self.scenario_time()
        owned: dict[str, tuple[Any, dict[str, Any]]] = {}
        for space in self.scenario.spaces:
            owner = self.scenario.credential(space.access_key_id)
            if owner is None or owner.account_key != cred.account_key:
                continue
            for number in space.numbers:
                if number.phone_number in senders and number.phone_number not in owned:
                    state = self.number_state(space, number.phone_number, t)
                    if state is not None and state.get("present", True):
                        owned[number.phone_number] = (number, state)
        out = []
        for sender in senders:
            if sender not in owned:
                continue  # not the account's: silently left out
            number, state = owned[sender]
            updated = state.get("last_updated")
            if updated is None:
                changed = 0.0
                for attr in ("status", "quality_rating", "current_limit"):
                    changed = max(changed, number.timeline.set_time(attr, t) or 0.0)
                wall = (self._t0 or self._clock()) + changed
                updated = datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            entry = {
                "sender": sender,
                "qualityRating": state.get("quality_rating"),
                "status": state.get("status"),
                "currentLimit": state.get("current_limit"),
                "lastUpdated": updated,
            }
            extra = state.get("wire_extra")
            if isinstance(extra, dict):
                entry.update(extra)
            out.append(entry)
        return out

    def _corrupt_answer(self, kind: str, action: str | None, payload: Any) -> Any:
        if not isinstance(payload, dict):
            return payload
        results = payload.get("results", [])
        if kind == "duplicate_numbers":
            return {"results": [c for r in results for c in (r, dict(r))]}
        out = []
        for r in results:
            r = dict(r)
            if kind == "unknown_enum":
                r.update(
                    status=UNKNOWN_ENUM_VALUES["status"],
                    qualityRating=UNKNOWN_ENUM_VALUES["quality"],
                    currentLimit=UNKNOWN_ENUM_VALUES["tier"],
                )
            else:
                r.update(status=None, qualityRating=None, currentLimit=None)
                r.pop("lastUpdated", None)
            out.append(r)
        return {"results": out}
