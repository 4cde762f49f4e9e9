"""Alibaba Cloud signing primitives (ACS3-HMAC-SHA256 and the V2 RPC signature), pure functions."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from .model import V3_ALGORITHM

# ---------------------------------------------------------------------------
# signing primitives (pure functions; also used by the tests against the vectors)


def rfc3986(text: str) -> str:
    """Percent-encode UTF-8 ``text`` leaving only ``A-Za-z0-9-_.~`` (space -> %20, * -> %2A)."""
    return quote(text, safe="-_.~", encoding="utf-8", errors="strict")


def canonical_query_string(pairs: Iterable[tuple[str, str]]) -> str:
    """Sorted ``name=value`` pairs, each side RFC 3986 encoded, joined with ``&``."""
    return "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in sorted(pairs))


def v3_canonical_request(
    method: str,
    canonical_uri: str,
    query_pairs: Iterable[tuple[str, str]],
    headers: Mapping[str, str | Sequence[str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The ACS3 canonical request.  ``headers`` keys may use any case; absent signed headers count as empty."""
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        values = [value] if isinstance(value, str) else list(value)
        lowered.setdefault(name.lower(), []).extend(values)
    names = sorted(h.lower() for h in signed_headers)
    lines = []
    for name in names:
        values = sorted(v.strip() for v in lowered.get(name, []))
        lines.append(f"{name}:{','.join(values)}\n")
    return "\n".join(
        [
            method.upper(),
            canonical_uri or "/",
            canonical_query_string(query_pairs),
            "".join(lines),
            ";".join(names),
            payload_hash,
        ]
    )


def v3_string_to_sign(canonical_request: str) -> str:
    return f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"


def v3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def v3_authorization(access_key_id: str, signed_headers: Sequence[str], signature: str) -> str:
    names = ";".join(sorted(h.lower() for h in signed_headers))
    return f"{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={signature}"


def v2_string_to_sign(method: str, params: Iterable[tuple[str, str]]) -> str:
    """``METHOD&%2F&pct(canonical query)``; ``params`` must not contain ``Signature``."""
    return f"{method.upper()}&{rfc3986('/')}&{rfc3986(canonical_query_string(params))}"


def v2_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")
