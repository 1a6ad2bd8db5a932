"""grpc-core's poll-based I/O manager, chosen when lokit's gRPC transport loads grpc.

Over a Unix socket grpc-core's EventEngine endpoint costs extra hops: after each
read it asks the kernel how many bytes are still queued (TCP_INQ), which only
TCP answers, so on a Unix socket every further read wakes a thread-pool thread
that gets EAGAIN before the poller waits (strace, per call and side: 3.1
recvmsg and 8 futex on a Unix socket against 2.0 and 4.7 on TCP; a client's
futex calls fall from 7.4 to 0.2 per call with the poll manager). That made
gRPC over a Unix socket no faster than loopback TCP. With the poll-based
manager (`GRPC_EXPERIMENTS=-event_engine_client,-event_engine_listener`,
grpc's default for years; still in grpcio 1.85, lokit's pin) a call costs less
and a Unix socket beats TCP as it should (README: "Per-message cost").

grpc-core reads `GRPC_EXPERIMENTS` once, when grpc is imported, so the default
is set only where it takes effect: the variable is unset and grpc is not loaded
yet. A value already set, even an empty one, is kept (`GRPC_EXPERIMENTS=` keeps
grpc's own choice), and a process that imported grpc before lokit's transport
keeps grpc's. Child processes inherit the variable, as they would any other.
The flag is an experiment switch upstream means to retire with that manager:
the day a grpcio upgrade drops it, this default goes.
"""

from __future__ import annotations

import os
import sys

__all__ = ["POLL_IOMGR", "prefer_poll_iomgr"]

POLL_IOMGR = "-event_engine_client,-event_engine_listener"
"""The GRPC_EXPERIMENTS value that selects grpc-core's poll-based I/O manager."""


def prefer_poll_iomgr() -> None:
    """Select the poll-based I/O manager where it is unset and can still take effect."""
    if "GRPC_EXPERIMENTS" not in os.environ and "grpc" not in sys.modules:
        os.environ["GRPC_EXPERIMENTS"] = POLL_IOMGR
