"""Signatures the receiver verifies that are not one standard HMAC call: NxCloud's."""

from __future__ import annotations

import hashlib


def nxcloud_sign(
    access_key: str, action: str, biz_type: str, ts: str, body: bytes, secret: str, algorithm: str = "md5"
) -> str:
    """NxCloud's signature (lowercase hex) over the headers, the raw body bytes and the secret.

    ``accessKey=<AK>&action=<ACTION>&bizType=<BIZ>&ts=<TS>[&body=<raw body>]&accessSecret=<secret>``;
    the body part is left out for an empty body, as for requests.
    """
    data = f"accessKey={access_key}&action={action}&bizType={biz_type}&ts={ts}".encode()
    if body:
        data += b"&body=" + body
    data += b"&accessSecret=" + secret.encode("utf-8")
    return hashlib.new(algorithm, data).hexdigest()
