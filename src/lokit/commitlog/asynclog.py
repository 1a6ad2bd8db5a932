"""An asyncio facade over one Log: disk syncs off the loop, group commit, tailing waits.

Under fsync ``always`` the event loop never touches the disk for an append: appends
are validated on the loop, queued, and committed by this log's own worker thread in
rounds -- one round writes everything queued (one `os.write`, offsets assigned in
queue order), fsyncs it, then resolves every caller's future with its offset.
Appends that arrive while a round runs form the next round, so concurrent appenders
share writes and fsyncs (group commit), and a write never contends with an fsync.
Under ``interval:<ms>`` and ``never`` an append is one page-cache `os.write` done on
the loop (microseconds). Reads are page-cache `pread`s done inline.
`wait_for(offset)` sleeps on a future woken when the record becomes readable (on its
write; under ``always`` once its sync round has made it durable): no polling.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import BinaryIO

import structlog

from .config import LogConfig
from .errors import LogClosedError, LogError, LogFailedError
from .files import FilePool
from .log import Log
from .record import check_batch, check_value

_log = structlog.get_logger("lokit.commitlog")

MIN_RETENTION_PERIOD = 1.0
"""Seconds between age-retention passes at the least (a tenth of retention_age, <= 60 s)."""


class AsyncLog:
    """One Log used from asyncio. Create with `await AsyncLog.open(dir, config)` or
    wrap an open Log with `AsyncLog(log)`; use from one event loop.

    `on_fsync(seconds)` is called after every sync round with how long the fsyncs
    took, from the thread that ran them (this log's worker thread, or the interval
    thread under ``interval:<ms>``); keep it cheap and thread-safe (a metric observe).
    """

    def __init__(self, log: Log, *, on_fsync: Callable[[float], None] | None = None) -> None:
        self._log = log
        if on_fsync is not None:
            log.on_fsync = on_fsync
        self._always = log.config.fsync_policy.mode == "always"
        self._limit = log.config.record_limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"lokit-log:{log.directory.name}"
        )
        self._round: asyncio.Future[int] | None = None
        self._queue: list[tuple[bytes | list[bytes], int, asyncio.Future[int]]] = []
        self._start_pending = False
        self._waiters: list[tuple[int, int, asyncio.Future[bool]]] = []
        self._seq = 0
        self._closed = False
        self._retention_task: asyncio.Task[None] | None = None
        log.add_listener(self._on_write)

    @classmethod
    async def open(
        cls,
        directory: str | os.PathLike[str],
        config: LogConfig | None = None,
        *,
        on_fsync: Callable[[float], None] | None = None,
        pool: FilePool | None = None,
        lock_dir: bool = True,
    ) -> AsyncLog:
        """Open (and recover) the log in a thread, then wrap it (`pool`, `lock_dir`: as
        `Log.open`)."""
        log = await asyncio.to_thread(
            partial(Log.open, directory, config, pool=pool, lock_dir=lock_dir)
        )
        return cls(log, on_fsync=on_fsync)

    # -- plumbing --------------------------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = asyncio.get_running_loop()
            self._loop = loop
            self._loop_thread = threading.get_ident()
            age = self._log.config.retention_age
            if age is not None:
                self._retention_task = loop.create_task(self._retention_loop(age))
        return loop

    def _check_open(self) -> asyncio.AbstractEventLoop:
        loop = self._bind()
        if self._closed:
            raise LogClosedError(self._log.directory)
        return loop

    def _on_write(self, next_offset: int) -> None:
        """Log listener: wake tailing waiters (called from whichever thread wrote)."""
        if not self._waiters or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake(next_offset)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, next_offset)

    def _wake(self, next_offset: int) -> None:
        h = self._waiters
        while h and h[0][0] < next_offset:
            fut = heapq.heappop(h)[2]
            if not fut.done():
                fut.set_result(True)

    def _enqueue(
        self, loop: asyncio.AbstractEventLoop, item: bytes | list[bytes], n: int
    ) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = loop.create_future()
        self._queue.append((item, n, fut))
        if self._round is None and not self._start_pending:
            self._start_round(loop)
        return fut

    def _start_round(self, loop: asyncio.AbstractEventLoop) -> None:
        self._start_pending = False
        if self._round is not None or not self._queue:
            return
        items = self._queue
        self._queue = []
        values: list[bytes] = []
        for item, _, _ in items:
            if isinstance(item, bytes):
                values.append(item)
            else:
                values.extend(item)
        rnd = loop.run_in_executor(self._executor, self._commit, values)
        self._round = rnd
        rnd.add_done_callback(partial(self._round_done, loop, items))

    def _commit(self, values: list[bytes]) -> int:
        """Worker thread: write a round's records (validated on the loop) with one write,
        then fsync them; the sync round makes them readable."""
        first = self._log.write_records(values)[0]
        self._log.sync_round()
        return first

    def _round_done(
        self,
        loop: asyncio.AbstractEventLoop,
        items: list[tuple[bytes | list[bytes], int, asyncio.Future[int]]],
        rnd: asyncio.Future[int],
    ) -> None:
        self._round = None
        exc: BaseException | None
        exc = LogClosedError(self._log.directory) if rnd.cancelled() else rnd.exception()
        if exc is None:
            offset = rnd.result()
            for _, n, fut in items:
                if not fut.done():
                    fut.set_result(offset)
                offset += n
        else:
            for _, _, fut in items:
                if not fut.done():
                    fut.set_exception(
                        exc
                        if isinstance(exc, LogError)
                        else LogFailedError(f"append failed: {exc}")
                    )
        # Start the next round only after the appenders just released have run: they
        # usually append again at once, and then join the next round together instead
        # of half of them waiting a whole extra round (which halves every batch).
        self._start_pending = True
        loop.call_soon(self._start_round, loop)

    async def _retention_loop(self, age: float) -> None:
        period = min(60.0, max(MIN_RETENTION_PERIOD, age / 10))
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(period)
            try:
                await loop.run_in_executor(self._executor, self._log.enforce_retention)
            except LogError:  # closed or failed: there is nothing left to clean up
                return
            except OSError as e:  # e.g. a delete that failed: try again next period
                _log.error(
                    "commitlog.retention_failed", path=str(self._log.directory), error=str(e)
                )

    # -- API -------------------------------------------------------------------------------

    @property
    def log(self) -> Log:
        """The underlying synchronous Log."""
        return self._log

    @property
    def lowest_offset(self) -> int | None:
        return self._log.lowest_offset

    @property
    def highest_offset(self) -> int | None:
        return self._log.highest_offset

    @property
    def next_offset(self) -> int:
        return self._log.next_offset

    @property
    def size_bytes(self) -> int:
        return self._log.size_bytes

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def open_files(self) -> int:
        """As `Log.open_files`."""
        return self._log.open_files

    async def append(self, value: bytes) -> int:
        """Append one record; returns its offset once durable per the fsync policy.

        Offsets follow the order of the calls on the event loop, under every policy.
        """
        loop = self._check_open()
        if not self._always:
            return self._log.write_one(value)[0]
        return await self._enqueue(loop, check_value(value, self._limit), 1)

    async def append_batch(self, values: Sequence[bytes]) -> int:
        """Append records at consecutive offsets (one write, all or nothing); returns
        the first offset once durable per the fsync policy."""
        loop = self._check_open()
        batch, lengths = check_batch(values, self._limit)
        if not self._always:
            return self._log.write_records(batch, lengths)[0]
        return await self._enqueue(loop, batch, len(batch))

    async def read(self, offset: int) -> bytes:
        """The record at `offset` (OffsetOutOfRangeError / CorruptRecordError as `Log.read`)."""
        self._check_open()
        return self._log.read(offset)

    async def read_range(
        self, offset: int, max_records: int = 1000, max_bytes: int = 1 << 20
    ) -> list[tuple[int, bytes]]:
        """As `Log.read_range`."""
        self._check_open()
        return self._log.read_range(offset, max_records, max_bytes)

    async def wait_for(self, offset: int, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """True once `offset` exists; False on timeout or when the log closes."""
        loop = self._bind()
        if self._closed:
            return False
        if offset < self._log.next_offset:
            return True
        fut: asyncio.Future[bool] = loop.create_future()
        entry = (offset, self._seq, fut)
        self._seq += 1
        heapq.heappush(self._waiters, entry)
        try:
            if offset < self._log.next_offset:  # written by another thread meanwhile
                self._wake(self._log.next_offset)
            if timeout is None:
                return await fut
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            return False
        finally:
            if not fut.done():
                fut.cancel()
            try:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            except ValueError:
                pass

    async def sync(self) -> None:
        """Make everything appended so far durable, in the worker thread."""
        loop = self._check_open()
        await loop.run_in_executor(self._executor, self._log.sync)

    async def truncate_prefix(self, offset: int) -> None:
        """As `Log.truncate_prefix`, in the worker thread."""
        loop = self._check_open()
        await loop.run_in_executor(self._executor, self._log.truncate_prefix, offset)

    async def truncate_suffix(self, offset: int) -> None:
        """As `Log.truncate_suffix`, in the worker thread."""
        loop = self._check_open()
        await loop.run_in_executor(self._executor, self._log.truncate_suffix, offset)

    async def enforce_retention(self) -> int:
        """As `Log.enforce_retention`, in the worker thread."""
        loop = self._check_open()
        return await loop.run_in_executor(self._executor, self._log.enforce_retention)

    def reader(self) -> BinaryIO:
        """As `Log.reader` (cheap: it only duplicates file descriptors)."""
        self._check_open()
        return self._log.reader()

    async def close(self) -> None:
        """Wake waiters (with False), finish pending sync rounds, close the Log."""
        loop = self._bind()
        if self._closed:
            return
        self._closed = True
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.set_result(False)
        self._waiters.clear()
        if self._retention_task is not None:
            self._retention_task.cancel()
        while self._round is not None or self._queue:
            if self._round is None:
                self._start_round(loop)
                continue
            try:
                await self._round
            except Exception:  # reported to the appenders that waited on this round
                pass
        try:
            await loop.run_in_executor(self._executor, self._log.close)
        finally:
            self._log.remove_listener(self._on_write)
            self._executor.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"AsyncLog({self._log!r})"
