"""The log service's own metrics: appended records/bytes, highest offset, fsync latency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from lokit.logsvc.client import LogClient
from tests.logsvc.conftest import start_in_process


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_append_and_fsync_metrics(tmp_path: Path) -> None:
    srv = await start_in_process(tmp_path, fsync="always")
    c = LogClient(srv.grpc)
    topic = f"m-{tmp_path.name}"
    fsyncs = sample("lokit_log_fsync_duration_seconds_count")
    try:
        await c.produce(b"12345", topic=topic)
        await c.produce_batch([b"ab", b"cd", b"ef"], topic=topic)
    finally:
        await c.close()
        await srv.runtime.stop()
    assert sample("lokit_log_appended_records_total", topic=topic) == 4
    assert sample("lokit_log_appended_bytes_total", topic=topic) == 11
    assert sample("lokit_log_highest_offset", topic=topic) == 3
    assert sample("lokit_log_fsync_duration_seconds_count") > fsyncs


async def test_highest_offset_is_reported_at_startup(tmp_path: Path) -> None:
    topic = f"s-{tmp_path.name}"
    srv = await start_in_process(tmp_path)
    c = LogClient(srv.grpc)
    await c.produce_batch([b"x"] * 5, topic=topic)
    await c.close()
    await srv.runtime.stop()
    from lokit.logsvc.metrics import LogMetrics

    LogMetrics().highest_offset(topic, -1)  # forget it: the restart must report it anew
    srv = await start_in_process(tmp_path)
    await srv.runtime.stop()
    assert sample("lokit_log_highest_offset", topic=topic) == 4


def test_topic_values_add_up_across_processes_in_multiprocess_mode(tmp_path: Path) -> None:
    code = """
from lokit.logsvc.metrics import LogMetrics
m = LogMetrics()
m.appended("mp", 2, 10, 5)
m.appended("mp", 1, 3, 6)
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two processes, one directory
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    topic = {"topic": "mp"}
    assert registry.get_sample_value("lokit_log_appended_records_total", topic) == 6
    assert registry.get_sample_value("lokit_log_appended_bytes_total", topic) == 26
    assert registry.get_sample_value("lokit_log_highest_offset", topic) == 6
