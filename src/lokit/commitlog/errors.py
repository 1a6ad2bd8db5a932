"""Errors raised by the commit log.

Every error derives from `LogError`, so a caller can catch the whole family at once,
and every message is one clear sentence (DESIGN.md: never a traceback-only failure).
"""

from __future__ import annotations

from pathlib import Path


class LogError(Exception):
    """Base class of every commit-log error."""


class OffsetOutOfRangeError(LogError):
    """The offset is not in the log (below the lowest or at/after the next offset).

    `str(e)` is exactly ``offset out of range: <offset>``, the message proglog's
    clients already know; the network service maps it to a status code.
    """

    def __init__(self, offset: int) -> None:
        super().__init__(f"offset out of range: {offset}")
        self.offset = offset


class RecordTooLargeError(LogError, ValueError):
    """A record is bigger than the configured limit; nothing was written."""

    def __init__(self, size: int, limit: int, index: int | None = None) -> None:
        where = "record" if index is None else f"record {index} of the batch"
        super().__init__(
            f"{where} is {size} bytes, over the limit of {limit} bytes "
            "(max_record_bytes, capped by max_store_bytes - 8); nothing was written"
        )
        self.size = size
        self.limit = limit
        self.index = index


class CorruptRecordError(LogError):
    """A stored record failed its checksum or framing check; it is never returned."""

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt record at offset {offset} in {path}: {reason}")
        self.path = str(path)
        self.offset = offset
        self.reason = reason


class InvalidTopicNameError(LogError, ValueError):
    """A topic name that cannot safely name a directory."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid topic name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class LogClosedError(LogError):
    """An operation on a log (or topic set) that has been closed."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(f"the log at {path} is closed")
        self.path = str(path)


class LogFailedError(LogError):
    """An earlier write or fsync failed, so durability is unknown; reopen the log."""


class IndexEOFError(LogError):
    """An index lookup past the last entry, or a write into a full index (internal)."""

    def __init__(self, path: Path | str, entry: int) -> None:
        super().__init__(f"index entry {entry} is past the end of {path}")
        self.path = str(path)
        self.entry = entry


class SegmentFullError(LogError):
    """A segment cannot take the record without exceeding a limit (internal)."""


class DirLockError(LogError):
    """A directory's lock could not be taken: it is held by someone else (`in_use`), or
    the directory or its lock file cannot be created or opened.

    The message is the `DirLock`'s template for the case, filled in, so a caller with
    its own wording (the log service's "data directory ... is in use by another log
    server") passes its templates in and maps only the exception type.
    """

    def __init__(self, message: str, directory: Path | str, *, in_use: bool) -> None:
        super().__init__(message)
        self.directory = str(directory)
        self.in_use = in_use
