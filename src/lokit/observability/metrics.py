"""RED metrics with the same names in every lokit service, exposed through prometheus_client.

`lokit_requests_total{service,method,transport,code}`,
`lokit_request_duration_seconds{service,method,transport}` (a histogram) and
`lokit_requests_in_flight{service,method}` are kept per route by `route(...)`,
which the request observer resolves once per (method, transport).

Why not prometheus_client's own Counter, Histogram and Gauge per request: each
update takes a lock and a few method calls, and a request makes four of them
(about a sixth of a local request's server time). The values here are plain
numbers, updated from the event loop's thread with a few additions, and read by
a collector registered in the default REGISTRY when `/metrics` is scraped, so
the process and platform collectors still come along. A histogram's count is
the sum of its buckets at the time of reading, so a scrape never sees a count
its buckets disagree with.

With `PROMETHEUS_MULTIPROC_DIR` set (several processes behind one `/metrics`),
the values must live in prometheus_client's per-process files instead: `route`
then updates its Counter, Histogram and Gauge (the in-flight gauge summing the
live processes), as before.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["DURATION_BUCKETS", "MULTIPROCESS", "RouteMetrics", "route"]

# 100 µs .. 10 s: local calls over Unix sockets take a few hundred µs.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_REQUESTS = ("lokit_requests", "Requests served, by canonical result code.")
_DURATION = (
    "lokit_request_duration_seconds",
    "Time from the start of decoding to the end of encoding the answer.",
)
_IN_FLIGHT = ("lokit_requests_in_flight", "Requests being served now.")
_ROUTE_LABELS = ("service", "method", "transport")
_LE = [floatToGoString(b) for b in DURATION_BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]


class _Flight:
    """The in-flight count of one (service, method), shared by its transports."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class RouteMetrics(Protocol):
    """One (service, method, transport)'s RED values: `started`, then `finished`."""

    def started(self) -> None: ...

    def finished(self, took: float, code: str) -> None: ...


class _PlainRouteMetrics:
    """`RouteMetrics` as plain numbers in this process, read by `_RedCollector`."""

    __slots__ = ("buckets", "codes", "created", "flight", "sum")

    def __init__(self, flight: _Flight) -> None:
        self.flight = flight
        self.codes: dict[str, int] = {"OK": 0}
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()

    def started(self) -> None:
        self.flight.n += 1

    def finished(self, took: float, code: str) -> None:
        self.flight.n -= 1
        self.buckets[bisect_left(DURATION_BUCKETS, took)] += 1
        self.sum += took
        codes = self.codes
        codes[code] = codes.get(code, 0) + 1


class _SharedRouteMetrics:
    """`RouteMetrics` in prometheus_client's per-process files (multiprocess mode)."""

    __slots__ = ("_by_code", "_duration", "_in_flight", "_labels")

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self._in_flight = _SHARED_IN_FLIGHT.labels(labels[0], labels[1])
        self._duration = _SHARED_DURATION.labels(*labels)
        self._by_code = {"OK": _SHARED_REQUESTS.labels(*labels, "OK")}

    def started(self) -> None:
        self._in_flight.inc()

    def finished(self, took: float, code: str) -> None:
        self._in_flight.dec()
        self._duration.observe(took)
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = _SHARED_REQUESTS.labels(*self._labels, code)
        counter.inc()


class _RedCollector(Collector):
    """Reads every route's values for a scrape (from the scraping thread)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str, str], _PlainRouteMetrics] = {}
        self.flights: dict[tuple[str, str], _Flight] = {}

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _families(self) -> tuple[CounterMetricFamily, HistogramMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(*_REQUESTS, labels=(*_ROUTE_LABELS, "code")),
            HistogramMetricFamily(*_DURATION, labels=_ROUTE_LABELS),
            GaugeMetricFamily(*_IN_FLIGHT, labels=("service", "method")),
        )

    def collect(self) -> Iterator[Metric]:
        requests, duration, in_flight = self._families()
        for labels, r in list(self.routes.items()):
            for code, n in list(r.codes.items()):
                requests.add_metric((*labels, code), n, created=r.created)
            cumulative, buckets = 0, []
            for le, n in zip(_LE, list(r.buckets), strict=True):
                cumulative += n
                buckets.append((le, float(cumulative)))
            duration.add_metric(labels, buckets, r.sum)
            named = dict(zip(_ROUTE_LABELS, labels, strict=True))
            duration.samples.append(Sample(_DURATION[0] + "_created", named, r.created))
        for (service, method), flight in list(self.flights.items()):
            in_flight.add_metric((service, method), flight.n)
        yield requests
        yield duration
        yield in_flight


MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
"""Several processes behind one `/metrics`: values live in prometheus_client's files."""
if MULTIPROCESS:
    _SHARED_REQUESTS = Counter(*_REQUESTS, (*_ROUTE_LABELS, "code"))
    _SHARED_DURATION = Histogram(*_DURATION, _ROUTE_LABELS, buckets=DURATION_BUCKETS)
    _SHARED_IN_FLIGHT = Gauge(*_IN_FLIGHT, ("service", "method"), multiprocess_mode="livesum")
else:
    _COLLECTOR = _RedCollector()
    REGISTRY.register(_COLLECTOR)


def route(service: str, method: str, transport: str) -> RouteMetrics:
    """The RED values of one (service, method, transport), made on first use."""
    labels = (service, method, transport)
    if MULTIPROCESS:
        return _SharedRouteMetrics(labels)
    collector = _COLLECTOR
    found = collector.routes.get(labels)
    if found is None:
        flight = collector.flights.get((service, method))
        if flight is None:
            flight = collector.flights[(service, method)] = _Flight()
        found = collector.routes[labels] = _PlainRouteMetrics(flight)
    return found
