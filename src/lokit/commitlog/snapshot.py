"""Snapshot streams: the whole log as one byte stream, and a log rebuilt from one.

Stream format::

    header (20 bytes): b"LOKITLOG" | uint32 BE version (1) | uint64 BE first offset
    body:              the store frames of every segment, oldest first

The body is exactly the store files concatenated, so producing a snapshot is a
copy with no re-encoding; restoring verifies every frame's checksum.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from .errors import CorruptRecordError, LogError
from .record import split_frames

if TYPE_CHECKING:
    from .log import Log
    from .segment import Segment

MAGIC: Final = b"LOKITLOG"
VERSION: Final = 1
SNAPSHOT_HEADER: Final = struct.Struct(">8sIQ")
STREAM_NAME: Final = "<snapshot stream>"
_CHUNK: Final = 1 << 20


class SnapshotReader(io.RawIOBase):
    """Reads the header, then each (fd, size) part in turn; owns and closes the fds.

    `end_offset` is one past the last record in the snapshot. The Log sets `truncated`
    when a `truncate_suffix` cuts below it: every later read then raises, since the
    bytes still to be read may have been rewritten.
    """

    def __init__(self, first_offset: int, parts: list[tuple[int, int]], end_offset: int) -> None:
        super().__init__()
        self.end_offset = end_offset
        self.truncated = False
        self._head = SNAPSHOT_HEADER.pack(MAGIC, VERSION, first_offset)
        self._hpos = 0
        self._parts = parts
        self._i = 0
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        mv = memoryview(buffer).cast("B")
        if not len(mv):
            return 0
        if self._hpos < len(self._head):
            n = min(len(mv), len(self._head) - self._hpos)
            mv[:n] = self._head[self._hpos : self._hpos + n]
            self._hpos += n
            return n
        while self._i < len(self._parts):
            fd, size = self._parts[self._i]
            if self._pos >= size:
                os.close(fd)
                self._parts[self._i] = (-1, size)
                self._i += 1
                self._pos = 0
                continue
            data = os.pread(fd, min(len(mv), size - self._pos), self._pos)
            if self.truncated:  # checked after the pread: a truncation during it counts
                raise LogError("the log was truncated while a snapshot was being read")
            if not data:
                raise LogError("a segment shrank while it was being snapshotted")
            mv[: len(data)] = data
            self._pos += len(data)
            return len(data)
        return 0

    def close(self) -> None:
        for i, (fd, size) in enumerate(self._parts):
            if fd >= 0:
                os.close(fd)
                self._parts[i] = (-1, size)
        super().close()


def snapshot_of(segments: Sequence[Segment], end: int) -> SnapshotReader:
    """A snapshot of the records below `end` in `segments` (oldest first, contiguous),
    on duplicated file descriptors; the caller holds the log's lock."""
    for a, b in itertools.pairwise(segments):
        if a.next_offset != b.base:
            raise CorruptRecordError(
                a.store.path, a.next_offset, "the record is missing; cannot snapshot"
            )
    parts: list[tuple[int, int]] = []
    try:
        for s in segments:
            if s.base >= end:
                break
            s.use()
            k = end - s.base
            size = s.index.position(k) if k < s.count else s.store.size
            if size:
                parts.append((os.dup(s.store.fd), size))
    except OSError:
        for fd, _ in parts:
            os.close(fd)
        raise
    return SnapshotReader(segments[0].base, parts, end)


def open_reader(raw: SnapshotReader) -> BinaryIO:
    """A buffered binary stream over a snapshot."""
    return io.BufferedReader(raw, buffer_size=_CHUNK)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = stream.read(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def restore_dir(
    target: Path, stream: BinaryIO, open_log: Callable[[Path, int], Log], leftover: str
) -> None:
    """Build a log in `target` (absent or empty) from a snapshot stream, atomically.

    The log is built in a sibling temporary directory by `open_log(path, first_offset)`
    and renamed into place once complete (`leftover`, the lock file it left, removed
    first), so `target` never holds a partial log.
    """
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise LogError(f"cannot restore into {target}: it exists and is not an empty directory")
    tmp = target.with_name(f".{target.name}.restoring-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        restore_into(lambda first: open_log(tmp, first), stream)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()
    (tmp / leftover).unlink(missing_ok=True)
    os.rename(tmp, target)
    dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def restore_into(open_log: Callable[[int], Log], stream: BinaryIO) -> None:
    """Read a snapshot stream and append its records to `open_log(first_offset)`."""
    head = _read_exact(stream, SNAPSHOT_HEADER.size)
    if len(head) < SNAPSHOT_HEADER.size:
        raise LogError("not a lokit commit log snapshot: the stream is shorter than its header")
    magic, version, first = SNAPSHOT_HEADER.unpack(head)
    if magic != MAGIC:
        raise LogError("not a lokit commit log snapshot: the stream does not start with LOKITLOG")
    if version != VERSION:
        raise LogError(f"unsupported snapshot version {version} (this lokit reads {VERSION})")
    log = open_log(first)
    try:
        limit = log.config.record_limit  # a longer length field is refused, not buffered
        offset = first
        buf = bytearray()
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            buf += chunk
            values, used, reason = split_frames(buf, limit)
            if values:
                log.append_batch(values)
                offset += len(values)
            if reason is not None:
                raise CorruptRecordError(STREAM_NAME, offset, reason)
            del buf[:used]
        if buf:
            raise CorruptRecordError(STREAM_NAME, offset, "the stream ends inside a record")
        log.sync()
    finally:
        log.close()
