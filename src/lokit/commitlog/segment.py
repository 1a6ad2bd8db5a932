"""A segment: one store file plus its index, holding offsets base .. base+count-1.

Both files are named by the base offset, zero-padded so that names sort in offset
order: ``00000000000000000016.store`` and ``00000000000000000016.index``.
A segment never decides to roll itself: the Log asks `room()` first and rolls
*before* a record would push either file over its limit.

A segment's files are open only while its `FilePool` lets them be (`files`): call
`use()` before touching `store.fd`, `index.fd` or index positions; sizes and counts
stay known while it is closed.
"""

from __future__ import annotations

import mmap
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

from . import repair
from .config import LogConfig
from .errors import CorruptRecordError, OffsetOutOfRangeError, SegmentFullError
from .files import FilePool, Standalone
from .index import ENTRY_SIZE, Index
from .record import HEADER, HEADER_SIZE, decode, decode_frames, frame, positions_after
from .recovery import plan
from .store import Store

if TYPE_CHECKING:
    from .files import Owner

SEGMENT_FILE = re.compile(r"^(\d{20})\.(store|index)$")
_BAD_ENTRY = "its index entry points outside the store (the index is damaged)"


def segment_paths(directory: Path, base: int) -> tuple[Path, Path]:
    """The (store, index) paths of the segment with this base offset."""
    stem = f"{base:020d}"
    return directory / f"{stem}.store", directory / f"{stem}.index"


class Segment:
    """Store + index for a run of consecutive offsets. The Log serialises all use."""

    __slots__ = (
        "_paths",
        "base",
        "capacity",
        "damaged",
        "index",
        "max_store_bytes",
        "owner",
        "perms",
        "pool",
        "record_limit",
        "store",
    )

    def __init__(
        self,
        directory: Path,
        base: int,
        config: LogConfig,
        pool: FilePool | None = None,
        owner: Owner | None = None,
    ) -> None:
        """Open (creating if needed) the segment's files, through `pool`; `owner` is the
        log's segment set, which the pool asks to close it (by default a pool and an
        owner of its own: a segment used on its own, as in tests)."""
        if pool is None or owner is None:
            pool = pool or FilePool()
            owner = owner or Standalone()
        self._paths = segment_paths(directory, base)
        self.base = base
        self.max_store_bytes = config.max_store_bytes
        self.capacity = config.index_capacity
        self.record_limit = config.record_limit
        self.damaged: list[int] = []  # record numbers recovery found damaged, ascending
        self.pool = pool
        self.owner = owner
        self.perms = config.perms
        pool.open(self, create=True)

    # -- open files ------------------------------------------------------------------------

    def use(self) -> None:
        """Make sure the files are open, and mark the segment used (the log's lock is
        held). OSError if they cannot be reopened."""
        pool = self.pool
        if pool.last is self:  # (it is then open: closing a segment clears `last`)
            return
        if self.store.fd < 0:
            pool.open(self)
        else:
            pool.touch(self)

    def open_files(self, create: bool = False) -> None:
        """Open both files: the first time (`create`), or again after `close_files`."""
        if create:
            self.store = Store(self._paths[0], self.perms)
            try:
                self.index = Index(self._paths[1], self.perms)
            except BaseException:
                self.store.close()
                raise
            return
        self.store.reopen()
        try:
            self.index.reopen()
        except BaseException:
            self.store.close()
            raise

    def close_files(self) -> None:
        """Close both files (flushing the index first)."""
        try:
            self.index.close()
        finally:
            self.store.close()

    @property
    def is_open(self) -> bool:
        return self.store.fd >= 0

    @property
    def open_fds(self) -> int:
        return (self.store.fd >= 0) + self.index.open_fds

    # -- state ---------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self.index.count

    @property
    def next_offset(self) -> int:
        return self.base + self.index.count

    @property
    def size_bytes(self) -> int:
        """Bytes this segment holds on disk (store + index)."""
        return self.store.size + self.index.size

    @property
    def is_full(self) -> bool:
        """True when either file has reached its limit (proglog's IsMaxed)."""
        return self.store.size >= self.max_store_bytes or self.index.count >= self.capacity

    def room(self, sizes: Sequence[int], start: int, total: int) -> int:
        """How many frames of `sizes[start:]` (summing to `total`) fit without passing a limit."""
        free_entries = self.capacity - self.index.count
        free_bytes = self.max_store_bytes - self.store.size
        n = len(sizes) - start
        if n <= free_entries and total <= free_bytes:
            return n
        if free_entries <= 0 or free_bytes <= 0:
            return 0
        cum = list(accumulate(sizes[start : start + min(n, free_entries)]))
        return bisect_right(cum, free_bytes)

    # -- writes --------------------------------------------------------------------------

    def append_frames(self, data: bytes | memoryview, sizes: Sequence[int]) -> int:
        """Write ready-made frames (the caller checked `room`); returns the first offset.

        On an OSError the segment is cut back to where it was, so a failed write leaves
        no partial record behind.
        """
        first = self.base + self.index.count
        store_size = self.store.size
        count = self.index.count
        try:
            pos0 = self.store.append_frames(data)
            if len(sizes) == 1:
                self.index.append(count, (pos0,))
            else:
                self.index.append(count, positions_after(pos0, sizes))
        except OSError:
            self.truncate(count, store_size)
            raise
        return first

    def append_one(self, data: bytes) -> int:
        """Write one ready-made frame (the caller checked the limits); returns its offset."""
        store = self.store
        pos = store.size
        count = self.index.count
        try:
            n = os.write(store.fd, data)
            store.size = pos + n
            if n != len(data):
                store.append_frames(memoryview(data)[n:])
            self.index.append_one(pos)  # may flush a block of entries, which may fail
        except OSError:
            self.truncate(count, pos)
            raise
        return self.base + count

    def append(self, value: bytes) -> int:
        """Append one record; SegmentFullError if it does not fit (proglog's Segment.Append)."""
        data = frame(value)
        if self.room((len(data),), 0, len(data)) == 0:
            raise SegmentFullError(f"segment {self.base} is full")
        return self.append_frames(data, (len(data),))

    def truncate(self, count: int, store_size: int | None = None) -> None:
        """Keep only the first `count` records."""
        self.use()
        if store_size is None:
            store_size = self.index.position(count) if count < self.index.count else self.store.size
        self.index.truncate(min(count, self.index.count))
        self.store.truncate(store_size)
        if self.damaged and self.damaged[-1] >= count:
            self.damaged = [k for k in self.damaged if k < count]

    # -- reads ---------------------------------------------------------------------------

    def _end_of(self, k: int) -> int:
        """Store position just after record k."""
        return self.index.position(k + 1) if k + 1 < self.index.count else self.store.size

    def read(self, offset: int) -> bytes:
        """The record at `offset`, checksum verified (the caller called `use`)."""
        k = offset - self.base
        index = self.index
        n = index.count
        if not 0 <= k < n:
            raise OffsetOutOfRangeError(offset)
        store = self.store
        size = store.size
        pos = index.position(k)
        end = index.position(k + 1) if k + 1 < n else size
        if not pos < end <= size:
            raise CorruptRecordError(store.path, offset, _BAD_ENTRY)
        data = os.pread(store.fd, end - pos, pos)
        got = decode(data, 0, len(data))
        if isinstance(got, str):
            raise CorruptRecordError(self.store.path, offset, got)
        return got

    def read_range(
        self, offset: int, max_records: int, max_bytes: int, out: list[tuple[int, bytes]]
    ) -> tuple[int, int]:
        """Append up to `max_records` records from `offset` to `out`, within `max_bytes`
        of payload (but at least one if `out` is empty). Returns (records, payload bytes).

        The index says where each record ends, so the count that fits the byte budget
        is found first (binary search) and then read with one pread. A damaged record
        is never skipped: the range stops just before it, and CorruptRecordError is
        raised when it is the first record wanted (`offset` itself, with `out` empty),
        so a reader that continues from the next offset meets the error.
        """
        k = offset - self.base
        take = min(max_records, self.index.count - k)
        if take <= 0:
            return 0, 0
        if self.damaged:  # found by recovery: stop before the first one in range
            i = bisect_left(self.damaged, k)
            if i < len(self.damaged) and self.damaged[i] < k + take:
                take = self.damaged[i] - k
                if take == 0:
                    if out:
                        return 0, 0
                    value = self.read(offset)  # raises CorruptRecordError with its reason
                    out.append((offset, value))  # (it verified after all)
                    return 1, len(value)
        pos0 = self.index.position(k)
        end = self._end_of(k + take - 1) - pos0
        if end - HEADER_SIZE * take > max_bytes:
            lo, hi = 0, take - 1  # the largest count whose payloads fit
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._end_of(k + mid - 1) - pos0 - HEADER_SIZE * mid <= max_bytes:
                    lo = mid
                else:
                    hi = mid - 1
            take = lo
            if take == 0:
                if out:
                    return 0, 0
                take = 1
            end = self._end_of(k + take - 1) - pos0
        if end <= 0 or pos0 + end > self.store.size:  # a damaged index entry
            return self._verified(offset, take, out)
        buf = os.pread(self.store.fd, end, pos0)
        before = len(out)
        reason = decode_frames(buf, offset, end, out)
        got = len(out) - before
        if reason is None and got == take:  # the walk matched the index end to end
            return got, end - HEADER_SIZE * got
        del out[before:]  # damage: trust only frames that fill their index span exactly
        return self._verified(offset, take, out)

    def _verified(self, offset: int, take: int, out: list[tuple[int, bytes]]) -> tuple[int, int]:
        """`read_range`'s slow path: up to `take` records from `offset`, each read and
        checked against its own index span, stopping before the first that fails (which
        is raised when it is `offset` itself and `out` is empty)."""
        nbytes = 0
        for i in range(take):
            try:
                value = self.read(offset + i)
            except CorruptRecordError:
                if i or out:
                    return i, nbytes
                raise
            out.append((offset + i, value))
            nbytes += len(value)
        return take, nbytes

    def files_match(self) -> bool:
        """True if both files on disk are as long as this segment believes it wrote
        (after a failed write: False means the rollback failed too)."""
        if self.store.fd < 0:
            return True  # closed: its files were checked when it closed
        try:
            return (
                os.fstat(self.store.fd).st_size == self.store.size
                and os.fstat(self.index.fd).st_size == self.index.raw_size
            )
        except OSError:
            return False

    # -- recovery ------------------------------------------------------------------------

    def index_consistent(self, expected: int | None) -> bool:
        """Cheap check that the index matches the store (used for sealed segments)."""
        idx = self.index
        n = idx.count
        if idx.raw_size != n * ENTRY_SIZE or (expected is not None and n != expected):
            return False
        if n == 0:
            return self.store.size == 0
        if idx.read(0) != (0, 0) or idx.read(n - 1)[0] != n - 1:
            return False
        last = idx.position(n - 1)
        head = os.pread(self.store.fd, HEADER_SIZE, last)
        if len(head) < HEADER_SIZE:
            return False
        length, _ = HEADER.unpack(head)
        return bool(last + HEADER_SIZE + length == self.store.size)

    def recover(self, newest: bool, expected: int | None) -> int:
        """Make store and index agree without destroying a record that can still be read.

        The newest segment is always read through and checksummed; a sealed one
        (`expected`: its record count, from the next segment's base) only when its
        index looks wrong. The rules are `recovery`'s: the index's entries keep their
        offsets (damaged records raise `CorruptRecordError` when read), the store is
        resynchronised at the next frame that verifies after damage, and only a torn
        tail -- bytes after the last verified frame that the index does not list -- is
        cut. Anything else is copied aside before it changes (`repair`).

        Returns the lowest next offset the log may have after this segment: its own
        next offset, or (newest segment) past offsets that damage makes unreadable but
        that may have been handed out -- the log then starts its next segment there.
        """
        if not newest and self.index_consistent(expected):
            return self.next_offset
        size = self.store.size
        raw = os.pread(self.index.fd, self.index.raw_size, 0) if self.index.raw_size else b""
        if size:
            with mmap.mmap(self.store.fd, size, access=mmap.ACCESS_READ) as mm:
                found = plan(mm, size, raw, expected, self.record_limit)
        else:
            found = plan(b"", 0, raw, expected, self.record_limit)
        return repair.apply(self, found, raw, expected)

    # -- lifecycle -----------------------------------------------------------------------

    def mtime(self) -> float:
        """When the store was last written (retention by age)."""
        if self.store.fd < 0:
            return os.stat(self.store.path).st_mtime
        return os.fstat(self.store.fd).st_mtime

    def close(self) -> None:
        """Close for good (the log is closing; the pool forgets it)."""
        self.pool.forget(self)

    def remove(self) -> None:
        """Close and delete both files; the store goes first, so a crash in between leaves
        only an orphan index (which the next open deletes), never a resurrected store."""
        self.close()
        for p in (self.store.path, self.index.path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def __repr__(self) -> str:
        return f"Segment(base={self.base}, count={self.count}, store={self.store.size}B)"
