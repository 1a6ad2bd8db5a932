"""Property: whatever damage the files take, a reopened log never returns different
bytes at an offset, never skips a damaged record in a batch, and (while the newest
index lists every record) never hands an offset out again."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lokit.commitlog import CorruptRecordError, Log, LogConfig

from .conftest import value_for

N = 300
CONFIG = LogConfig(max_store_bytes=8 * 1024, fsync="never")  # about six segments

damage_op = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("zeros"), st.floats(0, 1), st.integers(1, 5000)),
    st.tuples(st.just("garbage"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
)
damage = st.lists(st.tuples(st.integers(0, 10), damage_op), min_size=1, max_size=4)


def _apply(path: Path, op: tuple[str, float, object]) -> None:
    kind, where, arg = op
    data = bytearray(path.read_bytes())
    if not data:
        return
    at = min(int(where * len(data)), len(data) - 1)
    if kind == "flip":
        assert isinstance(arg, int)
        data[at] ^= 1 << arg
    elif kind == "zeros":
        assert isinstance(arg, int)
        data[at : at + arg] = bytes(len(data[at : at + arg]))
    elif kind == "garbage":
        assert isinstance(arg, bytes)
        data[at : at + len(arg)] = arg[: len(data) - at]
    else:
        del data[at:]
    path.write_bytes(bytes(data))


def _readable(log: Log) -> dict[int, bool]:
    """For every offset below the next one: True if it reads back intact, False if it
    raises CorruptRecordError (anything else fails the test)."""
    out: dict[int, bool] = {}
    for off in range(log.next_offset):
        try:
            got = log.read(off)
        except CorruptRecordError as e:
            assert e.offset == off
            out[off] = False
        else:
            assert off < N and got == value_for(off), f"offset {off} returned other bytes"
            out[off] = True
    return out


def _batches_agree(log: Log, readable: dict[int, bool], strict: bool) -> None:
    """Batches hold only intact records at their offsets and, when `strict` (the indexes
    were not damaged), exactly the records that read back one by one. (A damaged index
    entry inside a batch whose frames all verify end to end fails only the single read.)"""
    off = 0
    while off < log.next_offset:
        try:
            batch = log.read_range(off, 64, 1 << 16)
        except CorruptRecordError as e:
            assert e.offset == off and not readable[off]
            off += 1
            continue
        assert batch, off
        for i, (o, v) in enumerate(batch):
            assert o == off + i and v == value_for(o), f"offset {o} returned other bytes"
            assert readable[o] or not strict, f"offset {o} is in a batch but does not read alone"
        off += len(batch)


def _check(directory: Path, stores_only: bool) -> None:
    log = Log.open(directory, CONFIG)
    try:
        readable = _readable(log)
        _batches_agree(log, readable, stores_only)
        if stores_only:
            assert log.next_offset >= N
        nxt = log.next_offset
    finally:
        log.close()
    log = Log.open(directory, CONFIG)  # a second open finds the same
    try:
        assert log.next_offset == nxt and _readable(log) == readable
        assert log.append(b"more") == nxt and log.read(nxt) == b"more"
    finally:
        log.close()


def _run(ops: list[tuple[int, tuple[str, float, object]]], pattern: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lokit-damage-"))
    try:
        directory = tmp / "log"
        log = Log.open(directory, CONFIG)
        for first in range(0, N, 50):
            log.append_batch([value_for(o) for o in range(first, first + 50)])
        log.close()
        files = sorted(directory.glob(pattern))
        for which, op in ops:
            _apply(files[which % len(files)], op)
        _check(directory, pattern == "*.store")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_settings = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(ops=damage)
def test_damaged_stores_lose_nothing_readable(
    ops: list[tuple[int, tuple[str, float, object]]],
) -> None:
    _run(ops, "*.store")


@_settings
@given(ops=damage)
def test_damaged_stores_and_indexes_never_return_other_bytes(
    ops: list[tuple[int, tuple[str, float, object]]],
) -> None:
    _run(ops, "*.[si][tn]*")
