"""Requests, replies, errors, the request log record and active faults of the emulators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..scenario import Fault

# ---------------------------------------------------------------------------
# records and request plumbing


@dataclass(frozen=True)
class RequestRecord:
    """One request as an emulator saw it.  ``access_key_id`` is the credential the request claimed
    (CAMS: the AccessKeyId; NxCloud: the accessKey header; Kaleyra: the SID in the path)."""

    time: float
    access_key_id: str | None
    action: str | None
    space_id: str | None
    http_status: int  # 0 when the connection was reset
    code: str | None  # the provider's result code as a string, or "fault:<kind>"
    phone_number: str | None = None
    signature_version: str | None = None  # CAMS "V3"/"V2"; NxCloud "md5"/"sha256"; else None
    authenticated: bool = False
    throttled: bool = False
    fault: str | None = None  # the kind of the fault applied, if any
    request_id: str | None = None
    method: str = ""
    path: str = ""

    @property
    def accepted(self) -> bool:
        """Authenticated and not refused by flow control."""
        return self.authenticated and not self.throttled


class ApiError(Exception):
    """An error answer.  Subclasses set ``ERRORS`` (code -> (HTTP status, message))."""

    ERRORS: Mapping[Any, tuple[int, str]] = {}
    DEFAULT: tuple[int, str] = (400, "The request failed.")

    def __init__(
        self,
        code: Any,
        message: str | None = None,
        status: int | None = None,
        *,
        retry_after: int | None = None,
        http200: bool = False,
        detail: Any = None,
    ):
        default_status, default_message = self.ERRORS.get(code, self.DEFAULT)
        super().__init__(code)
        self.code = code
        self.status = status if status is not None else default_status
        self.message = message if message is not None else default_message
        self.retry_after = retry_after
        self.http200 = http200
        self.detail = detail


class BodyError(Exception):
    """The request body could not be read (``status`` 400 or 413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None
    reset: bool = False
    truncate: bool = False  # send the headers and half the body, then close the connection
    tail: tuple[bytes | memoryview, ...] = ()  # more body after ``body`` (an oversize answer's shared padding)


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    arrival: float

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in self.headers:
            out.setdefault(key.lower(), []).append(value)
        return out


@dataclass
class Context:
    """What is known about a request while it is processed; becomes its :class:`RequestRecord`."""

    request_id: str = ""
    action: str | None = None
    access_key_id: str | None = None
    space_id: str | None = None
    phone_number: str | None = None
    phone_numbers: tuple[str, ...] = ()  # every number a request names (fault selectors match any)
    signature_version: str | None = None
    authenticated: bool = False
    throttled: bool = False
    fault: str | None = None
    path: str = ""
    fault_spec: Fault | None = None  # the fault applied (its parameters, e.g. megabytes)

    def record(self, time: float, http_status: int, code: str | None, method: str, path: str) -> RequestRecord:
        """The request's record: how it was answered, and what of it is known here (the fields of the same name)."""
        answered: dict[str, Any] = {
            "time": time,
            "http_status": http_status,
            "code": code,
            "method": method,
            "path": path,
        }
        known = {f.name: getattr(self, f.name) for f in fields(RequestRecord) if f.name not in answered}
        return RequestRecord(**answered, **known)


class ActiveFault:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault):
        self.fault = fault
        self.remaining = fault.count
