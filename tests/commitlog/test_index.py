"""Port of proglog's index_test.go (§3.2) to lokit's index."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from lokit.commitlog.errors import IndexEOFError
from lokit.commitlog.index import ENTRY_SIZE, Index


def test_index(tmp_path: Path) -> None:
    path = tmp_path / "index_test"
    idx = Index(path)
    with pytest.raises(IndexEOFError):
        idx.read(-1)
    assert idx.name == str(path)

    for off, pos in [(0, 0), (1, 10)]:
        idx.write(off, pos)
        assert idx.read(off) == (off, pos)

    with pytest.raises(IndexEOFError):
        idx.read(2)

    idx.close()
    # the file is exactly 12 bytes per entry (never pre-sized) and reopening rebuilds state
    assert path.stat().st_size == 24
    idx = Index(path)
    assert idx.read(-1) == (1, 10)
    idx.close()


def test_index_rejects_out_of_order_entries(tmp_path: Path) -> None:
    idx = Index(tmp_path / "i")
    with pytest.raises(ValueError, match="out of order"):
        idx.write(3, 0)
    idx.close()


def test_index_truncate_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "i"
    idx = Index(path)
    idx.append(0, [0, 10, 20, 30])
    idx.close()
    idx = Index(path)  # entries now come from the mmap
    idx.append(4, [40, 50])  # and these from memory
    assert [idx.position(k) for k in range(6)] == [0, 10, 20, 30, 40, 50]
    idx.truncate(5)
    assert idx.count == 5 and idx.position(4) == 40
    idx.truncate(2)  # below the mapped part: remapped
    assert idx.count == 2 and idx.read(-1) == (1, 10)
    idx.append(2, [99])
    idx.close()
    assert path.stat().st_size == 36
    idx = Index(path)
    assert [idx.position(k) for k in range(3)] == [0, 10, 99]
    idx.close()


def test_a_failed_flush_leaves_no_partial_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "i"
    idx = Index(path)
    idx.append(0, [0, 10])
    idx.flush()
    idx.append(2, [20, 30, 40])
    real_write = os.write
    calls = {"n": 0}

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # part of the block lands, then the disk is full
            return real_write(fd, bytes(data)[:7])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        idx.flush()
    monkeypatch.undo()
    assert path.stat().st_size == idx.raw_size == 2 * ENTRY_SIZE  # cut back: still aligned
    idx.close()  # writes the pending entries now that the disk has room
    idx = Index(path)
    assert [idx.read(k) for k in range(5)] == [(k, 10 * k) for k in range(5)]
    idx.close()
