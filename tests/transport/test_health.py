"""ServiceDef.health drives the gRPC health service and /healthz on the debug listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import lokit
from lokit.examples.greeter import Greeter
from lokit.runtime import Listeners, Runtime

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Toggle:
    """A health check to flip: None while healthy, else the sentence."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.broken = False

    def __call__(self) -> str | None:
        if self.broken:
            raise OSError("/secret/path: disk on fire")
        return self.reason


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Toggle, Runtime]]:
    check = Toggle()
    service = lokit.define("greeter", Greeter())
    service.health = check
    grpc_addr = f"unix:{tmp_path}/g.sock"
    rt = Runtime(service, Listeners([grpc_addr], [], "127.0.0.1:0", 1.0))
    await rt.start()
    try:
        yield check, rt
    finally:
        await rt.stop()


def _addr(rt: Runtime, kind: str) -> Any:
    return next(a for k, a in rt.bound if k == kind)


async def _healthz(rt: Runtime) -> tuple[int, Any]:
    debug = _addr(rt, "debug")
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://{debug.host}:{debug.port}/healthz") as r,
    ):
        return r.status, await r.json()


async def _check(rt: Runtime, name: str = "") -> int:
    async with grpc.aio.insecure_channel(_addr(rt, "grpc").grpc_target()) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
        return int(reply.status)


async def test_healthy_service_is_serving(served: tuple[Toggle, Runtime]) -> None:
    _, rt = served
    assert await _healthz(rt) == (200, {"status": "ok"})
    assert await _check(rt) == SERVING
    for name in rt.service.grpc_services:
        assert await _check(rt, name) == SERVING


async def test_flipped_check_is_not_serving_on_both(served: tuple[Toggle, Runtime]) -> None:
    check, rt = served
    check.reason = "storage cannot write"
    assert await _healthz(rt) == (503, {"status": "not serving", "error": "storage cannot write"})
    assert await _check(rt) == NOT_SERVING
    for name in rt.service.grpc_services:
        assert await _check(rt, name) == NOT_SERVING
    check.reason = None
    assert await _healthz(rt) == (200, {"status": "ok"})
    assert await _check(rt) == SERVING


async def test_a_check_that_raises_is_unhealthy_and_names_no_path(
    served: tuple[Toggle, Runtime],
) -> None:
    check, rt = served
    check.broken = True
    status, body = await _healthz(rt)
    assert status == 503
    assert body["error"] == "the health check failed: OSError"
    assert await _check(rt) == NOT_SERVING


async def test_watch_sees_the_change_without_a_check(served: tuple[Toggle, Runtime]) -> None:
    check, rt = served
    async with grpc.aio.insecure_channel(_addr(rt, "grpc").grpc_target()) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await asyncio.wait_for(watch.read(), 5)).status == SERVING
        check.reason = "draining"
        assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
        check.reason = None
        assert (await asyncio.wait_for(watch.read(), 5)).status == SERVING
        watch.cancel()
