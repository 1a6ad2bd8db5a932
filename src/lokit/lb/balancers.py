"""Balancers: which instance of a target gets the next call.

`P2C` (the default) draws two instances at random and takes the one with
fewer requests outstanding, ties going to the lower (decayed) EWMA latency:
the power of two choices, which keeps load even without the herding of
"always the least loaded" and costs two random draws. `RoundRobin` takes them
in turn. Both skip members whose breaker is open (outlier ejection) and the
addresses in `exclude` (the ones a retry already tried); when that leaves
none, an excluded member whose breaker lets calls through is taken after all,
and when every breaker is open the pick fails with
`Unavailable("circuit open for <target>")` (no members at all:
`Unavailable("no endpoints available for <target>")`, Go kit's
ErrNoEndpoints), at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from lokit.errors import Unavailable
from lokit.lb.load import Load

__all__ = [
    "BALANCERS",
    "P2C",
    "Balancer",
    "Breaker",
    "Instance",
    "Member",
    "RoundRobin",
    "balancer",
]


class Breaker(Protocol):
    """What lb needs of a circuit breaker; `lokit.circuitbreaker.Breaker` is one.

    (A protocol, not an import: the middleware packages depend only on the core.)
    """

    @property
    def available(self) -> bool: ...
    def allow(self) -> bool: ...
    def record(self, ok: bool) -> None: ...
    def observe(self, exc: BaseException | None) -> None: ...
    def error(self) -> Exception: ...


class Member(Protocol):
    """What a balancer needs of one instance."""

    @property
    def address(self) -> str: ...
    @property
    def load(self) -> Load: ...
    @property
    def breaker(self) -> Breaker: ...


M = TypeVar("M", bound=Member)


@dataclass(eq=False)
class Instance:
    """A plain `Member`: an address with its load and its breaker."""

    address: str
    breaker: Breaker
    load: Load = field(default_factory=Load)


class Balancer(Protocol):
    """Picks one of `members`; see the module docstring for the rules."""

    def pick(
        self, members: Sequence[M], exclude: Collection[str] = (), *, target: str = ""
    ) -> M: ...


def _none_left(members: Sequence[Member], target: str) -> Unavailable:
    name = target or "the target"
    if members:
        return Unavailable(f"circuit open for {name}")
    return Unavailable(f"no endpoints available for {name}")


def _fallback(members: Sequence[M], target: str) -> list[M]:
    """Members a call may go to once every unexcluded one is out: excluded but closed ones."""
    left = [m for m in members if m.breaker.available]
    if not left:
        raise _none_left(members, target)
    return left


class P2C:
    """Power of two choices over least outstanding requests, ties by EWMA latency."""

    __slots__ = ("_random",)

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed).random

    def pick(self, members: Sequence[M], exclude: Collection[str] = (), *, target: str = "") -> M:
        n = len(members)
        rnd = self._random
        if n > 1:
            i = int(rnd() * n)
            j = int(rnd() * (n - 1))
            if j >= i:
                j += 1
            a = members[i]
            b = members[j]
            if (
                a.breaker.available
                and b.breaker.available
                and (not exclude or (a.address not in exclude and b.address not in exclude))
            ):
                return self._better(a, b)
        elif n == 1:
            only = members[0]
            if only.breaker.available:
                return only
            raise _none_left(members, target)
        else:
            raise _none_left(members, target)
        # Some member is open or excluded: choose among the eligible ones.
        eligible = [m for m in members if m.address not in exclude and m.breaker.available]
        if not eligible:
            eligible = _fallback(members, target)
        n = len(eligible)
        if n == 1:
            return eligible[0]
        i = int(rnd() * n)
        j = int(rnd() * (n - 1))
        if j >= i:
            j += 1
        return self._better(eligible[i], eligible[j])

    @staticmethod
    def _better(a: M, b: M) -> M:
        la = a.load
        lb = b.load
        if la.outstanding != lb.outstanding:
            return a if la.outstanding < lb.outstanding else b
        now = time.monotonic()
        return b if lb.latency(now) < la.latency(now) else a


class RoundRobin:
    """Each member in turn (skipping open and excluded ones)."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(self, members: Sequence[M], exclude: Collection[str] = (), *, target: str = "") -> M:
        n = len(members)
        start = self._next
        for k in range(n):
            m = members[(start + k) % n]
            if m.breaker.available and (not exclude or m.address not in exclude):
                self._next = start + k + 1
                return m
        left = _fallback(members, target)
        m = left[start % len(left)]
        self._next = start + 1
        return m


BALANCERS = ("p2c", "round-robin")


def balancer(name: str) -> P2C | RoundRobin:
    """A new balancer by name: `p2c` or `round-robin`."""
    if name == "p2c":
        return P2C()
    if name == "round-robin":
        return RoundRobin()
    raise ValueError(f"unknown balancer {name!r}: use one of {', '.join(BALANCERS)}")
