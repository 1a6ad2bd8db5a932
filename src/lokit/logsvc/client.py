"""A typed Python client for `log.v1.Log` over lokit's gRPC client (CLI, tests, benchmarks).

Unary calls get `timeout` seconds each; streams run until they end or the caller
stops iterating (which cancels the call). Errors are the server's own classes
(`OffsetOutOfRangeError`, `RecordTooLargeError`, ...) or `Unavailable` when
nothing answers at the address.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

from lokit.logsvc import errors  # noqa: F401 -- registers the server's error classes
from lokit.logsvc.contract import log_contract
from lokit.logsvc.defaults import DEFAULT_GRPC_ADDR
from lokit.logsvc.messages import (
    Appended,
    CommitPositionRequest,
    ConsumeBatchRequest,
    ConsumeRequest,
    FetchPositionRequest,
    GetServersRequest,
    ListTopicsRequest,
    LogInfo,
    Position,
    ProduceBatchRequest,
    ProduceRequest,
    Record,
    RecordBatch,
    Server,
)
from lokit.routes import GrpcRoute
from lokit.security.tls import ClientTLS
from lokit.transport.grpc.client import GrpcClient


class LogClient:
    """Calls one log server at `addr` (`unix:PATH` or `HOST:PORT`).

    `tls` (a `ClientTLS`) for a TLS or mTLS server; None takes it from the
    LOKIT_TLS_* variables when one is set, else plaintext (as `lokit.connect`).
    """

    def __init__(
        self,
        addr: str = DEFAULT_GRPC_ADDR,
        *,
        timeout: float | None = 10.0,
        tls: ClientTLS | None = None,
    ) -> None:
        self.addr = addr
        self.timeout = timeout
        spec = log_contract()
        self.grpc = GrpcClient(addr, name=spec.name, tls=tls or ClientTLS.from_env())
        self._routes: dict[str, GrpcRoute] = {r.method.name: r for r in spec.grpc}

    def _route(self, name: str) -> tuple[str, Any]:
        route = self._routes[name]
        return route.path, route.codec

    async def _unary(self, name: str, request: Any) -> Any:
        route = self._routes[name]
        return await self.grpc.unary(route.path, request, route.codec, timeout=self.timeout)

    async def produce(self, value: bytes, topic: str = "") -> int:
        """Append one record; its offset."""
        offset: int = await self._unary("Produce", ProduceRequest(value, topic))
        return offset

    async def consume(self, offset: int, topic: str = "") -> Record:
        """The record at `offset` (OffsetOutOfRangeError when there is none)."""
        record: Record = await self._unary("Consume", ConsumeRequest(offset, topic))
        return record

    async def produce_batch(self, values: Sequence[bytes], topic: str = "") -> Appended:
        """Append every value with consecutive offsets, or none."""
        appended: Appended = await self._unary(
            "ProduceBatch", ProduceBatchRequest(list(values), topic)
        )
        return appended

    async def consume_batch(
        self,
        offset: int,
        topic: str = "",
        *,
        max_records: int = 0,
        max_bytes: int = 0,
        max_wait_ms: int = 0,
    ) -> RecordBatch:
        """Up to max_records / max_bytes records from `offset` (empty at the end)."""
        request = ConsumeBatchRequest(offset, topic, max_records, max_bytes, False, max_wait_ms)
        batch: RecordBatch = await self._unary("ConsumeBatch", request)
        return batch

    def consume_stream(self, offset: int, topic: str = "") -> AsyncIterator[Record]:
        """proglog's ConsumeStream: one record per message, tailing forever."""
        path, c = self._route("ConsumeStream")
        return self.grpc.server_stream(path, ConsumeRequest(offset, topic), c)

    def consume_batches(
        self,
        offset: int,
        topic: str = "",
        *,
        max_records: int = 0,
        max_bytes: int = 0,
        stop_at_end: bool = False,
    ) -> AsyncIterator[RecordBatch]:
        """Batches from `offset` on; tails unless stop_at_end."""
        path, c = self._route("ConsumeBatchStream")
        request = ConsumeBatchRequest(offset, topic, max_records, max_bytes, stop_at_end)
        return self.grpc.server_stream(path, request, c)

    def produce_stream(self, requests: AsyncIterable[ProduceRequest]) -> AsyncIterator[int]:
        """proglog's ProduceStream: one offset per request, in order."""
        path, c = self._route("ProduceStream")
        return self.grpc.bidi(path, requests, c)

    def produce_batch_stream(
        self, requests: AsyncIterable[ProduceBatchRequest]
    ) -> AsyncIterator[Appended]:
        """One Appended per batch, in order."""
        path, c = self._route("ProduceBatchStream")
        return self.grpc.bidi(path, requests, c)

    async def commit_position(self, consumer: str, offset: int, topic: str = "") -> None:
        """Store `offset` as the next offset `consumer` reads from `topic`."""
        await self._unary("CommitPosition", CommitPositionRequest(consumer, offset, topic))

    async def fetch_position(self, consumer: str, topic: str = "") -> Position:
        """The committed next offset of `consumer` for `topic` (found=False when none)."""
        position: Position = await self._unary(
            "FetchPosition", FetchPositionRequest(consumer, topic)
        )
        return position

    async def list_topics(self) -> LogInfo:
        """Every topic's range and size, and every consumer position."""
        info: LogInfo = await self._unary("ListTopics", ListTopicsRequest())
        return info

    async def get_servers(self) -> list[Server]:
        """proglog's GetServers."""
        servers: list[Server] = await self._unary("GetServers", GetServersRequest())
        return servers

    async def close(self) -> None:
        await self.grpc.close()
