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
debug server's `/metrics` serves). Per-topic children are resolved once and cached.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

APPENDED_RECORDS = Counter(
    "lokit_log_appended_records", "Records appended to the commit log, by topic.", ("topic",)
)
APPENDED_BYTES = Counter(
    "lokit_log_appended_bytes", "Value bytes appended to the commit log, by topic.", ("topic",)
)
HIGHEST_OFFSET = Gauge(
    "lokit_log_highest_offset",
    "Offset of the newest record, by topic.",
    ("topic",),
    multiprocess_mode="max",
)
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


class _TopicMetrics:
    __slots__ = ("bytes", "highest", "records")

    def __init__(self, topic: str) -> None:
        self.records = APPENDED_RECORDS.labels(topic)
        self.bytes = APPENDED_BYTES.labels(topic)
        self.highest = HIGHEST_OFFSET.labels(topic)


class LogMetrics:
    """The service's `LogObserver` backed by Prometheus, plus the storage's fsync hook."""

    def __init__(self) -> None:
        self._topics: dict[str, _TopicMetrics] = {}
        self._fsync = FSYNC_SECONDS.observe
        self._streams = CONSUMER_STREAMS

    def _topic(self, topic: str) -> _TopicMetrics:
        m = self._topics.get(topic)
        if m is None:
            m = self._topics[topic] = _TopicMetrics(topic)
        return m

    def appended(self, topic: str, records: int, nbytes: int, last_offset: int) -> None:
        m = self._topics.get(topic) or self._topic(topic)
        m.records.inc(records)
        m.bytes.inc(nbytes)
        m.highest.set(last_offset)

    def highest_offset(self, topic: str, offset: int) -> None:
        """Report an existing topic's newest offset (at startup)."""
        self._topic(topic).highest.set(offset)

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
