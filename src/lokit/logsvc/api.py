"""`LogAPI`: what the log service offers, the interface its contract is derived from.

proglog's `log.v1.Log` (Produce, Consume, ProduceStream, ConsumeStream,
GetServers) plus lokit's additions: topics, all-or-nothing batches, batched
streams, consumer positions and topic info. `LogService` implements it; its
other public methods (opening topics, draining) are lifecycle, not endpoints.
Like every business module, this imports nothing from a transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from lokit.logsvc import messages as m


class LogAPI(Protocol):
    """The log's endpoints; each request and response is a `messages` struct."""

    async def produce(self, request: m.ProduceRequest) -> int:
        """Append one record; its offset."""
        ...

    async def consume(self, request: m.ConsumeRequest) -> m.Record:
        """The record at an offset; OUT_OF_RANGE (HTTP 404) when there is none."""
        ...

    async def produce_stream(self, requests: AsyncIterator[m.ProduceRequest]) -> AsyncIterator[int]:
        """One offset per record, in order; ends with OK when the client half-closes."""
        ...

    async def consume_stream(self, request: m.ConsumeRequest) -> AsyncIterator[m.Record]:
        """Every record from the offset on, one per message, then new ones as they arrive."""
        ...

    async def get_servers(self, request: m.GetServersRequest) -> list[m.Server]:
        """The cluster's servers: on a single node, this one, the leader."""
        ...

    async def produce_batch(self, request: m.ProduceBatchRequest) -> m.Appended:
        """Append every value with consecutive offsets, or none (the error says why)."""
        ...

    async def produce_batch_stream(
        self, requests: AsyncIterator[m.ProduceBatchRequest]
    ) -> AsyncIterator[m.Appended]:
        """One Appended per batch, in order."""
        ...

    async def consume_batch(self, request: m.ConsumeBatchRequest) -> m.RecordBatch:
        """Up to max_records / max_bytes records from an offset (empty at the end)."""
        ...

    async def consume_batch_stream(
        self, request: m.ConsumeBatchRequest
    ) -> AsyncIterator[m.RecordBatch]:
        """Batches from an offset on; tails unless stop_at_end."""
        ...

    async def commit_position(self, request: m.CommitPositionRequest) -> None:
        """Store a consumer's next offset for a topic (at most the topic's next offset)."""
        ...

    async def fetch_position(self, request: m.FetchPositionRequest) -> m.Position:
        """A consumer's committed next offset for a topic (found=False when none)."""
        ...

    async def list_topics(self, request: m.ListTopicsRequest) -> m.LogInfo:
        """Every topic's offset range and size, and every committed consumer position."""
        ...
