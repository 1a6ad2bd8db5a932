"""Run one service: its gRPC, HTTP, frames and debug listeners in one event loop.

Beside each Unix HTTP socket named by the one-box convention (`STEM.http.sock`)
the service also serves lokit frames on `STEM.frames.sock`, the protocol lokit's
own clients call it over (`lokit.transport.frames`); not where TLS covers Unix
sockets (frames have none), nor with `Listeners.frames` off (`--no-frames`).

`serve` starts every listener (refusing a live socket or a busy port with one
sentence), reports each as ready, waits for SIGTERM or SIGINT, then shuts down
gracefully: stop accepting, let in-flight calls finish within the grace period,
leave the service's lifespan, remove socket files, and return 0.

`Extension`s are the serve-time concerns the CLI's flags turn on (an ACL, a
rate limit, a discovery registration): each may wrap every endpoint, hold
resources for the service's life, and announce the service once it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import uvloop

from lokit.observability.debug import debug_app
from lokit.observability.logs import get_logger
from lokit.observability.request import RequestObserver
from lokit.observability.tracing import configure_tracing
from lokit.routes import Lifespan, MethodMiddleware, wrap_service
from lokit.security.tls import ServerTLS
from lokit.service import ServiceDef
from lokit.transport.address import SOCKET_MODE, Address, AddressError, beside, parse
from lokit.transport.frames.server import FramesServer
from lokit.transport.grpc.server import GrpcServer
from lokit.transport.http.app import asgi_app
from lokit.transport.http.server import HttpServer
from lokit.transport.limits import Limits


@dataclass
class Listeners:
    """Where a service listens."""

    grpc: list[str] = field(default_factory=list)
    http: list[str] = field(default_factory=list)
    debug: str | None = None
    grace: float = 10.0
    limits: Limits = field(default_factory=Limits)  # for every listener
    tls: ServerTLS | None = None  # TCP listeners (and Unix ones with tls.unix)
    debug_tls: bool = False  # TLS on the debug listener too (no client certificate asked)
    socket_mode: int = SOCKET_MODE  # of every Unix socket file
    socket_group: int | None = None  # their group (a gid); None: the process's
    reflection: bool = True  # gRPC server reflection (off: --no-reflection)
    reuse_port: bool = False  # SO_REUSEPORT on gRPC/HTTP TCP ports: one of several instances
    frames: bool = True  # lokit frames beside each `STEM.http.sock` (off: --no-frames)


Ready = Callable[[str, Address], None]
Bound = list[tuple[str, Address]]


@dataclass(frozen=True)
class Extension:
    """A serve-time concern: what it adds to a service while the service runs.

    `middleware` wraps every endpoint (outside the service's own middlewares);
    `lifespan` is entered before the listeners start and left after they stop;
    `announce` is entered with the bound listeners once all are ready, and left
    first at shutdown (a registration: deregister before draining); `reload`
    runs on SIGHUP (re-read a policy file) and returns one sentence for the log.
    """

    middleware: MethodMiddleware | None = None
    lifespan: Lifespan | None = None
    announce: Callable[[Bound], AbstractAsyncContextManager[Any]] | None = None
    reload: Callable[[], str] | None = None


class Runtime:
    """The running servers of one service."""

    def __init__(
        self, service: ServiceDef, listeners: Listeners, extensions: tuple[Extension, ...] = ()
    ) -> None:
        middlewares = [x.middleware for x in extensions if x.middleware is not None]
        self.service = wrap_service(service, *middlewares)
        self.listeners = listeners
        self.extensions = extensions
        self.bound: Bound = []
        self._grpc: GrpcServer | None = None
        self._http: HttpServer | None = None
        self._frames: FramesServer | None = None
        self._debug: HttpServer | None = None
        self._lifespan = contextlib.AsyncExitStack()
        self._announced = contextlib.AsyncExitStack()

    async def start(self, ready: Ready | None = None) -> None:
        """Enter the service's lifespan, start every listener; on failure undo both and re-raise."""
        grpc_addrs = [parse(a) for a in self.listeners.grpc]
        http_addrs = [parse(a) for a in self.listeners.http]
        debug_addr = parse(self.listeners.debug) if self.listeners.debug else None
        configure_tracing(self.service.name)
        observer = RequestObserver(self.service.name)
        lst = self.listeners
        limits = lst.limits
        access: dict[str, Any] = {"socket_mode": lst.socket_mode, "socket_group": lst.socket_group}
        try:
            for x in self.extensions:
                if x.lifespan is not None:
                    await self._lifespan.enter_async_context(x.lifespan())
            if self.service.lifespan is not None:
                await self._lifespan.enter_async_context(self.service.lifespan())
            if grpc_addrs:
                self._grpc = GrpcServer(
                    self.service,
                    observer,
                    limits=limits,
                    tls=lst.tls,
                    reflection=lst.reflection,
                    reuse_port=lst.reuse_port,
                    **access,
                )
                for a in await self._grpc.start(grpc_addrs):
                    self._ready("grpc", a, ready)
            # Frames start before HTTP, so a client that sees the HTTP socket ready
            # finds the frames one beside it, and report last, after the listeners
            # the flags name (what a supervisor or `lokit run` counts as ready).
            frames_bound: list[Address] = []
            frames_addrs = self._frames_addresses(http_addrs)
            if frames_addrs:
                self._frames = FramesServer(
                    self.service,
                    observer,
                    limits=limits,
                    graceful_timeout=self.listeners.grace,
                    **access,
                )
                frames_bound = await self._frames.start(frames_addrs)
            if http_addrs:
                self._http = HttpServer(
                    asgi_app(self.service, observer, limits),
                    name="http",
                    graceful_timeout=self.listeners.grace,
                    limits=limits,
                    service=self.service.name,
                    tls=lst.tls,
                    reuse_port=lst.reuse_port,
                    **access,
                )
                for a in await self._http.start(http_addrs):
                    self._ready("http", a, ready)
            if debug_addr is not None:
                self._debug = HttpServer(
                    debug_app(health=self.service.health),
                    name="debug",
                    graceful_timeout=1.0,
                    limits=limits,
                    service=self.service.name,
                    tls=lst.tls if lst.debug_tls else None,
                    client_auth=False,  # probes and scrapers need only the CA
                    **access,
                )
                for a in await self._debug.start([debug_addr]):
                    self._ready("debug", a, ready)
            for a in frames_bound:
                self._ready("frames", a, ready)
            for x in self.extensions:
                if x.announce is not None:
                    await self._announced.enter_async_context(x.announce(list(self.bound)))
        except BaseException:
            await self.stop()
            raise

    def _frames_addresses(self, http_addrs: list[Address]) -> list[Address]:
        lst = self.listeners
        if not lst.frames or (lst.tls is not None and lst.tls.unix):
            return []
        found = (beside(str(a), "frames", of="http") for a in http_addrs)
        return [parse(a) for a in found if a is not None]

    def _ready(self, kind: str, addr: Address, ready: Ready | None) -> None:
        self.bound.append((kind, addr))
        if ready is not None:
            ready(kind, addr)

    async def stop(self) -> None:
        """Graceful shutdown of everything that started, in reverse order (the lifespan last)."""
        await self._announced.aclose()
        if self._grpc is not None or self._http is not None or self._frames is not None:
            stops = []
            if self._grpc is not None:
                stops.append(self._grpc.stop(self.listeners.grace))
            if self._http is not None:
                stops.append(self._http.stop())
            if self._frames is not None:
                stops.append(self._frames.stop())
            await asyncio.gather(*stops, return_exceptions=True)
            self._grpc = self._http = self._frames = None
        if self._debug is not None:
            await self._debug.stop()
            self._debug = None
        await self._lifespan.aclose()


async def serve(
    service: ServiceDef,
    listeners: Listeners,
    ready: Ready | None = None,
    extensions: tuple[Extension, ...] = (),
) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean shutdown, 1 when a listener cannot start."""
    log = get_logger("lokit")
    runtime = Runtime(service, listeners, extensions)
    # Handlers go in before the listeners report ready, so a signal sent right after
    # the ready lines is a graceful stop; and further signals (a terminal's Ctrl-C
    # reaches the whole process group, then a supervisor's SIGTERM) only set the
    # event again instead of cutting the graceful shutdown short.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP (a closed terminal, `systemctl reload`) would end the process without
    # any cleanup, leaving socket files behind. It reloads what extensions can
    # reload (an ACL policy); the rest of a service's settings come from its flags,
    # fixed for its life.
    reloads = [x.reload for x in extensions if x.reload is not None]
    loop.add_signal_handler(signal.SIGHUP, _hangup, log, service.name, reloads)
    try:
        try:
            await runtime.start(ready)
        except AddressError as e:
            log.error("cannot start", service=service.name, err=str(e))
            return 1
        await stop.wait()
        log.info("shutting down", service=service.name, grace=listeners.grace)
        if service.drain is not None:
            service.drain()
    finally:
        await runtime.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    log.info("stopped", service=service.name)
    return 0


def _hangup(log: Any, name: str, reloads: list[Callable[[], str]]) -> None:
    if not reloads:
        log.warning(
            "SIGHUP ignored: nothing to reload; restart the service to change its settings",
            service=name,
        )
    for reload in reloads:
        try:
            log.info("reloaded", service=name, what=reload())
        except Exception as e:  # a bad file keeps the old settings; the service serves on
            log.error("reload failed, keeping the old settings", service=name, err=str(e))


def run(coro_fn: Callable[[], Coroutine[Any, Any, int | None]]) -> int:
    """Run an async main on uvloop; returns its exit code."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return int(runner.run(coro_fn()) or 0)
