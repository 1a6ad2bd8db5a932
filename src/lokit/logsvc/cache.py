"""The newest records of the topics kept in memory, so catching-up and tailing reads skip the store.

Reading from the store decodes and checksums every frame in Python (about 1 µs a
record); most reads of a log are of its newest records, which the service has
just appended and still holds as `bytes`. `TailCache` keeps a topic's values and
answers a read with one list slice. It only ever holds a contiguous run of
offsets exactly as the log assigned them: appends that finish out of order wait
in `pending` until the gap before them fills; anything odd (a gap that never
fills, an overlap) empties the cache, and reads fall back to the store.

Every topic's cache draws on one `CacheBudget`, the server's `--read-cache-bytes`:
when the cached bytes of all topics together pass it, the least recently used
topic (appended to or read from) gives up its oldest records first, down to
`LOW_WATER` of the budget, so one eviction frees room for many appends.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from itertools import accumulate

# Approximate memory per cached record beyond its payload: the bytes object's
# header (33 B) and the list slot (8 B), rounded up.
RECORD_OVERHEAD = 48
MAX_PENDING = 64
LOW_WATER = 7 / 8
"""An eviction stops once the cached bytes are at most this share of the budget."""


class CacheBudget:
    """The bytes every topic's `TailCache` may hold together (0 disables caching).

    `nbytes` is what they hold now (at most `limit` whenever no call is running);
    `caches` orders the non-empty caches from least to most recently used.
    """

    __slots__ = ("caches", "limit", "nbytes")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.nbytes = 0
        self.caches: OrderedDict[TailCache, None] = OrderedDict()

    def evict(self) -> None:
        """Drop the oldest records of the least recently used caches until within
        LOW_WATER of the limit."""
        target = int(self.limit * LOW_WATER)
        caches = self.caches
        while self.nbytes > target and caches:
            victim = next(iter(caches))
            victim.drop_oldest(self.nbytes - target)
            if victim.nbytes == 0:
                caches.pop(victim, None)


class TailCache:
    """A topic's newest values in offset order, within a `CacheBudget` shared with the
    other topics (an int: a budget of its own; 0 disables it)."""

    __slots__ = (
        "_budget",
        "_bytes",
        "_caches",
        "_first",
        "_pending",
        "_start",
        "_values",
    )

    def __init__(self, budget: CacheBudget | int) -> None:
        self._budget = budget if isinstance(budget, CacheBudget) else CacheBudget(budget)
        self._caches = self._budget.caches
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

    @property
    def budget(self) -> CacheBudget:
        return self._budget

    def clear(self) -> None:
        self._values = []
        self._start = 0
        self._budget.nbytes -= self._bytes
        self._bytes = 0
        self._pending.clear()
        self._caches.pop(self, None)

    def _used(self) -> None:
        caches = self._caches
        try:
            caches.move_to_end(self)
        except KeyError:
            caches[self] = None

    def add_one(self, offset: int, value: bytes) -> None:
        """Record that `value` was appended at `offset`."""
        budget = self._budget
        if budget.limit <= 0:
            return
        if offset != self.end or self._pending:
            self.add(offset, (value,))
            return
        self._values.append(value)
        n = len(value) + RECORD_OVERHEAD
        self._bytes += n
        budget.nbytes += n
        try:
            self._caches.move_to_end(self)
        except KeyError:
            self._caches[self] = None
        if budget.nbytes > budget.limit:
            budget.evict()

    def add(self, first: int, values: Sequence[bytes]) -> None:
        """Record that `values` were appended at offsets first, first + 1, ..."""
        budget = self._budget
        if budget.limit <= 0 or not values:
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
        self._used()
        if budget.nbytes > budget.limit:
            budget.evict()

    def _extend(self, values: Sequence[bytes]) -> None:
        self._values.extend(values)
        n = sum(map(len, values)) + RECORD_OVERHEAD * len(values)
        self._bytes += n
        self._budget.nbytes += n

    def drop_oldest(self, nbytes: int) -> None:
        """Drop the oldest records until `nbytes` are freed (or the cache is empty)."""
        values = self._values
        freed = 0
        while freed < nbytes and self._start < len(values):
            held = len(values) - self._start
            # Estimate the records to drop from the mean size, then count them exactly.
            k = min(held, max(1, (nbytes - freed) * held // max(1, self._bytes) + 1))
            dropped = values[self._start : self._start + k]
            n = sum(map(len, dropped)) + RECORD_OVERHEAD * len(dropped)
            self._bytes -= n
            freed += n
            self._start += len(dropped)
            self._first += len(dropped)
        self._budget.nbytes -= freed
        if self._start == len(values):
            self._values = []
            self._start = 0
            self._bytes = 0
        elif self._start > len(values) // 2:
            del values[: self._start]
            self._start = 0

    def one(self, offset: int) -> bytes | None:
        """The value at `offset`, or None when it is not cached."""
        i = offset - self._first
        if i < 0 or offset >= self.end:
            return None
        self._caches.move_to_end(self)
        return self._values[i + self._start]

    def get(self, offset: int, max_records: int, max_bytes: int) -> list[bytes] | None:
        """Up to max_records values from `offset` within max_bytes (at least one), or
        None when `offset` is not cached."""
        i = offset - self._first
        if i < 0 or offset >= self.end:
            return None
        self._caches.move_to_end(self)
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
