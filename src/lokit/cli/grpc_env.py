"""The grpc-core settings lokit's own processes run with, unless the environment says otherwise.

- `GRPC_VERBOSITY=ERROR` for servers: grpc-core's unstructured INFO line for every
  failed TLS handshake stays out of the log; its errors still show.
- `GRPC_EXPERIMENTS=-event_engine_client,-event_engine_listener` for servers and the
  CLI's clients: grpc-core's poll-based I/O manager instead of its EventEngine
  endpoints. Over a Unix socket the EventEngine endpoint costs extra hops: after
  each read it asks the kernel how many bytes are still queued (TCP_INQ), which
  only TCP answers, so on a Unix socket every further read wakes a thread-pool
  thread that gets EAGAIN before the poller waits (strace, per call and side:
  3.1 recvmsg and 8 futex on a Unix socket against 2.0 and 4.7 on TCP). That
  made gRPC over a Unix socket no faster than loopback TCP. With the poll-based
  manager (grpc's default for years; still in grpcio 1.85, lokit's pin) a call
  costs about 15 % less, each side contributing half, and a Unix socket beats
  TCP as it should (README: "Per-message cost"). The flag is an experiment
  switch upstream means to retire with that manager: the day a grpcio upgrade
  drops it, this default goes.

Any value already set, even an empty one, is kept (`GRPC_EXPERIMENTS= lokit
serve ...` runs grpc's own choice). grpc-core reads both when it first starts
(the first channel or server), so setting them after `import grpc` still works.
"""

from __future__ import annotations

import os

__all__ = ["POLL_IOMGR", "client_defaults", "server_defaults"]

POLL_IOMGR = "-event_engine_client,-event_engine_listener"
"""The GRPC_EXPERIMENTS value that selects grpc-core's poll-based I/O manager."""


def client_defaults() -> None:
    """A lokit command's gRPC client settings (see the module), where unset."""
    os.environ.setdefault("GRPC_EXPERIMENTS", POLL_IOMGR)


def server_defaults() -> None:
    """A lokit server process's gRPC settings (see the module), where unset."""
    client_defaults()
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
