"""What the log service reports to its metrics: the `LogObserver` protocol.

`metrics.LogMetrics` implements it with Prometheus; `NoObserver` reports nothing.
"""

from __future__ import annotations

from typing import Protocol


class LogObserver(Protocol):
    """What the service reports to its metrics (see `metrics.LogMetrics`)."""

    def appended(self, topic: str, records: int, nbytes: int, last_offset: int) -> None: ...
    def stream_opened(self) -> None: ...
    def stream_closed(self) -> None: ...
    def topics(self, count: int) -> None: ...
    def topic_refused(self) -> None: ...


class NoObserver:
    """An observer that reports nothing (the service without metrics)."""

    __slots__ = ()

    def appended(self, topic: str, records: int, nbytes: int, last_offset: int) -> None:
        return None

    def topics(self, count: int) -> None:
        return None

    def topic_refused(self) -> None:
        return None

    def stream_opened(self) -> None:
        return None

    def stream_closed(self) -> None:
        return None
