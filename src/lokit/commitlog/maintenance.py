"""What the `Log` does besides appending and reading: truncation at either end,
retention, and snapshots -- a base class of `Log`, split out to keep modules small.

Every method runs under the log's locks as `log`'s docstring describes: a change
that must be durable holds `round_lock`, then the log's lock, and runs its sync round
after letting the log's lock go.
"""

from __future__ import annotations

import operator
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import LogClosedError, OffsetOutOfRangeError
from .snapshot import SnapshotReader, open_reader, snapshot_of

if TYPE_CHECKING:
    from .durability import Durability
    from .segment import Segment
    from .segmentset import SegmentSet


class Maintenance:
    """Truncation, retention and snapshots of a `Log` (its attributes, declared here)."""

    directory: Path
    _lock: threading.RLock
    _durability: Durability
    _segs: SegmentSet
    _segments: list[Segment]
    _end: int
    _readers: weakref.WeakSet[SnapshotReader]
    _closed: bool
    _syncs: bool

    def _check_writable(self) -> None:
        raise NotImplementedError

    # -- truncation and retention ------------------------------------------------------------

    def _undo_to(self, next_offset: int) -> None:
        """Best-effort rollback of a failed batch to `next_offset`."""
        try:
            self._truncate_suffix_locked(next_offset - 1)
        except OSError as e:
            self._durability.poison(e)

    def truncate_prefix(self, offset: int) -> None:
        """Delete whole segments whose records are all below `offset` (never the active one)."""
        offset = operator.index(offset)
        with self._durability.round_lock:
            with self._lock:
                self._check_writable()
                removed = self._segs.remove_below(offset)
            if removed and self._syncs:
                self._durability.sync_round_held()

    def truncate_suffix(self, offset: int) -> None:
        """Delete every record after `offset` (so `offset` becomes the highest), for
        replication conflicts. `offset` may be lowest-1 to empty the log; below that is
        OffsetOutOfRangeError. The next append gets offset+1."""
        offset = operator.index(offset)
        with self._durability.round_lock:
            with self._lock:
                self._check_writable()
                if offset >= self._segments[-1].next_offset - 1:
                    return
                if offset < self._segments[0].base - 1:
                    raise OffsetOutOfRangeError(offset)
                self._truncate_suffix_locked(offset)
            if self._syncs:
                self._durability.sync_round_held()

    def _truncate_suffix_locked(self, offset: int) -> None:
        keep_next = offset + 1
        for r in self._readers:  # before any byte they may still read is rewritten
            if keep_next < r.end_offset:
                r.truncated = True
        self._segs.truncate_after(keep_next)
        self._end = min(self._end, keep_next)

    def enforce_retention(self) -> int:
        """Apply retention_bytes / retention_age now; returns segments deleted."""
        with self._lock:
            self._check_writable()
            return self._segs.enforce_retention()

    # -- snapshots ---------------------------------------------------------------------------

    def reader(self) -> BinaryIO:
        """A binary stream of the readable log as it is now (a snapshot for `Log.restore`).

        Format: a 20-byte header (``LOKITLOG``, uint32 version 1, uint64 first offset),
        then every segment's store bytes in order: the frames described in `record`.
        The stream holds its own file descriptors, so later appends, `truncate_prefix`
        and retention do not change what it yields. A `truncate_suffix` below its end
        rewrites bytes it has yet to read: its next read from disk then raises LogError
        (bytes it already returned or buffered were read before and are correct).
        """
        with self._lock:
            if self._closed:
                raise LogClosedError(self.directory)
            raw = snapshot_of(self._segments, self._end)
            self._readers.add(raw)
        return open_reader(raw)
