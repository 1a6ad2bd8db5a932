"""addsvc's service middlewares (Go kit's `Middleware func(Service) Service`).

Each wraps a `Service` and implements the same methods: logging (one structured
line per call), instrumenting (business counters), and `ConcatTransform` (the
workshop's uppercase dependency, steps 16-18).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from prometheus_client import Counter

from lokit.examples.addsvc.service import Service

# Created once per process: a second `addsvc_definition()` (tests) reuses them.
INTEGERS_SUMMED = Counter(
    "addsvc_integers_summed",
    "Total of the magnitudes of the results of successful Sum calls.",
)
CHARACTERS_CONCATENATED = Counter(
    "addsvc_characters_concatenated",
    "Characters returned by successful Concat calls.",
)

# The name goes to the logger factory: lokit's log lines show it as `logger=`.
_log = structlog.get_logger("addsvc")


class LoggingMiddleware(Service):
    """Logs one line per call: `method a b v err` (Go kit's service logging)."""

    def __init__(self, next: Service, logger: Any = None) -> None:
        self._next = next
        self._log = logger if logger is not None else _log

    async def sum(self, a: int, b: int) -> int:
        try:
            v = await self._next.sum(a, b)
        except Exception as e:
            self._log.info("call", method="Sum", a=a, b=b, v=None, err=str(e))
            raise
        self._log.info("call", method="Sum", a=a, b=b, v=v, err=None)
        return v

    async def concat(self, a: str, b: str) -> str:
        try:
            v = await self._next.concat(a, b)
        except Exception as e:
            self._log.info("call", method="Concat", a=a, b=b, v=None, err=str(e))
            raise
        self._log.info("call", method="Concat", a=a, b=b, v=v, err=None)
        return v

    async def mult(self, a: float, b: float) -> float:
        try:
            v = await self._next.mult(a, b)
        except Exception as e:
            self._log.info("call", method="Mult", a=a, b=b, v=None, err=str(e))
            raise
        self._log.info("call", method="Mult", a=a, b=b, v=v, err=None)
        return v


class InstrumentingMiddleware(Service):
    """Counts integers summed and characters concatenated (Go kit's addsvc metrics).

    A counter cannot go down, so a negative sum adds its magnitude (Go kit's
    example would panic there). Failed calls add nothing.
    """

    def __init__(self, next: Service) -> None:
        self._next = next
        self._ints = INTEGERS_SUMMED.inc
        self._chars = CHARACTERS_CONCATENATED.inc

    async def sum(self, a: int, b: int) -> int:
        v = await self._next.sum(a, b)
        self._ints(abs(v))
        return v

    async def concat(self, a: str, b: str) -> str:
        v = await self._next.concat(a, b)
        self._chars(len(v))
        return v

    async def mult(self, a: float, b: float) -> float:
        return await self._next.mult(a, b)


Transform = Callable[[str], Awaitable[str]]


class ConcatTransform(Service):
    """Passes Concat's successful result through `transform` (e.g. a remote Uppercase).

    With no transform Concat is plain. A transform's error (say `Unavailable`
    when stringsvc is down) fails Concat unchanged; Sum and Mult never touch it.
    """

    def __init__(self, next: Service, transform: Transform | None) -> None:
        self._next = next
        self._transform = transform

    async def sum(self, a: int, b: int) -> int:
        return await self._next.sum(a, b)

    async def concat(self, a: str, b: str) -> str:
        v = await self._next.concat(a, b)
        if self._transform is None:
            return v
        return await self._transform(v)

    async def mult(self, a: float, b: float) -> float:
        return await self._next.mult(a, b)
