"""Snapshot streams: the whole log as one byte stream, and a log rebuilt from one.

Stream format::

    header (20 bytes): b"LOKITLOG" | uint32 BE version (1) | uint64 BE first offset
    body:              the store frames of every segment, oldest first

The body is exactly the store files concatenated, so producing a snapshot is a
copy with no re-encoding; restoring verifies every frame's checksum.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Final

from .errors import CorruptRecordError, LogError
from .record import split_frames

if TYPE_CHECKING:
    from .log import Log

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
