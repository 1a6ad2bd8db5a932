"""The debug app: /metrics and /healthz, called directly and over a real Unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import uvicorn

from lokit.context import RequestContext
from lokit.observability.debug import debug_app
from lokit.observability.logs import configure_logging
from lokit.observability.request import RequestObserver


async def _get(
    path: str, method: str = "GET", accept: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Drive the ASGI app with one request; return (status, headers, body)."""
    headers = [(b"host", b"debug")]
    if accept is not None:
        headers.append((b"accept", accept.encode()))
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await debug_app()(scope, receive, send)
    start, body = sent
    hdrs = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(hdrs["content-length"]) == len(body["body"]) or method == "HEAD"
    return start["status"], hdrs, body["body"]


async def test_metrics_in_prometheus_text_format() -> None:
    configure_logging(level="error")
    ctx = RequestContext(request_id="m1", service="debugsvc", method="Ping", transport="http")
    RequestObserver("debugsvc").start(ctx).finish(None)
    status, headers, body = await _get("/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert (
        'lokit_requests_total{code="OK",method="Ping",service="debugsvc",transport="http"} 1.0'
        in text
    )
    assert "# TYPE lokit_request_duration_seconds histogram" in text
    assert 'lokit_requests_in_flight{method="Ping",service="debugsvc"} 0.0' in text
    assert "process_cpu_seconds_total" in text  # the default registry's process metrics


async def test_metrics_in_openmetrics_when_asked() -> None:
    status, headers, body = await _get("/metrics", accept="application/openmetrics-text")
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


async def test_healthz() -> None:
    status, headers, body = await _get("/healthz")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert orjson.loads(body) == {"status": "ok"}
    status, _, body = await _get("/healthz", method="HEAD")
    assert (status, body) == (200, b"")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/"), ("GET", "/metricsx"), ("POST", "/metrics")]
)
async def test_everything_else_is_404(method: str, path: str) -> None:
    status, _, _ = await _get(path, method=method)
    assert status == 404


@pytest.fixture
async def debug_socket(tmp_path: Path) -> AsyncIterator[Path]:
    sock = tmp_path / "debug.sock"
    config = uvicorn.Config(debug_app(), uds=str(sock), log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn stopped before it started"
        await asyncio.sleep(0.01)
    yield sock
    server.should_exit = True
    await task


async def test_over_a_unix_socket(debug_socket: Path) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(debug_socket))) as s:
        async with s.get("http://debug/healthz") as r:
            assert r.status == 200
            assert await r.json() == {"status": "ok"}
        async with s.get("http://debug/metrics") as r:
            assert r.status == 200
            assert r.headers["content-type"].startswith("text/plain")
            assert "# TYPE lokit_requests_total counter" in await r.text()
        async with s.get("http://debug/nope") as r:
            assert r.status == 404
