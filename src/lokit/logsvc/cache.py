"""The newest records of a topic kept in memory, so catching-up and tailing reads skip the store.

Reading from the store decodes and checksums every frame in Python (about 1 µs a
record); most reads of a log are of its newest records, which the service has
just appended and still holds as `bytes`. `TailCache` keeps those values, up to
a byte budget, and answers a read with one list slice. It only ever holds a
contiguous run of offsets exactly as the log assigned them: appends that finish
out of order wait in `pending` until the gap before them fills; anything odd
(a gap that never fills, an overlap) empties the cache, and reads fall back to
the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

# Approximate memory per cached record beyond its payload: the bytes object's
# header (33 B) and the list slot (8 B), rounded up.
RECORD_OVERHEAD = 48
MAX_PENDING = 64


class TailCache:
    """A topic's newest values in offset order, within `budget` bytes (0 disables it)."""

    __slots__ = ("_budget", "_bytes", "_first", "_pending", "_start", "_values")

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._first = 0  # offset of self._values[self._start]
        self._start = 0
        self._values: list[bytes] = []
        self._bytes = 0
        self._pending: dict[int, Sequence[bytes]] = {}

    @property
    def first(self) -> int:
        """The oldest cached offset (== end when the cache is empty)."""
        return self._first

    @property
    def end(self) -> int:
        """One past the newest cached offset."""
        return self._first + len(self._values) - self._start

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        self._values = []
        self._start = 0
        self._bytes = 0
        self._pending.clear()

    def add_one(self, offset: int, value: bytes) -> None:
        """Record that `value` was appended at `offset`."""
        if self._budget <= 0:
            return
        if offset != self.end or self._pending:
            self.add(offset, (value,))
            return
        self._values.append(value)
        self._bytes += len(value) + RECORD_OVERHEAD
        if self._bytes > self._budget:
            self._trim()

    def add(self, first: int, values: Sequence[bytes]) -> None:
        """Record that `values` were appended at offsets first, first + 1, ..."""
        if self._budget <= 0 or not values:
            return
        end = self.end
        if self._start == len(self._values) and not self._pending:
            self._values = []
            self._start = 0
            self._first = end = first  # empty: start over at this offset
        if first > end:
            self._pending[first] = values  # an earlier append has not finished yet
            if len(self._pending) > MAX_PENDING:
                self.clear()
            return
        if first < end:
            self.clear()  # overlaps what is cached: the log moved under us
            return
        self._extend(values)
        pending = self._pending
        while pending:
            nxt = pending.pop(self.end, None)
            if nxt is None:
                break
            self._extend(nxt)
        if self._bytes > self._budget:
            self._trim()

    def _extend(self, values: Sequence[bytes]) -> None:
        self._values.extend(values)
        self._bytes += sum(map(len, values)) + RECORD_OVERHEAD * len(values)

    def _trim(self) -> None:
        """Drop the oldest records (a quarter at a time) until within the budget."""
        values = self._values
        while self._bytes > self._budget and self._start < len(values):
            k = max(1, (len(values) - self._start) // 4)
            dropped = values[self._start : self._start + k]
            self._bytes -= sum(map(len, dropped)) + RECORD_OVERHEAD * len(dropped)
            self._start += len(dropped)
            self._first += len(dropped)
        if self._start > len(values) // 2:
            del values[: self._start]
            self._start = 0

    def get(self, offset: int, max_records: int, max_bytes: int) -> list[bytes] | None:
        """Up to max_records values from `offset` within max_bytes (at least one), or
        None when `offset` is not cached."""
        i = offset - self._first
        if i < 0 or offset >= self.end:
            return None
        i += self._start
        out = self._values[i : i + max_records]
        if sum(map(len, out)) > max_bytes:
            n = 0
            for total in accumulate(map(len, out)):
                if total > max_bytes:
                    break
                n += 1
            del out[max(1, n) :]
        return out
