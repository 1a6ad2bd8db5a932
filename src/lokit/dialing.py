"""Which protocol `lokit.connect` calls a service over when the caller names only an address.

Between lokit services on one box the default is lokit frames on the Unix
socket beside HTTP (`STEM.frames.sock`, `lokit.transport.frames`) for unary
methods, and HTTP on `STEM.http.sock` for streams: one msgpack frame each way
costs well under half of lokit's lean HTTP/1.1 exchange, which itself costs a
fraction of a grpc.aio unary call (README: "Calling between lokit services";
bench/rpc.py `local-uds`), and every lokit server serves all three. gRPC stays
the protocol for everyone else (go-kit, proglog, polyglot clients) and for
anything the address cannot show to be a lokit HTTP listener.

The choice is made once, when the connection is made, from the one-box naming
convention (`<name>.http.sock` beside `<name>.grpc.sock`, `transport.address.
default_address`), without a network round trip:

- no address: the service's default sockets, `run/<name>.http.sock` when it
  exists, else `run/<name>.grpc.sock`;
- `unix:PATH.http.sock` / `unix:PATH.grpc.sock`: that protocol;
- `unix:STEM` where `STEM.http.sock` or `STEM.grpc.sock` exists: that socket,
  HTTP first;
- `dir:PATH`: its `*.http.sock` instances when the directory holds any (or no
  socket yet), else its `*.grpc.sock` ones;
- anything else (a TCP address, `srv:`, `serf:`, a list, a socket named
  otherwise): gRPC.

Where the protocol is not named, HTTP is chosen only when every method of the
contract has an HTTP route (streams included: lokit's NDJSON routes and client
are full duplex, the answer flows while the request is still being sent).
Where HTTP is chosen, `frames_beside` then names the frames socket beside each
Unix HTTP socket (one address, or each instance of a `dir:` registry), when it is
there (`instance_client`).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any, Literal

from lokit.contract import Contract
from lokit.endpoint import Endpoint
from lokit.transport.address import beside, default_address, parse

if TYPE_CHECKING:
    from lokit.security.tls import ClientTLS

__all__ = ["Kind", "choose", "frames_beside", "http_beside", "instance_client"]

Kind = Literal["grpc", "http"]

_HTTP = ".http.sock"
_GRPC = ".grpc.sock"


def choose(spec: Contract[Any], addr: str | None) -> tuple[Kind, str]:
    """The protocol and the address `connect(spec, addr)` calls (see the module docstring)."""
    http_ok = all(spec.http_route(name) is not None for name in spec.methods)
    if addr is None:
        http, grpc = default_address(spec.name, "http"), default_address(spec.name, "grpc")
        http_path, grpc_path = parse(http).path, parse(grpc).path
        assert http_path is not None and grpc_path is not None
        if http_ok and (_socket_at(http_path) or not _socket_at(grpc_path)):
            return "http", http
        return "grpc", grpc
    text = addr.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if path.endswith(_HTTP):
            return "http", text
        if path.endswith(_GRPC):
            return "grpc", text
        if http_ok and _socket_at(path + _HTTP):
            return "http", text + _HTTP
        if _socket_at(path + _GRPC):
            return "grpc", text + _GRPC
        return "grpc", text
    if text.startswith("dir:") and http_ok:
        return ("http" if _dir_prefers_http(text[4:]) else "grpc"), text
    return "grpc", text


def http_beside(addr: str) -> str | None:
    """`unix:X.http.sock` when `addr` is `unix:X.grpc.sock` and that socket is there.

    The HTTP listener of the same service, by the one-box naming: how a client
    given a gRPC address (the log's) finds the faster local protocol beside it.
    """
    return _there(beside(addr, "http", of="grpc"))


def frames_beside(addr: str) -> str | None:
    """`unix:X.frames.sock` when `addr` is `unix:X.http.sock` and that socket is there:
    the same service's frames listener, which lokit's client calls unary methods over."""
    return _there(beside(addr, "frames", of="http"))


def _there(addr: str | None) -> str | None:
    """`addr` (a `unix:` address) when a socket is there."""
    return addr if addr is not None and _socket_at(addr[len("unix:") :]) else None


def instance_client(
    kind: Kind,
    address: str,
    spec: Contract[Any],
    timeout: float | None,
    tls: ClientTLS | None,
    frames: bool = False,
) -> tuple[Any, dict[str, Endpoint], str | None]:
    """One instance's client, its endpoints by method name, and the frames address used.

    With `frames`, an HTTP instance on `unix:X.http.sock` whose `X.frames.sock` is
    there is called over lokit frames for its unary methods (HTTP for the rest).
    """
    if kind == "grpc":
        from lokit.transport.grpc.client import GrpcClient

        client = GrpcClient(address, timeout=timeout, name=spec.name, tls=tls)
        return client, client.endpoints(list(spec.grpc)), None
    from lokit.transport.http.client import HttpClient

    http = HttpClient(address, timeout=timeout, tls=tls)
    endpoints = http.endpoints(list(spec.http))
    frames_addr = frames_beside(address) if frames else None
    if frames_addr is None:
        return http, endpoints, None
    from lokit.transport.frames.client import FramesClient

    unary = FramesClient(frames_addr, timeout=timeout)
    endpoints.update(unary.endpoints(list(spec.http)))
    return _Both(unary, http), endpoints, frames_addr


class _Both:
    """The frames client (unary methods) and the HTTP one (streams) of one instance."""

    def __init__(self, *clients: Any) -> None:
        self._clients = clients

    async def close(self) -> None:
        for client in self._clients:
            await client.close()


def _socket_at(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _dir_prefers_http(path: str) -> bool:
    """True when the registry `path` holds HTTP sockets, or no socket of either kind yet."""
    try:
        names = os.listdir(path)
    except OSError:
        return True  # the instancer reports the directory's problem in one sentence
    if any(n.endswith(_HTTP) for n in names):
        return True
    return not any(n.endswith(_GRPC) for n in names)
