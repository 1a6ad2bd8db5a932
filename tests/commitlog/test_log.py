"""Port of proglog's log_test.go (§3.4), plus the semantics the issue adds."""

from __future__ import annotations

import errno
import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lokit.commitlog import (
    CorruptRecordError,
    FsyncPolicy,
    Log,
    LogClosedError,
    LogConfig,
    LogError,
    LogFailedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from lokit.commitlog.index import _FLUSH_ENTRIES, ENTRY_SIZE
from lokit.commitlog.record import HEADER, HEADER_SIZE
from lokit.commitlog.snapshot import MAGIC, SNAPSHOT_HEADER, VERSION

from .conftest import value_for

OpenLog = Callable[..., Log]
HELLO = b"hello world"


# -- proglog TestLog, one function per subtest (MaxStoreBytes: 32) -----------------------------


def test_append_read(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=32)
    off = log.append(HELLO)
    assert off == 0
    assert log.read(off) == HELLO


def test_offset_out_of_range(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=32)
    with pytest.raises(OffsetOutOfRangeError) as e:
        log.read(1)
    assert e.value.offset == 1
    assert str(e.value) == "offset out of range: 1"


def test_init_with_existing_segments(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=32)
    for _ in range(3):
        log.append(HELLO)
    log.close()
    assert log.lowest_offset == 0  # still answered on the closed log, as in proglog
    assert log.highest_offset == 2

    n = open_log(max_store_bytes=32)
    assert n.lowest_offset == 0
    assert n.highest_offset == 2
    assert n.append(HELLO) == 3  # ch11's version of this test


def test_reader(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=32)
    log.append(HELLO)
    with log.reader() as r:
        b = r.read()
    # the stream keeps the store framing (8-byte header per record) after a 20-byte header
    assert b[SNAPSHOT_HEADER.size + HEADER_SIZE :] == HELLO


def test_truncate(open_log: OpenLog) -> None:
    # proglog's records were 21 and 23 bytes so that segment 0 held offsets 0-1; here
    # 8-byte values make 16-byte frames: two fill a 32-byte store, the third rolls.
    log = open_log(max_store_bytes=32)
    for _ in range(3):
        log.append(b"12345678")
    assert log.segment_count == 2
    # proglog's Truncate(1) removed segments whose highest offset <= 1 (inclusive);
    # truncate_prefix(2) drops segments wholly below offset 2: the same segment
    log.truncate_prefix(1)
    assert log.read(0) == b"12345678"  # offset 1 is still in segment 0, so it stays
    log.truncate_prefix(2)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0)
    assert log.lowest_offset == 2
    assert log.read(2) == b"12345678"


# -- offsets -------------------------------------------------------------------------------


def test_empty_log_has_no_lowest_or_highest(open_log: OpenLog) -> None:
    log = open_log()
    assert (log.lowest_offset, log.highest_offset, log.next_offset) == (None, None, 0)
    log.append(b"a")
    assert (log.lowest_offset, log.highest_offset, log.next_offset) == (0, 0, 1)


def test_initial_offset(open_log: OpenLog) -> None:
    log = open_log(initial_offset=1000)
    assert log.next_offset == 1000 and log.lowest_offset is None
    assert log.append(b"x") == 1000
    with pytest.raises(OffsetOutOfRangeError):
        log.read(999)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1)


def test_reopen_continues_offsets(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=400)
    offs = [log.append(value_for(i)) for i in range(20)]
    assert offs == list(range(20))
    assert log.segment_count > 3
    log.close()
    log = open_log(max_store_bytes=400)
    assert log.next_offset == 20
    assert [log.read(i) for i in range(20)] == [value_for(i) for i in range(20)]
    assert log.append(b"next") == 20


# -- rolling and limits ----------------------------------------------------------------------


def test_rolls_before_store_limit(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log(max_store_bytes=50)
    for _ in range(7):
        log.append(b"x" * 12)  # 20-byte frames: two per 50-byte store, never three
    for p in log_dir.glob("*.store"):
        assert p.stat().st_size == 40 or p.stat().st_size <= 50
        assert p.stat().st_size <= 50
    assert log.segment_count == 4


def test_rolls_before_index_limit(open_log: OpenLog, log_dir: Path) -> None:
    # 1024 is not a multiple of 12: proglog's 86th record of a segment failed with EOF
    log = open_log(max_index_bytes=1024)
    for _i in range(200):
        log.append(b"")  # empty records: only the index limit matters
    log.close()
    sizes = sorted(p.stat().st_size for p in log_dir.glob("*.index"))
    assert all(s <= 1024 and s % ENTRY_SIZE == 0 for s in sizes)
    assert sizes[-1] == (1024 // ENTRY_SIZE) * ENTRY_SIZE
    log = open_log(max_index_bytes=1024)
    assert log.next_offset == 200 and log.read(199) == b""


def test_record_too_large_writes_nothing(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log(max_record_bytes=10)
    log.append(b"ok")
    before = log.size_bytes
    with pytest.raises(RecordTooLargeError, match="11 bytes, over the limit of 10") as e:
        log.append(b"x" * 11)
    assert (e.value.size, e.value.limit) == (11, 10)
    with pytest.raises(RecordTooLargeError, match="record 2 of the batch"):
        log.append_batch([b"a", b"b", b"x" * 11])
    assert log.size_bytes == before and log.next_offset == 1


def test_record_limit_is_capped_by_store_size(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=64)  # default max_record_bytes is 1 MiB
    with pytest.raises(RecordTooLargeError, match="over the limit of 56"):
        log.append(b"x" * 57)
    assert log.append(b"x" * 56) == 0


def test_bad_values_have_clear_errors(open_log: OpenLog) -> None:
    log = open_log()
    with pytest.raises(TypeError, match="must be bytes, not str"):
        log.append("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="record 1 of the batch must be bytes, not int"):
        log.append_batch([b"a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of records"):
        log.append_batch(b"abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one record"):
        log.append_batch([])
    assert log.append(bytearray(b"ba")) == 0  # type: ignore[arg-type]
    assert log.read(0) == b"ba"


# -- batches and ranges ----------------------------------------------------------------------


def test_batch_gets_consecutive_offsets_across_segments(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=100)
    log.append(b"first")
    values = [value_for(i)[:30] for i in range(20)]
    assert log.append_batch(values) == 1
    assert log.next_offset == 21
    assert [log.read(1 + i) for i in range(20)] == values
    assert log.segment_count > 5


def test_read_range_limits(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=120)
    values = [bytes([65 + i]) * 10 for i in range(20)]
    log.append_batch(values)
    got = log.read_range(3, max_records=5)
    assert got == [(3 + i, values[3 + i]) for i in range(5)]
    got = log.read_range(3, max_records=100, max_bytes=35)  # 3 x 10 bytes fit, 4 would not
    assert [o for o, _ in got] == [3, 4, 5]
    got = log.read_range(3, max_records=100, max_bytes=1)  # one is always returned
    assert got == [(3, values[3])]
    got = log.read_range(15)  # to the end, across segments
    assert [o for o, _ in got] == list(range(15, 20))
    with pytest.raises(OffsetOutOfRangeError) as e:
        log.read_range(20)
    assert e.value.offset == 20
    with pytest.raises(ValueError, match="max_records"):
        log.read_range(0, max_records=0)


# -- truncation --------------------------------------------------------------------------------


def test_truncate_prefix_never_removes_active_segment(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=32)
    for _ in range(4):
        log.append(b"12345678")
    log.truncate_prefix(10**6)
    assert log.segment_count == 1
    assert log.lowest_offset == 2 and log.highest_offset == 3
    assert log.append(b"z") == 4


def test_truncate_suffix(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=40)
    log.append_batch([value_for(i)[:10] for i in range(10)])
    log.truncate_suffix(4)
    assert log.highest_offset == 4 and log.next_offset == 5
    with pytest.raises(OffsetOutOfRangeError):
        log.read(5)
    assert log.read(4) == value_for(4)[:10]
    assert log.append(b"new") == 5
    log.truncate_suffix(100)  # nothing after 100: no-op
    assert log.next_offset == 6
    log.close()
    log = open_log(max_store_bytes=40)
    assert log.next_offset == 6 and log.read(5) == b"new"


def test_truncate_suffix_can_empty_but_keeps_active_segment(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=40, initial_offset=10)
    log.append_batch([b"x" * 10] * 5)
    log.truncate_suffix(9)
    assert (log.lowest_offset, log.highest_offset, log.next_offset) == (None, None, 10)
    assert log.segment_count == 1
    assert log.append(b"again") == 10
    with pytest.raises(OffsetOutOfRangeError):
        log.truncate_suffix(8)


# -- snapshots ---------------------------------------------------------------------------------


def test_reader_and_restore_round_trip(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log(max_store_bytes=1000)
    log.append_batch([value_for(i) for i in range(30)])
    log.truncate_prefix(10)
    low = log.lowest_offset
    assert low is not None and low > 0
    snap = log.reader().read()
    log.append(b"after the snapshot")  # not in the stream
    restored = Log.restore(tmp_path / "copy", io.BytesIO(snap), LogConfig(fsync="never"))
    try:
        assert restored.lowest_offset == low and restored.next_offset == 30
        assert restored.read_range(low, 1000, 1 << 30) == [
            (i, value_for(i)) for i in range(low, 30)
        ]
        assert restored.append(b"more") == 30
    finally:
        restored.close()


def test_restore_rejects_bad_streams(tmp_path: Path, open_log: OpenLog) -> None:
    with pytest.raises(LogError, match="not a lokit commit log snapshot"):
        Log.restore(tmp_path / "a", io.BytesIO(b"garbage" * 5))
    log = open_log()
    log.append_batch([b"one", b"two"])
    snap = bytearray(log.reader().read())
    snap[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="offset 1 in <snapshot stream>"):
        Log.restore(tmp_path / "b", io.BytesIO(bytes(snap)))
    assert not (tmp_path / "b").exists()
    with pytest.raises(CorruptRecordError, match="ends inside a record"):
        Log.restore(tmp_path / "c", io.BytesIO(bytes(snap[:-2])))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(LogError, match="not an empty directory"):
        Log.restore(tmp_path / "d", io.BytesIO(bytes(snap)))


def test_truncate_suffix_fails_an_open_snapshot_it_cuts_into(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(max_store_bytes=1000)
    log.append_batch([value_for(i) for i in range(30)])
    whole = log.reader()  # ends at 30
    log.append_batch([value_for(i) for i in range(30, 40)])
    cut = log.reader()  # ends at 40
    log.truncate_prefix(20)  # deleted files stay readable through the snapshots' fds
    log.truncate_suffix(34)  # rewrites what `cut` still has to read, not `whole`
    log.append_batch([b"rewritten"] * 10)
    with pytest.raises(LogError, match="the log was truncated while a snapshot was being read"):
        cut.read()
    cut.close()
    restored = Log.restore(tmp_path / "copy", whole, LogConfig(fsync="never"))
    try:
        assert restored.read_range(0, 1000, 1 << 30) == [(i, value_for(i)) for i in range(30)]
    finally:
        restored.close()


def test_restore_refuses_a_length_field_over_the_record_limit(tmp_path: Path) -> None:
    class Endless(io.RawIOBase):
        """A valid header, a frame header claiming 4 GiB, then 16 MiB of zeros (counted)."""

        def __init__(self) -> None:
            self.head = SNAPSHOT_HEADER.pack(MAGIC, VERSION, 0) + HEADER.pack(2**32 - 1, 0)
            self.served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            n = min(len(b), 1 << 16, (16 << 20) - self.served)
            head = self.head[self.served : self.served + n]  # empty once it was served
            chunk = head + bytes(n - len(head))
            b[: len(chunk)] = chunk
            self.served += len(chunk)
            return len(chunk)

    stream = Endless()
    with pytest.raises(CorruptRecordError, match="over the record limit of 1048576"):
        Log.restore(tmp_path / "a", io.BufferedReader(stream), LogConfig(max_record_bytes=1 << 20))
    assert stream.served < 4 << 20  # gave up within a few chunks, not after 4 GiB
    assert not (tmp_path / "a").exists()


def test_empty_log_snapshot_keeps_next_offset(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log(initial_offset=7)
    restored = Log.restore(tmp_path / "copy", log.reader(), LogConfig(fsync="never"))
    assert restored.next_offset == 7 and restored.lowest_offset is None
    restored.close()


# -- retention ---------------------------------------------------------------------------------


def test_retention_by_bytes(open_log: OpenLog) -> None:
    log = open_log(max_store_bytes=100, retention_bytes=300)
    for _i in range(50):
        log.append(b"x" * 20)
        # checked as segments roll: only the active segment can take the log over the limit
        sealed = log.size_bytes - log._segments[-1].size_bytes
        assert sealed <= 300
    assert log.lowest_offset is not None and log.lowest_offset > 0
    assert log.highest_offset == 49


def test_retention_by_age_deletes_old_segments_not_active(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log(max_store_bytes=32, retention_age=3600)
    for _ in range(5):
        log.append(b"12345678")
    old = time.time() - 7200
    for p in log_dir.glob("*.store"):
        os.utime(p, (old, old))  # every segment, the active one included, is "old"
    assert log.enforce_retention() == 2
    assert log.segment_count == 1 and log.lowest_offset == 4


# -- config and lifecycle ----------------------------------------------------------------------


def test_fsync_policy_parse() -> None:
    assert FsyncPolicy.parse("always") == FsyncPolicy("always")
    assert FsyncPolicy.parse(" Never ") == FsyncPolicy("never")
    p = FsyncPolicy.parse("interval:200")
    assert (p.mode, p.interval_ms, str(p)) == ("interval", 200, "interval:200")
    for bad in ["sometimes", "interval:", "interval:0", "interval:-5", "interval:1s", ""]:
        with pytest.raises(ValueError, match="fsync policy"):
            FsyncPolicy.parse(bad)


def test_config_validation_and_mapping() -> None:
    with pytest.raises(ValueError, match="max_index_bytes must hold"):
        LogConfig(max_index_bytes=5)
    with pytest.raises(ValueError, match="invalid fsync policy"):
        LogConfig(fsync="sometimes")
    with pytest.raises(ValueError, match="retention_bytes"):
        LogConfig(retention_bytes=-1)
    cfg = LogConfig.from_mapping(
        {"max_store_bytes": "1MiB", "fsync": "interval:50", "retention_age": "7d"}
    )
    assert cfg.max_store_bytes == 1 << 20
    assert cfg.fsync_policy == FsyncPolicy("interval", 50)
    assert cfg.retention_age == 7 * 86400
    with pytest.raises(ValueError, match="unknown commit log config key"):
        LogConfig.from_mapping({"max_store": 1})
    with pytest.raises(ValueError, match="max_store_bytes must be a size"):
        LogConfig.from_mapping({"max_store_bytes": "lots"})


def test_closed_log_refuses_work(open_log: OpenLog) -> None:
    log = open_log()
    log.append(b"x")
    log.close()
    log.close()  # idempotent
    with pytest.raises(LogClosedError):
        log.append(b"y")
    with pytest.raises(LogClosedError):
        log.read(0)
    assert log.next_offset == 1


def test_directory_is_locked_while_open(open_log: OpenLog, log_dir: Path) -> None:
    open_log()
    with pytest.raises(LogError, match="already open"):
        Log.open(log_dir, LogConfig(fsync="never"))


def test_other_files_in_the_directory_are_ignored(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    log.append(b"a")
    log.close()
    (log_dir / "README").write_text("not a segment")
    (log_dir / "12.store").write_bytes(b"not padded: not a segment")
    log = open_log()
    assert log.next_offset == 1 and log.segment_count == 1


def test_fsync_policies_all_work(tmp_path: Path) -> None:
    for policy in ["always", "interval:5", "never"]:
        d = tmp_path / policy.replace(":", "_")
        seen: list[float] = []
        log = Log.open(d, LogConfig(fsync=policy, max_store_bytes=64))
        log.on_fsync = seen.append
        for i in range(5):
            log.append(value_for(i)[:20])
        log.append_batch([b"b"] * 3)
        if policy == "interval:5":
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                time.sleep(0.01)
        log.close()
        assert bool(seen) == (policy != "never")
        log = Log.open(d, LogConfig(fsync=policy))
        assert log.next_offset == 8
        log.close()


def test_batches_take_any_iterable_of_bytes_like_values(open_log: OpenLog) -> None:
    # validated once, by the same check the AsyncLog runs on its event loop
    log = open_log()
    values = (v for v in (b"a", bytearray(b"b"), memoryview(b"c")))
    assert log.append_batch(values) == 0  # type: ignore[arg-type]
    assert log.read_range(0) == [(0, b"a"), (1, b"b"), (2, b"c")]


def _fail_index_writes(
    monkeypatch: pytest.MonkeyPatch, index_fd: int, calls: dict[str, int]
) -> None:
    """Index writes: the first lands in part, every later one finds the disk full."""
    real_write = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        if fd != index_fd:
            return real_write(fd, data)
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[: len(data) // 2 + 5])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_failed_index_write_leaves_no_phantom_entry(
    open_log: OpenLog, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log()
    n = _FLUSH_ENTRIES - 1  # the next entry completes a block, which is then written
    log.append_batch([value_for(i) for i in range(n)])
    calls = {"n": 0}
    _fail_index_writes(monkeypatch, log._segments[-1].index.fd, calls)
    with pytest.raises(LogError, match="No space left on device"):
        log.append(b"lost")
    monkeypatch.undo()
    assert calls["n"] == 2  # the failure really hit the index file
    assert log.next_offset == n
    assert (log_dir / f"{0:020d}.index").stat().st_size == 0  # the partial block was cut off
    assert log.append(b"next") == n
    assert log.read(n) == b"next"
    log.close()
    log = open_log()
    assert log.next_offset == n + 1
    assert log.read(n - 1) == value_for(n - 1) and log.read(n) == b"next"


def test_unrepairable_index_write_fails_the_log(
    open_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log()
    n = _FLUSH_ENTRIES - 1
    log.append_batch([value_for(i) for i in range(n)])
    index_fd = log._segments[-1].index.fd
    _fail_index_writes(monkeypatch, index_fd, {"n": 0})
    real_ftruncate = os.ftruncate

    def ftruncate(fd: int, size: int) -> None:
        if fd == index_fd:
            raise OSError(errno.EIO, "Input/output error")
        real_ftruncate(fd, size)

    monkeypatch.setattr(os, "ftruncate", ftruncate)
    with pytest.raises(LogError, match="No space left on device"):
        log.append(b"lost")
    monkeypatch.undo()
    with pytest.raises(LogFailedError, match="reopen"):  # the index holds a partial entry
        log.append(b"after")
    log.close()
    log = open_log()  # recovery rebuilds the index from the store
    assert log.next_offset == n
    assert log.read(n - 1) == value_for(n - 1)


def test_failed_write_leaves_nothing_behind(
    open_log: OpenLog, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log()
    log.append(b"kept")
    store_fd = log._segments[-1].store.fd
    real_write = os.write
    calls = {"n": 0}

    def disk_full(fd: int, data: bytes | memoryview) -> int:
        if fd != store_fd:
            return real_write(fd, data)
        calls["n"] += 1
        if calls["n"] % 2:  # half of it lands, then the disk is full
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(LogError, match="No space left on device"):
        log.append(b"lost")
    with pytest.raises(LogError, match="No space left on device"):
        log.append_batch([b"lost", b"too"])
    monkeypatch.undo()
    assert log.next_offset == 1
    assert log.append(b"next") == 1
    log.close()
    assert (log_dir / f"{0:020d}.store").stat().st_size == 2 * HEADER_SIZE + 8
    log = open_log()
    assert log.read_range(0) == [(0, b"kept"), (1, b"next")]
