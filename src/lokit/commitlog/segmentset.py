"""The segments of one log directory, oldest first: recovery, rolling, retention,
truncation at either end, and finding the segment that holds an offset.

Not thread-safe: the Log calls all of it under its lock. Every change is reported to
the log's `Durability` -- a segment written is dirty, a segment sealed or cut has a
dirty index too, a segment created or deleted makes the directory dirty -- so the
next sync round makes it durable.
Segments are contiguous (each starts where the one before ends) unless a store was
damaged; `find` tells a missing record from one that is out of range.

Segments' files are open only while the log's `FilePool` lets them be: every use goes
through `Segment.use()`, and the pool asks `evict` (under the log's lock) to close one.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_right
from pathlib import Path

import structlog

from .config import LogConfig
from .durability import Durability
from .errors import CorruptRecordError, OffsetOutOfRangeError
from .files import FilePool
from .repair import fsync_dir
from .segment import SEGMENT_FILE, Segment, segment_paths

_log = structlog.get_logger("lokit.commitlog")


class SegmentSet:
    """The segments of the log in `directory`; `segments[-1]` is the active one.

    `segments` is never rebound, so the Log may keep a reference to it for its
    append path. `load()` fills it from the directory.
    """

    __slots__ = (
        "_bases",
        "_durability",
        "_syncs",
        "config",
        "directory",
        "lock",
        "pool",
        "segments",
    )

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        durability: Durability,
        lock: threading.RLock,
        pool: FilePool,
    ) -> None:
        self.directory = directory
        self.config = config
        self.segments: list[Segment] = []
        self._bases: list[int] = []  # segments[i].base, for bisecting
        self._durability = durability
        self._syncs = config.fsync_policy.mode != "never"
        self.lock = lock
        """The log's lock: held for every use of the segments."""
        self.pool = pool

    def _new(self, base: int) -> Segment:
        return Segment(self.directory, base, self.config, self.pool, self)

    def evict(self, seg: Segment) -> bool:
        """Close `seg`'s files for the pool (under the log's lock). A segment written
        since the last sync round is fsynced first (unless fsync is ``never``: it stays
        dirty, and the next round reopens it). False keeps it open: its index cannot be
        flushed, or the fsync failed (which fails the log, as a failed round does)."""
        d = self._durability
        try:
            if seg in d.dirty and self._syncs:
                seg.index.flush()
                os.fdatasync(seg.store.fd)
                os.fdatasync(seg.index.fd)
                del d.dirty[seg]
                d.index_dirty.pop(seg, None)
            else:
                seg.index.flush()
        except OSError as e:
            if seg in d.dirty and self._syncs and d.failed is None:
                _log.error("commitlog.fsync_failed", path=str(seg.store.path), error=str(e))
                d.poison(e)
            return False
        seg.close_files()
        return True

    def load(self) -> None:
        """Open every segment in the directory and recover them (or create the first).

        Only ``<20 digits>.store`` / ``.index`` files are segments; anything else in the
        directory is left alone. Each segment is recovered (`Segment.recover`: damage
        is read around, a torn tail of the newest is cut); an index without its store
        is deleted. If damage in the newest segment hides offsets that may have been
        handed out, a new empty segment starts past them, so they are never reused.
        Retention is applied.
        """
        stores: set[int] = set()
        indexes: set[int] = set()
        for entry in os.scandir(self.directory):
            m = SEGMENT_FILE.match(entry.name)
            if m:
                (stores if m.group(2) == "store" else indexes).add(int(m.group(1)))
        for base in sorted(indexes - stores):  # an index whose store was deleted
            _log.warning(
                "commitlog.orphan_index_removed", path=str(segment_paths(self.directory, base)[1])
            )
            os.unlink(segment_paths(self.directory, base)[1])
        bases = sorted(stores) or [self.config.initial_offset]
        segments = self.segments
        at_least = 0
        for i, base in enumerate(bases):  # one at a time: the pool may close earlier ones
            seg = self._new(base)
            segments.append(seg)
            newest = i == len(bases) - 1
            expected = None if newest else bases[i + 1] - seg.base
            at_least = seg.recover(newest, expected)
            if not newest:
                seg.index.seal()
        self._bases = [s.base for s in segments]
        self._durability.dir_dirty = not stores
        if at_least > segments[-1].next_offset:  # damage hides offsets that were handed out
            self._start_at(at_least)
            fsync_dir(self.directory)  # before anything is appended past them
        self.enforce_retention()

    # -- the newest end --------------------------------------------------------------------

    def roll(self) -> Segment:
        """Start a new active segment at the next offset (the old one is sealed)."""
        seg = self._start_at(self.segments[-1].next_offset)
        try:
            self.enforce_retention()
        except OSError as e:  # retention can wait for the next roll; the append cannot
            _log.error("commitlog.retention_failed", path=str(self.directory), error=str(e))
        return seg

    def _start_at(self, base: int) -> Segment:
        """Seal the active segment and start a new one at `base` (>= its next offset;
        offsets in between read as missing). The sealed index is fsynced by the next
        round: recovery trusts a sealed segment's index once it looks consistent."""
        old = self.segments[-1]
        old.index.seal()  # (a closed segment's index is already flushed)
        d = self._durability
        d.dirty[old] = None
        d.index_dirty[old] = None
        seg = self._new(base)
        self.segments.append(seg)
        self._bases.append(seg.base)
        self._durability.dir_dirty = True
        return seg

    def append_spread(self, data: bytes, sizes: list[int], total: int) -> None:
        """Write a batch of frames (`sizes`, summing to `total`) that does not fit the
        active segment over as many segments as it needs, rolling before each limit."""
        view = memoryview(data)
        dirty = self._durability.dirty
        i = 0
        pos = 0
        n = len(sizes)
        while i < n:
            seg = self.segments[-1]
            seg.use()
            k = seg.room(sizes, i, total - pos)
            if k == 0:
                seg = self.roll()
                k = seg.room(sizes, i, total - pos)
            nbytes = sum(sizes[i : i + k])
            seg.append_frames(view[pos : pos + nbytes], sizes[i : i + k])
            dirty[seg] = None
            i += k
            pos += nbytes

    def truncate_after(self, keep_next: int) -> None:
        """Delete every record from `keep_next` on (segments after it, then the tail of
        the one holding it)."""
        segments = self.segments
        dirty = self._durability.dirty
        while len(segments) > 1 and segments[-1].base > keep_next:
            seg = segments.pop()
            self._bases.pop()
            dirty.pop(seg, None)
            self._durability.index_dirty.pop(seg, None)
            seg.remove()
        seg = segments[-1]
        if seg.next_offset > keep_next:
            seg.truncate(keep_next - seg.base)
        elif seg.next_offset < keep_next:  # it ends in missing records: skip them again
            seg = self._start_at(keep_next)
        dirty[seg] = None
        self._durability.index_dirty[seg] = None
        self._durability.dir_dirty = True

    # -- the oldest end --------------------------------------------------------------------

    def remove_below(self, offset: int) -> int:
        """Delete whole segments whose records are all below `offset` (never the active
        one); returns how many."""
        removed = 0
        while len(self.segments) > 1 and self.segments[0].next_offset <= offset:
            self._remove_oldest()
            removed += 1
        return removed

    def enforce_retention(self) -> int:
        """Apply retention_bytes / retention_age; returns segments deleted."""
        cfg = self.config
        segments = self.segments
        removed = 0
        if cfg.retention_bytes is not None:
            total = sum(s.size_bytes for s in segments)
            while len(segments) > 1 and total > cfg.retention_bytes:
                total -= segments[0].size_bytes
                self._remove_oldest()
                removed += 1
        if cfg.retention_age is not None:
            cutoff = time.time() - cfg.retention_age
            while len(segments) > 1 and segments[0].mtime() < cutoff:
                self._remove_oldest()
                removed += 1
        if removed:
            _log.info("commitlog.retention", path=str(self.directory), segments_deleted=removed)
        return removed

    def _remove_oldest(self) -> None:
        seg = self.segments.pop(0)
        self._bases.pop(0)
        self._durability.dirty.pop(seg, None)
        self._durability.index_dirty.pop(seg, None)
        seg.remove()
        self._durability.dir_dirty = True

    # -- reads -----------------------------------------------------------------------------

    def find(self, offset: int, end: int) -> tuple[int, Segment]:
        """The segment holding `offset` (readable if below `end`) and its position."""
        if offset >= end:
            raise OffsetOutOfRangeError(offset)
        i = bisect_right(self._bases, offset) - 1
        if i < 0:
            raise OffsetOutOfRangeError(offset)
        seg = self.segments[i]
        if offset < seg.next_offset:
            if self.pool.last is not seg:  # (the hot path: the segment used last)
                seg.use()
            return i, seg
        if i + 1 < len(self.segments):
            raise CorruptRecordError(
                seg.store.path, offset, "the record is missing (the segment's store is damaged)"
            )
        raise OffsetOutOfRangeError(offset)

    def read_range(
        self, offset: int, end: int, max_records: int, max_bytes: int
    ) -> list[tuple[int, bytes]]:
        """As `Log.read_range`, for the records below `end`."""
        out: list[tuple[int, bytes]] = []
        i, seg = self.find(offset, end)
        max_records = min(max_records, end - offset)
        segments = self.segments
        while True:
            got, nbytes = seg.read_range(offset, max_records, max_bytes, out)
            if got == 0:
                break
            offset += got
            max_records -= got
            max_bytes -= nbytes
            if max_records <= 0 or offset < seg.next_offset:
                break
            i += 1
            if i >= len(segments) or segments[i].base != offset:
                break
            seg = segments[i]
            seg.use()
        return out

    def close(self) -> None:
        for seg in self.segments:
            seg.close()
