"""lokit frames: the wire between lokit services on one box, shared by server and client.

A Unix socket `STEM.frames.sock` beside `STEM.http.sock` speaks it. The client
opens with `PREFACE`; then each side sends frames, each a 4-byte big-endian
length and that many bytes of one msgpack array:

- a request: `[id, method, request_id, timeout_ms, caller_hint, trace, body]`,
  `method` the RPC name (`Sum`), `timeout_ms` an integer or nil, `caller_hint`
  a string or nil, `trace` a map of W3C trace headers or nil, `body` the
  request as the method's HTTP route encodes it (bin);
- an answer: `[id, code, body, error_name, retry_after]`, `code` 0 with the
  encoded response in `body`, else the error's code (`lokit.errors.Code`), its
  message (UTF-8) in `body`, its class name (`lokit.NotFound`) and the seconds a
  client should wait before retrying (or nil).

Requests on one connection are independent: the server answers each as it
finishes, by `id`, so one connection carries many calls at once; a request
frame over the size limit is answered by its id (read from its first bytes)
and skipped. An answer with id 0 is about the connection itself (a malformed
frame): the server closes the connection after it.

Why not HTTP/1.1 or gRPC: a Python HTTP/1.1 exchange costs a parser callback
per header at both ends and gRPC's per-call machinery costs more still; one
length-prefixed msgpack frame each way is decoded by one C call (msgspec), so a
local call costs little more than the Python floor (README: "Calling between
lokit services"). The protocol is lokit's own and local only: HTTP and gRPC
stay for every other client, and streams go over HTTP.
"""

from __future__ import annotations

import struct

import msgspec

from lokit.endpoint import Kind
from lokit.routes import HttpRoute

__all__ = [
    "ANSWERS",
    "CONNECTION",
    "ENCODER",
    "FRAME_OVERHEAD",
    "ID_BYTES",
    "MALFORMED",
    "PREFACE",
    "REQUESTS",
    "Answer",
    "Reply",
    "Request",
    "encode_answer",
    "frame_id",
    "not_frames",
    "serves",
]

PREFACE = b"LOKIT-FRAMES/1\r\n"
LENGTH = struct.Struct("!I")
CONNECTION = 0  # the id of an answer about the connection, not a request
# Room a request frame may take beyond its body: the id, method, request id, trace.
FRAME_OVERHEAD = 64 * 1024

Request = tuple[int, str, str, int | None, str | None, dict[str, str] | None, bytes]
Answer = tuple[int, int, bytes, str | None, float | None]
Reply = tuple[int, bytes, str | None, float | None]  # an answer without its id, as a call sees it

ENCODER = msgspec.msgpack.Encoder()
REQUESTS = msgspec.msgpack.Decoder(Request)
ANSWERS = msgspec.msgpack.Decoder(Answer)
_pack = LENGTH.pack

MALFORMED = msgspec.DecodeError  # what REQUESTS and ANSWERS raise for a frame that is not one


ID_BYTES = 10  # a request's array header and its id, at most (uint64)


def frame_id(head: bytes) -> int | None:
    """The id of a request frame from its first bytes (`ID_BYTES` of them, or all there
    are), without decoding the rest: how a frame too large to read is answered."""
    if len(head) < 2 or head[0] != 0x97:  # a fixarray of the request's 7 fields
        return None
    kind = head[1]
    if kind < 0x80:  # positive fixint
        return kind
    width = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}.get(kind)
    if width is None or len(head) < 2 + width:
        return None
    return int.from_bytes(head[2 : 2 + width], "big")


def serves(route: HttpRoute) -> bool:
    """Whether frames carry this route's method: unary, its request from the body alone
    (a route that reads its path or query stays on HTTP), its body the route's codec's."""
    return route.method.kind is Kind.UNARY and route.decode is None and "{" not in route.path


def encode_answer(
    rid: int, code: int, body: bytes, name: str | None = None, retry_after: float | None = None
) -> bytes:
    """One answer frame, its length first."""
    payload = ENCODER.encode((rid, code, body, name, retry_after))
    return _pack(len(payload)) + payload


def not_frames(http_beside: str) -> bytes:
    """What a client that does not open with `PREFACE` gets (curl, a browser, nc) before
    the connection closes: an HTTP/1.1 400 naming the protocol, readable as plain text."""
    text = (
        "this socket speaks lokit frames (lokit's own client between services);"
        f" call HTTP at {http_beside} instead\n"
    ).encode()
    return (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(text), text)
    )
