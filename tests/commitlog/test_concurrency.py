"""Threads: readers racing a writer never see a partial record; threaded group commit."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from lokit.commitlog import Log, LogConfig, OffsetOutOfRange

from .conftest import value_for


def test_readers_never_see_partial_records(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "a", LogConfig(fsync="never", max_store_bytes=4096))
    total = 3000
    done = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        rng = random.Random(1)
        off = 0
        while off < total:
            n = rng.randint(1, 30)
            log.append_batch([value_for(off + i) for i in range(n)])
            off += n
            if rng.random() < 0.1:
                log.truncate_prefix(0)  # takes the same locks as retention would
        done.set()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not done.is_set() or rng.random() < 0.5:
            nxt = log.next_offset
            if nxt == 0:
                continue
            off = rng.randrange(nxt)
            try:
                if rng.random() < 0.5:
                    v = log.read(off)
                    if v != value_for(off):
                        errors.append(f"read({off}) returned a wrong record")
                else:
                    for o, v in log.read_range(off, 50, 4000):
                        if v != value_for(o):
                            errors.append(f"read_range gave a wrong record at {o}")
            except OffsetOutOfRange as e:
                errors.append(f"offset {e.offset} below next_offset {nxt} was out of range")

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(s,)) for s in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    log.close()
    assert errors == []


def test_threaded_appenders_with_fsync_always(tmp_path: Path) -> None:
    log = Log.open(tmp_path / "a", LogConfig(fsync="always", max_store_bytes=2048))
    rounds: list[float] = []
    log.on_fsync = rounds.append
    got: list[int] = []
    lock = threading.Lock()

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
    log.close()
    log = Log.open(tmp_path / "a", LogConfig(fsync="never"))
    assert {log.read(o) for o in range(200)} == {
        f"{k}:{i}".encode() for k in range(8) for i in range(25)
    }
    log.close()
