"""One error type with a canonical code; business errors subclass it.

The code set is gRPC's. Transports map a code to a gRPC status and an HTTP status,
and send the error's registered name along (`lokit-error` trailer / `X-Lokit-Error`
header) so a lokit client raises the very same exception class on the caller's side.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class Code(enum.IntEnum):
    """gRPC's canonical status codes."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# The mapping grpc-gateway and Google's API design guide use.
HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

_CODE_FOR_HTTP: dict[int, Code] = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    405: Code.UNIMPLEMENTED,
    409: Code.ABORTED,
    429: Code.RESOURCE_EXHAUSTED,
    499: Code.CANCELLED,
    501: Code.UNIMPLEMENTED,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
}

_registry: dict[str, type[Error]] = {}
_by_qualname: dict[str, list[type[Error]]] = {}
_by_code: dict[Code, type[Error]] = {}


class Error(Exception):
    """A lokit error: a canonical `code` and a human `message`.

    Subclass it for business errors; set `code`, and `http_status` when the HTTP
    status should differ from the code's usual one (the workshop's 418 teapot).
    Every subclass is registered under `error_name` (default: module.QualName) so
    clients can raise the same class the server raised.
    """

    code: ClassVar[Code] = Code.UNKNOWN
    http_status: ClassVar[int | None] = None
    error_name: ClassVar[str] = "lokit.errors.Error"
    default_message: ClassVar[str] = ""
    # Seconds after which the call may succeed (a rate limit sets it on an instance):
    # HTTP answers send it as `Retry-After`, gRPC as `retry-after` trailing metadata.
    retry_after: float | None = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "error_name" not in cls.__dict__:
            cls.error_name = f"{cls.__module__}.{cls.__qualname__}"
        _registry[cls.error_name] = cls
        _by_qualname.setdefault(cls.error_name.rpartition(".")[2], []).append(cls)

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else (self.default_message or self.code.name)
        super().__init__(self.message)

    @property
    def status(self) -> int:
        """The HTTP status a transport answers with."""
        return self.http_status or HTTP_STATUS.get(self.code, 500)

    def __reduce__(self) -> tuple[type[Error], tuple[str]]:
        return (type(self), (self.message,))


class Cancelled(Error):
    code = Code.CANCELLED
    error_name = "lokit.CANCELLED"


class Unknown(Error):
    code = Code.UNKNOWN
    error_name = "lokit.UNKNOWN"


class InvalidArgument(Error):
    code = Code.INVALID_ARGUMENT
    error_name = "lokit.INVALID_ARGUMENT"


class DeadlineExceeded(Error):
    code = Code.DEADLINE_EXCEEDED
    error_name = "lokit.DEADLINE_EXCEEDED"


class NotFound(Error):
    code = Code.NOT_FOUND
    error_name = "lokit.NOT_FOUND"


class AlreadyExists(Error):
    code = Code.ALREADY_EXISTS
    error_name = "lokit.ALREADY_EXISTS"


class PermissionDenied(Error):
    code = Code.PERMISSION_DENIED
    error_name = "lokit.PERMISSION_DENIED"


class ResourceExhausted(Error):
    code = Code.RESOURCE_EXHAUSTED
    error_name = "lokit.RESOURCE_EXHAUSTED"


class FailedPrecondition(Error):
    code = Code.FAILED_PRECONDITION
    error_name = "lokit.FAILED_PRECONDITION"


class Aborted(Error):
    code = Code.ABORTED
    error_name = "lokit.ABORTED"


class OutOfRange(Error):
    code = Code.OUT_OF_RANGE
    error_name = "lokit.OUT_OF_RANGE"


class Unimplemented(Error):
    code = Code.UNIMPLEMENTED
    error_name = "lokit.UNIMPLEMENTED"


class Internal(Error):
    code = Code.INTERNAL
    error_name = "lokit.INTERNAL"


class Unavailable(Error):
    code = Code.UNAVAILABLE
    error_name = "lokit.UNAVAILABLE"


class DataLoss(Error):
    code = Code.DATA_LOSS
    error_name = "lokit.DATA_LOSS"


class Unauthenticated(Error):
    code = Code.UNAUTHENTICATED
    error_name = "lokit.UNAUTHENTICATED"


for _cls in (
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
):
    _by_code[_cls.code] = _cls


def rebuild(code: Code | int, message: str, name: str | None = None) -> Error:
    """The exception a client raises for an error received from a server.

    The registered class when `name` is known here and agrees on the code,
    else the canonical class for the code.
    """
    try:
        code = Code(code)
    except ValueError:
        code = Code.UNKNOWN
    cls = _lookup(name)
    if cls is None or cls.code != code:
        cls = _by_code.get(code, Unknown)
    return cls(message)


def _lookup(name: str | None) -> type[Error] | None:
    """The class registered as `name`; else the one class with the same last name part.

    The fallback matters when a service runs as a script: its errors register under
    `__main__.X` while its clients import them as `module.X`.
    """
    if not name:
        return None
    cls = _registry.get(name)
    if cls is None:
        same = _by_qualname.get(name.rpartition(".")[2], [])
        cls = same[0] if len(same) == 1 else None
    return cls


def from_http_status(status: int, message: str, name: str | None = None) -> Error:
    """The exception for a non-2xx HTTP answer (name from `X-Lokit-Error`)."""
    cls = _lookup(name)
    if cls is not None:
        return cls(message)
    code = _CODE_FOR_HTTP.get(status, Code.INTERNAL if status >= 500 else Code.UNKNOWN)
    return _by_code.get(code, Unknown)(message)


def as_error(exc: BaseException) -> Error:
    """Any exception as a lokit Error (unexpected ones become INTERNAL, message kept short)."""
    if isinstance(exc, Error):
        return exc
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded("deadline exceeded")
    return Internal(f"internal error: {type(exc).__name__}: {exc}")


def internal_error(request_id: str) -> Internal:
    """What a caller learns of an unexpected failure: `internal error (request id RID)`.

    Every transport answers it (no exception text: it may name paths, data or key
    material); the request id finds the failure in the server's log."""
    return Internal(f"internal error (request id {request_id})")
