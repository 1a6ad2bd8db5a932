"""Consumer positions: commit, fetch, validation, listing, and surviving a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lokit.errors import FailedPrecondition, InvalidArgument
from lokit.logsvc.client import LogClient
from lokit.logsvc.errors import InvalidTopicError
from lokit.logsvc.messages import ConsumerPosition, Position
from lokit.logsvc.positions import Positions


async def test_commit_and_fetch(client: LogClient) -> None:
    assert await client.fetch_position("g") == Position(0, False)
    await client.produce_batch([b"a", b"b", b"c"])
    await client.commit_position("g", 2)
    assert await client.fetch_position("g") == Position(2, True)
    await client.commit_position("g", 3)  # the end of the topic is a valid position
    assert await client.fetch_position("g") == Position(3, True)
    assert await client.fetch_position("g", topic="other") == Position(0, False)
    info = await client.list_topics()
    assert info.positions == [ConsumerPosition("g", "default", 3)]


async def test_positions_are_per_topic(client: LogClient) -> None:
    await client.produce_batch([b"x"] * 5, topic="t1")
    await client.produce_batch([b"x"] * 5, topic="t2")
    await client.commit_position("g", 1, topic="t1")
    await client.commit_position("g", 4, topic="t2")
    assert (await client.fetch_position("g", "t1")).offset == 1
    assert (await client.fetch_position("g", "t2")).offset == 4


@pytest.mark.parametrize(
    ("consumer", "offset", "topic", "error", "text"),
    [
        ("", 0, "", InvalidArgument, "consumer name is required"),
        ("a\nb", 0, "", InvalidArgument, "non-printable"),
        ("g", 5, "", FailedPrecondition, "past the end of the topic (next offset 0)"),
        ("g", 0, "../up", InvalidTopicError, "path separator"),
    ],
)
async def test_bad_commits_are_refused(
    client: LogClient, consumer: str, offset: int, topic: str, error: type, text: str
) -> None:
    with pytest.raises(error, match=r".*") as e:
        await client.commit_position(consumer, offset, topic)
    assert text in str(e.value)


async def test_positions_store_reopens_with_its_data(tmp_path: Path) -> None:
    p = Positions(tmp_path / "pos.sqlite")
    await p.open()
    await p.commit("g", "t", 7)
    await p.commit("g", "t", 9)
    await p.close()
    again = Positions(tmp_path / "pos.sqlite")
    await again.open()
    assert again.get("g", "t") == 9
    assert again.all() == [("g", "t", 9)]
    await again.close()


async def test_positions_and_records_survive_a_restart(tmp_path: Path, spawn: Any) -> None:
    args = ("--data", "data", "--grpc", "unix:g.sock", "--http", "unix:h.sock")
    first = spawn(*args)
    c = LogClient(f"unix:{tmp_path}/g.sock")
    try:
        await c.produce_batch([b"%d" % i for i in range(10)], topic="orders")
        await c.commit_position("billing", 6, topic="orders")
    finally:
        await c.close()
    assert first.stop() == 0

    spawn(*args)
    c = LogClient(f"unix:{tmp_path}/g.sock")
    try:
        assert await c.fetch_position("billing", "orders") == Position(6, True)
        batch = await c.consume_batch(6, topic="orders")
        assert batch.values == [b"6", b"7", b"8", b"9"]
    finally:
        await c.close()


async def test_a_cancelled_commit_still_lands_in_cache_and_database(tmp_path: Path) -> None:
    """The write goes on when its caller goes away; the cache follows the database."""
    p = Positions(tmp_path / "pos.sqlite")
    await p.open()
    task = asyncio.create_task(p.commit("g", "t", 5))
    await asyncio.sleep(0)  # the write is handed to the writer thread
    task.cancel()
    await p.commit("g", "u", 1)  # the writer is FIFO: the first write is done too
    assert task.cancelled()
    assert p.all() == [("g", "t", 5), ("g", "u", 1)]
    await p.close()
    again = Positions(tmp_path / "pos.sqlite")
    await again.open()
    assert again.all() == [("g", "t", 5), ("g", "u", 1)]
    await again.close()
