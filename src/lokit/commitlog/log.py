"""The synchronous commit log: segments, rolling, recovery, truncation, retention, fsync.

Threading model: one writer at a time, any number of readers, all serialised by one
lock that is held only for in-memory work and page-cache I/O. fsync never runs under
that lock: a sync round snapshots which segments are dirty (on duplicated file
descriptors, so a concurrent truncation cannot pull a descriptor out from under it)
and syncs them while appends carry on. Readers look records up through the index
entries and store size the writer publishes after its write, so a reader never sees
a partly written record.

Group commit (fsync ``always``): an appender waits until a sync round that started
after its write has finished. Rounds are numbered; a write takes the number of the next
round to start as its ticket, and is released once that round (or a later one) has
succeeded. Whoever finds no round running runs one; everyone who wrote before it
started is released by it, so N concurrent appenders share fsyncs.

What each fsync policy can lose, and when a reader sees a record:

- ``always``: an append returns only once its record is durable, so a crash (of the
  process or the machine) loses only appends that had not returned. The readable end
  -- what `next_offset` / `highest_offset`, `read`, `read_range`, snapshots, listeners
  and `AsyncLog.wait_for` expose -- advances only when a sync round succeeds, so a
  reader never sees a record that a crash could still take back. Offsets are assigned
  from the written end, which runs ahead of the readable end while rounds are pending.
- ``interval:<ms>``: an append returns once written to the page cache. A process crash
  loses nothing that was written; a machine crash or power cut can lose about the
  last interval of appends. Readers see a record as soon as it is written.
- ``never``: as ``interval`` but lokit never fsyncs (except on `sync()`), so a machine
  crash can lose whatever the OS had not yet written back.

`truncate_suffix` lowers the readable end with the written end.
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
from .errors import (
    CorruptRecordError,
    LogClosedError,
    LogError,
    LogFailedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from .record import frame, frame_batch
from .segment import SEGMENT_FILE, Segment, segment_paths
from .snapshot import SnapshotReader, open_reader, restore_into

_log = structlog.get_logger("lokit.commitlog")

LOCK_FILE = "LOCK"


def _as_bytes(value: object, where: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{where} must be bytes, not {type(value).__name__}")


class Log:
    """A segmented, offset-addressed, crash-safe commit log in one directory.

    Open with `Log.open(directory, config)`. Offsets are consecutive integers from
    `config.initial_offset`. Thread-safe: one writer at a time, many readers.
    """

    on_fsync: Callable[[float], None] | None
    """Called with the seconds each sync round took, from the thread that ran it."""

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
        self._sync_lock = threading.Lock()
        self._gc = threading.Condition(threading.Lock())
        self._syncing = False
        self._round_seq = 0  # the number the next sync round will take (under _lock)
        self._rounds_done = 0  # every round numbered below this has succeeded (under _gc)
        self._end = 0  # the readable end: one past the newest record readers may see
        self._readers: weakref.WeakSet[SnapshotReader] = weakref.WeakSet()
        self._dirty: dict[Segment, None] = {}
        self._dir_dirty = False
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._closed = False
        self._failed: BaseException | None = None
        self._listeners: list[Callable[[int], None]] = []
        self._stop = threading.Event()
        self._interval_thread: threading.Thread | None = None
        self._lock_fd = -1
        self.on_fsync = None

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
            log._start_interval_thread()
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
        self._dir_dirty = not stores
        self._enforce_retention_locked()

    # -- properties ------------------------------------------------------------------------

    @property
    def _active(self) -> Segment:
        return self._segments[-1]

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
        offset, ticket = self._write_one(value)
        if self._always:
            self._wait_durable(ticket)
        return offset

    def append_batch(self, values: Sequence[bytes]) -> int:
        """Append records at consecutive offsets, all or nothing; returns the first offset."""
        first, ticket = self._write_records(*self._check_batch(values))
        if self._always:
            self._wait_durable(ticket)
        return first

    def _check_writable(self) -> None:
        if self._closed:
            raise LogClosedError(self.directory)
        if self._failed is not None:
            raise LogFailedError(
                f"the log at {self.directory} failed earlier ({self._failed}); reopen it to recover"
            )

    def _check_value(self, value: object) -> bytes:
        """A record as bytes, or the TypeError / RecordTooLargeError its append would raise."""
        v = value if type(value) is bytes else _as_bytes(value, "a record value")
        if len(v) > self._record_limit:
            raise RecordTooLargeError(len(v), self._record_limit)
        return v

    def _check_batch(self, values: object) -> tuple[list[bytes], list[int]]:
        """A batch as a non-empty list of bytes and their lengths, or the error its
        append would raise."""
        if isinstance(values, bytes | bytearray | memoryview | str):
            raise TypeError("append_batch takes a sequence of records, not a single value")
        try:
            vals: list[bytes] = list(values)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(
                f"append_batch takes a sequence of records, not {type(values).__name__}"
            ) from None
        if not vals:
            raise ValueError("append_batch needs at least one record")
        if list(map(type, vals)).count(bytes) != len(vals):  # faster than a set of types
            vals = [_as_bytes(v, f"record {i} of the batch") for i, v in enumerate(vals)]
        lengths = list(map(len, vals))
        if max(lengths) > self._record_limit:
            i = next(i for i, n in enumerate(lengths) if n > self._record_limit)
            raise RecordTooLargeError(lengths[i], self._record_limit, index=i)
        return vals, lengths

    def _write_one(self, value: bytes) -> tuple[int, int]:
        """Validate and write one record without waiting for fsync: (offset, ticket)."""
        value = self._check_value(value)
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
                return offset, self._round_seq
            self._end = end = offset + 1
            ticket = self._round_seq
        for cb in self._listeners:
            cb(end)
        return offset, ticket

    def _write_records(
        self, values: list[bytes], lengths: list[int] | None = None
    ) -> tuple[int, int]:
        """Write records that passed `_check_batch` (`lengths`: as it returned them),
        without waiting for fsync: (first offset, ticket)."""
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
                return first, self._round_seq
            self._end = end = first + n
            ticket = self._round_seq
        for cb in self._listeners:
            cb(end)
        return first, ticket

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
            self._failed = e

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
            self._failed = e
        return LogError(f"append to {self.directory} failed: {e.strerror or e}")

    def _roll(self) -> Segment:
        """Start a new active segment at the next offset (the old one is sealed)."""
        old = self._segments[-1]
        old.index.seal()
        seg = Segment(self.directory, old.next_offset, self.config)
        self._segments.append(seg)
        self._bases.append(seg.base)
        self._dir_dirty = True
        try:
            self._enforce_retention_locked()
        except OSError as e:  # retention can wait for the next roll; the append cannot
            _log.error("commitlog.retention_failed", path=str(self.directory), error=str(e))
        return seg

    # -- durability ------------------------------------------------------------------------

    def sync(self) -> None:
        """Make everything appended so far durable (whatever the fsync policy)."""
        with self._lock:
            if self._closed:
                raise LogClosedError(self.directory)
            self._dir_dirty = True
        self._sync_round()

    def _wait_durable(self, ticket: int) -> None:
        """Group commit: return once sync round number `ticket` (the first to start after
        this caller's write) or a later one has succeeded; run one if none is running."""
        gc = self._gc
        while True:
            with gc:
                while True:
                    if self._rounds_done > ticket:
                        return
                    if self._failed is not None:
                        raise LogFailedError(
                            f"fsync of {self.directory} failed ({self._failed}); "
                            "the record may not be durable; reopen the log"
                        )
                    if not self._syncing:
                        self._syncing = True
                        break
                    gc.wait()
            try:
                self._sync_round()
            finally:
                with gc:
                    self._syncing = False
                    gc.notify_all()

    def _sync_round(self) -> None:
        """fsync every segment written since the last round (and the directory if it
        changed). Rounds are serialised, so when one returns, every write made before
        it started is durable."""
        with self._sync_lock:
            self._sync_round_locked()

    def _sync_round_locked(self) -> None:
        fds: list[int] = []
        dir_fd = -1
        with self._lock:
            if self._failed is not None:
                raise LogFailedError(f"the log at {self.directory} failed earlier: {self._failed}")
            number = self._round_seq
            self._round_seq = number + 1
            target = self._segments[-1].next_offset
            try:
                for seg in self._dirty:
                    if seg.store.fd >= 0:
                        seg.index.flush()
                        fds.append(os.dup(seg.store.fd))
                        fds.append(os.dup(seg.index.fd))
                if self._dir_dirty:
                    dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                self._failed = e
                with self._gc:
                    self._gc.notify_all()
                raise LogFailedError(f"cannot prepare fsync of {self.directory}: {e}") from e
            self._dirty.clear()
            self._dir_dirty = False
        took: float | None = None
        if fds or dir_fd >= 0:  # else every earlier write was covered by an earlier round
            t0 = time.perf_counter()
            try:
                for fd in fds:
                    os.fdatasync(fd)
                if dir_fd >= 0:
                    os.fsync(dir_fd)
            except OSError as e:
                self._failed = e
                with self._gc:
                    self._gc.notify_all()
                raise LogFailedError(f"fsync of {self.directory} failed: {e.strerror or e}") from e
            finally:
                for fd in fds:
                    os.close(fd)
                if dir_fd >= 0:
                    os.close(dir_fd)
            took = time.perf_counter() - t0
        self._round_succeeded(number, target)
        hook = self.on_fsync
        if hook is not None and took is not None:
            hook(took)

    def _round_succeeded(self, number: int, target: int) -> None:
        """Publish a finished round: under ``always`` the records it made durable become
        readable (before their appenders are released, so they can read them back)."""
        if self._always:
            with self._lock:
                advanced = target > self._end
                if advanced:
                    self._end = target
            if advanced:
                for cb in self._listeners:
                    cb(target)
        with self._gc:
            if number >= self._rounds_done:
                self._rounds_done = number + 1
            self._gc.notify_all()

    def _start_interval_thread(self) -> None:
        interval = self._policy.interval_ms / 1000.0

        def run() -> None:
            while not self._stop.wait(interval):
                if self._dirty or self._dir_dirty:
                    try:
                        self._sync_round()
                    except LogError as e:
                        _log.error(
                            "commitlog.interval_fsync_failed",
                            path=str(self.directory),
                            error=str(e),
                        )
                        return

        t = threading.Thread(target=run, name=f"lokit-fsync:{self.directory.name}", daemon=True)
        self._interval_thread = t
        t.start()

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
        with self._sync_lock:
            with self._lock:
                self._check_writable()
                removed = 0
                while len(self._segments) > 1 and self._segments[0].next_offset <= offset:
                    self._remove_oldest()
                    removed += 1
            if removed and self._syncs:
                self._sync_round_locked()

    def truncate_suffix(self, offset: int) -> None:
        """Delete every record after `offset` (so `offset` becomes the highest), for
        replication conflicts. `offset` may be lowest-1 to empty the log; below that is
        OffsetOutOfRangeError. The next append gets offset+1."""
        offset = operator.index(offset)
        with self._sync_lock:
            with self._lock:
                self._check_writable()
                if offset >= self._segments[-1].next_offset - 1:
                    return
                if offset < self._segments[0].base - 1:
                    raise OffsetOutOfRangeError(offset)
                self._truncate_suffix_locked(offset)
            if self._syncs:
                self._sync_round_locked()

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
        self._dir_dirty = True
        self._end = min(self._end, keep_next)

    def _remove_oldest(self) -> None:
        seg = self._segments.pop(0)
        self._bases.pop(0)
        self._dirty.pop(seg, None)
        seg.remove()
        self._dir_dirty = True

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
        self._stop.set()
        t = self._interval_thread
        if t is not None and t is not threading.current_thread():
            t.join()
        try:
            if self._syncs and self._failed is None:
                self._sync_round()
        finally:
            with self._sync_lock, self._lock:
                self._close_files()
            with self._gc:
                self._gc.notify_all()

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
