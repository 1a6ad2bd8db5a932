"""What speaking protobuf and Connect costs a derived service, side by side.

One derived service of the README's Greeter shape (`greet(name) -> str`, a string
in, a string out: `lokit.examples.greeter`) served by lokit's runtime on Unix
sockets, with the request log line, metrics and request context as always
(tracing off, the log to /dev/null). Sequential calls on one kept-alive
connection; the systems of a case are called in turns, blocks of 20 calls, so
they share whatever else the machine does. Metric `p50_us`.

Case `http-unary`: the same server's HTTP listener, called by a minimal
blocking HTTP/1.1 client (request bytes prepared once, the answer's body read by
its Content-Length and decoded), so the figures differ only by what the server
does. Systems `plain-route` (`POST /greet`, lokit's JSON), `connect-json`
(`POST /greeter.v1.Greeter/Greet`, `application/json`, Connect-Protocol-Version:
1) and `connect-proto` (the same path, `application/proto`). Target: both
Connect rows <= 1.05 x plain-route.

Case `grpc-unary`: lokit's own client (`lokit.connect`) calling `Greet` over
gRPC, encoding and decoding on both sides. Systems `protobuf` (the derived
protobuf codec, the default) and `json` (the old JSON-in-gRPC codec,
`codec="json"`, on a second server). Target: protobuf <= 1.0 x json.

`python bench/interop.py serve ...` is the server side (started by the benchmark).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Row, parser, percentile, report, stop

HERE = Path(__file__).resolve()
HTTP_SYSTEMS = ("plain-route", "connect-json", "connect-proto")
GRPC_SYSTEMS = ("protobuf", "json")
CONNECT_PATH = "/greeter.v1.Greeter/Greet"
NAME = "ada"


# --- the servers --------------------------------------------------------------------------


def serve(codec: str, grpc_addr: str, http_addr: str | None) -> None:
    """Serve the Greeter (`codec` on gRPC) until SIGTERM; print one line per listener."""
    import lokit
    from lokit.examples.greeter import Greeter
    from lokit.observability.logs import configure_logging
    from lokit.runtime import Listeners, run
    from lokit.runtime import serve as serve_runtime

    configure_logging()
    spec = lokit.contract("greeter", Greeter, codec=codec)  # type: ignore[arg-type]
    listeners = Listeners(grpc=[grpc_addr], http=[http_addr] if http_addr else [])

    def ready(kind: str, addr: object) -> None:
        print(f"greeter: {kind} listening on {addr}", flush=True)

    async def go() -> int:
        return await serve_runtime(lokit.define(spec, Greeter()), listeners, ready)

    sys.exit(run(go))


def start(codec: str, tmp: str, http: bool) -> tuple[subprocess.Popen[bytes], str, str | None]:
    grpc_addr = f"unix:{tmp}/{codec}.grpc.sock"
    http_addr = f"unix:{tmp}/{codec}.http.sock" if http else None
    cmd = [sys.executable, str(HERE), "serve", codec, grpc_addr, http_addr or ""]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "GRPC_VERBOSITY": "NONE"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    for _ in range(2 if http else 1):
        if not proc.stdout.readline():
            raise SystemExit(f"the {codec} server did not start: {' '.join(cmd)}")
    return proc, grpc_addr, http_addr


# --- case http-unary ----------------------------------------------------------------------


class RawHttp:
    """One kept-alive HTTP/1.1 connection on a Unix socket sending one prepared request."""

    def __init__(self, path: str, request: bytes, decode: Any) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.request = request
        self.decode = decode

    def call(self) -> Any:
        sock = self.sock
        sock.sendall(self.request)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        head = data[:end].lower()
        if not head.startswith(b"http/1.1 200"):
            raise SystemExit(f"unexpected answer: {data!r}")
        at = head.index(b"content-length:") + 15
        stop = head.find(b"\r\n", at)
        size = int(head[at : stop if stop >= 0 else len(head)])
        body = data[end + 4 :]
        while len(body) < size:
            body += sock.recv(65536)
        return self.decode(body)

    def close(self) -> None:
        self.sock.close()


def request(path: str, content_type: str, body: bytes, connect: bool) -> bytes:
    extra = b"connect-protocol-version: 1\r\n" if connect else b""
    return (
        b"POST %s HTTP/1.1\r\nhost: localhost\r\ncontent-type: %s\r\n%scontent-length: %d\r\n\r\n%s"
        % (path.encode(), content_type.encode(), extra, len(body), body)
    )


def http_clients(sock: str) -> dict[str, RawHttp]:
    import orjson

    import lokit
    from lokit.examples.greeter import Greeter
    from lokit.protobuf import schema_of

    schema = schema_of(lokit.contract("greeter", Greeter))
    assert schema is not None
    from google.protobuf import message_factory

    method = schema.pool.FindServiceByName(schema.service_name).FindMethodByName("Greet")
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    js = orjson.dumps({"name": NAME})
    pb = req_cls(name=NAME).SerializeToString()

    def from_json(body: bytes) -> str:
        value: str = orjson.loads(body)["v"]
        return value

    def from_proto(body: bytes) -> str:
        value: str = getattr(resp_cls.FromString(body), "v")  # noqa: B009 (a dynamic class)
        return value

    return {
        "plain-route": RawHttp(sock, request("/greet", "application/json", js, False), from_json),
        "connect-json": RawHttp(
            sock, request(CONNECT_PATH, "application/json", js, True), from_json
        ),
        "connect-proto": RawHttp(
            sock, request(CONNECT_PATH, "application/proto", pb, True), from_proto
        ),
    }


def http_calls(client: RawHttp, n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        v = client.call()
        out.append(time.perf_counter() - t0)
        assert v == f"hello, {NAME}", v
    return out


def measure_http(sock: str, n: int, warmup: int, blocks: int) -> dict[str, list[float]]:
    clients = http_clients(sock)
    lat: dict[str, list[float]] = {s: [] for s in clients}
    try:
        for c in clients.values():
            http_calls(c, warmup)
        for _ in range(blocks):
            for s, c in clients.items():
                lat[s] += http_calls(c, max(1, n // blocks))
    finally:
        for c in clients.values():
            c.close()
    return lat


# --- case grpc-unary (the protobuf codec against the old JSON-in-gRPC) ----------------------


def measure_grpc(addrs: dict[str, str], n: int, warmup: int, blocks: int) -> dict[str, list[float]]:
    import lokit
    from lokit.examples.greeter import Greeter

    async def calls(svc: Any, k: int) -> list[float]:
        out: list[float] = []
        for _ in range(k):
            t0 = time.perf_counter()
            v = await svc.greet(NAME)
            out.append(time.perf_counter() - t0)
            assert v == f"hello, {NAME}", v
        return out

    async def go() -> dict[str, list[float]]:
        conns = {
            s: lokit.connect(
                lokit.contract("greeter", Greeter, codec=s),  # type: ignore[arg-type]
                grpc=addrs[s],
                timeout=5.0,
            )
            for s in GRPC_SYSTEMS
        }
        lat: dict[str, list[float]] = {s: [] for s in conns}
        try:
            for conn in conns.values():
                await calls(conn.service, warmup)
            for _ in range(blocks):
                for s, conn in conns.items():
                    lat[s] += await calls(conn.service, max(1, n // blocks))
        finally:
            for conn in conns.values():
                await conn.close()
        return lat

    import uvloop

    return uvloop.run(go())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4] or None)
        return
    args = parser(__doc__ or "").parse_args()
    # Blocks of 20 calls: the systems take turns often, so a busy moment of the machine
    # falls on all of them alike.
    n, warmup = (3000, 300) if args.quick else (20000, 1000)
    blocks = n // 20
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        proto, proto_grpc, proto_http = start("protobuf", tmp, http=True)
        json_srv, json_grpc, _ = start("json", tmp, http=False)
        try:
            assert proto_http is not None
            lat = measure_http(proto_http.removeprefix("unix:"), n, warmup, blocks)
            for s in HTTP_SYSTEMS:
                rows.append(Row("http-unary", s, "p50_us", _p50(lat[s]), "µs"))
            glat = measure_grpc({"protobuf": proto_grpc, "json": json_grpc}, n, warmup, blocks)
            for s in GRPC_SYSTEMS:
                rows.append(Row("grpc-unary", s, "p50_us", _p50(glat[s]), "µs"))
        finally:
            stop(proto)
            stop(json_srv)
    report(rows, args, f"a derived Greeter on Unix sockets, sequential, {n} calls per system")
    p50 = {(r.case, r.system): r.value for r in rows}
    plain = p50[("http-unary", "plain-route")]
    cj, cp = p50[("http-unary", "connect-json")], p50[("http-unary", "connect-proto")]
    print(
        f"http-unary: connect-json / plain-route {cj / plain:.3f}x,"
        f" connect-proto / plain-route {cp / plain:.3f}x (target <= 1.05x)"
    )
    print(
        "grpc-unary: protobuf / json "
        f"{p50[('grpc-unary', 'protobuf')] / p50[('grpc-unary', 'json')]:.3f}x (target <= 1.0x)"
    )


def _p50(seconds: list[float]) -> float:
    return percentile([x * 1e6 for x in seconds], 50)


if __name__ == "__main__":
    main()
