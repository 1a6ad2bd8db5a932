"""Durability for one Log: sync rounds, group commit, the interval thread, failure poisoning.

A sync round fsyncs the store of every segment written since the previous round (and
the directory when segments were created or removed). An index is fsynced only where
recovery cannot rebuild it for free (`index_dirty`): a segment sealed by a roll, an
index cut by a truncation, the newest index on `Log.sync` and `Log.close`; a segment
the file pool closes has both files fsynced. The newest segment's index is derived
data -- every open reads its store through and rebuilds entries a crash lost
(`recovery`) -- so under ``always`` a record costs one fdatasync (its store), not two.

fsync never runs under the log's lock: a round snapshots which segments are dirty
under that lock, on duplicated file descriptors (so a concurrent truncation cannot
pull a descriptor out from under it), and syncs them while appends carry on. Rounds
are serialised by `Durability.round_lock`, so when one returns, every write made
before it started is durable.

Group commit (fsync ``always``): an appender waits until a sync round that started
after its write has finished. Rounds are numbered; a write takes the number of the next
round to start (`next_round`, read under the log's lock) as its ticket, and is released
once that round (or a later one) has succeeded. Whoever finds no round running runs
one; everyone who wrote before it started is released by it, so N concurrent appenders
share fsyncs.

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

A segment the file pool closes is fsynced before it closes, unless the policy is
``never``: then it stays dirty and a round opens its files again by path to sync them.

A failed fsync (or a write whose rollback failed) poisons the log: `failed` holds the
error, every later append and round raises LogFailedError, and waiting appenders are
released with it. Only reopening the log (which recovers from the files) clears it.

Locks, always taken in this order: `round_lock`, then the log's lock, then the
group-commit condition (internal to this module).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from .errors import LogError, LogFailedError

if TYPE_CHECKING:
    from .segment import Segment

_log = structlog.get_logger("lokit.commitlog")


class Durability:
    """The sync rounds of one Log and everything waiting on them.

    The Log shares its lock and tells this object what it wrote: it adds each segment
    it writes to `dirty` and sets `dir_dirty` when the directory changed (both under
    its lock), and reads `next_round` (under its lock) as a write's ticket.
    `written_end()` is called under the log's lock when a round starts;
    `on_durable(end)`, if given, is called with that end once the round succeeded,
    before any appender is released.
    """

    __slots__ = (
        "_gc",
        "_lock",
        "_on_durable",
        "_rounds_done",
        "_stop",
        "_syncing",
        "_thread",
        "_written_end",
        "dir_dirty",
        "directory",
        "dirty",
        "failed",
        "index_dirty",
        "next_round",
        "on_fsync",
        "round_lock",
    )

    def __init__(
        self,
        directory: Path,
        lock: threading.RLock,
        written_end: Callable[[], int],
        on_durable: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = directory
        self.dirty: dict[Segment, None] = {}
        """Segments written since the last round started (the log adds, under its lock;
        never rebound, so the log may keep a reference)."""
        self.index_dirty: dict[Segment, None] = {}
        """Dirty segments whose index the next round fsyncs too: sealed, or cut by a
        truncation (a subset of `dirty`; the log adds to both, under its lock)."""
        self.dir_dirty = False
        """The directory changed since the last round started (set under the log's lock)."""
        self.next_round = 0
        """The number the next round will take: a write's ticket (under the log's lock)."""
        self.failed: BaseException | None = None
        """The error that poisoned the log, or None."""
        self.on_fsync: Callable[[float], None] | None = None
        """Called with the seconds each round's fsyncs took, from the thread that ran it."""
        self.round_lock = threading.Lock()
        """Held while a round runs; hold it (before the log's lock) to keep rounds out."""
        self._lock = lock
        self._written_end = written_end
        self._on_durable = on_durable
        self._gc = threading.Condition(threading.Lock())
        self._syncing = False
        self._rounds_done = 0  # every round numbered below this has succeeded (under _gc)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poison(self, error: BaseException) -> None:
        """Mark the log failed (a write left its files in an unknown state); the caller
        holds the log's lock. Appenders already waiting see it when they next wake: once
        the round in flight, if any, has finished (those it covered return normally)."""
        self.failed = error

    def wait_durable(self, ticket: int) -> None:
        """Group commit: return once sync round number `ticket` (the first to start after
        this caller's write) or a later one has succeeded; run one if none is running."""
        gc = self._gc
        while True:
            with gc:
                while True:
                    if self._rounds_done > ticket:
                        return
                    if self.failed is not None:
                        raise LogFailedError(
                            f"fsync of {self.directory} failed ({self.failed}); "
                            "the record may not be durable; reopen the log"
                        )
                    if not self._syncing:
                        self._syncing = True
                        break
                    gc.wait()
            try:
                self.sync_round()
            finally:
                with gc:
                    self._syncing = False
                    gc.notify_all()

    def sync_round(self) -> None:
        """fsync the store of every segment written since the last round, the indexes
        in `index_dirty`, and the directory if it changed. Rounds are serialised, so
        when one returns, every write made before it started is durable."""
        with self.round_lock:
            self.sync_round_held()

    def sync_round_held(self) -> None:
        """As `sync_round`, for a caller that already holds `round_lock`."""
        fds: list[int] = []
        dir_fd = -1
        with self._lock:
            if self.failed is not None:
                raise LogFailedError(f"the log at {self.directory} failed earlier: {self.failed}")
            number = self.next_round
            self.next_round = number + 1
            target = self._written_end()
            indexes = self.index_dirty
            try:
                for seg in self.dirty:
                    if seg.store.fd >= 0:
                        fds.append(os.dup(seg.store.fd))
                        if seg in indexes:
                            seg.index.flush()
                            fds.append(os.dup(seg.index.fd))
                    else:  # closed by the file pool unsynced (fsync never): by path
                        fds.extend(_open_for_sync(seg))
                if self.dir_dirty:
                    dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                self._fail_round(e)
                raise LogFailedError(f"cannot prepare fsync of {self.directory}: {e}") from e
            self.dirty.clear()
            indexes.clear()
            self.dir_dirty = False
        took: float | None = None
        if fds or dir_fd >= 0:  # else every earlier write was covered by an earlier round
            t0 = time.perf_counter()
            try:
                for fd in fds:
                    os.fdatasync(fd)
                if dir_fd >= 0:
                    os.fsync(dir_fd)
            except OSError as e:
                self._fail_round(e)
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

    def _fail_round(self, error: OSError) -> None:
        self.failed = error
        with self._gc:
            self._gc.notify_all()

    def _round_succeeded(self, number: int, target: int) -> None:
        """Publish a finished round: `on_durable` first (under ``always`` the records it
        made durable become readable, so released appenders can read them back), then
        release every appender whose ticket it covers."""
        if self._on_durable is not None:
            self._on_durable(target)
        with self._gc:
            if number >= self._rounds_done:
                self._rounds_done = number + 1
            self._gc.notify_all()

    def wake_all(self) -> None:
        """Wake every waiting appender so it looks again (the log closed)."""
        with self._gc:
            self._gc.notify_all()

    # -- fsync interval:<ms> ---------------------------------------------------------------

    def start_interval(self, seconds: float) -> None:
        """Run a round every `seconds` when anything was written, from a daemon thread,
        until `stop()`. A failed round is logged and ends the thread (the log is
        poisoned, so appends report it)."""

        def run() -> None:
            while not self._stop.wait(seconds):
                if self.dirty or self.dir_dirty:
                    try:
                        self.sync_round()
                    except LogError as e:
                        _log.error(
                            "commitlog.interval_fsync_failed",
                            path=str(self.directory),
                            error=str(e),
                        )
                        return

        t = threading.Thread(target=run, name=f"lokit-fsync:{self.directory.name}", daemon=True)
        self._thread = t
        t.start()

    def stop(self) -> None:
        """End the interval thread, if any, and wait for it (unless called from it)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()


def _open_for_sync(seg: Segment) -> list[int]:
    """Descriptors of a closed segment's files, for a round to fsync (none if the
    segment was deleted meanwhile)."""
    fds: list[int] = []
    try:
        for path in (seg.store.path, seg.index.path):
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except FileNotFoundError:
        for fd in fds:
            os.close(fd)
        return []
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds
