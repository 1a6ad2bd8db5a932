"""lokit's gRPC transport: `GrpcServer` serves a ServiceDef, `GrpcClient` calls one."""

from lokit.transport.grpc.client import GrpcClient
from lokit.transport.grpc.server import GrpcServer

__all__ = ["GrpcClient", "GrpcServer"]
