"""The synchronous commit log: segments, rolling, recovery, truncation, retention.

Threading model: one writer at a time, any number of readers, all serialised by one
lock that is held only for in-memory work and page-cache I/O. fsync never runs under
that lock: sync rounds, group commit under fsync ``always``, the interval thread and
failure poisoning live in `durability`, whose docstring also says what each fsync
policy can lose and when a reader sees a record. Readers look records up through the
index entries and store size the writer publishes after its write, so a reader never
sees a partly written record.

`truncate_suffix` lowers the readable end with the written end.

`AsyncLog` drives a Log through a small internal API, not part of the package's
public one: `write_one` and `write_records` (write without waiting for durability,
returning a ticket) and `sync_round`; it validates with `record.check_value` and
`record.check_batch`.
"""

from __future__ import annotations

import fcntl
import itertools
import operator
import os
import shutil
import threading
import time
import weakref
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import structlog

from .config import FsyncPolicy, LogConfig
from .durability import Durability
from .errors import (
    CorruptRecordError,
    LogClosedError,
    LogError,
    LogFailedError,
    OffsetOutOfRangeError,
)
from .record import check_batch, check_value, frame, frame_batch
from .segment import SEGMENT_FILE, Segment, segment_paths
from .snapshot import SnapshotReader, open_reader, restore_into

_log = structlog.get_logger("lokit.commitlog")

LOCK_FILE = "LOCK"


class Log:
    """A segmented, offset-addressed, crash-safe commit log in one directory.

    Open with `Log.open(directory, config)`. Offsets are consecutive integers from
    `config.initial_offset`. Thread-safe: one writer at a time, many readers.
    """

    def __init__(self, directory: Path, config: LogConfig, *, _token: object = None) -> None:
        if _token is not _OPEN_TOKEN:
            raise TypeError("use Log.open(directory, config) to open a log")
        self.directory = directory
        self.config = config
        self._policy: FsyncPolicy = config.fsync_policy
        self._always = self._policy.mode == "always"
        self._syncs = self._policy.mode != "never"
        self._record_limit = config.record_limit
        self._lock = threading.RLock()
        self._durability = d = Durability(
            directory,
            self._lock,
            self._written_end,
            self._made_durable if self._always else None,
        )
        self._dirty = d.dirty  # the same dict: writes mark segments in it, rounds take them
        self._end = 0  # the readable end: one past the newest record readers may see
        self._readers: weakref.WeakSet[SnapshotReader] = weakref.WeakSet()
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._closed = False
        self._listeners: list[Callable[[int], None]] = []
        self._lock_fd = -1

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: str | os.PathLike[str], config: LogConfig | None = None) -> Log:
        """Open (creating if needed) the log in `directory` and recover it.

        Only ``<20 digits>.store`` / ``.index`` files are segments; anything else in the
        directory is left alone. The newest segment is checksummed and a torn tail cut
        off; any index that disagrees with its store is rebuilt.
        """
        config = config or LogConfig()
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LogError(f"cannot create log directory {path}: {e.strerror or e}") from e
        if not path.is_dir():
            raise LogError(f"cannot open log: {path} is not a directory")
        log = cls(path, config, _token=_OPEN_TOKEN)
        try:
            log._lock_dir()
            log._load()
        except BaseException as e:
            log._close_files()
            if isinstance(e, OSError):
                raise LogError(f"cannot open the log at {path}: {e.strerror or e}") from e
            raise
        if log._policy.mode == "interval":
            log._durability.start_interval(log._policy.interval_ms / 1000.0)
        return log

    def _lock_dir(self) -> None:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogError(
                f"the log at {self.directory} is already open (in this or another process)"
            ) from None
        self._lock_fd = fd

    def _load(self) -> None:
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
        for base in bases:
            self._segments.append(Segment(self.directory, base, self.config))
        for i, seg in enumerate(self._segments):
            newest = i == len(self._segments) - 1
            expected = None if newest else bases[i + 1] - seg.base
            seg.recover(newest, expected)
            if not newest:
                seg.index.seal()
        self._bases = [s.base for s in self._segments]
        self._end = self._segments[-1].next_offset
        self._durability.dir_dirty = not stores
        self._enforce_retention_locked()

    # -- properties ------------------------------------------------------------------------

    @property
    def next_offset(self) -> int:
        """One past the newest readable record: the offset the next append gets, unless
        appends are still waiting for their sync round (fsync ``always``)."""
        return self._end

    @property
    def lowest_offset(self) -> int | None:
        """The oldest offset still in the log, or None when the log holds no record."""
        base = self._segments[0].base
        return base if self._end > base else None

    @property
    def highest_offset(self) -> int | None:
        """The newest readable offset, or None when the log holds no record."""
        n = self._end
        return n - 1 if n > self._segments[0].base else None

    @property
    def size_bytes(self) -> int:
        """Bytes on disk across all segments (stores + indexes)."""
        with self._lock:
            return sum(s.size_bytes for s in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def on_fsync(self) -> Callable[[float], None] | None:
        """Called with the seconds each sync round took, from the thread that ran it."""
        return self._durability.on_fsync

    @on_fsync.setter
    def on_fsync(self, hook: Callable[[float], None] | None) -> None:
        self._durability.on_fsync = hook

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """Call `callback(next_offset)` whenever the readable end advances: after every
        write, from the writing thread; under fsync ``always`` after every sync round
        that made new records durable, from the thread that ran it."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[int], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    # -- appends ---------------------------------------------------------------------------

    def append(self, value: bytes) -> int:
        """Append one record; returns its offset (durable per the fsync policy)."""
        offset, ticket = self.write_one(value)
        if self._always:
            self._durability.wait_durable(ticket)
        return offset

    def append_batch(self, values: Sequence[bytes]) -> int:
        """Append records at consecutive offsets, all or nothing; returns the first offset."""
        first, ticket = self.write_records(*check_batch(values, self._record_limit))
        if self._always:
            self._durability.wait_durable(ticket)
        return first

    def sync(self) -> None:
        """Make everything appended so far durable (whatever the fsync policy)."""
        with self._lock:
            if self._closed:
                raise LogClosedError(self.directory)
            self._durability.dir_dirty = True
        self._durability.sync_round()

    def _check_writable(self) -> None:
        if self._closed:
            raise LogClosedError(self.directory)
        failed = self._durability.failed
        if failed is not None:
            raise LogFailedError(
                f"the log at {self.directory} failed earlier ({failed}); reopen it to recover"
            )

    # -- the package's internal API (AsyncLog) ---------------------------------------------

    def write_one(self, value: bytes) -> tuple[int, int]:
        """Validate and write one record without waiting for fsync: (offset, ticket).

        Under fsync ``always`` the record becomes readable (and durable) once a sync
        round numbered `ticket` or later has succeeded: `sync_round()` runs one."""
        value = check_value(value, self._record_limit)
        data = frame(value)
        size = len(data)
        with self._lock:
            self._check_writable()
            seg = self._segments[-1]
            try:
                if seg.store.size + size > seg.max_store_bytes or seg.index.count >= seg.capacity:
                    seg = self._roll()
                offset = seg.append_one(data)
            except OSError as e:
                raise self._write_failed(e) from e
            self._dirty[seg] = None
            if self._always:  # readable once its sync round succeeds
                return offset, self._durability.next_round
            self._end = end = offset + 1
            ticket = self._durability.next_round
        for cb in self._listeners:
            cb(end)
        return offset, ticket

    def write_records(
        self, values: list[bytes], lengths: list[int] | None = None
    ) -> tuple[int, int]:
        """Write records that passed `record.check_batch` (`lengths`: as it returned
        them), all or nothing, without waiting for fsync: (first offset, ticket), the
        ticket as for `write_one`."""
        data, sizes = frame_batch(values, lengths)
        total = len(data)
        n = len(sizes)
        with self._lock:
            self._check_writable()
            seg = self._segments[-1]
            first = seg.next_offset
            try:
                if seg.room(sizes, 0, total) == n:
                    seg.append_frames(data, sizes)
                    self._dirty[seg] = None
                else:
                    self._write_spread(data, sizes, total)
            except OSError as e:
                self._undo_to(first)
                raise self._write_failed(e) from e
            if self._always:
                return first, self._durability.next_round
            self._end = end = first + n
            ticket = self._durability.next_round
        for cb in self._listeners:
            cb(end)
        return first, ticket

    def sync_round(self) -> None:
        """Run one sync round now: every write made before it is durable (and, under
        fsync ``always``, readable) when it returns."""
        self._durability.sync_round()

    # -- writing ---------------------------------------------------------------------------

    def _write_spread(self, data: bytes, sizes: list[int], total: int) -> None:
        """Write a batch that does not fit the active segment over as many as it needs."""
        view = memoryview(data)
        i = 0
        pos = 0
        n = len(sizes)
        while i < n:
            seg = self._segments[-1]
            k = seg.room(sizes, i, total - pos)
            if k == 0:
                seg = self._roll()
                k = seg.room(sizes, i, total - pos)
            nbytes = sum(sizes[i : i + k])
            seg.append_frames(view[pos : pos + nbytes], sizes[i : i + k])
            self._dirty[seg] = None
            i += k
            pos += nbytes

    def _undo_to(self, next_offset: int) -> None:
        """Best-effort rollback of a failed batch to `next_offset`."""
        try:
            self._truncate_suffix_locked(next_offset - 1)
        except OSError as e:
            self._durability.poison(e)

    def _write_failed(self, e: OSError) -> LogError:
        """Turn a failed write into a LogError; poison the log if the rollback failed too
        (a file whose size disagrees with what the segment believes it wrote)."""
        seg = self._segments[-1]
        try:
            consistent = (
                os.fstat(seg.store.fd).st_size == seg.store.size
                and os.fstat(seg.index.fd).st_size == seg.index.raw_size
            )
        except OSError:
            consistent = False
        if not consistent:
            self._durability.poison(e)
        return LogError(f"append to {self.directory} failed: {e.strerror or e}")

    def _roll(self) -> Segment:
        """Start a new active segment at the next offset (the old one is sealed)."""
        old = self._segments[-1]
        old.index.seal()
        seg = Segment(self.directory, old.next_offset, self.config)
        self._segments.append(seg)
        self._bases.append(seg.base)
        self._durability.dir_dirty = True
        try:
            self._enforce_retention_locked()
        except OSError as e:  # retention can wait for the next roll; the append cannot
            _log.error("commitlog.retention_failed", path=str(self.directory), error=str(e))
        return seg

    def _written_end(self) -> int:
        """One past the newest written record (Durability calls it under the lock)."""
        return self._segments[-1].next_offset

    def _made_durable(self, target: int) -> None:
        """fsync ``always``: a sync round made everything below `target` durable, so
        it becomes readable."""
        with self._lock:
            advanced = target > self._end
            if advanced:
                self._end = target
        if advanced:
            for cb in self._listeners:
                cb(target)

    # -- reads -----------------------------------------------------------------------------

    def _find(self, offset: int) -> tuple[int, Segment]:
        """The segment holding readable `offset` and its position in the segment list."""
        if offset >= self._end:
            raise OffsetOutOfRangeError(offset)
        i = bisect_right(self._bases, offset) - 1
        if i < 0:
            raise OffsetOutOfRangeError(offset)
        seg = self._segments[i]
        if offset < seg.next_offset:
            return i, seg
        if i + 1 < len(self._segments):
            raise CorruptRecordError(
                seg.store.path, offset, "the record is missing (the segment's store is damaged)"
            )
        raise OffsetOutOfRangeError(offset)

    def read(self, offset: int) -> bytes:
        """The record at `offset`; OffsetOutOfRangeError if there is none, CorruptRecordError if
        it fails its checksum."""
        offset = operator.index(offset)
        with self._lock:
            if self._closed:
                raise LogClosedError(self.directory)
            return self._find(offset)[1].read(offset)

    def read_range(
        self, offset: int, max_records: int = 1000, max_bytes: int = 1 << 20
    ) -> list[tuple[int, bytes]]:
        """Records from `offset` on, as (offset, value): at most `max_records`, and no
        more than `max_bytes` of values, except that the first record is always
        returned even if it alone is bigger. OffsetOutOfRangeError if `offset` is not in the
        log. Stops early before a damaged record (reading it alone raises)."""
        offset = operator.index(offset)
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
        out: list[tuple[int, bytes]] = []
        with self._lock:
            if self._closed:
                raise LogClosedError(self.directory)
            i, seg = self._find(offset)
            max_records = min(max_records, self._end - offset)
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
                if i >= len(self._segments) or self._segments[i].base != offset:
                    break
                seg = self._segments[i]
        return out

    # -- truncation and retention ------------------------------------------------------------

    def truncate_prefix(self, offset: int) -> None:
        """Delete whole segments whose records are all below `offset` (never the active one)."""
        offset = operator.index(offset)
        with self._durability.round_lock:
            with self._lock:
                self._check_writable()
                removed = 0
                while len(self._segments) > 1 and self._segments[0].next_offset <= offset:
                    self._remove_oldest()
                    removed += 1
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
        while len(self._segments) > 1 and self._segments[-1].base > keep_next:
            seg = self._segments.pop()
            self._bases.pop()
            self._dirty.pop(seg, None)
            seg.remove()
        seg = self._segments[-1]
        if seg.next_offset > keep_next:
            seg.truncate(keep_next - seg.base)
        self._dirty[seg] = None
        self._durability.dir_dirty = True
        self._end = min(self._end, keep_next)

    def _remove_oldest(self) -> None:
        seg = self._segments.pop(0)
        self._bases.pop(0)
        self._dirty.pop(seg, None)
        seg.remove()
        self._durability.dir_dirty = True

    def enforce_retention(self) -> int:
        """Apply retention_bytes / retention_age now; returns segments deleted."""
        with self._lock:
            self._check_writable()
            return self._enforce_retention_locked()

    def _enforce_retention_locked(self) -> int:
        cfg = self.config
        removed = 0
        if cfg.retention_bytes is not None:
            total = sum(s.size_bytes for s in self._segments)
            while len(self._segments) > 1 and total > cfg.retention_bytes:
                total -= self._segments[0].size_bytes
                self._remove_oldest()
                removed += 1
        if cfg.retention_age is not None:
            cutoff = time.time() - cfg.retention_age
            while len(self._segments) > 1 and self._segments[0].mtime() < cutoff:
                self._remove_oldest()
                removed += 1
        if removed:
            _log.info("commitlog.retention", path=str(self.directory), segments_deleted=removed)
        return removed

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
            segs = self._segments
            for a, b in itertools.pairwise(segs):
                if a.next_offset != b.base:
                    raise CorruptRecordError(
                        a.store.path, a.next_offset, "the record is missing; cannot snapshot"
                    )
            end = self._end
            parts: list[tuple[int, int]] = []
            try:
                for s in segs:
                    if s.base >= end:
                        break
                    k = end - s.base
                    size = s.index.position(k) if k < s.count else s.store.size
                    if size:
                        parts.append((os.dup(s.store.fd), size))
            except OSError:
                for fd, _ in parts:
                    os.close(fd)
                raise
            raw = SnapshotReader(segs[0].base, parts, end)
            self._readers.add(raw)
        return open_reader(raw)

    @classmethod
    def restore(
        cls, directory: str | os.PathLike[str], stream: BinaryIO, config: LogConfig | None = None
    ) -> Log:
        """Build a log in `directory` (absent or empty) from a `reader()` stream and open it.

        Every record's checksum is verified; the log appears in `directory` only once
        complete (it is built in a sibling temporary directory and renamed).
        """
        config = config or LogConfig()
        target = Path(directory)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise LogError(f"cannot restore into {target}: it exists and is not an empty directory")
        tmp = target.with_name(f".{target.name}.restoring-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)

        def open_tmp(first: int) -> Log:
            return cls.open(tmp, replace(config, initial_offset=first, fsync="never"))

        try:
            restore_into(open_tmp, stream)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if target.exists():
            target.rmdir()
        (tmp / LOCK_FILE).unlink(missing_ok=True)
        os.rename(tmp, target)
        dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return cls.open(target, config)

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Sync (unless fsync is ``never``) and close. Offsets stay readable as properties."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        d = self._durability
        d.stop()
        try:
            if self._syncs and d.failed is None:
                d.sync_round()
        finally:
            with d.round_lock, self._lock:
                self._close_files()
            d.wake_all()

    def _close_files(self) -> None:
        for seg in self._segments:
            seg.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Log({str(self.directory)!r}, segments={len(self._segments)}, "
            f"next_offset={self.next_offset})"
        )


_OPEN_TOKEN = object()
