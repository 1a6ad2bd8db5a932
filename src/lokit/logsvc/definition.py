"""The log service's wiring: its contract, and topics + positions -> LogService -> ServiceDef.

`log_definition` opens nothing itself: its lifespan takes the data directory's
lock, opens (and recovers) every existing topic and the consumer positions, and
closes them after the transports have drained.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from lokit.commitlog import DirLock, DirLockError, Topics
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


def data_dir_lock(data: Path) -> DirLock:
    """The data directory's lock, so two log servers never share one."""
    return DirLock(
        data,
        LOCK_FILE,
        create=True,
        in_use="data directory {dir} is in use by another log server",
        unusable="cannot use data directory {dir}: {strerror}",
    )


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
            lock = data_dir_lock(data)
            try:
                lock.acquire()
            except DirLockError as e:
                raise FailedPrecondition(str(e)) from None
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
