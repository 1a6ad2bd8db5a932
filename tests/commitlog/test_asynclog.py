"""The asyncio facade (group commit, tailing waits) and Topics."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from lokit.commitlog import (
    DEFAULT_TOPIC,
    AsyncLog,
    InvalidTopicNameError,
    Log,
    LogClosedError,
    LogConfig,
    LogFailedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    Topics,
    asynclog,
    validate_topic_name,
)

from .conftest import value_for

NEVER = LogConfig(fsync="never")


async def test_append_read_and_offsets(tmp_path: Path) -> None:
    alog = await AsyncLog.open(tmp_path / "a", NEVER)
    assert (alog.lowest_offset, alog.highest_offset, alog.next_offset) == (None, None, 0)
    assert await alog.append(b"one") == 0
    assert await alog.append_batch([b"two", b"three"]) == 1
    assert await alog.read(2) == b"three"
    assert await alog.read_range(0) == [(0, b"one"), (1, b"two"), (2, b"three")]
    assert (alog.lowest_offset, alog.highest_offset, alog.next_offset) == (0, 2, 3)
    assert alog.size_bytes > 0
    with pytest.raises(OffsetOutOfRangeError):
        await alog.read(3)
    await alog.truncate_suffix(0)
    assert alog.next_offset == 1
    await alog.close()
    with pytest.raises(LogClosedError):
        await alog.append(b"x")


async def test_group_commit_shares_fsyncs_off_the_loop(tmp_path: Path) -> None:
    rounds: list[int] = []  # the thread each fsync ran on
    alog = await AsyncLog.open(
        tmp_path / "a",
        LogConfig(fsync="always"),
        on_fsync=lambda s: rounds.append(threading.get_ident()),
    )
    writers: list[int] = []  # the thread each write ran on
    alog.log.add_listener(lambda n: writers.append(threading.get_ident()))
    offsets = await asyncio.gather(*(alog.append(value_for(i)) for i in range(64)))
    assert offsets == list(range(64))  # offsets follow the order of the calls
    assert 1 <= len(rounds) < 64  # 64 durable appends shared a handful of fsyncs
    assert 1 <= len(writers) < 64  # ... and a handful of writes
    loop_thread = threading.get_ident()
    assert loop_thread not in rounds and loop_thread not in writers  # no disk I/O on the loop
    firsts = await asyncio.gather(alog.append_batch([b"a", b"b"]), alog.append(b"c"))
    assert list(firsts) == [64, 66]
    with pytest.raises(RecordTooLargeError):
        await alog.append_batch([b"ok", b"x" * (2 << 20)])
    with pytest.raises(TypeError, match="record 1 of the batch must be bytes"):
        await alog.append_batch([b"ok", "text"])  # type: ignore[list-item]
    await alog.close()
    log = Log.open(tmp_path / "a", NEVER)
    assert log.next_offset == 67
    assert [log.read(o) for o in offsets] == [value_for(i) for i in range(64)]
    log.close()


async def test_wait_for_wakes_on_append(tmp_path: Path) -> None:
    alog = await AsyncLog.open(tmp_path / "a", NEVER)
    assert not await alog.wait_for(0, timeout=0.01)
    waiters = [asyncio.create_task(alog.wait_for(n)) for n in (0, 2, 5)]
    await asyncio.sleep(0)
    await alog.append(b"a")
    await asyncio.sleep(0)
    assert waiters[0].done() and waiters[0].result() is True
    assert not waiters[1].done()
    await alog.append_batch([b"b", b"c"])
    assert await waiters[1] is True
    assert not waiters[2].done()
    assert await alog.wait_for(1) is True  # already there: immediate
    await alog.close()
    assert await waiters[2] is False  # woken by close
    assert await alog.wait_for(100) is False


async def test_close_commits_appends_already_queued(tmp_path: Path) -> None:
    alog = await AsyncLog.open(tmp_path / "a", LogConfig(fsync="always"))
    tasks = [asyncio.create_task(alog.append(value_for(i))) for i in range(10)]
    await asyncio.sleep(0)  # all queued: the first round runs, the rest wait for the next
    await alog.close()
    assert [t.result() for t in tasks] == list(range(10))
    log = Log.open(tmp_path / "a", NEVER)
    assert log.read_range(0) == [(i, value_for(i)) for i in range(10)]
    log.close()


async def test_wait_for_under_fsync_always(tmp_path: Path) -> None:
    # records are written by the worker thread here: the wake-up crosses threads
    alog = await AsyncLog.open(tmp_path / "a", LogConfig(fsync="always"))
    waiter = asyncio.create_task(alog.wait_for(1))
    await asyncio.sleep(0)
    await alog.append_batch([b"a", b"b"])
    assert await asyncio.wait_for(waiter, 10) is True
    await alog.close()


async def test_wait_for_wakes_on_append_from_another_thread(tmp_path: Path) -> None:
    alog = await AsyncLog.open(tmp_path / "a", NEVER)
    waiter = asyncio.create_task(alog.wait_for(0))
    await asyncio.sleep(0)
    await asyncio.to_thread(alog.log.append, b"from a thread")
    assert await asyncio.wait_for(waiter, 10) is True
    await alog.close()


async def test_cancelled_and_timed_out_waiters_are_forgotten(tmp_path: Path) -> None:
    alog = await AsyncLog.open(tmp_path / "a", NEVER)
    t = asyncio.create_task(alog.wait_for(10))
    await asyncio.sleep(0)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert await alog.wait_for(10, timeout=0.001) is False
    assert alog._waiters == []
    await alog.close()


async def test_fsync_failure_fails_appenders_and_poisons_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alog = await AsyncLog.open(tmp_path / "a", LogConfig(fsync="always"))
    await alog.append(b"fine")

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    results = await asyncio.gather(*(alog.append(b"x") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, LogFailedError) for r in results)
    assert "Input/output error" in str(results[0])
    monkeypatch.undo()
    with pytest.raises(LogFailedError, match="reopen"):
        await alog.append(b"after")
    await alog.close()
    log = Log.open(tmp_path / "a", NEVER)
    assert log.read(0) == b"fine"
    log.close()


async def test_age_retention_keeps_running_after_an_os_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asynclog, "MIN_RETENTION_PERIOD", 0.001)
    alog = await AsyncLog.open(tmp_path / "a", LogConfig(fsync="never", retention_age=0.01))
    loop = asyncio.get_running_loop()
    retried = asyncio.Event()
    calls = {"n": 0}

    def flaky_retention() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EIO, "Input/output error")
        loop.call_soon_threadsafe(retried.set)
        return 0

    monkeypatch.setattr(alog.log, "enforce_retention", flaky_retention)
    with capture_logs() as logs:
        await alog.append(b"x")  # the first use starts the retention task
        await asyncio.wait_for(retried.wait(), 30)
    assert any(
        e["event"] == "commitlog.retention_failed" and "Input/output error" in e["error"]
        for e in logs
    )
    await alog.close()


# -- topics ------------------------------------------------------------------------------------


async def test_topics_created_on_first_use_and_shared(tmp_path: Path) -> None:
    seen: list[str] = []
    topics = Topics(
        tmp_path / "data", LogConfig(fsync="always"), on_fsync=lambda t, s: seen.append(t)
    )
    assert topics.names() == []
    a1, a2 = await asyncio.gather(topics.get("orders"), topics.get("orders"))
    assert a1 is a2
    default = await topics.get()
    assert DEFAULT_TOPIC == "default" and topics.names() == ["default", "orders"]
    assert await a1.append(b"o") == 0
    assert await default.append(b"d") == 0
    assert sorted(set(seen)) == ["default", "orders"]
    assert (tmp_path / "data" / "orders").is_dir()
    await topics.close()
    with pytest.raises(LogClosedError):
        await topics.get("orders")
    assert a1.closed

    again = Topics(tmp_path / "data", NEVER)
    assert again.names() == ["default", "orders"]
    assert await (await again.get("orders")).read(0) == b"o"
    await again.close()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("a/b", "path separator"),
        ("..", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("a\0b", "NUL"),
        ("x" * 201, "at most 200"),
        ("tab\there", "control character"),
        ("a\\b", "path separator"),
    ],
)
async def test_invalid_topic_names(tmp_path: Path, name: str, reason: str) -> None:
    topics = Topics(tmp_path, NEVER)
    with pytest.raises(InvalidTopicNameError, match=reason) as e:
        await topics.get(name)
    assert str(e.value).startswith("invalid topic name")
    assert list(tmp_path.iterdir()) == []
    await topics.close()


def test_valid_topic_names() -> None:
    for name in ["default", "orders.v1", "a-b_c", "x" * 200, "événements", "a..b"]:
        assert validate_topic_name(name) == name
    with pytest.raises(InvalidTopicNameError, match="must be a string"):
        validate_topic_name(3)
