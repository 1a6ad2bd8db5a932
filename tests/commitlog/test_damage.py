"""Damaged files on open: recovery keeps every record that can still be read.

Each test writes records through `Log`, closes it, damages the files with plain file
writes, and reopens. Then: every intact record reads back at its offset, each damaged
one raises `CorruptRecordError`, the next offset is not lower than before (so offsets
handed out are never reused, and a consumer's committed position stays valid), a
quarantine copy exists wherever bytes were cut, and appends continue past the old end.
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from lokit.commitlog import CorruptRecordError, Log
from lokit.commitlog.index import ENTRY_SIZE

from .conftest import value_for

OpenLog = Callable[..., Log]
N = 1200
SEGMENT = 64 * 1024  # about 400 records a segment: three segments, the newest not full


def _written(open_log: OpenLog, n: int = N) -> list[Path]:
    log = open_log(max_store_bytes=SEGMENT)
    for first in range(0, n, 100):
        log.append_batch([value_for(o) for o in range(first, min(n, first + 100))])
    log.close()
    stores = sorted(log.directory.glob("*.store"))
    assert len(stores) == 3
    return stores


def _reopen(open_log: OpenLog) -> tuple[Log, list[MutableMapping[str, Any]]]:
    with capture_logs() as logs:
        log = open_log(max_store_bytes=SEGMENT)
    return log, logs


def _base(store: Path) -> int:
    return int(store.name.split(".")[0])


def _index_of(store: Path) -> Path:
    return store.with_suffix(".index")


def _positions(store: Path) -> list[int]:
    raw = _index_of(store).read_bytes()
    return [struct.unpack_from(">IQ", raw, i)[1] for i in range(0, len(raw), ENTRY_SIZE)]


def _damage(store: Path, start: int, data: bytes) -> set[int]:
    """Write `data` at `start` in `store`; returns the offsets of the records whose
    bytes changed (a zero written over a zero changes nothing)."""
    before = store.read_bytes()
    _write_at(store, start, data)
    after = store.read_bytes()
    pos = _positions(store)
    ends = [*pos[1:], len(before)]
    return {
        _base(store) + k
        for k, (a, b) in enumerate(zip(pos, ends, strict=True))
        if before[a:b] != after[a:b]
    }


def _write_at(path: Path, pos: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(pos)
        f.write(data)


def _flip_bit(path: Path, pos: int, bit: int) -> None:
    with path.open("r+b") as f:
        f.seek(pos)
        b = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([b ^ (1 << bit)]))


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def _quarantined(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob("*.damaged-*"))


def _check(log: Log, damaged: Iterable[int], end: int = N) -> None:
    """Every offset below `end` reads back intact except `damaged`, which raise."""
    bad = set(damaged)
    for off in range(end):
        if off in bad:
            with pytest.raises(CorruptRecordError) as e:
                log.read(off)
            assert e.value.offset == off
        else:
            assert log.read(off) == value_for(off), off
    assert log.next_offset >= end  # never below what was handed out


def _check_batches(log: Log, damaged: set[int]) -> None:
    """read_range never skips a damaged record: it stops before it, and raises for it."""
    got: list[int] = []
    off = 0
    while off < log.next_offset:
        try:
            batch = log.read_range(off, 500, 1 << 20)
        except CorruptRecordError as e:
            assert e.offset == off and off in damaged
            off += 1
            continue
        assert [o for o, _ in batch] == list(range(off, off + len(batch)))
        assert all(v == value_for(o) for o, v in batch)
        assert not damaged & {o for o, _ in batch}
        got += [o for o, _ in batch]
        off += len(batch)
    assert set(got) | damaged >= set(range(N))


def _appends_continue(log: Log, old_end: int = N) -> None:
    nxt = log.next_offset
    assert nxt >= old_end
    assert log.append(b"after recovery") == nxt
    assert log.read(nxt) == b"after recovery"


# -- (1) one flipped bit in the first length field of the newest segment -----------------


@pytest.mark.parametrize(("byte", "bit"), [(0, 7), (2, 0), (3, 0), (3, 3)])
def test_flipped_bit_in_first_length_field_of_newest_segment(
    open_log: OpenLog, log_dir: Path, byte: int, bit: int
) -> None:
    newest = _written(open_log)[-1]
    base = _base(newest)
    size = newest.stat().st_size
    _flip_bit(newest, byte, bit)
    log, logs = _reopen(open_log)
    assert log.next_offset == N  # before: cut back to `base`, all its records deleted
    _check(log, {base})
    _check_batches(log, {base})
    assert newest.stat().st_size == size and not _quarantined(log_dir)  # nothing was cut
    (ev,) = _events(logs, "commitlog.corrupt_records_kept")
    assert ev["log_level"] == "error" and ev["path"] == str(newest)
    assert ev["offsets"] == f"{base}..{base}"
    with pytest.raises(CorruptRecordError, match=f"offset {base} in {newest}"):
        log.read_range(base)
    assert [o for o, _ in log.read_range(base - 3)] == [base - 3, base - 2, base - 1]
    _appends_continue(log)
    log.close()
    log, _ = _reopen(open_log)  # the same again, and still nothing copied or cut
    _check(log, {base})
    assert log.read(N) == b"after recovery" and not _quarantined(log_dir)


# -- (2) 4 KiB of zeros in the middle of the newest segment -------------------------------


def test_zeros_mid_newest_segment_keep_the_records_after_them(
    open_log: OpenLog, log_dir: Path
) -> None:
    newest = _written(open_log)[-1]
    size = newest.stat().st_size
    start = size // 2 - 2048 + 3  # not on a frame boundary
    damaged = _damage(newest, start, bytes(4096))
    assert len(damaged) > 10
    log, logs = _reopen(open_log)
    assert log.next_offset == N  # before: everything after the zeros cut, offsets reused
    _check(log, damaged)
    _check_batches(log, damaged)
    assert newest.stat().st_size == size and not _quarantined(log_dir)
    (ev,) = _events(logs, "commitlog.corrupt_records_kept")
    assert ev["offsets"] == f"{min(damaged)}..{max(damaged)}" and ev["log_level"] == "error"
    _appends_continue(log)


def test_zeros_mid_newest_segment_without_its_index_reserve_the_offsets(
    open_log: OpenLog, log_dir: Path
) -> None:
    # with no index the records after the zeros cannot be numbered: they are cut off,
    # after a copy, and the offsets they may have held are never handed out again
    newest = _written(open_log)[-1]
    size = newest.stat().st_size
    start = size // 2 - 2048 + 3
    first_damaged = min(_damage(newest, start, bytes(4096)))
    damaged_store = newest.read_bytes()
    _index_of(newest).write_bytes(b"")
    log, logs = _reopen(open_log)
    nxt = log.next_offset
    assert nxt >= N
    _check(log, range(first_damaged, nxt), nxt)
    copies = _quarantined(log_dir)
    assert [p.name.split(".damaged-")[0] for p in copies] == [_index_of(newest).name, newest.name]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in copies)
    assert copies[1].read_bytes() == damaged_store
    (ev,) = _events(logs, "commitlog.damage_quarantined")
    assert ev["log_level"] == "error" and ev["damaged_bytes"].endswith(f"..{size - 1}")
    (ev,) = _events(logs, "commitlog.offsets_reserved")
    assert ev["unreadable_offsets"] == f"{first_damaged}..{nxt - 1}"
    _appends_continue(log, nxt)
    log.close()
    log, logs = _reopen(open_log)  # stable: nothing more to copy, the same offsets
    assert log.next_offset == nxt + 1 and len(_quarantined(log_dir)) == 2
    _check(log, range(first_damaged, nxt), nxt)
    assert log.read(nxt) == b"after recovery"


# -- (3) a truncated index file -------------------------------------------------------------


def test_truncated_index_of_newest_segment_is_rebuilt(open_log: OpenLog, log_dir: Path) -> None:
    newest = _written(open_log)[-1]
    idx = _index_of(newest)
    with idx.open("r+b") as f:
        f.truncate(idx.stat().st_size // 2 + 5)  # half the entries and a partial one
    log, logs = _reopen(open_log)
    assert log.next_offset == N
    _check(log, ())
    assert _events(logs, "commitlog.index_rebuilt") and not _quarantined(log_dir)
    _appends_continue(log)


@pytest.mark.parametrize("where", ["length", "payload"])
def test_truncated_index_and_a_damaged_record_after_it(
    open_log: OpenLog, log_dir: Path, where: str
) -> None:
    newest = _written(open_log)[-1]
    base = _base(newest)
    pos = _positions(newest)
    k = len(pos) * 3 // 4  # not covered by the index below
    with _index_of(newest).open("r+b") as f:
        f.truncate(len(pos) // 2 * ENTRY_SIZE)
    _flip_bit(newest, pos[k] + (2 if where == "length" else 20), 1)
    log, _ = _reopen(open_log)
    assert log.next_offset == N
    _check(log, {base + k})
    _check_batches(log, {base + k})
    assert not _quarantined(log_dir)
    _appends_continue(log)


def test_store_cut_short_under_its_index_keeps_the_offsets(
    open_log: OpenLog, log_dir: Path
) -> None:
    newest = _written(open_log)[-1]
    base = _base(newest)
    pos = _positions(newest)
    k = len(pos) // 2
    with newest.open("r+b") as f:
        f.truncate(pos[k] + 5)  # record k cut short, every later one gone
    log, logs = _reopen(open_log)
    assert log.next_offset == N  # before: N - (records after k), handed out again
    _check(log, range(base + k, N))
    assert len(_quarantined(log_dir)) == 2  # index entries were dropped: copied first
    assert _events(logs, "commitlog.offsets_reserved")[0]["unreadable_offsets"] == (
        f"{base + k + 1}..{N - 1}"
    )
    _appends_continue(log)


def test_consumer_position_stays_valid(open_log: OpenLog, log_dir: Path) -> None:
    # the attack: damage near the start of the newest segment; a consumer had committed
    # its position at the end
    newest = _written(open_log)[-1]
    committed = N
    _write_at(newest, 100, bytes(4096))
    log, _ = _reopen(open_log)
    assert log.next_offset >= committed
    assert log.read_range(committed - 1)[-1] == (committed - 1, value_for(committed - 1))
    assert log.append(b"next") >= committed


# -- (4) damage in a sealed segment ----------------------------------------------------------


def test_zeros_in_sealed_segment(open_log: OpenLog, log_dir: Path) -> None:
    sealed = _written(open_log)[1]
    size = sealed.stat().st_size
    damaged = _damage(sealed, size // 3, bytes(4096))
    log, _ = _reopen(open_log)
    assert log.next_offset == N
    _check(log, damaged)
    _check_batches(log, damaged)
    assert sealed.stat().st_size == size and not _quarantined(log_dir)
    _appends_continue(log)


def test_flipped_length_bit_in_sealed_segment_whose_index_is_lost(
    open_log: OpenLog, log_dir: Path
) -> None:
    sealed = _written(open_log)[1]
    base = _base(sealed)
    k = 7
    _flip_bit(sealed, _positions(sealed)[k] + 3, 2)
    _index_of(sealed).unlink()
    log, _ = _reopen(open_log)
    assert log.next_offset == N
    _check(log, {base + k})
    _check_batches(log, {base + k})
    _appends_continue(log)


def test_sealed_store_cut_short_is_quarantined(open_log: OpenLog, log_dir: Path) -> None:
    sealed = _written(open_log)[1]
    base = _base(sealed)
    pos = _positions(sealed)
    nxt_base = base + len(pos)
    original = sealed.read_bytes()
    with sealed.open("r+b") as f:
        f.truncate(pos[10] + 20)
    log, logs = _reopen(open_log)
    assert log.next_offset == N
    _check(log, range(base + 10, nxt_base))
    copies = _quarantined(log_dir)
    assert len(copies) == 2 and copies[1].read_bytes() == original[: pos[10] + 20]
    assert _events(logs, "commitlog.segment_damaged")[0]["unreadable_offsets"] == (
        f"{base + 10}..{nxt_base - 1}"
    )
    _appends_continue(log)


def test_damaged_last_record_of_sealed_segment_stays_in_place(
    open_log: OpenLog, log_dir: Path
) -> None:
    sealed = _written(open_log)[0]
    size = sealed.stat().st_size
    last = _base(sealed) + len(_positions(sealed)) - 1
    assert _damage(sealed, _positions(sealed)[-1], bytes(8)) == {last}  # its header zeroed
    log, _ = _reopen(open_log)
    _check(log, {last})
    _check_batches(log, {last})
    assert sealed.stat().st_size == size and not _quarantined(log_dir)
    _appends_continue(log)


# -- what else meets reserved offsets or a damaged index ------------------------------------


def _reserved(open_log: OpenLog, log_dir: Path) -> tuple[Log, int]:
    """A log whose newest segment lost its index and took zeros: offsets reserved."""
    newest = _written(open_log)[-1]
    first = min(_damage(newest, newest.stat().st_size // 2, bytes(4096)))
    _index_of(newest).write_bytes(b"")
    log, _ = _reopen(open_log)
    assert log.next_offset > N
    return log, first


def test_truncate_suffix_into_reserved_offsets(open_log: OpenLog, log_dir: Path) -> None:
    log, first = _reserved(open_log, log_dir)
    log.truncate_suffix(N - 1)  # the next append gets N, as asked
    assert log.next_offset == N and log.append(b"x") == N and log.read(N) == b"x"
    with pytest.raises(CorruptRecordError, match="missing"):
        log.read(first)
    assert log.read(first - 1) == value_for(first - 1)


def test_snapshot_of_a_log_with_reserved_offsets_is_refused(
    open_log: OpenLog, log_dir: Path
) -> None:
    log, first = _reserved(open_log, log_dir)
    with pytest.raises(CorruptRecordError, match=f"offset {first}.*cannot snapshot"):
        log.reader()


def test_damaged_index_entry_of_newest_segment_is_corrected(
    open_log: OpenLog, log_dir: Path
) -> None:
    newest = _written(open_log)[-1]
    _flip_bit(_index_of(newest), 40 * ENTRY_SIZE + 11, 2)  # entry 40's position, +-4
    log, logs = _reopen(open_log)
    assert log.next_offset == N
    _check(log, ())  # the frames that verify outrank the entry
    assert _events(logs, "commitlog.index_rebuilt") and len(_quarantined(log_dir)) == 2


def test_damaged_sealed_index_entry_never_reads_out_of_bounds(
    open_log: OpenLog, log_dir: Path
) -> None:
    # a sealed index passes the cheap open-time check unless its ends are damaged:
    # a wild entry must give CorruptRecordError, never another record or an OSError
    sealed = _written(open_log)[1]
    _write_at(_index_of(sealed), 40 * ENTRY_SIZE + 4, b"\xff" * 8)
    log, _ = _reopen(open_log)
    off = _base(sealed) + 40
    for o in (off - 1, off):
        with pytest.raises(CorruptRecordError, match=f"offset {o}.*index"):
            log.read(o)
    for start in (off - 5, off - 1, off + 1):  # batches hold only the right bytes
        batch = log.read_range(start, 100, 1 << 20)
        assert batch and batch == [(o, value_for(o)) for o in range(start, start + len(batch))]
    with pytest.raises(CorruptRecordError, match=f"offset {off}"):
        log.read_range(off)
