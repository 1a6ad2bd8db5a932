"""The log service's request and response values, independent of any wire format.

The gRPC codecs (`pb`) and the HTTP codecs (`http`) translate to and from these;
the service sees nothing else. Values are raw bytes; a batch is a list of values
with the offset of its first one (record i has offset `first_offset + i`).
"""

from __future__ import annotations

import msgspec


class ProduceRequest(msgspec.Struct, gc=False):
    """Append one record to a topic ("" = the default log)."""

    value: bytes
    topic: str = ""


class ConsumeRequest(msgspec.Struct, gc=False):
    """Read the record at `offset` (or stream from it)."""

    offset: int = 0
    topic: str = ""


class Record(msgspec.Struct, gc=False):
    """One stored record."""

    value: bytes
    offset: int


class ProduceBatchRequest(msgspec.Struct, gc=False):
    """Append every value, with consecutive offsets, or none of them."""

    values: list[bytes]
    topic: str = ""


class Appended(msgspec.Struct, gc=False):
    """Where a batch went: offsets first_offset .. first_offset + count - 1."""

    first_offset: int
    count: int


class ConsumeBatchRequest(msgspec.Struct, gc=False):
    """Read many records from `offset`; 0 limits mean the server's defaults."""

    offset: int = 0
    topic: str = ""
    max_records: int = 0
    max_bytes: int = 0
    stop_at_end: bool = False
    max_wait_ms: int = 0


class RecordBatch(msgspec.Struct, gc=False):
    """Consecutive records from `first_offset`; `end_offset` is the log's next offset."""

    first_offset: int
    values: list[bytes]
    end_offset: int


class GetServersRequest(msgspec.Struct, gc=False):
    """No fields: proglog's GetServersRequest."""


class Server(msgspec.Struct, gc=False):
    """One server of the cluster (proglog's Server)."""

    id: str
    rpc_addr: str
    is_leader: bool


class CommitPositionRequest(msgspec.Struct, gc=False):
    """Store `offset` as the next offset `consumer` will read from `topic`."""

    consumer: str
    offset: int
    topic: str = ""


class FetchPositionRequest(msgspec.Struct, gc=False):
    """Which offset `consumer` reads next from `topic`."""

    consumer: str
    topic: str = ""


class Position(msgspec.Struct, gc=False):
    """A committed position; `found` is False (and offset 0) when none was committed."""

    offset: int
    found: bool


class ListTopicsRequest(msgspec.Struct, gc=False):
    """No fields."""


class TopicInfo(msgspec.Struct, gc=False):
    """A topic's offset range and size; lowest_offset == next_offset when it is empty."""

    name: str
    lowest_offset: int
    next_offset: int
    size_bytes: int


class ConsumerPosition(msgspec.Struct, gc=False):
    """One committed consumer position."""

    consumer: str
    topic: str
    offset: int


class LogInfo(msgspec.Struct, gc=False):
    """Every topic and every committed consumer position."""

    topics: list[TopicInfo]
    positions: list[ConsumerPosition]
