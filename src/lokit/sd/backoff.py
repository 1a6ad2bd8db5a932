"""Capped exponential backoff with jitter, for watches whose source is down.

Go kit's Consul instancer once spun at 100 % CPU while Consul was down
(go-kit/kit#627): every retry here waits, and the waits grow to a cap.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays `initial`, 2x, 4x ... up to `cap` seconds, each drawn from [d/2, d] (jitter).

    The jitter keeps many clients that lost the same source from retrying in step;
    `reset()` after a success starts again from `initial`.
    """

    __slots__ = ("_attempt", "cap", "initial")

    def __init__(self, initial: float = 0.25, cap: float = 10.0) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError("backoff needs 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next attempt (grows with each call until `reset`)."""
        d = min(self.cap, self.initial * (2.0**self._attempt))
        if d < self.cap:
            self._attempt += 1
        return random.uniform(d / 2, d)

    def reset(self) -> None:
        self._attempt = 0
