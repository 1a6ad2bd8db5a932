"""The grpc-core settings lokit's own processes run with, unless the environment says otherwise.

- `GRPC_VERBOSITY=ERROR` for servers: grpc-core's unstructured INFO line for every
  failed TLS handshake stays out of the log; its errors still show.
- `GRPC_EXPERIMENTS`: grpc-core's poll-based I/O manager, as lokit's gRPC transport
  chooses it wherever it is what loads grpc (`lokit.transport.grpc.iomgr`). The
  commands set it first thing, before anything can import grpc.

Any value already set, even an empty one, is kept (`GRPC_EXPERIMENTS= lokit
serve ...` runs grpc's own choice).
"""

from __future__ import annotations

import os

from lokit.transport.grpc.iomgr import prefer_poll_iomgr

__all__ = ["client_defaults", "server_defaults"]


def client_defaults() -> None:
    """A lokit command's gRPC client settings (see the module), where unset."""
    prefer_poll_iomgr()


def server_defaults() -> None:
    """A lokit server process's gRPC settings (see the module), where unset."""
    client_defaults()
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
