"""lokit's gRPC transport: `GrpcServer` serves a ServiceDef, `GrpcClient` calls one.

Both load on first use, so a client never imports the server (health, logs, metrics).
Loading this package, before any of its modules imports grpc, selects grpc-core's
poll-based I/O manager unless the environment says otherwise (`iomgr`).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from lokit.transport.grpc.iomgr import prefer_poll_iomgr

prefer_poll_iomgr()

if TYPE_CHECKING:
    from lokit.transport.grpc.client import GrpcClient
    from lokit.transport.grpc.server import GrpcServer

__all__ = ["GrpcClient", "GrpcServer"]

_HOME = {"GrpcClient": "lokit.transport.grpc.client", "GrpcServer": "lokit.transport.grpc.server"}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
