"""Malformed and invalid gRPC requests get a status with one clear sentence."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from lokit.errors import InvalidArgument
from lokit.logsvc.client import LogClient
from lokit.logsvc.errors import InvalidTopicError, OffsetOutOfRangeError
from tests.logsvc.conftest import InProcess


async def raw_call(server: InProcess, method: str, data: bytes) -> grpc.aio.AioRpcError:
    path = Path(server.grpc.removeprefix("unix:")).resolve()
    async with grpc.aio.insecure_channel(f"unix://{path}") as channel:
        call = channel.unary_unary(f"/log.v1.Log/{method}")
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call(data)
    return e.value


@pytest.mark.parametrize("method", ["Produce", "Consume", "ProduceBatch", "ConsumeBatch"])
async def test_undecodable_protobuf_is_invalid_argument(server: InProcess, method: str) -> None:
    err = await raw_call(server, method, b"\xff\xff\xff\xff")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"malformed {method} request")


async def test_invalid_topic_is_invalid_argument(client: LogClient, server: InProcess) -> None:
    for topic in ("../escape", ".hidden", "a/b", "x" * 300):
        with pytest.raises(InvalidTopicError, match="invalid topic name"):
            await client.produce(b"v", topic=topic)
    with pytest.raises(InvalidTopicError):
        await client.consume(0, topic=".hidden")
    assert not (server.data.parent / "escape").exists()


async def test_record_too_large_is_invalid_argument(client: LogClient) -> None:
    with pytest.raises(InvalidArgument, match="over the limit"):
        await client.produce(b"x" * (1024 * 1024 + 1))


async def test_reading_a_missing_topic_creates_nothing(
    client: LogClient, server: InProcess
) -> None:
    with pytest.raises(OffsetOutOfRangeError, match="offset out of range: 0"):
        await client.consume(0, topic="ghost")
    assert not (server.data / "ghost").exists()


async def test_consume_batch_beyond_the_end_is_out_of_range(client: LogClient) -> None:
    await client.produce(b"one")
    assert (await client.consume_batch(1)).values == []  # the end itself: nothing yet
    with pytest.raises(OffsetOutOfRangeError, match="offset out of range: 5"):
        await client.consume_batch(5)
