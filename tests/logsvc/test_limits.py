"""The log service's own bounds: a maximum number of topics (with a real fd limit in
the child), one tail-cache budget for all topics, and owner-only files."""

from __future__ import annotations

import os
import resource
import signal
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from lokit.errors import ResourceExhausted
from lokit.logsvc.client import LogClient
from lokit.logsvc.definition import default_max_topics
from lokit.logsvc.errors import TooManyTopicsError
from tests.logsvc.conftest import start_in_process

ARGS = ("--data", "data", "--grpc", "unix:g.sock", "--http", "unix:h.sock")


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def http_post(sock: Path, path: str, body: bytes) -> tuple[int, bytes]:
    connector = aiohttp.UnixConnector(path=str(sock))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.post("http://log" + path, data=body) as r,
    ):
        return r.status, await r.read()


def test_default_max_topics_follows_the_fd_limit() -> None:
    assert default_max_topics(256) == 16  # the floor
    assert default_max_topics(1024) == (1024 - 256) // 3
    assert default_max_topics(20_000) == (20_000 - 5_000) // 3
    assert default_max_topics(1 << 20) == 10_000  # the ceiling
    assert default_max_topics(resource.RLIM_INFINITY) == 10_000


async def test_max_topics_refuses_one_more_and_serves_the_rest(tmp_path: Path, spawn: Any) -> None:
    server = spawn(*ARGS, "--max-topics", "3")
    c = LogClient(f"unix:{tmp_path}/g.sock")
    try:
        assert await c.produce(b"a0", topic="a") == 0
        assert await c.produce(b"b0", topic="b") == 0
        # the third slot is the default topic's: a named one is refused...
        with pytest.raises(TooManyTopicsError) as e:
            await c.produce(b"c0", topic="c")
        assert isinstance(e.value, ResourceExhausted)
        assert "maximum of 3 topics" in str(e.value) and "--max-topics" in str(e.value)
        with pytest.raises(ResourceExhausted):
            await c.produce_batch([b"c0", b"c1"], topic="c")
        status, body = await http_post(
            tmp_path / "h.sock", "/topics/c/records", b'{"values":["eA=="]}'
        )
        assert status == 429 and b"--max-topics" in body
        # ... while the default topic and the existing ones are served
        assert await c.produce(b"d0") == 0
        assert await c.produce(b"a1", topic="a") == 1
        assert (await c.consume(1, topic="a")).value == b"a1"
        assert sorted(t.name for t in (await c.list_topics()).topics) == ["a", "b", "default"]
    finally:
        await c.close()
    assert not (tmp_path / "data" / "c").exists()
    assert server.stop() == 0

    # A server that holds its maximum restarts on its data; one with a lower limit too.
    server = spawn(*ARGS, "--max-topics", "2")
    c = LogClient(f"unix:{tmp_path}/g.sock")
    try:
        assert (await c.consume(1, topic="a")).value == b"a1"
        assert await c.produce(b"b1", topic="b") == 1
        with pytest.raises(TooManyTopicsError):
            await c.produce(b"e0", topic="e")
    finally:
        await c.close()
    assert server.stop() == 0
    warnings = [line for line in server.stderr_lines if "log.topics_over_limit" in line]
    assert len(warnings) == 1 and "level=warning" in warnings[0], server.stderr_lines


async def test_the_default_limit_keeps_a_low_fd_limit_serving(tmp_path: Path, spawn: Any) -> None:
    """With 256 fds the server allows 16 topics: refusals, not "Too many open files"."""
    server = spawn(*ARGS, fd_limit=256)
    c = LogClient(f"unix:{tmp_path}/g.sock")
    refused = 0
    try:
        for i in range(60):
            try:
                await c.produce(b"x", topic=f"t{i}")
            except ResourceExhausted as e:
                assert "maximum of 16 topics" in str(e)
                refused += 1
        assert refused == 60 - 15  # one of the 16 is the default topic's
        assert await c.produce(b"still here") == 0
        assert (await c.consume(0, topic="t3")).value == b"x"
    finally:
        await c.close()
    assert server.stop(signal.SIGTERM) == 0
    server = spawn(*ARGS, fd_limit=256)
    c = LogClient(f"unix:{tmp_path}/g.sock")
    try:
        assert len((await c.list_topics()).topics) == 16
    finally:
        await c.close()
    assert not any("Too many open files" in line for line in server.stderr_lines)


async def test_topic_metrics(tmp_path: Path) -> None:
    refused = sample("lokit_log_topics_refused_total")
    srv = await start_in_process(tmp_path, max_topics=2)
    c = LogClient(srv.grpc)
    try:
        await c.produce(b"x", topic="one")
        with pytest.raises(TooManyTopicsError):
            await c.produce(b"x", topic="two")
        assert sample("lokit_log_topics") == 1
        assert sample("lokit_log_max_topics") == 2
        assert sample("lokit_log_topics_refused_total") == refused + 1
    finally:
        await c.close()
        await srv.runtime.stop()


async def test_one_cache_budget_for_all_topics(tmp_path: Path) -> None:
    budget = 1 << 20
    srv = await start_in_process(tmp_path, read_cache_bytes=budget)
    c = LogClient(srv.grpc)
    value = b"v" * 1000
    try:
        for i in range(40):  # 40 topics of ~200 KB: 8 MB against a 1 MiB budget
            for _ in range(4):
                await c.produce_batch([value] * 50, topic=f"t{i}")
            cached = sample("lokit_log_cache_bytes")
            assert 0 < cached <= budget
        assert sample("lokit_log_cache_budget_bytes") == budget
        # the newest topic is served from the cache, the oldest from the store: all there
        for t in ("t0", "t39"):
            got = await c.consume_batch(0, topic=t, max_records=1000, max_bytes=1 << 24)
            assert got.values == [value] * 200
    finally:
        await c.close()
        await srv.runtime.stop()


async def test_files_are_owner_only(tmp_path: Path) -> None:
    srv = await start_in_process(tmp_path)
    c = LogClient(srv.grpc)
    try:
        await c.produce(b"x", topic="t")
        await c.commit_position("billing", 1, topic="t")
    finally:
        await c.close()
        await srv.runtime.stop()
    data = srv.data
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    dbs = [p for p in data.iterdir() if p.name.startswith(".positions.sqlite")]
    assert dbs
    for p in dbs:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


async def test_an_open_data_directory_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / ".lokit-log.lock").touch()  # a log server's data directory
    (data / ".positions.sqlite").touch(mode=0o644)
    os.chmod(data / ".positions.sqlite", 0o644)
    srv = await start_in_process(tmp_path)
    await srv.runtime.stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / ".positions.sqlite").stat().st_mode) == 0o600


async def test_a_foreign_open_directory_is_only_warned_about(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    (data / "somebody-elses.txt").write_text("x")
    srv = await start_in_process(tmp_path)
    await srv.runtime.stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o755
