"""Real `lokit serve log` processes: no lost acknowledged record after SIGKILL, idle
tailing streams cost no CPU, a clean SIGTERM stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lokit.errors import Error
from lokit.logsvc.client import LogClient
from lokit.logsvc.errors import ServerStoppingError
from lokit.logsvc.messages import ProduceRequest
from tests.logsvc.conftest import cpu_seconds

ARGS = ("--data", "data", "--grpc", "unix:g.sock", "--http", "unix:h.sock")


async def test_sigkill_during_a_produce_stream_loses_no_acknowledged_record(
    tmp_path: Path, spawn: Any
) -> None:
    server = spawn(*ARGS, "--fsync", "always")
    c = LogClient(f"unix:{tmp_path}/g.sock")
    acked: list[int] = []

    async def requests() -> AsyncIterator[ProduceRequest]:
        for i in range(1_000_000):
            yield ProduceRequest(b"record-%d" % i)

    try:
        async for offset in c.produce_stream(requests()):
            acked.append(offset)
            if len(acked) == 300:
                server.proc.send_signal(signal.SIGKILL)
    except Error:
        pass  # the server died under the stream
    finally:
        await c.close()
    server.proc.wait(30)
    assert len(acked) >= 300
    assert acked == list(range(len(acked)))

    spawn(*ARGS, "--fsync", "always")
    c = LogClient(f"unix:{tmp_path}/g.sock")
    try:
        values = [v async for b in c.consume_batches(0, stop_at_end=True) for v in b.values]
    finally:
        await c.close()
    assert len(values) >= len(acked)
    assert values[: len(acked)] == [b"record-%d" % i for i in range(len(acked))]
    # whatever the log holds past the last ack is whole, in order
    assert values == [b"record-%d" % i for i in range(len(values))]


async def metric(debug_sock: Path, name: str) -> float:
    connector = aiohttp.UnixConnector(path=str(debug_sock))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.get("http://debug/metrics") as r,
    ):
        text = await r.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def test_idle_tailing_streams_cost_no_cpu(tmp_path: Path, spawn: Any) -> None:
    server = spawn(*ARGS, "--debug", "unix:d.sock", listeners=3)
    c = LogClient(f"unix:{tmp_path}/g.sock")
    streams: list[Any] = [c.consume_stream(0) for _ in range(4)]
    streams += [c.consume_batches(0) for _ in range(4)]
    firsts = [asyncio.create_task(anext(s)) for s in streams]
    try:
        for _ in range(500):
            if await metric(tmp_path / "d.sock", "lokit_log_consumer_streams") == len(streams):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the tailing streams did not open")
        before = cpu_seconds(server.pid)
        await asyncio.sleep(1.0)
        used = cpu_seconds(server.pid) - before
        # proglog spins a core per idle stream (8 streams: 100 % of the interval);
        # waiting on the append notification costs next to nothing.
        assert used < 0.2, f"{len(streams)} idle streams used {used:.2f} s of CPU in 1 s"

        await c.produce(b"wake up")
        got = await asyncio.wait_for(asyncio.gather(*firsts), 15)
        assert [getattr(g, "value", None) or g.values[0] for g in got] == [b"wake up"] * 8
    finally:
        for t in firsts:
            t.cancel()
        for s in streams:
            await s.aclose()
        await c.close()
    assert server.stop() == 0


async def test_shutdown_ends_idle_followers_at_once(tmp_path: Path, spawn: Any) -> None:
    """SIGTERM ends tailing streams with UNAVAILABLE "shutting down" instead of holding
    the shutdown for the whole grace period (60 s here)."""
    server = spawn(*ARGS, "--grace", "60")
    c = LogClient(f"unix:{tmp_path}/g.sock")
    stream = c.consume_batches(0)
    first: asyncio.Task[Any] = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    try:
        for _ in range(500):
            if (tmp_path / "data" / "default").is_dir():
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        server.proc.send_signal(signal.SIGTERM)
        # Without the drain the stream would end only after the 60 s grace, CANCELLED.
        with pytest.raises(ServerStoppingError, match="shutting down"):
            await asyncio.wait_for(first, 30)
        assert await asyncio.to_thread(server.proc.wait, 30) == 0
    finally:
        await c.close()


def test_signals_right_after_ready_stop_gracefully(tmp_path: Path, spawn: Any) -> None:
    server = spawn(*ARGS)
    server.proc.send_signal(signal.SIGINT)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    assert not (tmp_path / "g.sock").exists() and not (tmp_path / "h.sock").exists()
