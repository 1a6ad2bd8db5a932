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

import operator
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import structlog

from .config import FsyncPolicy, LogConfig
from .dirlock import DirLock
from .durability import Durability
from .errors import LogClosedError, LogError, LogFailedError
from .files import FilePool, make_dirs
from .maintenance import Maintenance
from .record import check_batch, check_value, frame, frame_batch
from .segmentset import SegmentSet
from .snapshot import SnapshotReader, restore_dir

_log = structlog.get_logger("lokit.commitlog")

LOCK_FILE = "LOCK"


class Log(Maintenance):
    """A segmented, offset-addressed, crash-safe commit log in one directory.

    Open with `Log.open(directory, config)`. Offsets are consecutive integers from
    `config.initial_offset`. Thread-safe: one writer at a time, many readers.
    """

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        *,
        _token: object = None,
        pool: FilePool | None = None,
        lock_dir: bool = True,
    ) -> None:
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
        self._pool = pool or FilePool(config.max_open_files)
        self._segs = SegmentSet(directory, config, d, self._lock, self._pool)
        self._segments = self._segs.segments  # the same list, for the append path
        self._closed = False
        self._listeners: list[Callable[[int], None]] = []
        self._dir_lock = (
            DirLock(
                directory,
                LOCK_FILE,
                in_use="the log at {dir} is already open (in this or another process)",
                unusable="cannot open the log at {dir}: {strerror}",
            )
            if lock_dir
            else None
        )

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        config: LogConfig | None = None,
        *,
        pool: FilePool | None = None,
        lock_dir: bool = True,
    ) -> Log:
        """Open (creating if needed, 0700) the log in `directory` and recover it.

        Only ``<20 digits>.store`` / ``.index`` files are segments; anything else in the
        directory is left alone. Only a torn tail is cut; damaged records keep their
        offsets (reads raise `CorruptRecordError`), no offset is handed out twice, and
        other repairs copy the files aside first (rules: `recovery`, `repair`).
        `pool`: the `FilePool` to share (by default one of its own, bounded by
        `config.max_open_files`); `lock_dir=False` when the caller locks a parent.
        """
        config = config or LogConfig()
        path = Path(directory)
        try:
            make_dirs(path, config.perms)
        except OSError as e:
            raise LogError(f"cannot create log directory {path}: {e.strerror or e}") from e
        if not path.is_dir():
            raise LogError(f"cannot open log: {path} is not a directory")
        log = cls(path, config, _token=_OPEN_TOKEN, pool=pool, lock_dir=lock_dir)
        try:
            with log._lock:  # the pool may close segments of a log only under its lock
                if log._dir_lock is not None:
                    log._dir_lock.acquire()
                log._segs.load()
                log._end = log._segments[-1].next_offset
        except BaseException as e:
            log._close_files()
            if isinstance(e, OSError):
                raise LogError(f"cannot open the log at {path}: {e.strerror or e}") from e
            raise
        if log._policy.mode == "interval":
            log._durability.start_interval(log._policy.interval_ms / 1000.0)
        return log

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

        def open_tmp(tmp: Path, first: int) -> Log:
            return cls.open(tmp, replace(config, initial_offset=first, fsync="never"))

        restore_dir(target, stream, open_tmp, LOCK_FILE)
        return cls.open(target, config)

    @property
    def open_files(self) -> int:
        """File descriptors this log holds now: its open segments' and its lock's."""
        with self._lock:
            n = sum(s.open_fds for s in self._segments)
        return n + (self._dir_lock is not None and self._dir_lock.held)

    @property
    def pool(self) -> FilePool:
        """The pool bounding this log's open files (shared by a `Topics`' logs)."""
        return self._pool

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
            self._index_too()
        self._durability.sync_round()

    def _index_too(self) -> None:
        """Make the next round fsync the newest segment's index as well (under the lock):
        sync rounds otherwise leave it to recovery, which rebuilds it from the store."""
        seg = self._segments[-1]
        if seg.is_open:
            self._dirty[seg] = None
            self._durability.index_dirty[seg] = None

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
                if self._pool.last is not seg:
                    seg.use()
                if seg.store.size + size > seg.max_store_bytes or seg.index.count >= seg.capacity:
                    seg = self._segs.roll()
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
                seg.use()
                if seg.room(sizes, 0, total) == n:
                    seg.append_frames(data, sizes)
                    self._dirty[seg] = None
                else:
                    self._segs.append_spread(data, sizes, total)
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

    # -- failed writes, durable rounds ----------------------------------------------------

    def _write_failed(self, e: OSError) -> LogError:
        """Turn a failed write into a LogError; poison the log if the rollback failed too
        (a file whose size disagrees with what the segment believes it wrote)."""
        if not self._segments[-1].files_match():
            self._durability.poison(e)
        return LogError(f"append to {self.directory} failed: {e.strerror or e}")

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

    def read(self, offset: int) -> bytes:
        """The record at `offset`; OffsetOutOfRangeError if there is none, CorruptRecordError if
        it fails its checksum."""
        offset = operator.index(offset)
        with self._lock:
            if self._closed:
                raise LogClosedError(self.directory)
            try:
                return self._segs.find(offset, self._end)[1].read(offset)
            except OSError as e:
                raise self._read_failed(e) from e

    def read_range(
        self, offset: int, max_records: int = 1000, max_bytes: int = 1 << 20
    ) -> list[tuple[int, bytes]]:
        """Records from `offset` on, as (offset, value): at most `max_records`, and no
        more than `max_bytes` of values, except that the first record is always
        returned even if it alone is bigger. OffsetOutOfRangeError if `offset` is not in the
        log. A damaged record is never skipped: the batch stops just before it, and a
        `read_range` starting at it raises `CorruptRecordError`."""
        offset = operator.index(offset)
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
        with self._lock:
            if self._closed:
                raise LogClosedError(self.directory)
            try:
                return self._segs.read_range(offset, self._end, max_records, max_bytes)
            except OSError as e:
                raise self._read_failed(e) from e

    def _read_failed(self, e: OSError) -> LogError:
        return LogError(f"read from {self.directory} failed: {e.strerror or e}")

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
                with self._lock:
                    self._index_too()
                d.sync_round()
        finally:
            with d.round_lock, self._lock:
                self._close_files()
            d.wake_all()

    def _close_files(self) -> None:
        self._segs.close()
        if self._dir_lock is not None:
            self._dir_lock.release()

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
