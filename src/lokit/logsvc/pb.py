"""Protobuf codecs for `log.v1.Log`, wire-compatible with proglog's `.proto`.

Each codec turns one method's protobuf messages into the service's values
(`messages`) and back, on both sides: the server decodes requests and encodes
responses, a client the other way round. A request that does not parse is an
INVALID_ARGUMENT naming the method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.message import DecodeError

from lokit.codec import Codec
from lokit.errors import Error, InvalidArgument, Unknown
from lokit.logsvc.messages import (
    Appended,
    CommitPositionRequest,
    ConsumeBatchRequest,
    ConsumeRequest,
    ConsumerPosition,
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
    TopicInfo,
)
from lokit.proto import log_pb2 as pb

GRPC_SERVICE = "log.v1.Log"


class PbCodec:
    """One method's codec: protobuf bytes <-> the service's request and response values."""

    __slots__ = ("_from_req", "_from_resp", "_name", "_req", "_resp", "_to_req", "_to_resp")

    def __init__(
        self,
        name: str,
        req: Any,
        resp: Any,
        to_req: Callable[[Any], Any],
        from_req: Callable[[Any], Any],
        to_resp: Callable[[Any], Any],
        from_resp: Callable[[Any], Any],
    ) -> None:
        self._name = name
        self._req = req.FromString
        self._resp = resp.FromString
        self._to_req = to_req  # protobuf request -> value
        self._from_req = from_req  # value -> protobuf request
        self._to_resp = to_resp  # protobuf response -> value
        self._from_resp = from_resp  # value -> protobuf response

    def decode_request(self, data: bytes) -> Any:
        try:
            msg = self._req(data)
        except DecodeError as e:
            raise InvalidArgument(f"malformed {self._name} request: {e}") from None
        return self._to_req(msg)

    def encode_request(self, request: Any) -> bytes:
        try:
            data: bytes = self._from_req(request).SerializeToString()
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"invalid {self._name} request: {e}") from None
        return data

    def decode_response(self, data: bytes) -> Any:
        try:
            msg = self._resp(data)
        except DecodeError as e:
            raise Unknown(f"undecodable {self._name} response: {e}") from None
        return self._to_resp(msg)

    def encode_response(self, response: Any) -> bytes:
        data: bytes = self._from_resp(response).SerializeToString()
        return data

    def encode_error(self, error: Error) -> bytes | None:
        return None  # every error is a real gRPC status


# --- message conversions -----------------------------------------------------------


def _produce_req(m: Any) -> ProduceRequest:
    return ProduceRequest(m.record.value, m.topic)


def _produce_req_pb(r: ProduceRequest) -> Any:
    return pb.ProduceRequest(record=pb.Record(value=r.value), topic=r.topic)


def _offset(m: Any) -> int:
    return int(m.offset)


def _offset_pb(offset: int) -> Any:
    return pb.ProduceResponse(offset=offset)


def _consume_req(m: Any) -> ConsumeRequest:
    return ConsumeRequest(m.offset, m.topic)


def _consume_req_pb(r: ConsumeRequest) -> Any:
    return pb.ConsumeRequest(offset=r.offset, topic=r.topic)


def _record(m: Any) -> Record:
    return Record(m.record.value, m.record.offset)


def _record_pb(r: Record) -> Any:
    return pb.ConsumeResponse(record=pb.Record(value=r.value, offset=r.offset))


def _servers_req(m: Any) -> GetServersRequest:
    return GetServersRequest()


def _servers_req_pb(r: GetServersRequest) -> Any:
    return pb.GetServersRequest()


def _servers(m: Any) -> list[Server]:
    return [Server(s.id, s.rpc_addr, s.is_leader) for s in m.servers]


def _servers_pb(servers: list[Server]) -> Any:
    return pb.GetServersResponse(
        servers=[pb.Server(id=s.id, rpc_addr=s.rpc_addr, is_leader=s.is_leader) for s in servers]
    )


def _batch_req(m: Any) -> ProduceBatchRequest:
    return ProduceBatchRequest(list(m.values), m.topic)


def _batch_req_pb(r: ProduceBatchRequest) -> Any:
    return pb.ProduceBatchRequest(topic=r.topic, values=r.values)


def _appended(m: Any) -> Appended:
    return Appended(m.first_offset, m.count)


def _appended_pb(a: Appended) -> Any:
    return pb.ProduceBatchResponse(first_offset=a.first_offset, count=a.count)


def _read_req(m: Any) -> ConsumeBatchRequest:
    return ConsumeBatchRequest(
        m.offset, m.topic, m.max_records, m.max_bytes, m.stop_at_end, m.max_wait_ms
    )


def _read_req_pb(r: ConsumeBatchRequest) -> Any:
    return pb.ConsumeBatchRequest(
        topic=r.topic,
        offset=r.offset,
        max_records=r.max_records,
        max_bytes=r.max_bytes,
        stop_at_end=r.stop_at_end,
        max_wait_ms=r.max_wait_ms,
    )


def _record_batch(m: Any) -> RecordBatch:
    return RecordBatch(m.first_offset, list(m.values), m.end_offset)


def _record_batch_pb(b: RecordBatch) -> Any:
    return pb.RecordBatch(first_offset=b.first_offset, values=b.values, end_offset=b.end_offset)


def _commit_req(m: Any) -> CommitPositionRequest:
    return CommitPositionRequest(m.consumer, m.offset, m.topic)


def _commit_req_pb(r: CommitPositionRequest) -> Any:
    return pb.CommitPositionRequest(consumer=r.consumer, topic=r.topic, offset=r.offset)


def _none(m: Any) -> None:
    return None


def _committed_pb(_: None) -> Any:
    return pb.CommitPositionResponse()


def _fetch_req(m: Any) -> FetchPositionRequest:
    return FetchPositionRequest(m.consumer, m.topic)


def _fetch_req_pb(r: FetchPositionRequest) -> Any:
    return pb.FetchPositionRequest(consumer=r.consumer, topic=r.topic)


def _position(m: Any) -> Position:
    return Position(m.offset, m.found)


def _position_pb(p: Position) -> Any:
    return pb.FetchPositionResponse(offset=p.offset, found=p.found)


def _topics_req(m: Any) -> ListTopicsRequest:
    return ListTopicsRequest()


def _topics_req_pb(r: ListTopicsRequest) -> Any:
    return pb.ListTopicsRequest()


def _info(m: Any) -> LogInfo:
    return LogInfo(
        [TopicInfo(t.name, t.lowest_offset, t.next_offset, t.size_bytes) for t in m.topics],
        [ConsumerPosition(p.consumer, p.topic, p.offset) for p in m.positions],
    )


def _info_pb(info: LogInfo) -> Any:
    return pb.ListTopicsResponse(
        topics=[
            pb.TopicInfo(
                name=t.name,
                lowest_offset=t.lowest_offset,
                next_offset=t.next_offset,
                size_bytes=t.size_bytes,
            )
            for t in info.topics
        ],
        positions=[
            pb.ConsumerPosition(consumer=p.consumer, topic=p.topic, offset=p.offset)
            for p in info.positions
        ],
    )


_PRODUCE = (
    pb.ProduceRequest,
    pb.ProduceResponse,
    _produce_req,
    _produce_req_pb,
    _offset,
    _offset_pb,
)
_CONSUME = (
    pb.ConsumeRequest,
    pb.ConsumeResponse,
    _consume_req,
    _consume_req_pb,
    _record,
    _record_pb,
)
_BATCH = (
    pb.ProduceBatchRequest,
    pb.ProduceBatchResponse,
    _batch_req,
    _batch_req_pb,
    _appended,
    _appended_pb,
)
_READ = (
    pb.ConsumeBatchRequest,
    pb.RecordBatch,
    _read_req,
    _read_req_pb,
    _record_batch,
    _record_batch_pb,
)

# RPC method name -> (request message, response message, and the four conversions).
MESSAGES: dict[str, tuple[Any, ...]] = {
    "Produce": _PRODUCE,
    "ProduceStream": _PRODUCE,
    "Consume": _CONSUME,
    "ConsumeStream": _CONSUME,
    "GetServers": (
        pb.GetServersRequest,
        pb.GetServersResponse,
        _servers_req,
        _servers_req_pb,
        _servers,
        _servers_pb,
    ),
    "ProduceBatch": _BATCH,
    "ProduceBatchStream": _BATCH,
    "ConsumeBatch": _READ,
    "ConsumeBatchStream": _READ,
    "CommitPosition": (
        pb.CommitPositionRequest,
        pb.CommitPositionResponse,
        _commit_req,
        _commit_req_pb,
        _none,
        _committed_pb,
    ),
    "FetchPosition": (
        pb.FetchPositionRequest,
        pb.FetchPositionResponse,
        _fetch_req,
        _fetch_req_pb,
        _position,
        _position_pb,
    ),
    "ListTopics": (
        pb.ListTopicsRequest,
        pb.ListTopicsResponse,
        _topics_req,
        _topics_req_pb,
        _info,
        _info_pb,
    ),
}


def codec(name: str) -> PbCodec:
    """The protobuf codec of one `log.v1.Log` method."""
    if name not in MESSAGES:
        raise ValueError(f"log.v1.Log has no method {name!r}")
    return PbCodec(name, *MESSAGES[name])


def pb_codecs(names: list[str] | None = None) -> Mapping[str, Codec]:
    """The codec of every (or each named) `log.v1.Log` method, by RPC method name."""
    return {n: codec(n) for n in (names or list(MESSAGES))}
