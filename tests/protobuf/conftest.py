"""One Runtime per module serving the protobuf tests' `Kitchen` over gRPC on a Unix socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

import lokit
from lokit.runtime import Listeners, Runtime
from tests.protobuf.services import Kitchen


@dataclass
class Served:
    grpc: str  # unix:PATH
    json_grpc: str  # the same service with codec="json"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kitchen(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("protobuf")
    proto = Runtime(
        lokit.define("kitchen", Kitchen()), Listeners([f"unix:{tmp}/k.sock"], [], None, 1.0)
    )
    json = Runtime(
        lokit.define("kitchen", Kitchen(), codec="json"),
        Listeners([f"unix:{tmp}/j.sock"], [], None, 1.0),
    )
    await proto.start()
    try:
        await json.start()
        try:
            yield Served(f"unix:{tmp}/k.sock", f"unix:{tmp}/j.sock")
        finally:
            await json.stop()
    finally:
        await proto.stop()
