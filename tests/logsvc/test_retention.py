"""Retention under the service: readers below the oldest retained record start there."""

from __future__ import annotations

from pathlib import Path

import pytest

from lokit.logsvc.client import LogClient
from lokit.logsvc.errors import OffsetOutOfRangeError
from tests.logsvc.conftest import start_in_process


async def test_reads_below_the_retained_range_start_at_the_oldest(tmp_path: Path) -> None:
    srv = await start_in_process(tmp_path, segment_max_bytes=1024, retention_bytes=2048)
    c = LogClient(srv.grpc)
    try:
        for i in range(10):
            await c.produce_batch([b"%02d-%s" % (i * 10 + k, b"x" * 40) for k in range(10)])
        (topic,) = (await c.list_topics()).topics
        low = topic.lowest_offset
        assert 0 < low < 100 and topic.next_offset == 100
        with pytest.raises(OffsetOutOfRangeError):
            await c.consume(0)  # below the retained range, though the cache may hold it
        assert (await c.consume(low)).value.startswith(b"%02d-" % low)
        assert (await c.consume(99)).value.startswith(b"99-")
        with pytest.raises(OffsetOutOfRangeError):
            await c.consume(100)
        values = [v async for b in c.consume_batches(0, stop_at_end=True) for v in b.values]
        assert len(values) == 100 - low
        assert values[0].startswith(b"%02d-" % low) and values[-1].startswith(b"99-")
        batch = await c.consume_batch(0)
        assert batch.first_offset == low
    finally:
        await c.close()
        await srv.runtime.stop()
