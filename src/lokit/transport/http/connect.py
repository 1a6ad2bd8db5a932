"""The Connect protocol (connectrpc.com/docs/protocol) next to a service's plain HTTP routes.

Every method a service serves on gRPC is also served at `POST /<package.Service>/<Method>`
(its gRPC path), so Connect clients in any language (connect-go, connect-es,
`buf curl --protocol connect`) call it unchanged:

- unary: `application/json` or `application/proto` bodies; the answer has the
  request's content type; an error is a non-200 status from Connect's table
  (gRPC's code to HTTP mapping, `errors.HTTP_STATUS`) with the JSON body
  `{"code": "invalid_argument", "message": ...}` and lokit's `X-Lokit-Error`
  name, so a lokit client could raise the same exception;
- streams: `application/connect+json` / `+proto`; the body is enveloped
  messages (1 flag byte, 4-byte big-endian length), the answer is always 200
  with enveloped messages and an end-of-stream message (flag 0x02) holding
  `{"error": {...}, "metadata": {...}}`. Over HTTP/1.1 a request stream is read
  whole before the answer starts (half duplex, as Connect allows);
- `Connect-Timeout-Ms` is the request's deadline (with lokit's own
  `x-request-timeout-ms`, the earlier wins); `Connect-Protocol-Version` is
  accepted when missing (as connect-go does by default) and must be `1` when
  given; compressed requests are answered `unimplemented`.

Codecs: `application/proto` uses the method's gRPC codec when it speaks
protobuf (go-kit's `PbCodec`, the log's codecs, the derived `ProtoCodec`);
a derived method whose gRPC side is still JSON-in-gRPC gets a `ProtoCodec`
from its schema when `lokit.protobuf` has one, else `application/proto` is
refused with 415. `application/json` is the protobuf JSON mapping: for
explicit-codec services it goes through their generated message classes
(`google.protobuf.json_format`: camelCase names out, both names in, int64 as
strings); for derived services it is lokit's msgspec JSON (the plain route's
codec) decoded leniently: camelCase names and int64-as-string are accepted,
and what it writes (original field names, numbers) is what every protobuf
JSON parser accepts. That keeps a Connect call as cheap as the plain route:
measured on a Greeter call, `json_format` over the derived message classes
costs 26 µs a request and its answer, msgspec 1 µs.

Written here, not taken from a library: no maintained Python Connect server
runs inside a raw ASGI app with lokit's context, limits and observer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import orjson

from lokit import context, errors
from lokit.codec import UNDECODABLE, Codec, JsonCodec, malformed
from lokit.observability import propagation
from lokit.observability.observer import Observer
from lokit.routes import ServiceDef
from lokit.transport.deadline import within
from lokit.transport.failures import stopping
from lokit.transport.http.exchange import (
    RID,
    ClientGone,
    Exchange,
    client_error,
)
from lokit.transport.http.wire import ERROR_HEADER
from lokit.transport.limits import BodyPacer, BodyTooLarge
from lokit.transport.peer import NO_PEER, PEER_KEY
from lokit.types import Receive, Scope, Send

__all__ = [
    "CONNECT_CODES",
    "ConnectHandler",
    "Procedure",
    "connect_error",
    "end_stream",
    "envelope",
    "procedures",
]

# Connect's code names: gRPC's, lower-case, and "canceled" with one l.
CONNECT_CODES: dict[errors.Code, str] = {
    c: ("canceled" if c is errors.Code.CANCELLED else c.name.lower())
    for c in errors.Code
    if c is not errors.Code.OK
}

JSON = "json"
PROTO = "proto"
_UNARY_TYPES = {b"application/json": JSON, b"application/proto": PROTO}
_STREAM_TYPES = {b"application/connect+json": JSON, b"application/connect+proto": PROTO}
_FLAG_COMPRESSED = 0x01
_FLAG_END = 0x02

_K_TYPE = b"content-type"
_K_VERSION = b"connect-protocol-version"
_K_TIMEOUT = b"connect-timeout-ms"
_K_ENCODING = b"content-encoding"
_K_STREAM_ENCODING = b"connect-content-encoding"
_K_LOKIT_TIMEOUT = context.TIMEOUT_HEADER.encode()
_K_CALLER = context.CALLER_HEADER.encode()
_K_TRACE = context.TRACEPARENT_HEADER.encode()
_CT_ERROR = (b"content-type", b"application/json")


class Procedure:
    """One method at its Connect path, with the codecs of both content types."""

    __slots__ = ("codecs", "endpoint", "kind_ok", "name", "path", "streams_in", "streams_out")

    def __init__(
        self, path: str, method: Any, json_codec: Codec, proto_codec: Codec | None
    ) -> None:
        self.path = path
        self.name: str = method.name
        self.endpoint = method.endpoint
        self.streams_in: bool = method.kind.streams_requests
        self.streams_out: bool = method.kind.streams_responses
        self.codecs: dict[str, Codec | None] = {JSON: json_codec, PROTO: proto_codec}


# --- codecs -------------------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


Rename = Callable[[Any], Any]


def _renamer(tp: Any, seen: set[Any] | None = None) -> Rename | None:
    """A function turning camelCase keys of decoded JSON into `tp`'s field names (None: no need).

    Protobuf JSON parsers accept both a field's lowerCamelCase JSON name and its
    original name; msgspec knows one name per field, so camelCase keys are
    renamed before conversion, following the type (map keys are left alone).
    """
    seen = set() if seen is None else seen
    info = msgspec.inspect.type_info(tp)
    return _info_renamer(info, seen)


def _info_renamer(info: Any, seen: set[Any]) -> Rename | None:
    mi = msgspec.inspect
    if isinstance(info, mi.Metadata):
        return _info_renamer(info.type, seen)
    if isinstance(info, mi.UnionType):
        parts = [r for r in (_info_renamer(t, seen) for t in info.types) if r is not None]
        return parts[0] if len(parts) == 1 else None
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        item = _info_renamer(info.item_type, seen)
        if item is None:
            return None
        return lambda v: [item(x) for x in v] if isinstance(v, list) else v
    if isinstance(info, mi.DictType):
        value = _info_renamer(info.value_type, seen)
        if value is None:
            return None
        return lambda v: {k: value(x) for k, x in v.items()} if isinstance(v, dict) else v
    if isinstance(info, mi.StructType | mi.DataclassType):
        if info.cls in seen:
            return None  # a recursive type: its nested levels keep their names
        seen = seen | {info.cls}
        names: dict[str, str] = {}
        inner_of: dict[str, Rename] = {}
        for f in info.fields:
            camel = _camel(f.encode_name)
            if camel != f.encode_name:
                names[camel] = f.encode_name
            inner = _info_renamer(f.type, seen)
            if inner is not None:
                inner_of[f.encode_name] = inner
        if not names and not inner_of:
            return None

        def rename(v: Any) -> Any:
            if not isinstance(v, dict):
                return v
            out: dict[str, Any] = {}
            for k, x in v.items():
                name = names.get(k, k) if isinstance(k, str) else k
                fix = inner_of.get(name)
                out[name] = x if fix is None else fix(x)
            return out

        return rename
    return None


class DerivedJson:
    """Connect JSON for a derived method: lokit's msgspec JSON, read leniently.

    Requests accept camelCase names and numbers written as strings (protobuf
    JSON writes int64 as a string); responses are the plain route's JSON.
    """

    __slots__ = ("_decoder", "_empty", "_out", "_rename", "_type")

    def __init__(self, method: Any) -> None:
        self._out = JsonCodec(method)
        self._type = method.request_type
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            method.request_type, strict=False
        )
        self._rename = None if method.request_type is Any else _renamer(method.request_type)

    def decode_request(self, data: bytes) -> Any:
        if not data.strip():
            data = b"{}"
        try:
            if self._rename is None:
                return self._decoder.decode(data)
            return msgspec.convert(self._rename(orjson.loads(data)), self._type, strict=False)
        except orjson.JSONDecodeError as e:
            raise errors.InvalidArgument(f"malformed JSON: {e}") from None
        except UNDECODABLE as e:
            raise malformed(e) from None

    def encode_request(self, request: Any) -> bytes:
        return self._out.encode_request(request)

    def decode_response(self, data: bytes) -> Any:
        return self._out.decode_response(data)

    def encode_response(self, response: Any) -> bytes:
        return self._out.encode_response(response)

    def encode_error(self, error: errors.Error) -> bytes | None:
        return None


class MessageJson:
    """Connect JSON for an explicit protobuf codec, through the method's message classes.

    JSON <-> message by `json_format` (the protobuf JSON mapping), message <->
    the endpoint's values by the method's own protobuf codec.
    """

    __slots__ = ("_codec", "_request", "_response")

    def __init__(self, codec: Codec, request_cls: Any, response_cls: Any) -> None:
        self._codec = codec
        self._request = request_cls
        self._response = response_cls

    def decode_request(self, data: bytes) -> Any:
        from google.protobuf import json_format

        msg = self._request()
        try:
            json_format.Parse(data or b"{}", msg)
        except json_format.ParseError as e:
            raise errors.InvalidArgument(f"invalid request: {e}") from None
        return self._codec.decode_request(msg.SerializeToString())

    def encode_request(self, request: Any) -> bytes:
        return self._to_json(self._request, self._codec.encode_request(request))

    def decode_response(self, data: bytes) -> Any:
        from google.protobuf import json_format

        msg = self._response()
        json_format.Parse(data, msg, ignore_unknown_fields=True)
        return self._codec.decode_response(msg.SerializeToString())

    def encode_response(self, response: Any) -> bytes:
        return self._to_json(self._response, self._codec.encode_response(response))

    def encode_error(self, error: errors.Error) -> bytes | None:
        reply = self._codec.encode_error(error)
        return None if reply is None else self._to_json(self._response, reply)

    @staticmethod
    def _to_json(cls: Any, data: bytes) -> bytes:
        from google.protobuf import json_format

        return orjson.dumps(json_format.MessageToDict(cls.FromString(data)))


def _schema_tools() -> tuple[Callable[[Any], Any], Any] | None:
    """(`schema_of`, `ProtoCodec`) from `lokit.protobuf`, once it exists."""
    import importlib

    try:  # looked up by name: the package may not be there yet
        protobuf = importlib.import_module("lokit.protobuf")
        return protobuf.schema_of, protobuf.ProtoCodec
    except (ImportError, AttributeError):
        return None


def _message_classes(pool: Any, path: str) -> tuple[Any, Any] | None:
    """The request and response message classes of the gRPC method at `path`, from `pool`."""
    from google.protobuf import message_factory

    service_name, _, method_name = path.strip("/").partition("/")
    try:
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    except KeyError:
        return None
    if method is None:
        return None
    return (
        message_factory.GetMessageClass(method.input_type),
        message_factory.GetMessageClass(method.output_type),
    )


def procedures(service: ServiceDef) -> dict[str, Procedure]:
    """The service's methods at their Connect paths (the paths of its gRPC routes)."""
    from google.protobuf import descriptor_pool

    tools = _schema_tools()
    schema = None
    if tools is not None and service.contract is not None:
        schema = tools[0](service.contract)
    out: dict[str, Procedure] = {}
    for route in service.grpc:
        method = route.method
        grpc_codec = route.codec
        derived = schema is not None or isinstance(grpc_codec, JsonCodec)
        proto: Codec | None
        json_codec: Codec
        if derived:
            json_codec = DerivedJson(method)
            if not isinstance(grpc_codec, JsonCodec):
                proto = grpc_codec
            elif schema is not None and tools is not None:
                proto = tools[1](method, schema)
            else:
                proto = None
        else:
            proto = grpc_codec
            classes = _message_classes(descriptor_pool.Default(), route.path)
            json_codec = (
                DerivedJson(method) if classes is None else MessageJson(grpc_codec, *classes)
            )
        out[route.path] = Procedure(route.path, method, json_codec, proto)
    return out


# --- wire ---------------------------------------------------------------------------------


def envelope(data: bytes, flags: int = 0) -> bytes:
    """One enveloped message: a flag byte, the 4-byte big-endian length, the data."""
    return bytes((flags,)) + len(data).to_bytes(4, "big") + data


def connect_error(err: errors.Error) -> dict[str, Any]:
    """`{"code": ..., "message": ...}`: Connect's JSON form of a lokit error."""
    return {"code": CONNECT_CODES.get(err.code, "unknown"), "message": err.message}


def end_stream(err: errors.Error | None) -> bytes:
    """The end-of-stream message: `{}` after success, else the error and lokit's error name."""
    if err is None:
        return envelope(b"{}", _FLAG_END)
    body = {"error": connect_error(err), "metadata": {ERROR_HEADER: [err.error_name]}}
    return envelope(orjson.dumps(body), _FLAG_END)


def _split(body: bytes, limit: int) -> list[tuple[int, bytes]]:
    """The (flags, data) envelopes of a streaming request body."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(body)
    while i < n:
        if n - i < 5:
            raise errors.InvalidArgument("invalid request: a truncated envelope")
        flags = body[i]
        size = int.from_bytes(body[i + 1 : i + 5], "big")
        if size > limit:
            raise BodyTooLarge.of(limit)
        if n - i - 5 < size:
            raise errors.InvalidArgument("invalid request: a truncated envelope")
        out.append((flags, body[i + 5 : i + 5 + size]))
        i += 5 + size
    return out


# --- serving ------------------------------------------------------------------------------


class ConnectExchange(Exchange):
    """A Connect request: lokit's exchange with Connect's headers read in the same pass."""

    __slots__ = ("codec_name", "streaming")

    def __init__(
        self,
        service: str,
        proc: Procedure,
        scope: Scope,
        receive: Receive,
        send: Send,
        max_body: int,
        pacer: BodyPacer,
    ) -> None:
        self.target = proc  # type: ignore[assignment]
        self.max_body = max_body
        self.pacer = pacer
        self.scope = scope
        self.receive = receive
        self.send = send
        self.params = {}
        # One pass in C over the headers (a repeated header's last value wins, as in
        # `context.scan_incoming`), then a lookup per header of interest.
        h: dict[bytes, bytes] = dict(scope["headers"])
        get = h.get
        rid_b = get(RID)
        ctype = get(_K_TYPE)
        timeout = get(_K_TIMEOUT)
        version = get(_K_VERSION)
        lokit_timeout = get(_K_LOKIT_TIMEOUT)
        hint = get(_K_CALLER)
        traced = _K_TRACE in h
        encoding = get(_K_ENCODING) or get(_K_STREAM_ENCODING)
        self.streaming = proc.streams_in or proc.streams_out
        bad: errors.Error | None = None
        left: float | None = None
        if timeout is not None:
            if timeout.isdigit() and len(timeout) <= 10:
                left = int(timeout) / 1000.0
            else:
                bad = errors.InvalidArgument(
                    "connect-timeout-ms must be a positive integer of at most 10 digits, "
                    f"not {timeout.decode('latin-1')!r}"
                )
        rid = rid_b.decode("latin-1") if rid_b else None
        caller, anonymous = scope.get(PEER_KEY, NO_PEER)
        ctx, lokit_bad = context.incoming(
            service,
            proc.name,
            "http",
            rid,
            lokit_timeout,
            hint.decode("latin-1") if hint else None,
            left,
            caller,
            anonymous,
        )
        self.ctx = ctx
        self.rid = rid_b if rid_b is not None and ctx.request_id is rid else ctx.request_id.encode()
        self.headers = _headers(scope) if traced else None
        kinds = _STREAM_TYPES if self.streaming else _UNARY_TYPES
        name = kinds.get(ctype) if ctype is not None else None
        if name is None and ctype:  # with parameters (`; charset=utf-8`) or in capitals
            name = kinds.get(ctype.partition(b";")[0].strip().lower())
        self.codec_name = name
        if bad is None:
            bad = lokit_bad
        if bad is None and version is not None and version != b"1":
            bad = errors.InvalidArgument(
                f"connect-protocol-version must be 1, not {version.decode('latin-1')!r}"
            )
        if bad is None and encoding not in (None, b"identity"):
            bad = errors.Unimplemented(
                f"compression {encoding.decode('latin-1')!r} is not supported; use identity"
            )
        self.bad = bad

    @property
    def proc(self) -> Procedure:
        return self.target  # type: ignore[return-value]


def _headers(scope: Scope) -> dict[str, str]:
    from lokit.transport.http.exchange import request_headers

    return request_headers(scope)


class ConnectHandler:
    """Serves a service's Connect procedures; `HttpApp` hands it the paths it has no route for."""

    __slots__ = ("_max_body", "_observer", "_pacer", "_service", "procedures")

    def __init__(
        self, service: ServiceDef, observer: Observer, max_body: int, pacer: BodyPacer
    ) -> None:
        self._service = service.name
        self._observer = observer
        self._max_body = max_body
        self._pacer = pacer
        self.procedures = procedures(service)

    async def __call__(self, proc: Procedure, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _send(
                send,
                405,
                [_CT_ERROR, (b"allow", b"POST")],
                orjson.dumps(connect_error(errors.Unimplemented(f"use POST for {proc.path}"))),
            )
            return
        ex = ConnectExchange(self._service, proc, scope, receive, send, self._max_body, self._pacer)
        if ex.codec_name is None or proc.codecs[ex.codec_name] is None:
            await _unsupported(ex)
            return
        token = context.set_current(ex.ctx)
        trace = None if ex.headers is None else propagation.extract_and_attach(ex.headers)
        try:
            call = self._observer.start(ex.ctx)
            try:
                if ex.streaming:
                    err = await _serve_stream(ex)
                else:
                    err = await _serve_unary(ex)
            except BaseException as exc:
                call.finish(exc)
                raise
            call.finish(err)
        finally:
            if trace is not None:
                propagation.detach(trace)
            context.reset(token)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _unsupported(ex: ConnectExchange) -> None:
    """415 for a content type this procedure does not speak, naming the ones it does."""
    proc = ex.proc
    kinds = _STREAM_TYPES if ex.streaming else _UNARY_TYPES
    accept = b", ".join(t for t, name in kinds.items() if proc.codecs[name] is not None)
    await _send(ex.send, 415, [(b"accept-post", accept), (RID, ex.rid)], b"")


async def _serve_unary(ex: ConnectExchange) -> BaseException | None:
    """Decode, run under the deadline, answer in the request's content type, or with an error."""
    proc = ex.proc
    codec = proc.codecs[ex.codec_name or JSON]
    assert codec is not None
    try:
        if ex.bad is not None:
            raise ex.bad
        request = codec.decode_request(await ex.read_body())
        response = await within(proc.endpoint, request, ex.ctx.deadline)
        out = codec.encode_response(response)
    except ClientGone:
        return errors.Cancelled("the client disconnected")
    except (Exception, asyncio.CancelledError) as exc:
        failure = stopping(exc)
        err = client_error(failure)
        reply = None if err is None else codec.encode_error(err)
        if reply is None:
            await _send_error(ex, err)
        else:  # a business error carried in an OK reply, as on gRPC (go-kit's addsvc)
            await _reply(ex, reply)
        return failure
    await _reply(ex, out)
    return None


_CT_REPLY = {
    JSON: (b"content-type", b"application/json"),
    PROTO: (b"content-type", b"application/proto"),
}


async def _reply(ex: ConnectExchange, out: bytes) -> None:
    send = ex.send
    headers = [
        _CT_REPLY[ex.codec_name or JSON],
        (b"content-length", b"%d" % len(out)),
        (RID, ex.rid),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


async def _send_error(ex: ConnectExchange, err: errors.Error | None) -> None:
    """Connect's error answer: the code's HTTP status, `{"code", "message"}`, lokit's name."""
    if err is None:
        err = errors.internal_error(ex.ctx.request_id)
    status = errors.HTTP_STATUS.get(err.code, 500)
    headers = [_CT_ERROR, (RID, ex.rid), (ERROR_HEADER.encode(), err.error_name.encode("latin-1"))]
    if isinstance(err, BodyTooLarge):
        status = 413  # the rest of the body is not read: close
        headers.append((b"connection", b"close"))
    elif err.retry_after is not None:
        headers.append((b"retry-after", b"%d" % max(1, math.ceil(err.retry_after))))
    await _send(ex.send, status, headers, orjson.dumps(connect_error(err)))


async def _serve_stream(ex: ConnectExchange) -> BaseException | None:
    """A streaming procedure: enveloped messages in and out, ended by the end-of-stream message."""
    proc = ex.proc
    codec = proc.codecs[ex.codec_name or JSON]
    assert codec is not None
    send = ex.send
    started = False
    items: AsyncIterator[Any] | None = None
    task = asyncio.current_task()
    gone = asyncio.Event()
    done = asyncio.Event()  # the answer is complete: a disconnect now means nothing
    watcher: asyncio.Task[None] | None = None
    ctype = b"application/connect+" + (ex.codec_name or JSON).encode()

    async def start() -> None:
        nonlocal started
        if not started:
            started = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", ctype), (RID, ex.rid)],
                }
            )

    try:
        if ex.bad is not None:
            raise ex.bad
        messages = []
        for flags, data in _split(await ex.read_body(), ex.max_body):
            if flags & _FLAG_COMPRESSED:
                raise errors.Unimplemented("compressed messages are not supported; use identity")
            messages.append(codec.decode_request(data))
        watcher = asyncio.create_task(_watch(ex.receive, gone, done, task))
        request: Any
        if proc.streams_in:
            request = _iterate(messages)
        elif len(messages) != 1:
            raise errors.InvalidArgument(
                f"invalid request: {proc.name} takes one message, not {len(messages)}"
            )
        else:
            request = messages[0]
        deadline = ex.ctx.deadline
        async with asyncio.timeout(None if deadline is None else deadline - time.monotonic()):
            result = await proc.endpoint(request)
            await start()
            if not proc.streams_out:
                await send(
                    {
                        "type": "http.response.body",
                        "body": envelope(codec.encode_response(result)),
                        "more_body": True,
                    }
                )
            else:
                items = aiter(result)
                async for item in items:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": envelope(codec.encode_response(item)),
                            "more_body": True,
                        }
                    )
        done.set()
        await send({"type": "http.response.body", "body": end_stream(None), "more_body": False})
        return None
    except ClientGone:
        return errors.Cancelled("the client disconnected")
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError) and gone.is_set():
            if task is not None:
                task.uncancel()
            return errors.Cancelled("the client disconnected")
        failure = stopping(exc)
        err = client_error(failure)
        if isinstance(err, BodyTooLarge) and not started:
            await _send_error(ex, err)
            return failure
        await start()
        done.set()
        final = end_stream(err if err is not None else errors.internal_error(ex.ctx.request_id))
        await send({"type": "http.response.body", "body": final, "more_body": False})
        return failure
    finally:
        if watcher is not None:
            watcher.cancel()
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def _iterate(messages: list[Any]) -> AsyncIterator[Any]:
    for m in messages:
        yield m


async def _watch(
    receive: Receive, gone: asyncio.Event, done: asyncio.Event, task: asyncio.Task[Any] | None
) -> None:
    """Cancel the handler when the client leaves before its answer is complete."""
    while (await receive())["type"] != "http.disconnect":
        pass
    if done.is_set():
        return
    gone.set()
    if task is not None:
        task.cancel()
