"""NxCloud request signing (pure functions; the tests check them against the published vectors)."""

from __future__ import annotations

import hmac

from .model import ALGORITHMS

# ---------------------------------------------------------------------------
# signing (pure functions; the tests check them against the published vectors)


def string_to_sign(
    access_key: str, action: str, biz_type: str, ts: str, body: bytes | str, access_secret: str
) -> bytes:
    """The bytes NxCloud hashes: sorted common headers, the raw body (if any), then the secret."""
    raw_body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    out = f"accessKey={access_key}&action={action}&bizType={biz_type}&ts={ts}".encode()
    if raw_body:
        out += b"&body=" + raw_body
    return out + f"&accessSecret={access_secret}".encode()


def sign(
    access_key: str, action: str, biz_type: str, ts: str, body: bytes | str, access_secret: str, algorithm: str = "md5"
) -> str:
    """Lowercase hex MD5 (or SHA-256) of :func:`string_to_sign`."""
    digest = ALGORITHMS[algorithm.lower()]
    return digest(string_to_sign(access_key, action, biz_type, ts, body, access_secret)).hexdigest()


def verify(
    access_key: str,
    action: str,
    biz_type: str,
    ts: str,
    body: bytes | str,
    access_secret: str,
    signature: str,
    algorithm: str = "md5",
) -> bool:
    """True if ``signature`` is the lowercase hex digest NxCloud expects for these raw inputs.

    An uppercase digest is refused: the convention asks for lowercase, and
    accepting both would hide a client bug.
    """
    if algorithm.lower() not in ALGORITHMS:
        return False
    expected = sign(access_key, action, biz_type, ts, body, access_secret, algorithm)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))
