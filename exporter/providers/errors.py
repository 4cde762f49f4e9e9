"""Errors every provider client raises, classified into a small set of reasons.

The reason is the ``reason`` label of ``whatsapp_exporter_api_request_errors_total``
and decides how the poller reacts:

============  ==========================================================  =========================
reason        meaning                                                     reaction
============  ==========================================================  =========================
throttled     the provider's flow control refused the call                back off with jitter, retry
auth          the credential is wrong, unknown, disabled or clock skew    do not retry; fix the config
permission    the credential is valid but not allowed (RAM policy, space)  do not retry; fix the policy
request       the provider rejected a parameter (unknown space, number)   do not retry; fix the config
upstream      5xx, connection refused/reset, unexpected business error   retry on the next poll
timeout       no answer within the configured timeout                    retry on the next poll
parse         the answer was not the documented JSON shape                retry on the next poll
============  ==========================================================  =========================
"""

from __future__ import annotations

REASONS = ("throttled", "auth", "permission", "request", "upstream", "timeout", "parse")


class ProviderError(Exception):
    """A failed provider call.  ``str()`` never contains credentials."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        code: str = "",
        http_status: int | None = None,
        request_id: str = "",
        retry_after: float | None = None,
        action: str = "",
    ):
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.retry_after = retry_after
        self.action = action

    @property
    def retryable(self) -> bool:
        return self.reason in ("throttled", "upstream", "timeout")

    def __str__(self) -> str:
        parts = [self.reason]
        if self.code:
            parts.append(f"code={self.code}")
        if self.http_status is not None:
            parts.append(f"http_status={self.http_status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return f"{' '.join(parts)}: {self.message}"
