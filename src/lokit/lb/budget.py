"""Retry budgets (Finagle's): retries may add at most a fixed share to a target's load.

Every request deposits into the budget and every retry withdraws from it: over
the last `ttl` seconds (10), retries may number at most `percent` (20 %) of the
requests plus a reserve of `min_per_second` * `ttl` (10 per second: 100 per
window), so a client that calls rarely can still retry, while a dependency that
fails every call sees at most 1.2 times its request rate plus the reserve, not
`max_attempts` times. The counts live in ten sub-windows (O(1) per call).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RetryBudget"]

_BUCKETS = 10


class RetryBudget:
    """How many retries a target may still take; one per target, shared by its methods."""

    __slots__ = (
        "_buckets",
        "_clock",
        "_deposits",
        "_epoch",
        "_width",
        "_withdrawals",
        "min_per_second",
        "percent",
        "ttl",
    )

    def __init__(
        self,
        ttl: float = 10.0,
        min_per_second: float = 10.0,
        percent: float = 0.2,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"a retry budget's ttl must be > 0 seconds, not {ttl}")
        if min_per_second < 0 or percent < 0:
            raise ValueError("a retry budget's min_per_second and percent must be >= 0")
        self.ttl = ttl
        self.min_per_second = min_per_second
        self.percent = percent
        self._clock = clock
        self._width = ttl / _BUCKETS
        self._buckets = [[0, 0] for _ in range(_BUCKETS)]  # [deposits, withdrawals]
        self._epoch = int(clock() / self._width)
        self._deposits = 0
        self._withdrawals = 0

    def __repr__(self) -> str:
        return f"<RetryBudget balance={self.balance:.1f}>"

    def deposit(self) -> None:
        """One request went out."""
        self._bucket()[0] += 1
        self._deposits += 1

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        bucket = self._bucket()
        if self._withdrawals + 1 > self._allowance():
            return False
        bucket[1] += 1
        self._withdrawals += 1
        return True

    @property
    def balance(self) -> float:
        """Retries still allowed in the current window."""
        self._bucket()
        return self._allowance() - self._withdrawals

    def _allowance(self) -> float:
        return self.percent * self._deposits + self.min_per_second * self.ttl

    def _bucket(self) -> list[int]:
        epoch = int(self._clock() / self._width)
        if epoch != self._epoch:
            stale = min(epoch - self._epoch, _BUCKETS)
            for i in range(epoch - stale + 1, epoch + 1):
                old = self._buckets[i % _BUCKETS]
                self._deposits -= old[0]
                self._withdrawals -= old[1]
                old[0] = old[1] = 0
            self._epoch = epoch
        return self._buckets[epoch % _BUCKETS]
