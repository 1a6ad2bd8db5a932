from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProduceRequest(_message.Message):
    __slots__ = ("record", "topic")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    record: Record
    topic: str
    def __init__(self, record: _Optional[_Union[Record, _Mapping]] = ..., topic: _Optional[str] = ...) -> None: ...

class ProduceResponse(_message.Message):
    __slots__ = ("offset",)
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    offset: int
    def __init__(self, offset: _Optional[int] = ...) -> None: ...

class ConsumeRequest(_message.Message):
    __slots__ = ("offset", "topic")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    offset: int
    topic: str
    def __init__(self, offset: _Optional[int] = ..., topic: _Optional[str] = ...) -> None: ...

class ConsumeResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: Record
    def __init__(self, record: _Optional[_Union[Record, _Mapping]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("value", "offset", "term", "type")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    offset: int
    term: int
    type: int
    def __init__(self, value: _Optional[bytes] = ..., offset: _Optional[int] = ..., term: _Optional[int] = ..., type: _Optional[int] = ...) -> None: ...

class GetServersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServersResponse(_message.Message):
    __slots__ = ("servers",)
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[Server]
    def __init__(self, servers: _Optional[_Iterable[_Union[Server, _Mapping]]] = ...) -> None: ...

class Server(_message.Message):
    __slots__ = ("id", "rpc_addr", "is_leader")
    ID_FIELD_NUMBER: _ClassVar[int]
    RPC_ADDR_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    id: str
    rpc_addr: str
    is_leader: bool
    def __init__(self, id: _Optional[str] = ..., rpc_addr: _Optional[str] = ..., is_leader: _Optional[bool] = ...) -> None: ...

class ProduceBatchRequest(_message.Message):
    __slots__ = ("topic", "values")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    topic: str
    values: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, topic: _Optional[str] = ..., values: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ProduceBatchResponse(_message.Message):
    __slots__ = ("first_offset", "count")
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    first_offset: int
    count: int
    def __init__(self, first_offset: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class ConsumeBatchRequest(_message.Message):
    __slots__ = ("topic", "offset", "max_records", "max_bytes", "stop_at_end", "max_wait_ms")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    STOP_AT_END_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    topic: str
    offset: int
    max_records: int
    max_bytes: int
    stop_at_end: bool
    max_wait_ms: int
    def __init__(self, topic: _Optional[str] = ..., offset: _Optional[int] = ..., max_records: _Optional[int] = ..., max_bytes: _Optional[int] = ..., stop_at_end: _Optional[bool] = ..., max_wait_ms: _Optional[int] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("first_offset", "values", "end_offset")
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    first_offset: int
    values: _containers.RepeatedScalarFieldContainer[bytes]
    end_offset: int
    def __init__(self, first_offset: _Optional[int] = ..., values: _Optional[_Iterable[bytes]] = ..., end_offset: _Optional[int] = ...) -> None: ...

class CommitPositionRequest(_message.Message):
    __slots__ = ("consumer", "topic", "offset")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    topic: str
    offset: int
    def __init__(self, consumer: _Optional[str] = ..., topic: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class CommitPositionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FetchPositionRequest(_message.Message):
    __slots__ = ("consumer", "topic")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    topic: str
    def __init__(self, consumer: _Optional[str] = ..., topic: _Optional[str] = ...) -> None: ...

class FetchPositionResponse(_message.Message):
    __slots__ = ("offset", "found")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    offset: int
    found: bool
    def __init__(self, offset: _Optional[int] = ..., found: _Optional[bool] = ...) -> None: ...

class ListTopicsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TopicInfo(_message.Message):
    __slots__ = ("name", "lowest_offset", "next_offset", "size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOWEST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    lowest_offset: int
    next_offset: int
    size_bytes: int
    def __init__(self, name: _Optional[str] = ..., lowest_offset: _Optional[int] = ..., next_offset: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ConsumerPosition(_message.Message):
    __slots__ = ("consumer", "topic", "offset")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    topic: str
    offset: int
    def __init__(self, consumer: _Optional[str] = ..., topic: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ListTopicsResponse(_message.Message):
    __slots__ = ("topics", "positions")
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedCompositeFieldContainer[TopicInfo]
    positions: _containers.RepeatedCompositeFieldContainer[ConsumerPosition]
    def __init__(self, topics: _Optional[_Iterable[_Union[TopicInfo, _Mapping]]] = ..., positions: _Optional[_Iterable[_Union[ConsumerPosition, _Mapping]]] = ...) -> None: ...
