"""Port of proglog's segment_test.go (§3.3) to lokit's segment."""

from __future__ import annotations

from pathlib import Path

import pytest

from lokit.commitlog import LogConfig
from lokit.commitlog.errors import SegmentFullError
from lokit.commitlog.index import ENTRY_SIZE
from lokit.commitlog.record import HEADER_SIZE
from lokit.commitlog.segment import Segment

WANT = b"hello world"


def test_segment(tmp_path: Path) -> None:
    cfg = LogConfig(max_store_bytes=1024, max_index_bytes=ENTRY_SIZE * 3, fsync="never")
    s = Segment(tmp_path, 16, cfg)
    assert s.next_offset == 16
    assert not s.is_full

    for i in range(3):
        off = s.append(WANT)
        assert off == 16 + i
        assert s.read(off) == WANT

    # the index is full: proglog returned io.EOF here (after writing the store bytes);
    # lokit refuses before writing anything
    size_before = s.store.size
    with pytest.raises(SegmentFullError):
        s.append(WANT)
    assert s.store.size == size_before
    assert s.is_full

    # maxed store: three framed records exactly fill it (proglog used len(value) * 3
    # because its store limit ignored framing; lokit frames are 8 + 11 bytes)
    cfg = LogConfig(
        max_store_bytes=(len(WANT) + HEADER_SIZE) * 3, max_index_bytes=1024, fsync="never"
    )
    s2 = Segment(tmp_path, 16, cfg)  # the first segment is deliberately left open
    assert s2.is_full

    s2.remove()
    s.close()
    s3 = Segment(tmp_path, 16, cfg)
    assert not s3.is_full
    assert s3.next_offset == 16
    s3.close()


def test_segment_file_names_sort_by_offset(tmp_path: Path) -> None:
    s = Segment(tmp_path, 16, LogConfig(fsync="never"))
    s.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000000000000000016.index",
        "00000000000000000016.store",
    ]


def test_segment_room_stops_before_either_limit(tmp_path: Path) -> None:
    cfg = LogConfig(max_store_bytes=100, max_index_bytes=ENTRY_SIZE * 4, fsync="never")
    s = Segment(tmp_path, 0, cfg)
    sizes = [30, 30, 30, 30, 30]
    assert s.room(sizes, 0, sum(sizes)) == 3  # 90 bytes fit, 120 would not
    sizes = [10] * 6
    assert s.room(sizes, 0, 60) == 4  # index holds four entries
    s.close()
