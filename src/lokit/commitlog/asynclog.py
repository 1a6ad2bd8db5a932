"""An asyncio facade over one Log: fsync off the loop, group commit, tailing waits.

Appends write to the page cache on the loop (one `os.write`, microseconds) and, under
fsync ``always``, then wait for a sync round that runs in this log's own worker
thread: every append made while a round is running joins the next round, so many
concurrent appenders share each fsync. Reads are page-cache `pread`s done inline.
`wait_for(offset)` sleeps on a future woken by the write itself: no polling.
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

from .config import LogConfig
from .errors import LogClosed, LogError, LogFailed
from .log import Log


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"lokit-log:{log.directory.name}"
        )
        self._round: asyncio.Future[None] | None = None
        self._next_round: list[asyncio.Future[None]] = []
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
    ) -> AsyncLog:
        """Open (and recover) the log in a thread, then wrap it."""
        log = await asyncio.to_thread(Log.open, directory, config)
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
            raise LogClosed(self._log.directory)
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

    async def _durable(self, loop: asyncio.AbstractEventLoop) -> None:
        fut: asyncio.Future[None] = loop.create_future()
        self._next_round.append(fut)
        if self._round is None:
            self._start_round(loop)
        await fut

    def _start_round(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters = self._next_round
        self._next_round = []
        rnd = loop.run_in_executor(self._executor, self._log._sync_round)
        self._round = rnd
        rnd.add_done_callback(partial(self._round_done, loop, waiters))

    def _round_done(
        self,
        loop: asyncio.AbstractEventLoop,
        waiters: list[asyncio.Future[None]],
        rnd: asyncio.Future[None],
    ) -> None:
        self._round = None
        exc: BaseException | None
        exc = LogClosed(self._log.directory) if rnd.cancelled() else rnd.exception()
        for w in waiters:
            if w.done():
                continue
            if exc is None:
                w.set_result(None)
            else:
                w.set_exception(LogFailed(str(exc)) if not isinstance(exc, LogError) else exc)
        if self._next_round:
            self._start_round(loop)

    async def _retention_loop(self, age: float) -> None:
        period = min(60.0, max(1.0, age / 10))
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(period)
            try:
                await loop.run_in_executor(self._executor, self._log.enforce_retention)
            except LogError:
                return

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

    async def append(self, value: bytes) -> int:
        """Append one record; returns its offset once durable per the fsync policy."""
        loop = self._check_open()
        offset = self._log._write_one(value)[0]
        if self._always:
            await self._durable(loop)
        return offset

    async def append_batch(self, values: Sequence[bytes]) -> int:
        """Append records at consecutive offsets (one write, all or nothing); returns
        the first offset once durable per the fsync policy."""
        loop = self._check_open()
        first = self._log._write_batch(values)[0]
        if self._always:
            await self._durable(loop)
        return first

    async def read(self, offset: int) -> bytes:
        """The record at `offset` (OffsetOutOfRange / CorruptRecord as `Log.read`)."""
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
        while self._round is not None:
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
