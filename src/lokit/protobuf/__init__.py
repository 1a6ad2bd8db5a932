"""Protobuf derived from type hints: a derived service's gRPC messages, schema and codec.

`Schema` (the service's descriptors, message classes and .proto text),
`schema_of(contract)`, `ProtoCodec(method, schema)` and `field(n)` (pin a field
number). The protobuf runtime is imported when one of them is first used, so
`import lokit` stays light; `lokit.protobuf.numbers` (`field`) needs none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lokit.protobuf.numbers import FieldNumber, field

if TYPE_CHECKING:
    from lokit.protobuf.codec import ProtoCodec
    from lokit.protobuf.plan import SchemaError
    from lokit.protobuf.schema import Schema, schema_of
    from lokit.protobuf.text import proto_text

__all__ = [
    "FieldNumber",
    "ProtoCodec",
    "Schema",
    "SchemaError",
    "field",
    "proto_text",
    "schema_of",
]

_LAZY = {
    "ProtoCodec": "lokit.protobuf.codec",
    "Schema": "lokit.protobuf.schema",
    "schema_of": "lokit.protobuf.schema",
    "SchemaError": "lokit.protobuf.plan",
    "proto_text": "lokit.protobuf.text",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lokit.protobuf' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
