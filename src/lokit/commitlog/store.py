"""The store file of a segment: an append-only run of framed records.

There is no user-space buffer (proglog's bufio writer lost records on a crash):
every append is one `os.write` of ready-made frames, so once it returns the bytes
are in the page cache and visible to `os.pread`; durability is the Log's sync rounds' job.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import CorruptRecordError
from .files import PRIVATE, Perms
from .record import HEADER, HEADER_SIZE, decode, frame


class Store:
    """One ``<base>.store`` file. Not thread-safe on its own: the Log serialises use."""

    __slots__ = ("fd", "path", "size")

    def __init__(self, path: Path, perms: Perms = PRIVATE) -> None:
        self.path = path
        self.fd = perms.open_append(path)
        self.size = os.fstat(self.fd).st_size

    def reopen(self) -> None:
        """Open the file again after `close` (the file pool closed it); OSError if it is
        gone or its size is not what this store last wrote."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        size = os.fstat(fd).st_size
        if size != self.size:
            os.close(fd)
            raise OSError(
                errno.EIO, f"changed while closed ({size} bytes, not {self.size})", str(self.path)
            )
        self.fd = fd

    def append_frames(self, data: bytes | memoryview) -> int:
        """Write ready-framed bytes at the end; returns their start position."""
        pos = self.size
        view = memoryview(data)
        written = 0
        while written < len(data):  # a regular-file write is short only on ENOSPC-like trouble
            n = os.write(self.fd, view[written:])
            if n == 0:
                raise OSError(f"short write to {self.path}")
            written += n
        self.size = pos + len(data)
        return pos

    def append(self, value: bytes) -> tuple[int, int]:
        """Frame and write one record; returns (bytes written, position) like proglog."""
        data = frame(value)
        return len(data), self.append_frames(data)

    def read_at(self, pos: int, n: int) -> bytes:
        """Up to `n` raw bytes from `pos` (fewer only at the end of the file)."""
        return os.pread(self.fd, n, pos)

    def read(self, pos: int) -> bytes:
        """The payload of the frame starting at byte `pos`, checksum verified (a
        CorruptRecordError raised here carries the byte position as its offset)."""
        head = os.pread(self.fd, HEADER_SIZE, pos)
        if len(head) < HEADER_SIZE:
            raise CorruptRecordError(self.path, pos, "frame header cut off by the end of the file")
        n, _ = HEADER.unpack(head)
        data = os.pread(self.fd, HEADER_SIZE + n, pos)
        got = decode(data, 0, len(data))
        if isinstance(got, str):
            raise CorruptRecordError(self.path, pos, got)
        return got

    def truncate(self, size: int) -> None:
        """Cut the file back to `size` bytes."""
        os.ftruncate(self.fd, size)
        self.size = size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
