"""One Runtime per module serving `Probe` and addsvc over HTTP on loopback TCP and a Unix socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from lokit.examples.addsvc.definition import addsvc_definition
from lokit.runtime import Listeners, Runtime
from tests.connect.servers import probe


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Served:
    """A running service's HTTP addresses: one TCP, one Unix socket."""

    runtime: Runtime
    tcp: str
    unix: str

    async def post(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/json",
        *,
        via: str = "unix",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """POST `body` to `path` with Connect's version header (unless `headers` overrides it)."""
        hdrs = {"content-type": content_type, "connect-protocol-version": "1", **(headers or {})}
        hdrs = {k: v for k, v in hdrs.items() if v}
        if via == "unix":
            sock = self.unix.removeprefix("unix:")
            conn: aiohttp.BaseConnector = aiohttp.UnixConnector(path=sock)
            url = "http://localhost" + path
        else:
            conn = aiohttp.TCPConnector()
            url = f"http://{self.tcp}{path}"
        async with (
            aiohttp.ClientSession(connector=conn) as s,
            s.post(url, data=body, headers=hdrs) as r,
        ):
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read())


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("connect")


async def _serve(service: Any, tmp: Path, name: str) -> AsyncIterator[Served]:
    rt = Runtime(service, Listeners([], ["127.0.0.1:0", f"unix:{tmp}/{name}.sock"], None, 1.0))
    await rt.start()
    addrs = [str(a) for kind, a in rt.bound if kind == "http"]
    try:
        tcp = next(a for a in addrs if not a.startswith("unix:"))
        yield Served(rt, tcp, f"unix:{tmp}/{name}.sock")
    finally:
        await rt.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def probe_server(tmp_dir: Path) -> AsyncIterator[Served]:
    async for s in _serve(probe(), tmp_dir, "probe"):
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def addsvc_server(tmp_dir: Path) -> AsyncIterator[Served]:
    async for s in _serve(addsvc_definition(), tmp_dir, "addsvc"):
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def log_server(tmp_dir: Path) -> AsyncIterator[Served]:
    from lokit.logsvc.config import ServerConfig
    from lokit.logsvc.definition import log_definition

    grpc = f"unix:{tmp_dir}/log.grpc.sock"
    config = ServerConfig(data=str(tmp_dir / "data"), fsync="never")
    async for s in _serve(log_definition(config, rpc_addr=grpc), tmp_dir, "log"):
        yield s
