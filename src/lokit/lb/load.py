"""Per-instance load, as balancers compare it: requests outstanding and an EWMA of latency."""

from __future__ import annotations

import math
import time
from types import TracebackType

__all__ = ["Load"]


class Load:
    """Outstanding requests and the exponentially weighted mean latency of one instance.

    `start()` when a request goes out, `done(seconds)` when it ends (success or
    failure); or `with load.measure():` to do both. The mean weighs each new
    latency by `alpha` (0.2: about the last ten calls); the first call sets it.

    `latency(now)` is the mean as balancers read it: it decays towards zero
    with time constant `tau` (5 s) since the last call ended, so an instance
    that was slow once (a stall, a timeout) and therefore lost every comparison
    is tried again after a while instead of being starved for good (Finagle's
    peak EWMA decays the same way). Plain attributes on the loop's thread: a
    few hundred nanoseconds per call.
    """

    __slots__ = ("alpha", "calls", "ewma", "outstanding", "stamp", "tau")

    def __init__(self, alpha: float = 0.2, tau: float = 5.0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"Load's alpha must be in (0, 1], not {alpha}")
        if tau <= 0:
            raise ValueError(f"Load's tau must be > 0 seconds, not {tau}")
        self.alpha = alpha
        self.tau = tau
        self.outstanding = 0
        self.ewma = 0.0  # seconds
        self.calls = 0
        self.stamp = 0.0  # time.monotonic() when the last call ended

    def __repr__(self) -> str:
        return f"<Load outstanding={self.outstanding} ewma={self.ewma * 1e3:.3f}ms>"

    def start(self) -> None:
        self.outstanding += 1

    def done(self, seconds: float) -> None:
        self.outstanding -= 1
        if self.calls:
            self.ewma += self.alpha * (seconds - self.ewma)
        else:
            self.ewma = seconds
        self.calls += 1
        self.stamp = time.monotonic()

    def latency(self, now: float) -> float:
        """The mean latency in seconds, decayed for the time since the last call ended."""
        idle = now - self.stamp
        if idle < 0.05 * self.tau:  # busy instances: skip the exp
            return self.ewma
        return self.ewma * math.exp(-idle / self.tau)

    def measure(self) -> _Measured:
        """A context manager that counts one request from entry to exit."""
        return _Measured(self)


class _Measured:
    __slots__ = ("load", "t0")

    def __init__(self, load: Load) -> None:
        self.load = load
        self.t0 = 0.0

    def __enter__(self) -> Load:
        self.load.start()
        self.t0 = time.perf_counter()
        return self.load

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.load.done(time.perf_counter() - self.t0)
