"""The debug app every lokit service serves on `--debug ADDR`: metrics and health.

A raw ASGI callable (no framework): `GET /metrics` answers the default
registry in the Prometheus text format (or OpenMetrics when the scraper asks for
it), `GET /healthz` answers 200 `{"status":"ok"}` while the service's health
check (`ServiceDef.health`) finds nothing wrong, and 503
`{"status":"not serving","error":SENTENCE}` when it gives a reason (a check
that raises counts as unhealthy), anything else is 404. HEAD is
answered like GET without a body. With `PROMETHEUS_MULTIPROC_DIR` set, /metrics
sums the values of every process of the service.

Rendering the registry is CPU work that grows with the number of series, so it
runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import orjson
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from lokit.types import ASGIApp, Receive, Scope, Send

HealthCheck = Callable[[], str | None]

_HEALTHY = b'{"status":"ok"}'
_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"


def health_reason(check: HealthCheck | None) -> str | None:
    """None while `check` (a service's health check) finds it able to serve, else why not."""
    if check is None:
        return None
    try:
        return check()
    except Exception as e:  # a broken check must not pass for a healthy service
        return f"the health check failed: {type(e).__name__}"


def debug_app(registry: Collector | None = None, health: HealthCheck | None = None) -> ASGIApp:
    """The debug ASGI app; `registry` defaults to prometheus_client's REGISTRY.

    `health` is the service's check (None: always healthy).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # served with lifespan off, like every lokit ASGI app
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        if method not in ("GET", "HEAD") or path not in ("/metrics", "/healthz"):
            await _answer(send, 404, _TEXT, b"not found\n", method == "HEAD")
            return
        if path == "/healthz":
            reason = health_reason(health)
            if reason is None:
                await _answer(send, 200, _JSON, _HEALTHY, method == "HEAD")
            else:
                body = orjson.dumps({"status": "not serving", "error": reason})
                await _answer(send, 503, _JSON, body, method == "HEAD")
            return
        encoder, content_type = choose_encoder(_header(scope, b"accept"))
        body = await asyncio.to_thread(encoder, _registry(registry))
        await _answer(send, 200, content_type.encode(), body, method == "HEAD")

    return app


def _registry(registry: Collector | None) -> Collector:
    if registry is not None:
        return registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return merged
    return REGISTRY


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


async def _answer(send: Send, status: int, content_type: bytes, body: bytes, head: bool) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})
