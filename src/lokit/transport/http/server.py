"""Running ASGI apps on uvicorn, inside the loop the lokit runtime already runs.

Sockets are bound by `lokit.transport.address.bind` (a live socket or a busy
port is refused, a stale socket file replaced) and handed to uvicorn, which then
serves them as a task of the running loop. uvicorn's own signal handling is
switched off: the runtime owns SIGTERM/SIGINT and calls `stop()`.

The protocol is uvicorn's httptools one with lokit's listener limits
(`protocol.limited_protocol`: connections per socket, a header deadline, a
declared body size); `Limits.idle_timeout` is uvicorn's keep-alive timeout, and
the once-a-second tick also sweeps connections whose headers are overdue.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from lokit.transport import address
from lokit.transport.address import Address
from lokit.transport.http.protocol import ListenerState, limited_protocol, state_key, sweep
from lokit.transport.limits import Limits
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

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the lokit runtime owns SIGTERM/SIGINT

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        # uvicorn polls every 0.1 s; tick once a second (Date header) and wake on stop().
        loop = asyncio.get_running_loop()
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 1.0)
            sweep(self.server_state.connections, self.header_timeout, loop.time())


async def _serve(server: _Uvicorn, sockets: list[socket.socket]) -> None:
    try:
        await server.serve(sockets=sockets)
    except SystemExit as e:  # uvicorn exits the process on some startup failures
        raise RuntimeError(f"uvicorn stopped with exit status {e.code}") from None


class HttpServer:
    """One ASGI app served by uvicorn (httptools) on any number of addresses."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        name: str = "http",
        graceful_timeout: float = 5.0,
        limits: Limits | None = None,
        service: str = "",
    ) -> None:
        self._app = app
        self._name = name
        self._limits = limits or Limits()
        self._service = service
        self._graceful_timeout = graceful_timeout
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self._addresses: list[Address] = []

    @property
    def addresses(self) -> list[Address]:
        """The bound addresses (real ports filled in); empty when not serving."""
        return list(self._addresses)

    async def start(self, addrs: list[Address]) -> list[Address]:
        """Bind `addrs`, start serving, and return the bound addresses."""
        if self._task is not None:
            raise RuntimeError(f"the {self._name} server is already running")
        bound: list[tuple[Address, socket.socket]] = []
        try:
            for addr in addrs:
                bound.append((addr, address.bind(addr)))
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
        options: dict[str, Any] = {
            "loop": "none",
            "http": limited_protocol(limits, self._service, states),
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
        server = _Uvicorn(uvicorn.Config(self._app, **options), limits.header_timeout)
        task = asyncio.create_task(  # noqa: RUF006 (kept in self._task once started)
            _serve(server, [sock for _, sock in bound]), name=f"lokit-{self._name}-server"
        )
        ready = asyncio.create_task(server.ready.wait())
        try:
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            _release(bound)
            raise
        finally:
            ready.cancel()
        if not server.ready.is_set():
            _release(bound)
            exc = task.exception() if task.done() and not task.cancelled() else None
            if not task.done():
                task.cancel()
            raise RuntimeError(f"the {self._name} server failed to start: {exc}") from exc
        self._server = server
        self._task = task
        self._addresses = [address.bound_address(addr, sock) for addr, sock in bound]
        return list(self._addresses)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, clean up."""
        server, task, addrs = self._server, self._task, self._addresses
        if server is None or task is None:
            return
        self._server, self._task, self._addresses = None, None, []
        server.should_exit = True
        server.wake.set()
        try:
            # uvicorn cancels what is still running after the grace period; allow it a moment.
            await asyncio.wait_for(asyncio.shield(task), self._graceful_timeout + 1.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:
            pass  # the server had already failed; it is stopped either way
        finally:
            for addr in addrs:
                address.remove_socket_file(addr)


def _release(bound: list[tuple[Address, socket.socket]]) -> None:
    """Close sockets bound for a start that did not happen, and remove their files."""
    for addr, sock in bound:
        sock.close()
        address.remove_socket_file(addr)
