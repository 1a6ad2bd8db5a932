"""Port of proglog's store_test.go (§3.1) to lokit's store."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from lokit.commitlog.record import HEADER_SIZE, checksum
from lokit.commitlog.store import Store

WRITE = b"hello world"
WIDTH = len(WRITE) + HEADER_SIZE  # 19, as in proglog: the header is 8 bytes here too


def _append(s: Store) -> None:
    for i in range(1, 4):
        n, pos = s.append(WRITE)
        assert pos + n == WIDTH * i


def _read(s: Store) -> None:
    pos = 0
    for _ in range(3):
        assert s.read(pos) == WRITE
        pos += WIDTH


def _read_at(s: Store) -> None:
    off = 0
    for _ in range(3):
        head = s.read_at(off, HEADER_SIZE)
        assert len(head) == HEADER_SIZE
        size, crc = struct.unpack(">II", head)
        off += HEADER_SIZE
        body = s.read_at(off, size)
        assert len(body) == size
        assert body == WRITE
        assert crc == checksum(body)
        off += size


def test_store_append_read(tmp_path: Path) -> None:
    path = tmp_path / "store_append_read_test"
    s = Store(path)
    _append(s)
    _read(s)
    _read_at(s)
    # proglog reopens on the same file without closing: state is rebuilt from the file
    s2 = Store(path)
    assert s2.size == 3 * WIDTH
    _read(s2)
    s.close()
    s2.close()


def test_store_close_keeps_everything(tmp_path: Path) -> None:
    # proglog's store buffered writes, so Close had to flush; lokit has no user-space
    # buffer: the bytes are in the file as soon as append returns, and close keeps them.
    path = tmp_path / "store_close_test"
    s = Store(path)
    s.append(WRITE)
    before = os.stat(path).st_size
    assert before == WIDTH
    s.close()
    assert os.stat(path).st_size == before
