"""Threads: readers racing a writer never see a partial record; threaded group commit."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from lokit.commitlog import Log, LogConfig, OffsetOutOfRangeError

from .conftest import Fsyncs, value_for


def test_readers_never_see_partial_records(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "a", LogConfig(fsync="never", max_store_bytes=4096))
    total = 3000
    done = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        try:
            rng = random.Random(1)
            off = 0
            while off < total:
                n = rng.randint(1, 30)
                log.append_batch([value_for(off + i) for i in range(n)])
                off += n
                if rng.random() < 0.1:  # delete whole old segments, as retention would
                    log.truncate_prefix(max(0, off - 300))
        except Exception as e:
            errors.append(f"writer: {e!r}")
        finally:
            done.set()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not done.is_set() or rng.random() < 0.5:
            low = log.lowest_offset  # before next_offset: low <= nxt
            nxt = log.next_offset
            if low is None:
                continue
            off = rng.randrange(low, nxt)
            try:
                if rng.random() < 0.5:
                    v = log.read(off)
                    if v != value_for(off):
                        errors.append(f"read({off}) returned a wrong record")
                else:
                    for o, v in log.read_range(off, 50, 4000):
                        if v != value_for(o):
                            errors.append(f"read_range gave a wrong record at {o}")
            except OffsetOutOfRangeError as e:
                now_low = log.lowest_offset
                if now_low is None or e.offset >= now_low:  # not deleted meanwhile: a bug
                    errors.append(f"offset {e.offset} in [{low}, {nxt}) was out of range")
            except Exception as e:
                errors.append(f"reader: {e!r}")

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(s,)) for s in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    low = log.lowest_offset
    log.close()
    assert errors == []
    assert low is not None and low > 0  # segments really were deleted under the readers


def test_threaded_appenders_with_fsync_always(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Log.open(tmp_path / "a", LogConfig(fsync="always", max_store_bytes=2048))
    rounds: list[float] = []
    log.on_fsync = rounds.append
    got: list[int] = []
    lock = threading.Lock()
    # The first fsync waits until every appender has written once, so the appenders
    # that wrote meanwhile must all be released by one later round: sharing is certain.
    fsyncs = Fsyncs(monkeypatch)
    fsyncs.hold_next()
    real_write = os.write
    writes = {"n": 0}

    def write(fd: int, data: bytes | memoryview) -> int:
        n = real_write(fd, data)
        with lock:
            writes["n"] += 1
            if writes["n"] == 8:
                fsyncs.release.set()
        return n

    monkeypatch.setattr(os, "write", write)

    def appender(k: int) -> None:
        for i in range(25):
            off = log.append(f"{k}:{i}".encode())
            with lock:
                got.append(off)

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == list(range(200))
    assert 1 <= len(rounds) <= 200
    assert len(rounds) < 200  # appenders shared sync rounds
    monkeypatch.undo()
    log.close()
    log = Log.open(tmp_path / "a", LogConfig(fsync="never"))
    assert {log.read(o) for o in range(200)} == {
        f"{k}:{i}".encode() for k in range(8) for i in range(25)
    }
    log.close()
