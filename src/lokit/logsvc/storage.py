"""Storage failures: the error a caller sees, the line the operator sees, and health.

A storage error reaches a caller as one sentence that names no server path and
carries no exception text: `mapped` turns the engine's errors into the log
service's (an OSError underneath, from a full disk, EIO or "Too many open
files", becomes RESOURCE_EXHAUSTED for ENOSPC/EDQUOT/EMFILE/ENFILE, else
UNAVAILABLE). What the caller does not see — the path, the OS's message, the
traceback — goes to the server's log at `error`, at most once per topic and
kind every `LOG_EVERY` seconds (with how many were not logged meanwhile), so a
full disk does not write a line per refused append.

`StorageHealth` remembers which topics failed to write, for the service's
health check (`definition.py`).
"""

from __future__ import annotations

import errno
import os
import time

import structlog

from lokit import commitlog
from lokit.errors import DataLoss, Error, Internal, ResourceExhausted, Unavailable
from lokit.logsvc.errors import InvalidTopicError, OffsetOutOfRangeError, RecordTooLargeError

__all__ = ["StorageHealth", "mapped", "os_error"]

_log = structlog.get_logger("lokit.logsvc")

LOG_EVERY = 10.0
"""Seconds between two error lines for the same topic and kind of failure."""

_EXHAUSTED = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
}


def os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` (itself, or along its causes), if any."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 8:
        if isinstance(e, OSError):
            return e
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def _reason(e: OSError) -> str:
    """The OS's reason, without a path: 'no space left on device'."""
    if e.errno in _EXHAUSTED:
        return _EXHAUSTED[e.errno]
    if e.errno:
        return os.strerror(e.errno)[:1].lower() + os.strerror(e.errno)[1:]
    return "an I/O error"


class _Throttle:
    """At most one line per key every LOG_EVERY seconds; counts the ones it held back."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def due(self, key: tuple[str, str]) -> int | None:
        """None to hold this line back; else how many were held back before it."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < LOG_EVERY:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) > 10_000:
            self._last.clear()
        self._last[key] = (now, 0)
        return 0 if last is None else last[1]


_throttle = _Throttle()


def _logged(exc: BaseException, topic: str, path: str, kind: str) -> None:
    held = _throttle.due((topic, kind))
    if held is None:
        return
    _log.error(
        "log.storage_failed",
        topic=topic,
        path=path,
        error=str(exc),
        kind=kind,
        not_logged_since=held,
        exc_info=exc,
    )


def mapped(exc: BaseException, topic: str = "", path: str = "") -> Error:
    """The lokit error a client sees for a storage error (a LogError or an OSError).

    Expected errors (past the end, too large, a bad name, corrupt records, a closed
    log) keep their sentences, which name no path; everything else is logged at
    error with `path` and the traceback, and answered with a sentence of its own.
    """
    if isinstance(exc, commitlog.OffsetOutOfRangeError):
        return OffsetOutOfRangeError.at(exc.offset)
    if isinstance(exc, commitlog.RecordTooLargeError):
        return RecordTooLargeError(str(exc))
    if isinstance(exc, commitlog.InvalidTopicNameError):
        return InvalidTopicError(str(exc))
    if isinstance(exc, commitlog.LogClosedError):
        return Unavailable("the log is closed: the server is stopping")
    if isinstance(exc, commitlog.CorruptRecordError):
        _logged(exc, topic, exc.path, "corrupt")
        return DataLoss(f"the record at offset {exc.offset} is damaged on disk: {exc.reason}")
    os_err = os_error(exc)
    where = path or (os_err.filename if os_err is not None and os_err.filename else "")
    if isinstance(exc, commitlog.LogFailedError):
        _logged(exc, topic, str(where), "failed")
        reason = f" ({_reason(os_err)})" if os_err is not None else ""
        return Unavailable(
            f"the log cannot write: an earlier write or fsync failed{reason}; "
            "the server must be restarted to recover"
        )
    if os_err is not None:
        kind = errno.errorcode.get(os_err.errno or 0, "EIO")
        _logged(exc, topic, str(where), kind)
        if os_err.errno in (errno.EMFILE, errno.ENFILE):
            return ResourceExhausted(f"the log cannot open more files: {_reason(os_err)}")
        if os_err.errno in _EXHAUSTED:
            return ResourceExhausted(f"the log cannot write: {_reason(os_err)}")
        return Unavailable(f"the log cannot use its storage: {_reason(os_err)}")
    _logged(exc, topic, str(where), "unexpected")
    return Internal("the log's storage failed unexpectedly; the server's log has the details")


class StorageHealth:
    """Which topics failed to write, and why, for the health check.

    A topic whose log is poisoned (a failed fsync or rollback) stays failed until
    the server restarts; one whose write failed otherwise (a full disk, with the
    write rolled back) is failed until its next successful write.
    """

    __slots__ = ("failing",)

    def __init__(self) -> None:
        self.failing: dict[str, str] = {}
        """topic -> the sentence the health check reports; empty while all is well."""

    def failed(self, topic: str, exc: BaseException) -> None:
        """A write to `topic` failed with `exc` (only storage failures count)."""
        os_err = os_error(exc)
        if os_err is None and not isinstance(exc, commitlog.LogFailedError):
            return
        reason = _reason(os_err) if os_err is not None else "a write failed"
        if isinstance(exc, commitlog.LogFailedError):
            reason = f"an earlier write or fsync failed ({reason}); restart the server"
        self.failing[topic] = f"topic {topic!r} cannot write: {reason}"

    def wrote(self, topic: str) -> None:
        """A write to `topic` succeeded (call only while `failing` is not empty)."""
        msg = self.failing.get(topic)
        if msg is not None and "restart the server" not in msg:
            del self.failing[topic]

    def first(self) -> str | None:
        """One sentence for the first failing topic, or None."""
        for msg in self.failing.values():
            more = len(self.failing) - 1
            return msg + (f" (and {more} more topics)" if more else "")
        return None
