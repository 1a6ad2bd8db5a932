"""Recovery on open: torn and corrupt tails, corrupt sealed segments, bad indexes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from lokit.commitlog import CorruptRecordError, Log
from lokit.commitlog.index import ENTRY_SIZE
from lokit.commitlog.record import HEADER_SIZE

OpenLog = Callable[..., Log]
VALUES = [hashlib.shake_128(bytes([i])).digest(40) for i in range(12)]  # 48-byte frames


def _files(log_dir: Path, ext: str) -> list[Path]:
    return sorted(log_dir.glob(f"*.{ext}"))


def _filled(open_log: OpenLog, **kw: object) -> Log:
    log = open_log(**kw)
    log.append_batch(VALUES)
    log.close()
    return log


def _flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x40
    path.write_bytes(bytes(data))


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def _unlist_last(log_dir: Path, n: int = 1) -> None:
    """Drop the newest index's last `n` entries, as a crash before its flush leaves it."""
    idx = _files(log_dir, "index")[-1]
    with idx.open("r+b") as f:
        f.truncate(idx.stat().st_size - n * ENTRY_SIZE)


def test_torn_tail_is_cut_back_and_logged(open_log: OpenLog, log_dir: Path) -> None:
    _filled(open_log)
    store = _files(log_dir, "store")[-1]
    size = store.stat().st_size
    with store.open("r+b") as f:
        f.truncate(size - 10)  # the last record is cut in half
    _unlist_last(log_dir)  # ... and, as after a crash, its index entry was never written
    with capture_logs() as logs:
        log = open_log()
    (ev,) = _events(logs, "commitlog.torn_tail_dropped")
    assert ev["dropped_bytes"] == 48 - 10 and ev["log_level"] == "warning"
    assert ev["first_dropped_offset"] == 11
    assert log.next_offset == 11
    assert log.read_range(0, 100, 1 << 20) == list(enumerate(VALUES[:11]))
    assert log.append(b"continues") == 11
    log.close()
    assert _files(log_dir, "index")[-1].stat().st_size == 12 * ENTRY_SIZE


@pytest.mark.parametrize(
    "tail",
    [b"\x00" * 4096, b"\x00\x00\x00", b"\x00\x00\x00\x05garbage-garbage", b"\xff" * 9],
    ids=["zero-block", "partial-header", "bad-crc-frame", "huge-length"],
)
def test_garbage_after_last_record_is_dropped(
    open_log: OpenLog, log_dir: Path, tail: bytes
) -> None:
    _filled(open_log)
    store = _files(log_dir, "store")[-1]
    with store.open("ab") as f:
        f.write(tail)  # what a power cut (or a torn write) can leave behind
    with capture_logs() as logs:
        log = open_log()
    (ev,) = _events(logs, "commitlog.torn_tail_dropped")
    assert ev["dropped_bytes"] == len(tail)
    assert log.next_offset == 12
    assert log.read(11) == VALUES[11]


def test_torn_record_listed_by_the_index_is_kept_as_damaged(
    open_log: OpenLog, log_dir: Path
) -> None:
    # the index lists record 11 (it was acknowledged): not a torn tail, its offset stays
    _filled(open_log)
    store = _files(log_dir, "store")[-1]
    with store.open("r+b") as f:
        f.truncate(store.stat().st_size - 10)
    with capture_logs() as logs:
        log = open_log()
    assert not _events(logs, "commitlog.torn_tail_dropped")
    (ev,) = _events(logs, "commitlog.corrupt_records_kept")
    assert ev["log_level"] == "error" and ev["offsets"] == "11..11"
    assert log.next_offset == 12 and log.read(10) == VALUES[10]
    with pytest.raises(CorruptRecordError, match="offset 11"):
        log.read(11)
    assert log.append(b"continues") == 12 and log.read(12) == b"continues"
    with pytest.raises(CorruptRecordError, match="offset 11"):
        log.read(11)


def test_flipped_byte_in_unlisted_last_record_is_cut(open_log: OpenLog, log_dir: Path) -> None:
    _filled(open_log)
    store = _files(log_dir, "store")[-1]
    _flip(store, store.stat().st_size - 3)
    _unlist_last(log_dir)
    with capture_logs() as logs:
        log = open_log()
    assert _events(logs, "commitlog.torn_tail_dropped")[0]["dropped_bytes"] == 48
    assert log.next_offset == 11 and log.read(10) == VALUES[10]


def test_flipped_byte_in_listed_last_record_is_kept(open_log: OpenLog, log_dir: Path) -> None:
    _filled(open_log)
    store = _files(log_dir, "store")[-1]
    _flip(store, store.stat().st_size - 3)
    with capture_logs() as logs:
        log = open_log()
    assert not _events(logs, "commitlog.torn_tail_dropped")
    assert log.next_offset == 12 and log.read(10) == VALUES[10]
    with pytest.raises(CorruptRecordError, match=r"offset 11.*checksum mismatch"):
        log.read(11)


def test_flipped_byte_mid_newest_segment_is_reported_not_returned(
    open_log: OpenLog, log_dir: Path
) -> None:
    _filled(open_log)
    store = _files(log_dir, "store")[-1]
    _flip(store, 5 * 48 + HEADER_SIZE + 7)  # payload of offset 5; the index confirms framing
    with capture_logs() as logs:
        log = open_log()
    assert not _events(logs, "commitlog.torn_tail_dropped")  # later records are good: kept
    assert _events(logs, "commitlog.corrupt_records_kept")
    assert log.next_offset == 12
    with pytest.raises(CorruptRecordError) as e:
        log.read(5)
    assert e.value.offset == 5 and e.value.path == str(store)
    assert str(store) in str(e.value) and "offset 5" in str(e.value)
    assert [o for o, _ in log.read_range(2)] == [2, 3, 4]  # stops before the bad record
    with pytest.raises(CorruptRecordError):
        log.read_range(5)
    assert log.read_range(6) == [(i, VALUES[i]) for i in range(6, 12)]


def test_mid_segment_damage_without_an_index_is_read_around(
    open_log: OpenLog, log_dir: Path
) -> None:
    # the index is lost, but the damaged frame's length field lands on a frame that
    # verifies: it is one damaged record, and the records after it keep their offsets
    _filled(open_log)
    store = _files(log_dir, "store")[-1]
    _flip(store, 5 * 48 + HEADER_SIZE + 7)
    _files(log_dir, "index")[-1].write_bytes(b"")
    with capture_logs() as logs:
        log = open_log()
    assert not _events(logs, "commitlog.torn_tail_dropped")
    assert _events(logs, "commitlog.corrupt_records_kept")[0]["offsets"] == "5..5"
    assert log.next_offset == 12 and log.read(4) == VALUES[4]
    with pytest.raises(CorruptRecordError, match="offset 5"):
        log.read(5)
    assert log.read_range(6) == [(i, VALUES[i]) for i in range(6, 12)]


def test_corruption_in_sealed_segment_names_file_and_offset(
    open_log: OpenLog, log_dir: Path
) -> None:
    _filled(open_log, max_store_bytes=200)  # four 48-byte frames per segment
    sealed = _files(log_dir, "store")[1]  # offsets 4..7
    _flip(sealed, 48 + HEADER_SIZE + 1)  # offset 5
    log = open_log(max_store_bytes=200)
    assert log.next_offset == 12
    with pytest.raises(CorruptRecordError, match=rf"offset 5 in {sealed}: checksum mismatch"):
        log.read(5)
    assert log.read(4) == VALUES[4] and log.read(6) == VALUES[6]
    assert [o for o, _ in log.read_range(0)] == [0, 1, 2, 3, 4]


def test_damaged_length_in_sealed_segment(open_log: OpenLog, log_dir: Path) -> None:
    _filled(open_log, max_store_bytes=200)
    sealed = _files(log_dir, "store")[1]
    _flip(sealed, 48 + 2)  # length field of offset 5
    log = open_log(max_store_bytes=200)
    with pytest.raises(CorruptRecordError, match="offset 5"):
        log.read(5)
    assert log.read(6) == VALUES[6]


def test_truncated_sealed_store_reports_missing_offsets(open_log: OpenLog, log_dir: Path) -> None:
    _filled(open_log, max_store_bytes=200)
    sealed = _files(log_dir, "store")[1]
    with sealed.open("r+b") as f:
        f.truncate(48 * 2 + 5)
    with capture_logs() as logs:
        log = open_log(max_store_bytes=200)
    assert _events(logs, "commitlog.segment_damaged")[0]["unreadable_offsets"] == "6..7"
    assert log.read(5) == VALUES[5]
    for off in (6, 7):
        with pytest.raises(CorruptRecordError, match=f"offset {off}.*missing"):
            log.read(off)
    assert log.read(8) == VALUES[8]
    assert log.next_offset == 12 and log.append(b"x") == 12


def test_presized_index_after_crash_is_rebuilt(open_log: OpenLog, log_dir: Path) -> None:
    # proglog pre-sizes the index to MaxIndexBytes and shrinks it only on a clean close;
    # after a crash the zero-filled tail wedged it. lokit never pre-sizes, but a file
    # in that state (or any index that disagrees with its store) is rebuilt.
    _filled(open_log, max_store_bytes=200)
    for idx in _files(log_dir, "index"):
        with idx.open("r+b") as f:
            f.truncate(1024)
    with capture_logs() as logs:
        log = open_log(max_store_bytes=200)
    assert len(_events(logs, "commitlog.index_rebuilt")) == 3
    assert log.read_range(0, 100, 1 << 20) == list(enumerate(VALUES))
    assert log.append(b"not wedged") == 12
    log.close()
    assert [p.stat().st_size for p in _files(log_dir, "index")] == [48, 48, 48, 12]


def test_missing_and_orphan_index_files(open_log: OpenLog, log_dir: Path) -> None:
    _filled(open_log, max_store_bytes=200)
    _files(log_dir, "index")[0].unlink()
    orphan = log_dir / f"{999:020d}.index"
    orphan.write_bytes(b"\x00" * 24)
    log = open_log(max_store_bytes=200)
    assert not orphan.exists()
    assert log.read_range(0, 100, 1 << 20) == list(enumerate(VALUES))


def test_index_entries_lost_in_a_crash_are_rebuilt(open_log: OpenLog, log_dir: Path) -> None:
    # index entries are written in blocks; a crash can leave the newest index short
    _filled(open_log)
    idx = _files(log_dir, "index")[-1]
    with idx.open("r+b") as f:
        f.truncate(5 * ENTRY_SIZE + 7)
    log = open_log()
    assert log.next_offset == 12 and log.read(11) == VALUES[11]
