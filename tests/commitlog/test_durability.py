"""fsync ``always``: an acknowledged append was fsynced after its write (group commit),
and readers see a record only once its sync round has succeeded (the readable end)."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path

import pytest

from lokit.commitlog import AsyncLog, Log, LogConfig, LogError, OffsetOutOfRangeError
from lokit.commitlog.record import HEADER_SIZE
from lokit.commitlog.snapshot import SNAPSHOT_HEADER

from .conftest import Fsyncs, tick, value_for

ALWAYS = LogConfig(fsync="always", max_store_bytes=2048)


def test_every_acknowledged_threaded_append_was_fsynced_after_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = Fsyncs(monkeypatch)
    log = Log.open(tmp_path / "a", ALWAYS)
    acks: list[tuple[int, int, int]] = []  # (tick after the append returned, first, count)
    errors: list[BaseException] = []

    def appender(k: int) -> None:
        try:
            for i in range(20):
                if i % 3:
                    first = log.append(f"{k}:{i}".encode())
                    acks.append((tick(), first, 1))
                else:
                    first = log.append_batch([f"{k}:{i}:{j}".encode() for j in range(3)])
                    acks.append((tick(), first, 3))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert log.segment_count > 1  # records in sealed segments were covered too
    offsets = [o for _, first, n in acks for o in range(first, first + n)]
    assert sorted(offsets) == list(range(log.next_offset))
    uncovered = [
        o
        for acked, first, n in acks
        for o in range(first, first + n)
        if not fsyncs.covered(log, o, acked)
    ]
    assert uncovered == []
    log.close()


async def test_every_acknowledged_async_append_was_fsynced_after_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = Fsyncs(monkeypatch)
    alog = await AsyncLog.open(tmp_path / "a", ALWAYS)
    acks: list[tuple[int, int, int]] = []

    async def appender(k: int) -> None:
        for i in range(10):
            if i % 2:
                first = await alog.append(f"{k}:{i}".encode())
                acks.append((tick(), first, 1))
            else:
                first = await alog.append_batch([f"{k}:{i}:{j}".encode() for j in range(2)])
                acks.append((tick(), first, 2))

    await asyncio.gather(*(appender(k) for k in range(16)))
    log = alog.log
    assert sorted(o for _, first, n in acks for o in range(first, first + n)) == list(
        range(log.next_offset)
    )
    uncovered = [
        o
        for acked, first, n in acks
        for o in range(first, first + n)
        if not fsyncs.covered(log, o, acked)
    ]
    assert uncovered == []
    await alog.close()


def test_a_failed_batch_does_not_release_appenders_waiting_for_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failed batch rolls the log back; that must not count as a sync round for an
    # appender that wrote while an older round (which cannot cover it) was running.
    fsyncs = Fsyncs(monkeypatch)
    log = Log.open(tmp_path / "a", ALWAYS)
    fsyncs.hold_next()
    first = threading.Thread(target=log.append, args=(b"first",))
    first.start()
    assert fsyncs.entered.wait(30)  # round 0 is in fdatasync; it started before A's write

    real_write = os.write
    a_written = threading.Event()

    def write(fd: int, data: bytes | memoryview) -> int:
        if bytes(data).endswith(b"BAD"):
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, data)
        if bytes(data).endswith(b"A-record"):
            a_written.set()
        return n

    monkeypatch.setattr(os, "write", write)
    acks: list[tuple[int, int]] = []

    def appender_a() -> None:
        offset = log.append(b"A-record")
        acks.append((tick(), offset))

    a = threading.Thread(target=appender_a)
    a.start()
    assert a_written.wait(30)
    with pytest.raises(LogError, match="No space left on device"):
        log.append_batch([b"x", b"BAD"])  # written after A, then rolled back
    fsyncs.release.set()
    a.join(30)
    first.join(30)
    assert not a.is_alive() and not first.is_alive()
    [(acked, offset)] = acks
    assert offset == 1
    assert fsyncs.covered(log, offset, acked)
    log.close()


def test_a_record_is_readable_only_once_its_sync_round_succeeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = Fsyncs(monkeypatch)
    log = Log.open(tmp_path / "a", ALWAYS)
    assert log.append(b"durable") == 0
    seen: list[int] = []
    log.add_listener(seen.append)
    fsyncs.hold_next()
    t = threading.Thread(target=log.append, args=(b"pending",))
    t.start()
    assert fsyncs.entered.wait(30)
    # written to the page cache, its fsync not yet done: no reader can see it
    assert (log.next_offset, log.highest_offset) == (1, 0)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(1)
    assert log.read_range(0) == [(0, b"durable")]
    assert len(log.reader().read()) == SNAPSHOT_HEADER.size + HEADER_SIZE + len(b"durable")
    assert seen == []
    fsyncs.release.set()
    t.join(30)
    assert not t.is_alive()
    assert (log.next_offset, log.highest_offset) == (2, 1)
    assert log.read(1) == b"pending"
    assert seen == [2]
    log.truncate_suffix(0)  # the readable end comes down with the written end
    assert log.next_offset == 1 and log.append(b"again") == 1
    log.close()


async def test_wait_for_wakes_only_once_the_record_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = Fsyncs(monkeypatch)
    alog = await AsyncLog.open(tmp_path / "a", ALWAYS)
    fsyncs.hold_next()
    append = asyncio.create_task(alog.append(b"pending"))
    assert await asyncio.to_thread(fsyncs.entered.wait, 30)
    waiter = asyncio.create_task(alog.wait_for(0))
    await asyncio.sleep(0)
    assert not waiter.done()
    assert alog.next_offset == 0 and alog.highest_offset is None
    with pytest.raises(OffsetOutOfRangeError):
        await alog.read(0)
    fsyncs.release.set()
    assert await append == 0
    assert await asyncio.wait_for(waiter, 30) is True
    assert await alog.read(0) == b"pending"
    await alog.close()


def test_interval_and_never_records_are_readable_at_once(tmp_path: Path) -> None:
    for policy in ("interval:60000", "never"):
        log = Log.open(tmp_path / policy.replace(":", "_"), LogConfig(fsync=policy))
        assert log.append(value_for(0)) == 0
        assert log.next_offset == 1 and log.read(0) == value_for(0)
        log.close()
