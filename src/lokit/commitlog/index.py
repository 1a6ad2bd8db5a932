"""The index file of a segment: fixed-width entries mapping record number to position.

Index file layout (``<base>.index``): entry *k* (12 bytes) at byte ``12*k``::

    | rel offset uint32 BE (== k) | store position uint64 BE |

Unlike proglog the file is never pre-sized: it grows by appends, so its length is
always 12 x entries written and a crash cannot leave a block of zero entries that
look real. Entries present at open are read through a read-only mmap; entries
appended since are kept in an in-memory array, so lookups never need a remap.

New entries are written to the file in blocks (every 64 KiB of entries, and always
before a roll, a close, or a sync round that fsyncs this index), packed in bulk from the
in-memory array, not one syscall per record: the index is derived data, and recovery
rebuilds any entries a crash lost from the newest segment's store (so sync rounds
fsync the newest segment's store only; see `durability`).
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
import sys
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from .errors import IndexEOFError
from .files import PRIVATE, Perms

ENTRY: Final = struct.Struct(">IQ")
ENTRY_SIZE: Final = ENTRY.size  # 12
_POS: Final = struct.Struct(">Q")
_FLUSH_ENTRIES: Final = 64 * 1024 // ENTRY_SIZE
_SWAP: Final = sys.byteorder == "little"
assert array("I").itemsize == 4 and array("Q").itemsize == 8


def pack_entries(rel0: int, positions: Sequence[int]) -> bytes:
    """Index entries for consecutive records rel0, rel0+1, ... at `positions`.

    Built column by column with C-level strided copies (big-endian arrays of the
    relative offsets and positions, interleaved 4 + 8 bytes), not entry by entry.
    """
    n = len(positions)
    rel = array("I", range(rel0, rel0 + n))
    pos = positions if isinstance(positions, array) else array("Q", positions)
    if _SWAP:
        rel.byteswap()
        if pos is positions:
            pos = array("Q", pos)
        pos.byteswap()
    rb = rel.tobytes()
    pb = pos.tobytes()
    out = bytearray(n * ENTRY_SIZE)
    for j in range(4):
        out[j::ENTRY_SIZE] = rb[j::4]
    for j in range(8):
        out[4 + j :: ENTRY_SIZE] = pb[j::8]
    return bytes(out)


class Index:
    """One ``<base>.index`` file. Not thread-safe on its own: the Log serialises use.

    Entries [0, _mm_n) are read from the mmap; entries [_mm_n, count) from `_tail`;
    entries [0, written) are in the file.
    """

    __slots__ = ("_mm", "_mm_n", "_tail", "count", "fd", "path", "raw_size", "written")

    def __init__(self, path: Path, perms: Perms = PRIVATE) -> None:
        self.path = path
        self.fd = perms.open_append(path)
        self.raw_size = os.fstat(self.fd).st_size  # bytes in the file
        self.count = self.raw_size // ENTRY_SIZE
        self.written = self.count
        self._mm: mmap.mmap | None = None
        self._mm_n = 0
        self._tail: array[int] = array("Q")
        self._map(self.count)

    def _map(self, n: int) -> None:
        """Map the first n entries of the file; everything after them comes from _tail."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._mm_n = 0
        self._tail = array("Q")
        if n:
            self._mm = mmap.mmap(self.fd, n * ENTRY_SIZE, access=mmap.ACCESS_READ)
            self._mm_n = n

    @property
    def name(self) -> str:
        return str(self.path)

    def position(self, k: int) -> int:
        """Store position of record k (0 <= k < count; not checked: hot path)."""
        if k < self._mm_n:
            assert self._mm is not None
            return int(_POS.unpack_from(self._mm, k * ENTRY_SIZE + 4)[0])
        return self._tail[k - self._mm_n]

    def read(self, k: int) -> tuple[int, int]:
        """Entry k as (relative offset, position) as stored; k = -1 is the last entry."""
        if k == -1:
            k = self.count - 1
        if not 0 <= k < self.count:
            raise IndexEOFError(self.path, k)
        if k < self._mm_n:
            assert self._mm is not None
            rel, pos = ENTRY.unpack_from(self._mm, k * ENTRY_SIZE)
            return int(rel), int(pos)
        return k, self._tail[k - self._mm_n]

    def write(self, rel: int, pos: int) -> None:
        """Append one entry; `rel` must be the next record number."""
        if rel != self.count:
            raise ValueError(f"index entry {rel} written out of order (next is {self.count})")
        self.append_one(pos)

    def append_one(self, pos: int) -> None:
        """Add the entry for the next record (the single-append hot path)."""
        self._tail.append(pos)
        self.count += 1
        if self.count - self.written >= _FLUSH_ENTRIES:
            self.flush()

    def append(self, rel0: int, positions: Sequence[int]) -> None:
        """Add entries for records rel0.. (== count) at `positions`."""
        self._tail.extend(positions)
        self.count += len(positions)
        if self.count - self.written >= _FLUSH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        """Write entries not yet in the file (one write).

        If the write fails part-way, the bytes that did land are cut off again, so the
        file never holds a partial entry (which would misalign every entry after it).
        """
        if self.written < self.count:
            start = self.written - self._mm_n
            data = memoryview(pack_entries(self.written, self._tail[start:]))
            done = 0
            try:
                while done < len(data):
                    done += os.write(self.fd, data[done:])
            except OSError:
                try:
                    os.ftruncate(self.fd, self.raw_size)
                except OSError:
                    pass  # the size now disagrees with raw_size: the Log fails itself
                raise
            self.raw_size += len(data)
            self.written = self.count

    @property
    def size(self) -> int:
        """Logical size in bytes: 12 x entries (unwritten ones included)."""
        return self.count * ENTRY_SIZE

    def truncate(self, n: int) -> None:
        """Keep only the first n entries."""
        remap = n < self._mm_n
        if remap:
            self._map(0)  # unmap before the file shrinks under the mapping
        elif n < self.count:
            del self._tail[n - self._mm_n :]
        if n < self.written:
            os.ftruncate(self.fd, n * ENTRY_SIZE)
            self.raw_size = n * ENTRY_SIZE
            self.written = n
        if remap:
            self._map(n)
        self.count = n

    def rewrite(self, positions: Sequence[int]) -> None:
        """Replace the whole index with entries for `positions` (recovery)."""
        self._map(0)
        os.ftruncate(self.fd, 0)
        self.count = self.written = self.raw_size = 0
        if positions:
            self.append(0, positions)
        self.flush()

    def seal(self) -> None:
        """Write everything out and read it through the mmap from now on (segment rolled)."""
        self.flush()
        if self._tail:
            self._map(self.count)

    def reopen(self) -> None:
        """Open the file again after `close` and map every entry; OSError if it is gone
        or does not hold exactly the entries written."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size != self.raw_size or self.written != self.count:
                raise OSError(
                    errno.EIO,
                    f"changed while closed ({size} bytes, not {self.raw_size})",
                    str(self.path),
                )
            self.fd = fd
            self._map(self.count)
        except BaseException:
            self.fd = -1
            os.close(fd)
            raise

    @property
    def open_fds(self) -> int:
        """Descriptors held: the file's and the mmap's own."""
        return (self.fd >= 0) + (self._mm is not None)

    def close(self) -> None:
        """Flush and close (OSError if the flush fails: then nothing is closed)."""
        if self.fd >= 0:
            self.flush()
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._mm_n = 0
        self._tail = array("Q")
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
