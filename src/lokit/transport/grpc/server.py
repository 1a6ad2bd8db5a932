"""`GrpcServer`: a ServiceDef's gRPC routes served by grpc.aio on Unix sockets and TCP.

Each route is served by a generic method handler from `handlers` (how one call
is served, and where its request id and deadline come from, is described
there). This module owns the server's life: binding its addresses by lokit's
rules, the standard health service, server reflection (`reflection`; off with
`reflection=False`), the listener limits (`limits.grpc_options`:
idle and handshake timeouts, streams per connection, connections per port,
keepalive enforcement), TLS (`ServerTLS`: every TCP port, Unix sockets only
with `tls.unix`; mTLS with a client CA, so `context.auth_context()` carries the
peer's CN), the socket files' mode and group, and a graceful stop that removes
the socket files it created.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from lokit.observability.observer import Observer
from lokit.routes import ServiceDef
from lokit.security.tls import ServerTLS
from lokit.transport import address
from lokit.transport.address import Address, AddressError
from lokit.transport.grpc.handlers import MethodTable, method_handler
from lokit.transport.grpc.health import ServiceHealth
from lokit.transport.grpc.reflection import reflection_handlers
from lokit.transport.limits import Limits, grpc_options


def split_path(path: str) -> tuple[str, str]:
    """`/pb.Add/Sum` -> (`pb.Add`, `Sum`); anything else is refused in one sentence."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        raise ValueError(f"gRPC method path {path!r} is not of the form /package.Service/Method")
    return parts[1], parts[2]


def _precheck(addr: Address, reuse_port: bool = False) -> int | None:
    """Refuse a live socket or busy port and replace a stale socket file, as `address.bind` does.

    grpcio would silently unlink a live server's socket file; binding here first
    (then closing) applies lokit's rules and leaves at most a stale file, which
    grpcio replaces. Returns that file's inode (None for TCP). A TCP port shared
    by a run's instances (`reuse_port`) is not bound here: the run's reservation
    already refused a busy one, and a listener here would join the port's group
    and reset the connections the kernel gave it.
    """
    if reuse_port and addr.path is None:
        return None
    sock = address.bind(addr, backlog=1)
    try:
        return os.stat(addr.path).st_ino if addr.path is not None else None
    finally:
        sock.close()


class _GenericOnly:
    """Lets generated `add_*Servicer_to_server` register its handlers as generic ones only."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        return None  # the generic handler added alongside serves the same methods


class GrpcServer:
    """Serve a ServiceDef's gRPC routes, plus the standard health and reflection services."""

    def __init__(
        self,
        service: ServiceDef,
        observer: Observer,
        *,
        max_message_bytes: int = 64 << 20,
        limits: Limits | None = None,
        tls: ServerTLS | None = None,
        socket_mode: int = address.SOCKET_MODE,
        socket_group: int | None = None,
        reflection: bool = True,
        reuse_port: bool = False,
    ) -> None:
        self.service = service
        self.reuse_port = reuse_port  # TCP ports shared by one run's instances (SO_REUSEPORT)
        self.reflection = reflection
        self.tls = tls
        self.socket_mode = socket_mode
        self.socket_group = socket_group
        self.observer = observer
        self.max_message_bytes = max_message_bytes
        self.limits = limits or Limits()
        self.addresses: list[Address] = []
        self._server: Any = None
        self._health: Any = None
        self._sockets: list[tuple[Address, int]] = []  # unix addresses and their inode
        self._creds: Any = None

    def _handlers(self, addrs: list[Address]) -> dict[str, dict[str, Any]]:
        kinds = {a.path is not None for a in addrs}
        unix = kinds.pop() if len(kinds) == 1 else None  # all Unix, all TCP, or mixed
        by_service: dict[str, dict[str, Any]] = {}
        for route in self.service.grpc:
            svc, name = split_path(route.path)
            by_service.setdefault(svc, {})[name] = method_handler(
                route, self.service.name, self.observer, secure=self.tls is not None, unix=unix
            )
        return by_service

    async def start(self, addrs: list[Address]) -> list[Address]:
        """Listen on `addrs` and start serving; returns them with real ports for HOST:0."""
        if self._server is not None:
            raise RuntimeError("this GrpcServer is already started")
        parsed = [a if isinstance(a, Address) else address.parse(a) for a in addrs]
        handlers = self._handlers(parsed)
        checked: list[tuple[Address, int]] = []
        try:
            for addr in parsed:
                ino = _precheck(addr, self.reuse_port)
                if ino is not None:
                    checked.append((addr, ino))
        except AddressError:
            for addr, ino in checked:
                _remove_own_socket(addr, ino)
            raise
        limit = self.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # idle and handshake timeouts, streams and connections, keepalive
                *grpc_options(self.limits),
            ]
        )
        # Generic handlers only: grpc.aio keeps one pending request per *registered*
        # method and waits on all of them for every call, so registering would make
        # each call cost more the more methods a server has.
        # `MethodTable` also hands each call's metadata on to its handler (read once).
        table = {
            f"/{svc}/{name}": h for svc, methods in handlers.items() for name, h in methods.items()
        }
        server.add_generic_rpc_handlers((MethodTable(table),))
        self._health = ServiceHealth(
            self.service.name, list(self.service.grpc_services), self.service.health
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, _GenericOnly(server))
        await self._health.start()
        if self.reflection:  # after the service's handlers: its calls match first
            server.add_generic_rpc_handlers(tuple(reflection_handlers(self.service)))

        bound: list[Address] = []
        sockets: list[tuple[Address, int]] = []
        try:
            for addr in parsed:
                bound.append(self._add_port(server, addr))
                if addr.path is not None:
                    address.set_socket_access(addr, self.socket_mode, self.socket_group)
                    sockets.append((addr, os.stat(addr.path).st_ino))
        except AddressError:
            await self._health.stop_polling()
            await server.start()  # the only way to have grpcio release the ports it took
            await server.stop(None)
            for addr, ino in sockets:
                _remove_own_socket(addr, ino)
            raise
        await server.start()
        self._server = server
        self._sockets = sockets
        self.addresses = bound
        return bound

    def _credentials(self, addr: Address) -> Any:
        """The port's TLS credentials, or None for plaintext."""
        tls = self.tls
        if tls is None or (addr.path is not None and not tls.unix):
            return None
        if self._creds is None:
            self._creds = tls.grpc_credentials()
        return self._creds

    def _add_port(self, server: Any, addr: Address) -> Address:
        creds = self._credentials(addr)
        target = addr.grpc_target()
        try:
            if addr.path is None:
                port = (
                    server.add_insecure_port(target)
                    if creds is None
                    else server.add_secure_port(target, creds)
                )
            else:
                # grpcio creates the socket file: with this umask it has the final
                # mode from the start (no moment in which others may connect).
                with address.socket_umask(self.socket_mode):
                    port = (
                        server.add_insecure_port(target)
                        if creds is None
                        else server.add_secure_port(target, creds)
                    )
        except RuntimeError:
            port = 0
        if addr.path is not None:
            if port == 0:
                raise AddressError(f"cannot listen on {addr}: grpc could not bind the socket")
            return addr
        if port == 0:
            raise AddressError(f"cannot listen on {addr}: the port is already in use")
        host = addr.host or "0.0.0.0"
        raw = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return Address(raw=raw, host=host, port=port)

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, stop accepting, let in-flight calls finish within `grace`."""
        server, self._server = self._server, None
        if server is None:
            return
        await self._health.enter_graceful_shutdown()
        await server.stop(grace)
        for addr, ino in self._sockets:
            _remove_own_socket(addr, ino)
        self._sockets = []


def _remove_own_socket(addr: Address, ino: int) -> None:
    """Remove the socket file at `addr` if it is still the one this server created."""
    assert addr.path is not None
    with contextlib.suppress(OSError):
        if os.lstat(addr.path).st_ino == ino:
            address.remove_socket_file(addr)
