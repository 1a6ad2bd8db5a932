"""lokit errors <-> gRPC status codes, details and the `lokit-error` trailer.

A server aborts with the error's canonical code, its message as details and its
registered name in the `lokit-error` trailing metadata; a lokit client turns the
status back into the very same exception class. Transport failures (nothing
listening, connection refused) become `Unavailable` with one sentence naming the
address, so a dependency that is down reads plainly in the caller's log.
"""

from __future__ import annotations

from typing import Any

import grpc

from lokit.errors import (
    Code,
    DeadlineExceeded,
    Error,
    Unavailable,
    rebuild,
)

ERROR_TRAILER = "lokit-error"

_BY_NUMBER: dict[int, Any] = {sc.value[0]: sc for sc in grpc.StatusCode}

GRPC_STATUS: dict[Code, Any] = {code: _BY_NUMBER[int(code)] for code in Code}
"""grpc.StatusCode for each canonical code (the two sets are the same)."""


def grpc_status(code: Code) -> Any:
    """The grpc.StatusCode for a canonical code (UNKNOWN for anything unexpected)."""
    return GRPC_STATUS.get(code, grpc.StatusCode.UNKNOWN)


def trailer_value(metadata: Any, key: str) -> str | None:
    """The string value of `key` in gRPC metadata (a grpc.aio.Metadata or pairs), or None."""
    if not metadata:
        return None
    for k, v in metadata:
        if k == key:
            return v if isinstance(v, str) else None
    return None


def unavailable_reason(details: str) -> str:
    """The last, most specific part of grpc's connection failure text, lower-cased.

    `failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1:
    Failed to connect to remote host: Connection refused` -> `connection refused`.
    """
    reason = details.rsplit(": ", 1)[-1].strip().rstrip(".")
    if not reason:
        return "unavailable"
    return reason[:1].lower() + reason[1:]


def client_error(exc: Any, target: str, path: str, name: str = "") -> Error:
    """The lokit exception for a failed call (`exc` is a grpc.aio.AioRpcError).

    The class named in the `lokit-error` trailer when the server sent one and the
    code agrees; otherwise the canonical class for the code. UNAVAILABLE and
    DEADLINE_EXCEEDED that did not come from a lokit server get a sentence naming
    the address (and the service `name` when given) and the method.
    """
    code = exc.code()
    number = code.value[0] if isinstance(code, grpc.StatusCode) else int(Code.UNKNOWN)
    details = exc.details() or ""
    error_name = trailer_value(exc.trailing_metadata(), ERROR_TRAILER)
    if error_name is None:
        service = f"service {name} at {target}" if name else f"service at {target}"
        if number == Code.UNAVAILABLE:
            return Unavailable(f"{service} is unavailable: {unavailable_reason(details)}")
        if number == Code.DEADLINE_EXCEEDED:
            return DeadlineExceeded(f"call to {path} on {service} exceeded its deadline")
    return rebuild(number, details, error_name)
