"""LogClient over the log's HTTP socket beside its gRPC one: single reads as single produces."""

from __future__ import annotations

from pathlib import Path

import pytest

from lokit.dialing import http_beside
from lokit.logsvc.client import LogClient
from lokit.logsvc.errors import OffsetOutOfRangeError

from .conftest import InProcess


@pytest.mark.parametrize("over_http", [True, False], ids=["http", "grpc"])
async def test_single_reads_match_on_both_protocols(server: InProcess, over_http: bool) -> None:
    c = LogClient(server.grpc, timeout=10, local_http=over_http)
    try:
        assert (c._http is not None) is over_http
        assert [await c.produce(b"d%d" % i) for i in range(3)] == [0, 1, 2]
        assert await c.produce(b"t0", "orders") == 0
        assert (await c.consume(1)).value == b"d1"
        assert (await c.consume(2, "default")).value == b"d2"  # "" is the default topic
        record = await c.consume(0, "orders")
        assert (record.value, record.offset) == (b"t0", 0)
        with pytest.raises(OffsetOutOfRangeError):
            await c.consume(3)
        with pytest.raises(OffsetOutOfRangeError):
            await c.consume(0, "nothing-here")
    finally:
        await c.close()


def test_the_http_socket_is_found_only_beside_a_grpc_one(server: InProcess, tmp_path: Path) -> None:
    assert http_beside(server.grpc) == server.http
    assert http_beside(server.http) is None
    assert http_beside(f"unix:{tmp_path}/none.grpc.sock") is None
    assert http_beside("127.0.0.1:8400") is None
