"""The RED values and what a scrape of the default registry reads of them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

from lokit.observability import metrics


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_route_is_exposed_under_the_red_names() -> None:
    grpc = metrics.route("metricsvc", "Sum", "grpc")
    http = metrics.route("metricsvc", "Sum", "http")
    assert metrics.route("metricsvc", "Sum", "grpc") is grpc  # one per labels
    route = {"service": "metricsvc", "method": "Sum", "transport": "grpc"}
    assert _sample("lokit_requests_total", **route, code="OK") == 0  # there from the start
    grpc.started()
    grpc.started()
    http.started()
    assert _sample("lokit_requests_in_flight", service="metricsvc", method="Sum") == 3
    grpc.finished(0.0001, "OK")  # on a bound: counted in its bucket (le)
    grpc.finished(0.003, "NOT_FOUND")
    http.finished(20.0, "OK")
    assert _sample("lokit_requests_in_flight", service="metricsvc", method="Sum") == 0
    assert _sample("lokit_requests_total", **route, code="OK") == 1
    assert _sample("lokit_requests_total", **route, code="NOT_FOUND") == 1
    assert _sample("lokit_request_duration_seconds_bucket", **route, le="0.0001") == 1
    assert _sample("lokit_request_duration_seconds_bucket", **route, le="0.005") == 2
    assert _sample("lokit_request_duration_seconds_count", **route) == 2
    assert _sample("lokit_request_duration_seconds_sum", **route) == 0.0031
    http_route = dict(route, transport="http")
    assert _sample("lokit_request_duration_seconds_bucket", **http_route, le="10.0") == 0
    assert _sample("lokit_request_duration_seconds_bucket", **http_route, le="+Inf") == 1
    assert (_sample("lokit_requests_created", **route, code="OK") or 0) > 0
    assert (_sample("lokit_request_duration_seconds_created", **route) or 0) > 0


def test_a_scrape_from_another_thread_reads_consistent_histograms() -> None:
    route = metrics.route("metricsvc", "Busy", "http")
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            text = generate_latest(REGISTRY).decode()
            lines = [line for line in text.splitlines() if 'method="Busy"' in line]
            count = next(x for x in lines if x.startswith("lokit_request_duration_seconds_count"))
            inf = next(x for x in lines if 'le="+Inf"' in x)
            assert count.rsplit(" ", 1)[1] == inf.rsplit(" ", 1)[1]

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for i in range(20000):
            route.started()
            route.finished(i * 1e-6, "OK")
    finally:
        stop.set()
        scraper.join()
    assert (
        _sample(
            "lokit_request_duration_seconds_count",
            service="metricsvc",
            method="Busy",
            transport="http",
        )
        == 20000
    )


def test_under_prometheus_multiproc_dir_the_values_live_in_its_files(tmp_path: Path) -> None:
    """Several processes behind one /metrics: prometheus_client's per-process files."""
    code = """
from lokit.observability import metrics
r = metrics.route("multisvc", "Sum", "grpc")
r.started(); r.started(); r.finished(0.002, "OK"); r.finished(0.002, "NOT_FOUND")
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two processes, one directory
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    route = {"service": "multisvc", "method": "Sum", "transport": "grpc"}
    assert registry.get_sample_value("lokit_requests_total", {**route, "code": "OK"}) == 2
    assert registry.get_sample_value("lokit_requests_total", {**route, "code": "NOT_FOUND"}) == 2
    assert registry.get_sample_value("lokit_request_duration_seconds_count", route) == 4
