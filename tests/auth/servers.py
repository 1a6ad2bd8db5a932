"""Servers with an ACL for the auth tests: a `Runtime` in the test's loop, its addresses,
and the clients that call it (lokit's gRPC client, raw HTTP through aiohttp)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from lokit.auth import Authorizer, acl
from lokit.runtime import Extension, Listeners, Runtime
from lokit.security.tls import ClientTLS, ServerTLS
from lokit.service import ServiceDef
from tests.security.pki import PKI


@dataclass
class Served:
    """A running service: its bound addresses by kind (`grpc`, `http`), TCP first."""

    runtime: Runtime
    authorizer: Authorizer
    addrs: dict[str, list[str]]

    def tcp(self, kind: str) -> str:
        return next(a for a in self.addrs[kind] if not a.startswith("unix:"))

    def unix(self, kind: str) -> str:
        return next(a for a in self.addrs[kind] if a.startswith("unix:"))


@contextlib.asynccontextmanager
async def serving(
    service: ServiceDef,
    tmp: Path,
    model: Path,
    policy: Path,
    pki: PKI | None = None,
    *,
    unix: bool = True,
    tls_unix: bool = False,
    socket_mode: int | None = None,
) -> AsyncIterator[Served]:
    """`service` on TCP (mTLS with the session's PKI, plaintext without) and, with `unix`,
    Unix sockets (plaintext, or mTLS too with `tls_unix`), behind an ACL of `model` and
    `policy`."""
    grpc = ["127.0.0.1:0", *([f"unix:{tmp}/svc.grpc.sock"] if unix else [])]
    http = ["127.0.0.1:0", *([f"unix:{tmp}/svc.http.sock"] if unix else [])]
    tls = None
    if pki is not None:
        tls = ServerTLS.load(str(pki.server.cert), str(pki.server.key), str(pki.ca), unix=tls_unix)
    listeners = Listeners(grpc, http, grace=1, tls=tls)
    if socket_mode is not None:
        listeners.socket_mode = socket_mode
    authorizer = Authorizer(model, policy)
    runtime = Runtime(service, listeners, (Extension(middleware=acl(authorizer)),))
    await runtime.start()
    addrs: dict[str, list[str]] = {}
    for kind, addr in runtime.bound:
        addrs.setdefault(kind, []).append(str(addr))
    try:
        yield Served(runtime, authorizer, addrs)
    finally:
        await runtime.stop()


def client_tls(pki: PKI, name: str, *, unix: bool = False) -> ClientTLS:
    """The client TLS of certificate `name` (root, nobody, ...) trusting the session's CA
    (on Unix sockets too with `unix`)."""
    issued = pki.client(name)
    return ClientTLS.load(str(pki.ca), str(issued.cert), str(issued.key), unix=unix)


async def http_call(
    addr: str,
    verb: str,
    path: str,
    *,
    tls: ClientTLS | None = None,
    json: Any = None,
) -> tuple[int, Any]:
    """One HTTP request to a `HOST:PORT` or `unix:PATH` address: (status, parsed JSON or text)."""
    ctx: ssl.SSLContext | bool = tls.ssl_context() if tls is not None else False
    if addr.startswith("unix:"):
        connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=addr[5:])
        base = "https://localhost" if tls is not None and tls.unix else "http://localhost"
    else:
        connector = aiohttp.TCPConnector()
        base = f"{'https' if tls is not None else 'http'}://{addr}"
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.request(verb, base + path, json=json, ssl=ctx) as r,
    ):
        text = await r.text()
        try:
            return r.status, await r.json(content_type=None)
        except ValueError:
            return r.status, text
