"""The log service's wire contract, read by its server, `LogClient`, `lokit call`, the benchmarks.

Kept apart from the wiring (`definition`) so a client loads the codecs and
nothing of the storage engine.
"""

from __future__ import annotations

import functools
from typing import Any

from lokit.contract import Contract, contract
from lokit.logsvc.api import LogAPI
from lokit.logsvc.defaults import DEFAULT_TOPIC
from lokit.logsvc.http import log_http_routes
from lokit.logsvc.pb import GRPC_SERVICE, codec
from lokit.proto import log_pb2

__all__ = ["log_contract"]


@functools.cache
def log_contract() -> Contract[LogAPI]:
    """proglog's `log.v1.Log` over gRPC (protobuf), the log's own HTTP JSON routes.

    Derived once per process (a contract is immutable): every `LogClient` shares it.

    Actions for an ACL: `produce` for every write (and CommitPosition),
    `consume` for every read; the object is the request's topic (the default
    topic's name for ""), `*` for GetServers and ListTopics, which name none
    (ListTopics shows every topic). Reads and CommitPosition are idempotent.
    """
    return contract(
        "log",
        LogAPI,
        grpc_service=GRPC_SERVICE,
        grpc_codecs=lambda method: codec(method.name),
        grpc_file=log_pb2.DESCRIPTOR,
        http=log_http_routes,
        actions={name: "produce" for name in _WRITES} | {name: "consume" for name in _READS},
        objects={name: _topic for name in (*_WRITES, *_READS) if name not in _NO_TOPIC},
        idempotent=(*_READS, "CommitPosition"),
    )


def _topic(request: Any) -> str:
    """The ACL object of a request: its topic."""
    topic: str = request.topic
    return topic or DEFAULT_TOPIC


_NO_TOPIC = ("GetServers", "ListTopics")
_WRITES = ("Produce", "ProduceStream", "ProduceBatch", "ProduceBatchStream", "CommitPosition")
_READS = (
    "Consume",
    "ConsumeStream",
    "ConsumeBatch",
    "ConsumeBatchStream",
    "FetchPosition",
    "ListTopics",
    "GetServers",
)
