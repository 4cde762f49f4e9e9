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

from dataclasses import KW_ONLY, dataclass

REASONS = ("throttled", "auth", "permission", "request", "upstream", "timeout", "parse")


@dataclass(eq=False, repr=False)
class ProviderError(Exception):
    """A failed provider call.  ``str()`` never contains credentials."""

    reason: str
    message: str
    _: KW_ONLY
    code: str = ""
    http_status: int | None = None
    request_id: str = ""
    retry_after: float | None = None
    action: str = ""

    def __post_init__(self) -> None:
        assert self.reason in REASONS, self.reason
        super().__init__(self.message)

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
