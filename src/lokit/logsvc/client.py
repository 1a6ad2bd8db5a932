"""A typed Python client for `log.v1.Log` over lokit's clients (CLI, tests, benchmarks).

Unary calls get `timeout` seconds each; streams run until they end or the caller
stops iterating (which cancels the call). `produce` sends each record as one message
on a ProduceStream the client keeps open (`producer.StreamProducer`: concurrent
produces pipeline on it; a produce is never resent). Where the log also listens for
HTTP on the Unix socket beside its gRPC one (`run/log.http.sock` beside
`run/log.grpc.sock`, the one-box naming), that stream is `POST /produce-stream`
over HTTP, lokit's fastest local protocol (`lokit.dialing`): a record on it costs
about a third of one on gRPC's stream; `consume` (one record) goes there too, as
`GET /topics/{topic}/records/{offset}`; everything else goes over gRPC. On a
plaintext Unix socket the HTTP listener knows the caller's Unix user
(SO_PEERCRED) where gRPC knows none, so under an ACL those two calls are decided
for that user while the gRPC ones need mTLS to name a caller. Errors are
the server's own classes (`OffsetOutOfRangeError`, `RecordTooLargeError`, ...) or
`Unavailable` when nothing answers at the address.

An address naming many servers (`A,B`, `dir:PATH`, `srv:NAME`, `serf:SERVICE`)
goes through `lokit.connect`: each call goes to one live server, chosen by
`lb`, and an unreachable one is retried on another (produces are never
retried: they are not idempotent). Every server then needs the same log,
which a replicated log gives; independent single-node logs would each hold
part of the records.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from lokit.client import Connection, connect, stream_items
from lokit.context import reset, with_deadline
from lokit.dialing import http_beside
from lokit.logsvc import errors  # noqa: F401 -- registers the server's error classes
from lokit.logsvc.contract import log_contract
from lokit.logsvc.defaults import DEFAULT_GRPC_ADDR, DEFAULT_TOPIC
from lokit.logsvc.http import RECORD_AT
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
from lokit.logsvc.producer import StreamProducer
from lokit.routes import GrpcRoute
from lokit.sd import is_discovery
from lokit.security.tls import ClientTLS
from lokit.transport.grpc.client import GrpcClient

if TYPE_CHECKING:
    from lokit.transport.http.client import HttpClient


class LogClient:
    """Calls the log server at `addr` (`unix:PATH`, `HOST:PORT`, or a discovery address).

    `tls` (a `ClientTLS`) for a TLS or mTLS server; None takes it from the
    LOKIT_TLS_* variables when one is set, else plaintext (as `lokit.connect`).
    `local_http=False` keeps single produces on gRPC's ProduceStream even where
    the log's HTTP socket is beside `addr`.
    """

    def __init__(
        self,
        addr: str = DEFAULT_GRPC_ADDR,
        *,
        timeout: float | None = 10.0,
        tls: ClientTLS | None = None,
        lb: str = "p2c",
        local_http: bool = True,
    ) -> None:
        self.addr = addr
        self.timeout = timeout
        spec = log_contract()
        self._routes: dict[str, GrpcRoute] = {r.method.name: r for r in spec.grpc}
        self._many: Connection[Any] | None = None
        self._producer: StreamProducer | None = None
        self._http: HttpClient | None = None
        tls = tls or ClientTLS.from_env()
        if is_discovery(addr):
            self._many = connect(spec, grpc=addr, lb=lb, tls=tls)
            return
        self.grpc = GrpcClient(addr, name=spec.name, tls=tls)
        beside = http_beside(addr) if local_http else None
        if beside is None:
            self._producer = StreamProducer(self.produce_stream, str(self.grpc.address))
            return
        from lokit.transport.http.client import HttpClient

        http = self._http = HttpClient(beside, tls=tls)
        route = next(r for r in spec.http if r.method.name == "ProduceStream")
        self._record_at = next(r for r in spec.http if r.codec is RECORD_AT)
        self._producer = StreamProducer(
            lambda rs: http.bidi(route, rs), str(http.address), batches=True
        )

    def _route(self, name: str) -> tuple[str, Any]:
        route = self._routes[name]
        return route.path, route.codec

    async def _unary(self, name: str, request: Any) -> Any:
        if self._many is not None:
            token = with_deadline(self.timeout) if self.timeout is not None else None
            try:
                return await self._many.endpoints[name](request)
            finally:
                if token is not None:
                    reset(token)
        route = self._routes[name]
        return await self.grpc.unary(route.path, request, route.codec, timeout=self.timeout)

    def _stream(self, name: str, request: Any) -> AsyncIterator[Any]:
        """A response stream of `name` (server stream or bidi), with no deadline."""
        if self._many is not None:
            return stream_items(self._many.endpoints[name], request)
        path, c = self._route(name)
        if self._routes[name].method.kind.streams_requests:
            return self.grpc.bidi(path, request, c)
        return self.grpc.server_stream(path, request, c)

    async def produce(self, value: bytes, topic: str = "") -> int:
        """Append one record; its offset once acknowledged (over the open ProduceStream;
        a unary Produce through a discovery address)."""
        if self._producer is not None:
            return await self._producer.produce(value, topic, self.timeout)
        return await self.produce_unary(value, topic)

    async def produce_unary(self, value: bytes, topic: str = "") -> int:
        """Append one record with proglog's unary Produce; its offset."""
        offset: int = await self._unary("Produce", ProduceRequest(value, topic))
        return offset

    async def consume(self, offset: int, topic: str = "") -> Record:
        """The record at `offset` (OffsetOutOfRangeError when there is none); over the
        HTTP socket beside `addr` when there is one, as single produces."""
        record: Record
        if self._http is not None:
            request = ConsumeRequest(offset, topic or DEFAULT_TOPIC)
            record = await self._http.unary(self._record_at, request, timeout=self.timeout)
        else:
            record = await self._unary("Consume", ConsumeRequest(offset, topic))
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
        return self._stream("ConsumeStream", ConsumeRequest(offset, topic))

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
        request = ConsumeBatchRequest(offset, topic, max_records, max_bytes, stop_at_end)
        return self._stream("ConsumeBatchStream", request)

    def produce_stream(self, requests: AsyncIterable[ProduceRequest]) -> AsyncIterator[int]:
        """proglog's ProduceStream: one offset per request, in order."""
        return self._stream("ProduceStream", requests)

    def produce_batch_stream(
        self, requests: AsyncIterable[ProduceBatchRequest]
    ) -> AsyncIterator[Appended]:
        """One Appended per batch, in order."""
        return self._stream("ProduceBatchStream", requests)

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
        """Close the produce stream (waiting briefly for its acks), then the channel."""
        if self._producer is not None:
            await self._producer.close()
        if self._http is not None:
            await self._http.close()
        if self._many is not None:
            await self._many.close()
        else:
            await self.grpc.close()
