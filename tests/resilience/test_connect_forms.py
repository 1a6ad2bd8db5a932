"""`lokit.connect` with the other address forms: a fixed set over HTTP, an egress rate limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import lokit
from lokit.errors import DeadlineExceeded
from lokit.examples.stringsvc.contract import stringsvc_contract
from tests.e2e.procs import LokitProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def two(tmp_path: Path):  # type: ignore[no-untyped-def]
    procs = [
        LokitProcess(["serve", "stringsvc", "--http", f"unix:{tmp_path}/{n}.http.sock"], tmp_path)
        for n in "ab"
    ]
    yield [p.wait_ready(1) for p in procs]
    for p in procs:
        p.stop()


async def test_a_fixed_set_over_http_spreads_calls(two: list[LokitProcess]) -> None:
    target = ",".join(p.addr("http") for p in two)
    async with lokit.connect(stringsvc_contract(), http=target, lb="round-robin") as s:
        for i in range(10):
            assert await s.uppercase(f"h{i}") == f"H{i}"
    for p in two:
        lines = p.wait_stderr(lambda line: "method=Uppercase" in line)
        assert sum("method=Uppercase" in line for line in lines) >= 1


async def test_the_egress_limit_spaces_calls_and_is_bounded_by_the_deadline(
    two: list[LokitProcess],
) -> None:
    async with lokit.connect(
        stringsvc_contract(), http=two[0].addr("http"), limit="20/second", timeout=0.2
    ) as s:
        results = await asyncio.gather(
            *(s.uppercase(f"l{i}") for i in range(20)), return_exceptions=True
        )
    sent = [r for r in results if isinstance(r, str)]
    late = [r for r in results if isinstance(r, DeadlineExceeded)]
    # 20/second is one call per 50 ms: within a 200 ms deadline about five get a turn;
    # the others would wait past it and fail at once, never sent.
    assert 3 <= len(sent) <= 6
    assert len(sent) + len(late) == 20
