"""RED metrics with the same names in every lokit service (prometheus_client).

Registered once, on import, in the default REGISTRY, so the process and
platform collectors come along on `/metrics`. With `PROMETHEUS_MULTIPROC_DIR`
set, prometheus_client stores values in per-process files; the in-flight gauge
then sums the live processes.

Label lookups (`.labels()`) cost a lock and a dict lookup on a tuple each; the
request observer resolves children once per (method, transport) and caches them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

REQUESTS = Counter(
    "lokit_requests",
    "Requests served, by canonical result code.",
    ("service", "method", "transport", "code"),
)
DURATION = Histogram(
    "lokit_request_duration_seconds",
    "Time from the start of decoding to the end of encoding the answer.",
    ("service", "method", "transport"),
    buckets=DURATION_BUCKETS,
)
IN_FLIGHT = Gauge(
    "lokit_requests_in_flight",
    "Requests being served now.",
    ("service", "method"),
    multiprocess_mode="livesum",
)
