"""Alibaba Cloud POP request signing, client side.

* V3 ``ACS3-HMAC-SHA256`` (header based; the official SDK's default).
* V2 ``HMAC-SHA1`` RPC signatures (legacy; all parameters in the query).

Both are pure functions of their inputs; nonce and date are passed in so the
published vectors can be replayed exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM_V3 = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """RFC 3986 encoding: only ``A-Za-z0-9-_.~`` stay as they are."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted, RFC 3986 encoded ``k=v`` pairs joined by ``&`` (used on the wire too)."""
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def utc_timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_nonce() -> str:
    return secrets.token_hex(16)


def v3_canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed_headers: list[str],
    body_sha256: str,
) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(f"{name}:{lowered[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            body_sha256,
        ]
    )


def v3_string_to_sign(canonical_request: str) -> str:
    return f"{ALGORITHM_V3}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"


def v3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def sign_v3(
    *,
    method: str,
    host: str,
    action: str,
    version: str,
    query: Mapping[str, str],
    access_key_id: str,
    access_key_secret: str,
    date: str,
    nonce: str,
    body: bytes = b"",
    path: str = "/",
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the headers to send, ``Authorization`` included.

    Every header returned is signed: ``host``, the ``x-acs-*`` headers and any
    ``extra_headers`` given (lowercased).
    """
    body_sha = hashlib.sha256(body).hexdigest()
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": date,
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": body_sha,
    }
    for k, v in (extra_headers or {}).items():
        headers[k.lower()] = v
    signed = sorted(headers)
    canonical = v3_canonical_request(method, path, query, headers, signed, body_sha)
    signature = v3_signature(access_key_secret, v3_string_to_sign(canonical))
    headers["authorization"] = (
        f"{ALGORITHM_V3} Credential={access_key_id},SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    return headers


def v2_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def v2_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    digest = hmac.new(
        (access_key_secret + "&").encode(), v2_string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def sign_v2(
    *,
    method: str,
    action: str,
    version: str,
    query: Mapping[str, str],
    access_key_id: str,
    access_key_secret: str,
    timestamp: str,
    nonce: str,
) -> dict[str, str]:
    """Return every query parameter to send, ``Signature`` included."""
    params = dict(query)
    params.update(
        {
            "Action": action,
            "Version": version,
            "Format": "JSON",
            "AccessKeyId": access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": nonce,
            "Timestamp": timestamp,
        }
    )
    params["Signature"] = v2_signature(method, params, access_key_secret)
    return params
