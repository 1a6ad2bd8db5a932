"""Bare servers for bench/rpc.py: addsvc Sum without lokit, on the same transports.

`python bench/_bare_servers.py grpc|http|httptools ADDR[,ADDR...]` serves until
SIGTERM and prints `ready` once listening on all. gRPC: a plain grpc.aio generic
handler over the same addsvc protobuf messages. HTTP: a plain ASGI callable on
uvicorn (httptools, uvloop) decoding and encoding JSON with orjson. `httptools`:
no server framework at all, an asyncio protocol on httptools' parser answering
each request from a task, the least an async Python HTTP server does (Unix
sockets only).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


async def serve_grpc(addrs: list[str]) -> None:
    import grpc

    from lokit.proto import addsvc_pb2

    async def sum_(req: Any, ctx: Any) -> Any:
        return addsvc_pb2.SumReply(v=req.a + req.b)

    handler = grpc.method_handlers_generic_handler(
        "pb.Add",
        {
            "Sum": grpc.unary_unary_rpc_method_handler(
                sum_,
                request_deserializer=addsvc_pb2.SumRequest.FromString,
                response_serializer=addsvc_pb2.SumReply.SerializeToString,
            )
        },
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    for addr in addrs:
        target = "unix://" + os.path.abspath(addr[5:]) if addr.startswith("unix:") else addr
        server.add_insecure_port(target)
    await server.start()
    await _until_signal()
    await server.stop(1)


async def serve_http(addrs: list[str]) -> None:
    import orjson
    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        req = orjson.loads(body)
        out = orjson.dumps({"v": req["a"] + req["b"]})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": out})

    socks = []
    for addr in addrs:
        if addr.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(addr[5:])
        else:
            host, _, port = addr.rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, int(port)))
        socks.append(sock)
    config = uvicorn.Config(
        app, http="httptools", lifespan="off", access_log=False, log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=socks))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await task


class BareHttptools(asyncio.Protocol):
    """HTTP/1.1 keep-alive on httptools: each request's JSON decoded and answered in a task."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpRequestParser(self)
        self.tasks: set[asyncio.Task[None]] = set()
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.headers = []
        self.body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        task = asyncio.get_running_loop().create_task(self.answer(self.body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def answer(self, body: bytes) -> None:
        import orjson

        req = orjson.loads(body)
        out = orjson.dumps({"v": req["a"] + req["b"]})
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(out), out)
        )


async def serve_httptools(addrs: list[str]) -> None:
    loop = asyncio.get_running_loop()
    for addr in addrs:
        await loop.create_unix_server(BareHttptools, addr[5:])
    await _until_signal()


async def _until_signal() -> None:
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def main() -> None:
    import uvloop

    kind, addrs = sys.argv[1], sys.argv[2].split(",")
    serve = {"grpc": serve_grpc, "http": serve_http, "httptools": serve_httptools}[kind]
    uvloop.run(serve(addrs))


if __name__ == "__main__":
    main()
