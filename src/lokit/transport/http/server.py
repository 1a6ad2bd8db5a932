"""Running ASGI apps on uvicorn, inside the loop the lokit runtime already runs.

Sockets are bound by `lokit.transport.address.bind` (a live socket or a busy
port is refused, a stale socket file replaced) and handed to uvicorn, which then
serves them as a task of the running loop. uvicorn's own signal handling is
switched off: the runtime owns SIGTERM/SIGINT and calls `stop()`.

The protocol is uvicorn's httptools one with lokit's listener limits
(`protocol.limited_protocol`: connections per socket, a header deadline, a
declared body size, the keep-alive timeout `Limits.idle_timeout`): the
once-a-second tick sweeps connections whose headers are overdue or that idled
too long.

With `tls` (a `ServerTLS`) every TCP listener serves HTTPS, and Unix sockets too
with `tls.unix`; with its client CA a client certificate is required (unless
`client_auth=False`: the debug listener). The connection's asyncio transport
carries the peer's certificate (`get_extra_info("ssl_object")`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn

from lokit.security.tls import ServerTLS
from lokit.transport import address
from lokit.transport.address import Address
from lokit.transport.http.app import HttpApp
from lokit.transport.http.protocol import limited_protocol, state_key, sweep
from lokit.transport.limits import Limits, ListenerState
from lokit.types import ASGIApp

# uvicorn closes idle keep-alive connections after this many seconds (the default
# `--idle-timeout`); lokit's client gives up idle connections sooner, so it never
# reuses one being closed.
KEEP_ALIVE_SECONDS = Limits().idle_timeout


class _Uvicorn(uvicorn.Server):
    """uvicorn.Server without signal handlers, with a started event and a prompt exit."""

    def __init__(self, config: uvicorn.Config, header_timeout: float) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self.wake = asyncio.Event()
        self.header_timeout = header_timeout
        self.idle_timeout = config.timeout_keep_alive
        self.tick = min(1.0, header_timeout / 2, self.idle_timeout / 2)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the lokit runtime owns SIGTERM/SIGINT

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # A TLS handshake happens before the protocol sees the connection, so the
        # header deadline cannot cover it, and uvicorn passes no handshake timeout
        # (asyncio's default is 60 s): a client that opens TLS connections and never
        # finishes the handshake would hold them that long. The handshake gets the
        # header timeout instead.
        loop = asyncio.get_running_loop()
        if self.config.ssl is not None:
            create = loop.create_server
            loop.create_server = functools.partial(  # type: ignore[method-assign]
                create, ssl_handshake_timeout=self.header_timeout
            )
            try:
                await super().startup(sockets=sockets)
            finally:
                del loop.create_server
        else:
            await super().startup(sockets=sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        # uvicorn polls every 0.1 s; tick once a second (the Date header, the sweep of
        # overdue and idle connections; more often for timeouts under 2 s) and wake on stop().
        loop = asyncio.get_running_loop()
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.tick)
            sweep(
                self.server_state.connections, self.header_timeout, self.idle_timeout, loop.time()
            )


async def _serve(server: _Uvicorn, sockets: list[socket.socket]) -> None:
    try:
        await server.serve(sockets=sockets)
    except SystemExit as e:  # uvicorn exits the process on some startup failures
        raise RuntimeError(f"uvicorn stopped with exit status {e.code}") from None


class HttpServer:
    """One ASGI app served by uvicorn (httptools) on any number of addresses.

    `socket_mode` and `socket_group` (a gid) are given to the Unix socket files;
    `reuse_port` sets SO_REUSEPORT on TCP listeners (one `--instances` run's).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        name: str = "http",
        graceful_timeout: float = 5.0,
        limits: Limits | None = None,
        service: str = "",
        tls: ServerTLS | None = None,
        client_auth: bool = True,
        socket_mode: int = address.SOCKET_MODE,
        socket_group: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        self._app = app
        self._reuse_port = reuse_port  # TCP ports shared by one run's instances
        self._tls = tls
        self._client_auth = client_auth
        self._socket_mode = socket_mode
        self._socket_group = socket_group
        self._name = name
        self._limits = limits or Limits()
        self._service = service
        self._graceful_timeout = graceful_timeout
        self._servers: list[tuple[_Uvicorn, asyncio.Task[None]]] = []
        self._addresses: list[Address] = []

    @property
    def addresses(self) -> list[Address]:
        """The bound addresses (real ports filled in); empty when not serving."""
        return list(self._addresses)

    async def start(self, addrs: list[Address]) -> list[Address]:
        """Bind `addrs`, start serving, and return the bound addresses."""
        if self._servers:
            raise RuntimeError(f"the {self._name} server is already running")
        bound: list[tuple[Address, socket.socket]] = []
        try:
            for addr in addrs:
                sock = address.bind(
                    addr,
                    mode=self._socket_mode,
                    group=self._socket_group,
                    reuse_port=self._reuse_port,
                )
                bound.append((addr, sock))
        except BaseException:
            _release(bound)
            raise
        limits = self._limits
        states: dict[Any, ListenerState] = {}
        for addr, sock in bound:
            real = address.bound_address(addr, sock)
            states[state_key(sock.getsockname())] = ListenerState(
                self._name, str(real), limits.connections
            )
        # One uvicorn server per kind of listener (plaintext, TLS): uvicorn has one
        # SSL setting for all its sockets. They share the app, the limits' states
        # and the loop.
        groups: dict[bool, list[socket.socket]] = {}
        for addr, sock in bound:
            groups.setdefault(self._ssl_for(addr) is not None, []).append(sock)
        started: list[tuple[_Uvicorn, asyncio.Task[None]]] = []
        try:
            for secure, socks in groups.items():
                started.append(await self._start_one(states, socks, secure))
        except BaseException:
            await _stop_all(started, self._graceful_timeout)
            _release(bound)
            raise
        self._servers = started
        self._addresses = [address.bound_address(addr, sock) for addr, sock in bound]
        return list(self._addresses)

    def _ssl_for(self, addr: Address) -> ssl.SSLContext | None:
        tls = self._tls
        if tls is None or (addr.path is not None and not tls.unix):
            return None
        return tls.ssl_context(client_auth=self._client_auth)

    async def _start_one(
        self, states: dict[Any, ListenerState], socks: list[socket.socket], secure: bool
    ) -> tuple[_Uvicorn, asyncio.Task[None]]:
        limits = self._limits
        direct_app = self._app if isinstance(self._app, HttpApp) else None
        options: dict[str, Any] = {
            "loop": "none",
            "http": limited_protocol(limits, self._service, states, direct_app),
            "ws": "none",
            "lifespan": "off",
            "interface": "asgi3",
            "access_log": False,
            "log_config": None,
            "log_level": "warning",  # uvicorn's own info chatter; its errors still show
            "proxy_headers": False,
            "server_header": False,
            "timeout_keep_alive": limits.idle_timeout,
            "timeout_graceful_shutdown": self._graceful_timeout,
        }
        if secure:
            assert self._tls is not None
            context = self._tls.ssl_context(client_auth=self._client_auth)
            options["ssl_context_factory"] = lambda config, default: context
        server = _Uvicorn(uvicorn.Config(self._app, **options), limits.header_timeout)
        task = asyncio.create_task(_serve(server, socks), name=f"lokit-{self._name}-server")
        ready = asyncio.create_task(server.ready.wait())
        try:
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            ready.cancel()
        if not server.ready.is_set():
            exc = task.exception() if task.done() and not task.cancelled() else None
            if not task.done():
                task.cancel()
            raise RuntimeError(f"the {self._name} server failed to start: {exc}") from exc
        return server, task

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, clean up."""
        servers, addrs = self._servers, self._addresses
        if not servers:
            return
        self._servers, self._addresses = [], []
        try:
            await _stop_all(servers, self._graceful_timeout)
        finally:
            for addr in addrs:
                address.remove_socket_file(addr)


async def _stop_all(servers: list[tuple[_Uvicorn, asyncio.Task[None]]], grace: float) -> None:
    await asyncio.gather(*(_stop(server, task, grace) for server, task in servers))


async def _stop(server: _Uvicorn, task: asyncio.Task[None], grace: float) -> None:
    server.should_exit = True
    server.wake.set()
    try:
        # uvicorn cancels what is still running after the grace period; allow it a moment.
        await asyncio.wait_for(asyncio.shield(task), grace + 1.0)
    except TimeoutError:
        server.force_exit = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    except Exception:
        pass  # the server had already failed; it is stopped either way


def _release(bound: list[tuple[Address, socket.socket]]) -> None:
    """Close sockets bound for a start that did not happen, and remove their files."""
    for addr, sock in bound:
        sock.close()
        address.remove_socket_file(addr)
