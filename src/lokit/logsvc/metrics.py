"""The log service's own Prometheus metrics (the kit adds RED metrics per RPC).

- `lokit_log_appended_records_total{topic}` / `lokit_log_appended_bytes_total{topic}`
- `lokit_log_highest_offset{topic}`: the offset of the newest record
- `lokit_log_fsync_duration_seconds`: how long each fsync of the storage engine took
- `lokit_log_consumer_streams`: consumer streams open now (ConsumeStream and batched)
- `lokit_log_topics` / `lokit_log_max_topics`: topics open now, and the limit
- `lokit_log_topics_refused_total`: writes refused because they would create a topic
  past the limit
- `lokit_log_cache_bytes` / `lokit_log_cache_budget_bytes`: bytes the topics' tail
  caches hold together (read when scraped), and their shared budget

Registered once, on import, in prometheus_client's default registry (what the
debug server's `/metrics` serves). The three per-topic values change with every
append, so, like the kit's RED metrics (`lokit.observability.metrics`), they are
plain numbers read by a collector when scraped: prometheus_client's Counter and
Gauge take a lock per update, and the three updates were a tenth of a single
ProduceStream record's server work. With `PROMETHEUS_MULTIPROC_DIR` set they are
prometheus_client's Counters and Gauge, in its per-process files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lokit.observability.metrics import MULTIPROCESS

_RECORDS = ("lokit_log_appended_records", "Records appended to the commit log, by topic.")
_BYTES = ("lokit_log_appended_bytes", "Value bytes appended to the commit log, by topic.")
_HIGHEST = ("lokit_log_highest_offset", "Offset of the newest record, by topic.")
FSYNC_SECONDS = Histogram(
    "lokit_log_fsync_duration_seconds",
    "Duration of the commit log's fsync calls.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CONSUMER_STREAMS = Gauge(
    "lokit_log_consumer_streams",
    "Consumer streams open now (ConsumeStream, ConsumeBatchStream, HTTP streams).",
    multiprocess_mode="livesum",
)

TOPICS = Gauge("lokit_log_topics", "Topics open now.", multiprocess_mode="livesum")
MAX_TOPICS = Gauge(
    "lokit_log_max_topics", "The most topics the server creates.", multiprocess_mode="max"
)
TOPICS_REFUSED = Counter(
    "lokit_log_topics_refused",
    "Writes refused because they would create a topic past the limit.",
)
CACHE_BYTES = Gauge(
    "lokit_log_cache_bytes",
    "Bytes held by the tail caches of all topics together.",
    multiprocess_mode="livesum",
)
CACHE_BUDGET = Gauge(
    "lokit_log_cache_budget_bytes",
    "The tail caches' shared budget (--read-cache-bytes).",
    multiprocess_mode="max",
)


class _PlainTopic:
    """One topic's values as plain numbers in this process, read by `_TopicCollector`."""

    __slots__ = ("bytes", "created", "highest", "records")

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0
        self.highest = 0
        self.created = time.time()

    def appended(self, records: int, nbytes: int, last_offset: int) -> None:
        self.records += records
        self.bytes += nbytes
        self.highest = last_offset


class _TopicCollector(Collector):
    """Reads every topic's values for a scrape (from the scraping thread)."""

    def __init__(self, topics: dict[str, _PlainTopic | _SharedTopic]) -> None:
        self.topics = topics

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(*_RECORDS, labels=("topic",)),
            CounterMetricFamily(*_BYTES, labels=("topic",)),
            GaugeMetricFamily(*_HIGHEST, labels=("topic",)),
        )

    def collect(self) -> Iterator[Metric]:
        records, nbytes, highest = self._families()
        for topic, v in list(self.topics.items()):
            assert isinstance(v, _PlainTopic)  # the collector exists only without files
            records.add_metric((topic,), v.records, created=v.created)
            nbytes.add_metric((topic,), v.bytes, created=v.created)
            highest.add_metric((topic,), v.highest)
        yield records
        yield nbytes
        yield highest


class _SharedTopic:
    """One topic's values in prometheus_client's per-process files (multiprocess mode)."""

    __slots__ = ("bytes", "highest", "records")

    def __init__(self, topic: str) -> None:
        self.records = _SHARED_RECORDS.labels(topic)
        self.bytes = _SHARED_BYTES.labels(topic)
        self.highest = _SHARED_HIGHEST.labels(topic)

    def appended(self, records: int, nbytes: int, last_offset: int) -> None:
        self.records.inc(records)
        self.bytes.inc(nbytes)
        self.highest.set(last_offset)


# Every topic's values, made on first use and shared by every LogMetrics in the
# process, as prometheus_client's module-level metrics are.
_TOPICS: dict[str, _PlainTopic | _SharedTopic] = {}
if MULTIPROCESS:
    _SHARED_RECORDS = Counter(*_RECORDS, ("topic",))
    _SHARED_BYTES = Counter(*_BYTES, ("topic",))
    _SHARED_HIGHEST = Gauge(*_HIGHEST, ("topic",), multiprocess_mode="max")
else:
    REGISTRY.register(_TopicCollector(_TOPICS))


def _topic(topic: str) -> _PlainTopic | _SharedTopic:
    found = _TOPICS.get(topic)
    if found is None:
        found = _TOPICS[topic] = _SharedTopic(topic) if MULTIPROCESS else _PlainTopic()
    return found


class LogMetrics:
    """The service's `LogObserver` backed by Prometheus, plus the storage's fsync hook."""

    def __init__(self) -> None:
        self._fsync = FSYNC_SECONDS.observe
        self._streams = CONSUMER_STREAMS

    def appended(self, topic: str, records: int, nbytes: int, last_offset: int) -> None:
        (_TOPICS.get(topic) or _topic(topic)).appended(records, nbytes, last_offset)

    def highest_offset(self, topic: str, offset: int) -> None:
        """Report an existing topic's newest offset (at startup): nothing appended yet."""
        _topic(topic).appended(0, 0, offset)

    def topics(self, count: int) -> None:
        TOPICS.set(count)

    def topic_refused(self) -> None:
        TOPICS_REFUSED.inc()

    def limits(self, max_topics: int | None, cache_budget: int) -> None:
        """Report the server's limits (at startup); -1: no topic limit."""
        MAX_TOPICS.set(-1 if max_topics is None else max_topics)
        CACHE_BUDGET.set(cache_budget)

    def cache_bytes(self, read: Callable[[], float]) -> None:
        """Read the caches' bytes from `read` whenever the metrics are scraped."""
        CACHE_BYTES.set_function(read)

    def stream_opened(self) -> None:
        self._streams.inc()

    def stream_closed(self) -> None:
        self._streams.dec()

    def fsync(self, seconds: float) -> None:
        """The storage engine's fsync hook: one fsync took `seconds`."""
        self._fsync(seconds)
