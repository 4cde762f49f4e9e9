"""NxCloud request signing (the "API interface invocation convention").

``sign`` is the lowercase hex MD5 of
``accessKey=..&action=..&bizType=..&ts=..`` + ``&body=<raw body>`` (left out
when the body is empty) + ``&accessSecret=..``.  The body part is the exact
bytes sent, so the caller serializes the body once and signs and sends those
same bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def string_to_sign(access_key: str, action: str, biz_type: str, ts: str, body: bytes, access_secret: str) -> bytes:
    # Sorted by header name, case-sensitively: accessKey < action < bizType < ts.
    head = f"accessKey={access_key}&action={action}&bizType={biz_type}&ts={ts}".encode()
    if body:
        head += b"&body=" + body
    return head + f"&accessSecret={access_secret}".encode()


def sign(access_key: str, action: str, biz_type: str, ts: str, body: bytes, access_secret: str) -> str:
    return hashlib.md5(string_to_sign(access_key, action, biz_type, ts, body, access_secret)).hexdigest()


def serialize(payload: dict[str, Any]) -> bytes:
    """Compact JSON, non-ASCII kept as UTF-8: the bytes that are both signed and sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
