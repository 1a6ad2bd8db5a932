"""stringsvc's service middlewares: logging and instrumenting (Go kit's stringsvc).

Request counts and latencies are the transport's RED metrics (the same names in
every service); the business metric kept here is the distribution of Count's
results, Go kit's `count_result`.
"""

from __future__ import annotations

from typing import Any

import structlog
from prometheus_client import Histogram

from lokit.examples.stringsvc.service import Service

# Created once per process: a second `stringsvc_definition()` (tests) reuses it.
COUNT_RESULT = Histogram(
    "stringsvc_count_result",
    "Results of successful Count calls (characters).",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000, float("inf")),
)

# The name goes to the logger factory: lokit's log lines show it as `logger=`.
_log = structlog.get_logger("stringsvc")


class LoggingMiddleware(Service):
    """Logs one line per call: `method s v err`."""

    def __init__(self, next: Service, logger: Any = None) -> None:
        self._next = next
        self._log = logger if logger is not None else _log

    async def uppercase(self, s: str) -> str:
        try:
            v = await self._next.uppercase(s)
        except Exception as e:
            self._log.info("call", method="Uppercase", s=s, v=None, err=str(e))
            raise
        self._log.info("call", method="Uppercase", s=s, v=v, err=None)
        return v

    async def count(self, s: str) -> int:
        try:
            v = await self._next.count(s)
        except Exception as e:
            self._log.info("call", method="Count", s=s, v=None, err=str(e))
            raise
        self._log.info("call", method="Count", s=s, v=v, err=None)
        return v


class InstrumentingMiddleware(Service):
    """Observes Count's results in the `stringsvc_count_result` histogram."""

    def __init__(self, next: Service) -> None:
        self._next = next
        self._observe = COUNT_RESULT.observe

    async def uppercase(self, s: str) -> str:
        return await self._next.uppercase(s)

    async def count(self, s: str) -> int:
        v = await self._next.count(s)
        self._observe(v)
        return v
