"""The log service's wiring: its contract, and topics + positions -> LogService -> ServiceDef.

`log_definition` opens nothing itself: its lifespan takes the data directory's
lock, opens (and recovers) every existing topic and the consumer positions, and
closes them after the transports have drained.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from lokit.commitlog import Topics
from lokit.errors import FailedPrecondition
from lokit.logsvc.config import ServerConfig
from lokit.logsvc.contract import log_contract
from lokit.logsvc.messages import Server
from lokit.logsvc.metrics import LogMetrics
from lokit.logsvc.positions import Positions
from lokit.logsvc.service import LogService
from lokit.service import ServiceDef, define

LOCK_FILE = ".lokit-log.lock"
POSITIONS_FILE = ".positions.sqlite"


class DataDirLock:
    """An exclusive lock on a data directory, so two servers never share one."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd = -1

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise FailedPrecondition(
                f"cannot use data directory {self.path.parent}: {e.strerror or e}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FailedPrecondition(
                f"data directory {self.path.parent} is in use by another log server"
            ) from None
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def log_definition(
    config: ServerConfig | None = None, *, rpc_addr: str = "", node_id: str | None = None
) -> ServiceDef:
    """The log service ready to serve; `rpc_addr` is what GetServers advertises.

    Its lifespan takes the data directory's lock, opens the consumer positions
    and every existing topic (recovering them), and closes all of it after the
    transports have drained — also when a step of the start fails. Its drain
    ends tailing streams as shutdown begins, so idle followers do not hold the
    grace period.
    """
    config = config or ServerConfig()
    data = Path(config.data)
    metrics = LogMetrics()
    log_config = config.log_config()
    topics = Topics(data, log_config, on_fsync=lambda _topic, s: metrics.fsync(s))
    durable = log_config.fsync_policy.mode == "always"
    positions = Positions(data / POSITIONS_FILE, durable=durable)
    server = Server(node_id or socket.gethostname(), rpc_addr, True)
    service = LogService(
        topics,
        positions,
        servers=[server],
        observer=metrics,
        cache_bytes=config.read_cache_bytes,
    )

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            lock = DataDirLock(data)
            lock.acquire()
            stack.callback(lock.release)
            stack.push_async_callback(positions.close)
            stack.push_async_callback(topics.close)
            await positions.open()
            for name, log in await service.open_existing():
                highest = log.highest_offset
                if highest is not None:
                    metrics.highest_offset(name, highest)
            yield

    return define(log_contract(), service, lifespan=lifespan, drain=service.drain)
