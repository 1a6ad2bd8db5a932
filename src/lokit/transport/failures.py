"""What a server tells its client when a request fails: shared by gRPC, HTTP and frames.

- `server_error`: lokit errors as they are, anything else as `internal_error` with
  the request id. No exception text reaches a caller (it may name paths, data or
  key material); the observer gets the original exception and logs it.
- `cannot_connect`: what a client raises when it cannot connect: one sentence
  naming the address (`PermissionDenied` when a Unix socket's permissions refuse
  this user).
- `stopping`: a request cancelled because a stop's grace period ended tells its
  client `Unavailable` instead of a dropped call, and its task ends normally.
"""

from __future__ import annotations

import asyncio
import errno

from lokit import errors

__all__ = ["cannot_connect", "server_error", "stopping"]


def server_error(exc: BaseException, request_id: str) -> errors.Error:
    """What a server sends for `exc` (see the module docstring)."""
    if isinstance(exc, errors.Error):
        return exc
    err = errors.as_error(exc)
    return errors.internal_error(request_id) if isinstance(err, errors.Internal) else err


def stopping(exc: BaseException) -> BaseException:
    """What a cancelled request tells its client.

    The server cancels requests still running when the grace period of a stop is
    over: the client gets `Unavailable` instead of a dropped connection, and the
    task ends normally. A CancelledError that did not come from cancelling this
    task is an ordinary internal failure.
    """
    if not isinstance(exc, asyncio.CancelledError):
        return exc
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()
        return errors.Unavailable("the server is shutting down")
    return exc


def cannot_connect(label: str, error: OSError, unix: bool) -> errors.Error:
    """The error for a failed connect to `label` (see the module docstring)."""
    if unix and error.errno == errno.EACCES:
        return errors.PermissionDenied(f"permission denied connecting to {label}")
    reason = error.strerror or str(error) or type(error).__name__
    return errors.Unavailable(f"{label} is unavailable: cannot connect ({reason})")
