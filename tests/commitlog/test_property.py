"""Property-based tests: random sequences of appends, batches, reads, reopens and
truncations against a dict model, with tiny segments so rolling happens constantly."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lokit.commitlog import Log, LogConfig, OffsetOutOfRangeError, RecordTooLargeError
from lokit.commitlog.index import ENTRY_SIZE

MAX_STORE = 120
MAX_INDEX = ENTRY_SIZE * 5
MAX_RECORD = 60
values = st.binary(max_size=70)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="lokit-prop-"))
        self.initial = 0
        self.config = LogConfig(
            max_store_bytes=MAX_STORE,
            max_index_bytes=MAX_INDEX,
            max_record_bytes=MAX_RECORD,
            fsync="never",
        )
        self.log = Log.open(self.tmp / "log", self.config)
        self.model: dict[int, bytes] = {}
        self.next = 0

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def low(self) -> int | None:
        return min(self.model) if self.model else None

    @rule(value=values)
    def append(self, value: bytes) -> None:
        if len(value) > MAX_RECORD:
            before = self.log.size_bytes
            try:
                self.log.append(value)
            except RecordTooLargeError:
                assert self.log.size_bytes == before
                return
            raise AssertionError("an oversized record was accepted")
        assert self.log.append(value) == self.next
        self.model[self.next] = value
        self.next += 1

    @rule(batch=st.lists(values, min_size=1, max_size=12))
    def append_batch(self, batch: list[bytes]) -> None:
        if any(len(v) > MAX_RECORD for v in batch):
            try:
                self.log.append_batch(batch)
            except RecordTooLargeError:
                assert self.log.next_offset == self.next
                return
            raise AssertionError("a batch with an oversized record was accepted")
        assert self.log.append_batch(batch) == self.next
        for v in batch:
            self.model[self.next] = v
            self.next += 1

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        lo = self.low if self.low is not None else self.next
        off = data.draw(st.integers(lo - 3, self.next + 3))
        if off in self.model:
            assert self.log.read(off) == self.model[off]
        else:
            try:
                self.log.read(off)
            except OffsetOutOfRangeError as e:
                assert e.offset == off
            else:
                raise AssertionError(f"read({off}) returned a record the model lacks")

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), max_records=st.integers(1, 30), max_bytes=st.integers(0, 300))
    def read_range(self, data: st.DataObject, max_records: int, max_bytes: int) -> None:
        off = data.draw(st.sampled_from(sorted(self.model)))
        got = self.log.read_range(off, max_records, max_bytes)
        want: list[tuple[int, bytes]] = []
        total = 0
        for o in range(off, self.next):
            v = self.model[o]
            if len(want) == max_records or (want and total + len(v) > max_bytes):
                break
            want.append((o, v))
            total += len(v)
        assert got == want

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = Log.open(self.tmp / "log", self.config)

    @rule(data=st.data())
    def truncate_prefix(self, data: st.DataObject) -> None:
        lo = self.low if self.low is not None else self.next
        off = data.draw(st.integers(lo - 1, self.next + 2))
        self.log.truncate_prefix(off)
        new_low = self.log.lowest_offset
        if new_low is None:
            assert not [o for o in self.model if o >= off]
            self.model.clear()
        else:
            assert new_low <= max(off, lo)  # only whole segments below `off` go
            self.model = {o: v for o, v in self.model.items() if o >= new_low}

    @rule(data=st.data())
    def truncate_suffix(self, data: st.DataObject) -> None:
        lo = self.low if self.low is not None else self.next
        off = data.draw(st.integers(lo - 1, self.next + 1))
        self.log.truncate_suffix(off)
        if off < self.next - 1:
            self.model = {o: v for o, v in self.model.items() if o <= off}
            self.next = off + 1

    @rule()
    def snapshot_round_trip(self) -> None:
        target = self.tmp / f"copy-{self.next}"
        shutil.rmtree(target, ignore_errors=True)
        restored = Log.restore(target, io.BytesIO(self.log.reader().read()), self.config)
        try:
            assert restored.next_offset == self.next
            if self.model:
                lo = min(self.model)
                assert restored.read_range(lo, 10**6, 10**9) == sorted(self.model.items())
        finally:
            restored.close()
            shutil.rmtree(target)

    @invariant()
    def offsets_agree(self) -> None:
        assert self.log.next_offset == self.next
        assert self.log.lowest_offset == self.low
        assert self.log.highest_offset == (self.next - 1 if self.model else None)

    @invariant()
    def segments_within_limits(self) -> None:
        for seg in self.log._segments:
            assert seg.store.size <= MAX_STORE
            assert seg.index.count <= MAX_INDEX // ENTRY_SIZE


LogMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogMachine = LogMachine.TestCase
