"""Authentication of the CAMS emulator: V3 and V2 signatures, freshness, nonces, security tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections import deque
from collections.abc import Mapping

from ..scenario import Credential, Scenario
from .model import MAX_CLOCK_SKEW, NONCE_TTL, V3_ALGORITHM, logger
from .signing import v2_signature, v2_string_to_sign, v3_canonical_request, v3_signature, v3_string_to_sign
from .wire import _ApiError, _Ctx, _missing, _parse_timestamp, _Request


def _auth_parts(rest: str) -> dict[str, str] | None:
    """``Credential=..,SignedHeaders=..,Signature=..`` in that order, commas without spaces."""
    pieces = rest.split(",")
    expected = ("Credential", "SignedHeaders", "Signature")
    if len(pieces) != len(expected):
        return None
    parts: dict[str, str] = {}
    for piece, name in zip(pieces, expected, strict=True):
        key, sep, value = piece.partition("=")
        if not sep or key != name:
            return None
        parts[key] = value
    return parts


def _claimed_v3_key(authorization: str) -> str | None:
    match = re.search(r"Credential=([^,\s]*)", authorization)
    return match.group(1) or None if match else None


def _access_denied_detail(cred: Credential | None, action: str | None) -> dict[str, str]:
    principal = cred.access_key_id if cred is not None else "emulated-user"
    owner = cred.account_key if cred is not None else "emulated-account"
    diagnostic = base64.b64encode(f"deny cams:{action} for {principal}".encode()).decode()
    return {
        "AuthAction": f"cams:{action}",
        "AuthPrincipalType": "SubUser",
        "AuthPrincipalDisplayName": principal,
        "AuthPrincipalOwnerId": owner,
        "PolicyType": "AccountLevelIdentityBasedPolicy",
        "NoPermissionType": "ImplicitDeny",
        "EncodedDiagnosticMessage": diagnostic,
    }


class _AuthMixin:
    """Authentication of :class:`CamsEmulator`."""

    # what this mixin uses of the emulator (see emulators.common's docstring)
    scenario: Scenario
    _lock: threading.RLock
    _nonces: dict[tuple[str, str], float]
    _nonce_order: deque[tuple[float, tuple[str, str]]]

    # -- authentication ----------------------------------------------------

    def _lookup(self, access_key_id: str) -> Credential:
        cred = self.scenario.credential(access_key_id)
        if cred is None:
            raise _ApiError("InvalidAccessKeyId.NotFound")
        if not cred.enabled:
            raise _ApiError("InvalidAccessKeyId.Inactive")
        return cred

    def _check_fresh(self, value: str, now: float) -> None:
        moment = _parse_timestamp(value.strip())
        if moment is None:
            raise _ApiError(
                "InvalidTimeStamp.Format",
                f"Specified time stamp or date value is not well formatted: {value!r} "
                "(expected YYYY-MM-DDThh:mm:ssZ in UTC).",
            )
        if abs(now - moment) > MAX_CLOCK_SKEW:
            raise _ApiError(
                "InvalidTimeStamp.Expired",
                f"Specified time stamp or date value is expired: {value} is more than 15 minutes "
                "away from the server time.",
            )

    def _nonce_seen(self, cred: Credential, nonce: str, now: float) -> bool:
        with self._lock:
            while self._nonce_order and self._nonce_order[0][0] <= now:
                expiry, key = self._nonce_order.popleft()
                if self._nonces.get(key) == expiry:
                    del self._nonces[key]
            until = self._nonces.get((cred.access_key_id, nonce))
            return until is not None and until > now

    def _remember_nonce(self, cred: Credential, nonce: str, now: float) -> None:
        with self._lock:
            key = (cred.access_key_id, nonce)
            expiry = now + NONCE_TTL
            self._nonces[key] = expiry
            self._nonce_order.append((expiry, key))

    def _check_token(self, cred: Credential, token: str | None) -> None:
        if token:
            if cred.security_token is None:
                raise _ApiError("InvalidSecurityToken.Malformed")
            if not hmac.compare_digest(token.encode(), cred.security_token.encode()):
                raise _ApiError("InvalidSecurityToken.MismatchWithAccessKey")
        elif cred.security_token is not None:
            raise _ApiError("MissingSecurityToken")

    def _authenticate_v3(
        self, req: _Request, ctx: _Ctx, authorization: str, query_pairs: list[tuple[str, str]]
    ) -> Credential:
        if not authorization:
            raise _ApiError(
                "MissingAccessKeyId",
                "The request carries neither an Authorization header nor an AccessKeyId parameter.",
            )
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != V3_ALGORITHM:
            raise _ApiError(
                "IncompleteSignature",
                f"Unsupported or malformed Authorization scheme {algorithm[:40]!r}; expected {V3_ALGORITHM}.",
            )
        parts = _auth_parts(rest)
        if parts is None:
            raise _ApiError(
                "IncompleteSignature",
                "The Authorization header is malformed; expected "
                "'ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..'.",
            )
        if not parts.get("Credential"):
            raise _ApiError("MissingAccessKeyId")
        signed_raw, signature = parts.get("SignedHeaders", ""), parts.get("Signature", "")
        if not signed_raw or not re.fullmatch(r"[0-9a-f]{64}", signature):
            raise _ApiError(
                "IncompleteSignature",
                "The Authorization header needs SignedHeaders and a 64-digit lowercase hex Signature.",
            )
        cred = self._lookup(parts["Credential"])
        signed = signed_raw.split(";")
        if any(not name or name != name.lower() or name.strip() != name for name in signed):
            raise _ApiError("IncompleteSignature", "SignedHeaders must be lowercase header names separated by ';'.")
        headers = req.header_map()
        must_sign = {"host"} | {h for h in headers if h.startswith("x-acs-")}
        if "content-type" in headers:
            must_sign.add("content-type")
        unsigned = sorted(must_sign - set(signed))
        if unsigned:
            raise _ApiError("IncompleteSignature", f"These headers are present but not signed: {', '.join(unsigned)}.")
        for required in ("x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
            if not (headers.get(required) or [""])[0].strip():
                raise _ApiError("IncompleteSignature", f"The header {required} is required.")
        body_hash = hashlib.sha256(req.body).hexdigest()
        claimed_hash = headers["x-acs-content-sha256"][0].strip()
        if claimed_hash != body_hash:
            raise _ApiError(
                "SignatureDoesNotMatch",
                f"x-acs-content-sha256 does not match the SHA-256 of the request body (server computed {body_hash}).",
            )
        now = req.arrival
        self._check_fresh(headers["x-acs-date"][0], now)
        nonce = headers["x-acs-signature-nonce"][0].strip()
        if self._nonce_seen(cred, nonce, now):
            raise _ApiError("SignatureNonceUsed")
        canonical = v3_canonical_request(req.method, "/", query_pairs, headers, signed, claimed_hash)
        string_to_sign = v3_string_to_sign(canonical)
        expected = v3_signature(cred.access_key_secret, string_to_sign)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            logger.debug("V3 signature mismatch; server canonical request:\n%s", canonical)
            raise _ApiError(
                "SignatureDoesNotMatch",
                f"Specified signature does not match our calculation. server StringToSign is [{string_to_sign}]",
            )
        tokens = headers.get("x-acs-security-token")
        self._check_token(cred, tokens[0] if tokens else None)
        self._remember_nonce(cred, nonce, now)
        return cred

    def _authenticate_v2(
        self, req: _Request, ctx: _Ctx, params: Mapping[str, str], all_pairs: list[tuple[str, str]]
    ) -> Credential:
        if not params.get("AccessKeyId"):
            raise _ApiError("MissingAccessKeyId")
        if not params.get("Signature"):
            raise _missing("Signature")
        cred = self._lookup(params["AccessKeyId"])
        _require_supported(params, "SignatureMethod", "HMAC-SHA1", "signature method")
        _require_supported(params, "SignatureVersion", "1.0", "signature version")
        timestamp = params.get("Timestamp")
        if not timestamp:
            raise _missing("Timestamp")
        now = req.arrival
        self._check_fresh(timestamp, now)
        nonce = params.get("SignatureNonce")
        if not nonce:
            raise _missing("SignatureNonce")
        if self._nonce_seen(cred, nonce, now):
            raise _ApiError("SignatureNonceUsed")
        string_to_sign = v2_string_to_sign(req.method, [(k, v) for k, v in all_pairs if k != "Signature"])
        expected = v2_signature(cred.access_key_secret, string_to_sign)
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
            raise _ApiError(
                "SignatureDoesNotMatch",
                f"Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}",
            )
        self._check_token(cred, params.get("SecurityToken"))
        self._remember_nonce(cred, nonce, now)
        return cred


def _require_supported(params: Mapping[str, str], key: str, supported: str, what: str) -> None:
    """A parameter that must be present with the one value the service supports (``Invalid<key>`` otherwise)."""
    value = params.get(key)
    if not value:
        raise _missing(key)
    if value != supported:
        raise _ApiError(f"Invalid{key}", f"Specified {what} {value!r} is not supported; use {supported}.")
