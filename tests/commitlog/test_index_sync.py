"""fsync ``always`` syncs what recovery needs: the newest store each round, an index only
once its segment is sealed, cut, or the log syncs or closes; an index left behind is
rebuilt from its store on the next open."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lokit.commitlog import AsyncLog, Log, LogConfig
from lokit.commitlog.index import ENTRY_SIZE

from .conftest import Fsyncs

ALWAYS = LogConfig(fsync="always", max_store_bytes=400)


def _inode(path: Path) -> int:
    return os.stat(path).st_ino


def _synced(fsyncs: Fsyncs, path: Path) -> int:
    ino = _inode(path)
    return sum(1 for _, i, _ in fsyncs.done if i == ino)


async def test_a_round_fsyncs_the_store_not_the_newest_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = Fsyncs(monkeypatch)
    alog = await AsyncLog.open(tmp_path / "a", ALWAYS)
    seg = alog.log._segments[-1]
    for i in range(5):
        assert await alog.append(b"r%d" % i) == i
    assert _synced(fsyncs, seg.store.path) == 5  # one round per acknowledged append
    assert _synced(fsyncs, seg.index.path) == 0
    await alog.close()
    assert _synced(fsyncs, seg.index.path) == 1  # closing syncs the newest index too
    assert seg.index.path.stat().st_size == 5 * ENTRY_SIZE


def test_a_sealed_index_is_fsynced_by_the_round_after_the_roll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = Fsyncs(monkeypatch)
    log = Log.open(tmp_path / "a", ALWAYS)
    first = log._segments[-1]
    i = 0
    while log.segment_count == 1:
        log.append(b"x" * 50)
        i += 1
    assert _synced(fsyncs, first.index.path) == 1
    assert first.index.path.stat().st_size == (i - 1) * ENTRY_SIZE
    newest = log._segments[-1]
    log.append(b"y")
    assert _synced(fsyncs, newest.index.path) == 0
    log.sync()  # an explicit sync makes everything durable, the newest index included
    assert _synced(fsyncs, newest.index.path) == 1
    log.close()


def test_an_index_that_lags_its_store_is_rebuilt(tmp_path: Path) -> None:
    # What a power cut can leave under 'always': every acknowledged record's store bytes
    # (fsynced), and an index holding only what the kernel happened to write back.
    log = Log.open(tmp_path / "a", ALWAYS)
    values = [b"v%03d" % i for i in range(60)]
    for v in values:
        log.append(v)
    assert log.segment_count > 1
    newest = log._segments[-1]
    store, index = newest.store.path, newest.index.path
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for p in (tmp_path / "a").glob("0*"):
        if p != store:
            shutil.copy(p, crashed / p.name)
    os.link(store, crashed / store.name)  # hold the store as it is now (written in full)
    log.close()
    (crashed / index.name).write_bytes(b"")  # the newest index never reached the disk
    reopened = Log.open(crashed, ALWAYS)
    try:
        assert reopened.next_offset == len(values)
        assert [v for _, v in reopened.read_range(0, 100, 1 << 20)] == values
        assert reopened.append(b"next") == len(values)
    finally:
        reopened.close()
