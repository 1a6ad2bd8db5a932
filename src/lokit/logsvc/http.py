"""The log service's HTTP JSON routes: proglog's chapter-1 API plus resource-style routes.

Values travel as base64 strings, as Go's `[]byte` does in proglog's JSON.

- `POST /` `{"record":{"value":B64}}` -> `{"offset":N}`; `GET /` `{"offset":N}` (a JSON
  body on a GET, as proglog) -> `{"record":{"value":B64,"offset":N}}`, 404 past the end
- `GET /topics`: topics and consumer positions
- `POST /topics/{topic}/records` `{"values":[B64,...]}` (all or nothing)
  -> `{"first_offset":N,"count":K}`
- `GET /topics/{topic}/records?from=N&max_records=&max_bytes=&wait_ms=` -> a batch
- `GET /topics/{topic}/records/{offset}` -> one record, 404 past the end
- `GET /topics/{topic}/stream?from=N&follow=true` -> NDJSON `{"offset":N,"value":B64}` lines
- `PUT` / `GET /consumers/{consumer}/positions/{topic}`: commit / fetch a position
- `GET /servers`: proglog's GetServers
- `POST /produce-stream`: proglog's ProduceStream as NDJSON both ways, one
  `{"value":B64,"topic":T}` line per record in, one `{"offset":N}` line per record
  out, in order, while the request is still being sent

Bad JSON, bad base64 or a bad query parameter is a 400 with one sentence. The
routes are for curl and browsers, except two: `LogClient` sends its single produces
to `/produce-stream` and reads single records from `/topics/{topic}/records/{offset}`
when it reaches the log's HTTP socket (lokit's fastest local protocol, see
`logsvc.client`), so their codecs have both halves; the others have no client half.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import msgspec

from lokit.codec import malformed
from lokit.endpoint import Method
from lokit.errors import Error, InvalidArgument, Unimplemented
from lokit.logsvc import messages
from lokit.routes import HttpInput, HttpRoute

Offset = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

# --- JSON shapes ---------------------------------------------------------------------


class _Value(msgspec.Struct):
    value: bytes
    offset: Offset = 0


class _ProduceIn(msgspec.Struct):
    record: _Value


class _ConsumeIn(msgspec.Struct):
    offset: Offset


class _RecordOut(msgspec.Struct):
    record: _Value


class _BatchIn(msgspec.Struct):
    values: list[bytes]


class _CommitIn(msgspec.Struct):
    offset: Offset


class _Empty(msgspec.Struct):
    pass


class _Line(msgspec.Struct):
    offset: int
    value: bytes


class _Servers(msgspec.Struct):
    servers: list[messages.Server]


class _StreamRecord(msgspec.Struct, omit_defaults=True):
    value: bytes
    topic: str = ""


class _Ack(msgspec.Struct):
    offset: int


_encode = msgspec.json.Encoder().encode


def _decoder(tp: Any) -> Callable[[bytes], Any]:
    decode = msgspec.json.Decoder(tp).decode

    def run(data: bytes) -> Any:
        if not data.strip():
            raise InvalidArgument("the request body is empty; it must be a JSON object")
        try:
            return decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise malformed(e) from None

    return run


_NO_CLIENT = "the log's HTTP routes are for curl and browsers; lokit clients call the log over gRPC"


class RouteCodec:
    """One route's server-side codec: the request body in, the answer out as JSON."""

    __slots__ = ("decode_request", "encode_response")

    def __init__(
        self, decode_request: Callable[[bytes], Any], encode_response: Callable[[Any], bytes]
    ) -> None:
        self.decode_request = decode_request
        self.encode_response = encode_response

    def encode_request(self, request: Any) -> bytes:
        raise Unimplemented(_NO_CLIENT)

    def decode_response(self, data: bytes) -> Any:
        raise Unimplemented(_NO_CLIENT)

    def encode_error(self, error: Error) -> bytes | None:
        return None


def _no_body(data: bytes) -> Any:
    return None


# --- chapter 1: POST / and GET / ---------------------------------------------------


_produce_in = _decoder(_ProduceIn)
_consume_in = _decoder(_ConsumeIn)


def _ch1_produce(data: bytes) -> messages.ProduceRequest:
    return messages.ProduceRequest(_produce_in(data).record.value)


def _ch1_produce_out(offset: int) -> bytes:
    return b'{"offset":%d}\n' % offset


def _ch1_consume(data: bytes) -> messages.ConsumeRequest:
    return messages.ConsumeRequest(_consume_in(data).offset)


def _record_json(r: messages.Record) -> bytes:
    return _encode(_RecordOut(_Value(r.value, r.offset))) + b"\n"


CH1_PRODUCE = RouteCodec(_ch1_produce, _ch1_produce_out)


# --- POST /produce-stream: NDJSON both ways, both halves --------------------------


class ProduceStreamCodec:
    """ProduceStream's NDJSON lines: a record per request line, an offset per answer line."""

    __slots__ = ()

    _record_in = staticmethod(_decoder(_StreamRecord))
    _ack_in = staticmethod(msgspec.json.Decoder(_Ack).decode)

    def decode_request(self, data: bytes) -> messages.ProduceRequest:
        r = self._record_in(data)
        return messages.ProduceRequest(r.value, r.topic)

    def encode_response(self, offset: int) -> bytes:
        return b'{"offset":%d}' % offset

    def encode_request(
        self, request: messages.ProduceRequest | list[messages.ProduceRequest]
    ) -> bytes:
        """One record's line, or a list's lines (each record still its own message)."""
        if isinstance(request, list):
            return b"\n".join([_encode(_StreamRecord(r.value, r.topic)) for r in request])
        return _encode(_StreamRecord(request.value, request.topic))

    def decode_response(self, data: bytes) -> int:
        try:
            return self._ack_in(data).offset
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise malformed(e) from None

    def encode_error(self, error: Error) -> bytes | None:
        return None


PRODUCE_STREAM = ProduceStreamCodec()


class RecordAtCodec(RouteCodec):
    """`GET /topics/{topic}/records/{offset}`, both halves: `LogClient.consume` reads
    single records here over the HTTP socket (the path carries the request)."""

    __slots__ = ()

    _record_in = staticmethod(msgspec.json.Decoder(_RecordOut).decode)

    def __init__(self) -> None:
        super().__init__(_no_body, _record_json)

    def encode_request(self, request: Any) -> bytes:
        return b""

    def decode_response(self, data: bytes) -> messages.Record:
        try:
            r = self._record_in(data).record
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise malformed(e) from None
        return messages.Record(r.value, r.offset)


RECORD_AT = RecordAtCodec()
CH1_CONSUME = RouteCodec(_ch1_consume, _record_json)


# --- query and path parameters --------------------------------------------------------


def _nonneg(text: str, what: str) -> int:
    """`text` as an integer >= 0 (ASCII digits only: "²".isdigit() is True)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise InvalidArgument(f"{what} must be a non-negative integer, not {text!r}")
    return int(text)


def _int(query: Mapping[str, str], name: str, default: int = 0) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    return _nonneg(text, f"query parameter {name}")


def _bool(query: Mapping[str, str], name: str, default: bool) -> bool:
    text = query.get(name)
    if text is None or text == "":
        return default
    t = text.lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"query parameter {name} must be true or false, not {text!r}")


_batch_in = _decoder(_BatchIn)
_commit_in = _decoder(_CommitIn)


def _produce_batch(inp: HttpInput) -> messages.ProduceBatchRequest:
    return messages.ProduceBatchRequest(_batch_in(inp.body).values, inp.path_params["topic"])


def _consume_one(inp: HttpInput) -> messages.ConsumeRequest:
    offset = _nonneg(inp.path_params["offset"], "the offset in the path")
    return messages.ConsumeRequest(offset, inp.path_params["topic"])


def _batch_request(
    inp: HttpInput, *, stop_at_end: bool, max_wait_ms: int
) -> messages.ConsumeBatchRequest:
    q = inp.query
    return messages.ConsumeBatchRequest(
        offset=_int(q, "from"),
        topic=inp.path_params["topic"],
        max_records=_int(q, "max_records"),
        max_bytes=_int(q, "max_bytes"),
        stop_at_end=stop_at_end,
        max_wait_ms=max_wait_ms,
    )


def _consume_batch(inp: HttpInput) -> messages.ConsumeBatchRequest:
    return _batch_request(inp, stop_at_end=False, max_wait_ms=_int(inp.query, "wait_ms"))


def _stream(inp: HttpInput) -> messages.ConsumeBatchRequest:
    return _batch_request(inp, stop_at_end=not _bool(inp.query, "follow", True), max_wait_ms=0)


def _stream_lines(b: messages.RecordBatch) -> bytes:
    """One NDJSON line per record (the app adds the last newline)."""
    first = b.first_offset
    return b"\n".join([_encode(_Line(first + i, v)) for i, v in enumerate(b.values)])


def _commit(inp: HttpInput) -> messages.CommitPositionRequest:
    p = inp.path_params
    return messages.CommitPositionRequest(p["consumer"], _commit_in(inp.body).offset, p["topic"])


def _fetch(inp: HttpInput) -> messages.FetchPositionRequest:
    p = inp.path_params
    return messages.FetchPositionRequest(p["consumer"], p["topic"])


def _servers_out(servers: list[messages.Server]) -> bytes:
    return _encode(_Servers(servers))


def _empty_out(_: object) -> bytes:
    return b"{}"


def _list_topics(inp: HttpInput) -> messages.ListTopicsRequest:
    return messages.ListTopicsRequest()


def _get_servers(inp: HttpInput) -> messages.GetServersRequest:
    return messages.GetServersRequest()


def log_http_routes(methods: Mapping[str, Method]) -> list[HttpRoute]:
    """The HTTP routes over the service's endpoints (by RPC method name)."""
    m = methods
    return [
        HttpRoute("POST", "/", m["Produce"], CH1_PRODUCE),
        HttpRoute("GET", "/", m["Consume"], CH1_CONSUME),
        HttpRoute("GET", "/topics", m["ListTopics"], RouteCodec(_no_body, _encode), _list_topics),
        HttpRoute(
            "POST",
            "/topics/{topic}/records",
            m["ProduceBatch"],
            RouteCodec(_no_body, _encode),
            _produce_batch,
        ),
        HttpRoute(
            "GET",
            "/topics/{topic}/records",
            m["ConsumeBatch"],
            RouteCodec(_no_body, _encode),
            _consume_batch,
        ),
        HttpRoute(
            "GET",
            "/topics/{topic}/records/{offset}",
            m["Consume"],
            RECORD_AT,
            _consume_one,
        ),
        HttpRoute(
            "GET",
            "/topics/{topic}/stream",
            m["ConsumeBatchStream"],
            RouteCodec(_no_body, _stream_lines),
            _stream,
        ),
        HttpRoute(
            "PUT",
            "/consumers/{consumer}/positions/{topic}",
            m["CommitPosition"],
            RouteCodec(_no_body, _empty_out),
            _commit,
        ),
        HttpRoute(
            "GET",
            "/consumers/{consumer}/positions/{topic}",
            m["FetchPosition"],
            RouteCodec(_no_body, _encode),
            _fetch,
        ),
        HttpRoute(
            "GET", "/servers", m["GetServers"], RouteCodec(_no_body, _servers_out), _get_servers
        ),
        HttpRoute("POST", "/produce-stream", m["ProduceStream"], PRODUCE_STREAM),
    ]
