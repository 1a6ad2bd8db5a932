"""The log service's wiring: topics + positions -> LogService -> gRPC and HTTP routes.

`log_definition` opens nothing itself: the start hook takes the data directory's
lock, opens (and recovers) every existing topic and the consumer positions, the
stop hook closes them after the transports have drained.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from lokit.commitlog import Topics
from lokit.derive import describe
from lokit.errors import FailedPrecondition
from lokit.logsvc.config import ServerConfig
from lokit.logsvc.http import log_http_routes
from lokit.logsvc.messages import Server
from lokit.logsvc.metrics import LogMetrics
from lokit.logsvc.pb import GRPC_SERVICE, pb_codecs
from lokit.logsvc.positions import Positions
from lokit.logsvc.service import LogService
from lokit.routes import GrpcRoute, ServiceDef

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

    Its drain hook ends tailing streams as shutdown begins, so idle followers do
    not hold the grace period.
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
    lock = DataDirLock(data)

    async def start() -> None:
        lock.acquire()
        try:
            await positions.open()
            for name, log in await service._open_existing():
                highest = log.highest_offset
                if highest is not None:
                    metrics.highest_offset(name, highest)
        except BaseException:
            await topics.close()
            await positions.close()
            lock.release()
            raise

    async def stop() -> None:
        try:
            await topics.close()
            await positions.close()
        finally:
            lock.release()

    methods = {m.name: m for m in describe(service)}
    codecs = pb_codecs()
    grpc = [GrpcRoute(f"/{GRPC_SERVICE}/{name}", m, codecs[name]) for name, m in methods.items()]
    return ServiceDef(
        name="log",
        grpc=grpc,
        http=log_http_routes(methods),
        grpc_services=[GRPC_SERVICE],
        on_start=[start],
        on_stop=[stop],
        on_drain=[service.drain],
    )
