"""The log service's wiring: its contract, and topics + positions -> LogService -> ServiceDef.

`log_definition` opens nothing itself: its lifespan takes the data directory's
lock, opens (and recovers) every existing topic and the consumer positions, and
closes them after the transports have drained. It also sets the bounds the
service keeps (the number of topics, from the open-file limit unless
configured) and its health check (`storage_health`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import structlog

from lokit.commitlog import DirLock, DirLockError, LogFailedError, Topics
from lokit.errors import FailedPrecondition
from lokit.logsvc.config import ServerConfig
from lokit.logsvc.contract import log_contract
from lokit.logsvc.messages import Server
from lokit.logsvc.metrics import LogMetrics
from lokit.logsvc.positions import Positions
from lokit.logsvc.service import LogService
from lokit.logsvc.topics import OpenTopics
from lokit.service import ServiceDef, define

LOCK_FILE = ".lokit-log.lock"
POSITIONS_FILE = ".positions.sqlite"
FDS_PER_TOPIC = 3
"""Open files an open topic holds today: its directory lock, store and index."""
MAX_DEFAULT_TOPICS = 10_000
"""The default limit's ceiling, whatever the fd limit (each topic also costs threads)."""
DATA_DIR_MODE = 0o700
MIN_FREE_BYTES = 1 << 20
"""Below this much free space on its disk the log reports NOT_SERVING."""

_log = structlog.get_logger("lokit.logsvc")


def default_max_topics(fd_limit: int | None = None) -> int:
    """Topics that fit the open-file limit (the soft RLIMIT_NOFILE by default), a
    quarter of it (at least 256 fds) kept for connections, the positions database
    and the server itself; at least 16, at most MAX_DEFAULT_TOPICS."""
    if fd_limit is None:
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if fd_limit == resource.RLIM_INFINITY or fd_limit < 0:
        return MAX_DEFAULT_TOPICS
    spare = max(256, fd_limit // 4)
    return max(16, min(MAX_DEFAULT_TOPICS, (fd_limit - spare) // FDS_PER_TOPIC))


def data_dir_lock(data: Path) -> DirLock:
    """The data directory's lock, so two log servers never share one."""
    return DirLock(
        data,
        LOCK_FILE,
        create=True,
        in_use="data directory {dir} is in use by another log server",
        unusable="cannot use data directory {dir}: {strerror}",
    )


def prepare_data_dir(data: Path) -> None:
    """Create the data directory 0700, so no other local user reads the records.

    An existing one open to group or others is made owner-only when it is a log's
    (it holds the lock file) or empty, and said at warning; any other directory
    (e.g. `--data .`) is only warned about, never changed.
    """
    try:
        data.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
        mode = stat.S_IMODE(data.stat().st_mode)
        if mode & 0o077:
            ours = (data / LOCK_FILE).exists() or not any(data.iterdir())
            if ours:
                os.chmod(data, mode & ~0o077)
            _log.warning(
                "log.data_dir_mode",
                path=str(data),
                mode=oct(mode),
                message="the data directory was open to other users; it is now owner-only"
                if ours
                else "the data directory is open to other users, who can read the records",
            )
    except OSError as e:
        raise FailedPrecondition(f"cannot use data directory {data}: {e.strerror or e}") from None


def storage_health(data: Path, open_topics: OpenTopics) -> Callable[[], str | None]:
    """The log's health check: None while storage can write, else one sentence.

    NOT_SERVING when the data directory is gone or not writable, when its disk has
    less than MIN_FREE_BYTES free, when a topic's
    log is poisoned (a failed fsync or rollback: only a restart recovers it), or
    when the last write to a topic failed (e.g. a full disk) and none succeeded since.
    """

    def check() -> str | None:
        try:
            st = os.stat(data)
        except OSError:
            return "the log's data directory is gone"
        if not stat.S_ISDIR(st.st_mode):
            return "the log's data directory is not a directory"
        if not os.access(data, os.W_OK | os.X_OK):
            return "the log's data directory is not writable"
        try:
            fs = os.statvfs(data)
        except OSError:
            return "the log's data directory is gone"
        free = (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize
        if free < MIN_FREE_BYTES:
            return f"the disk holding the log is full ({free // 1024} KiB free)"
        for t in open_topics.topics():
            failed = _engine_failure(t.log)
            if failed is not None:
                open_topics.health.failed(t.name, failed)
        return open_topics.health.first()

    return check


def _engine_failure(log: object) -> BaseException | None:
    """The error that poisoned a topic's log (a failed fsync, or a write whose rollback
    failed), or None. The engine has no public accessor yet: its Durability's."""
    failed = getattr(log, "failed", None)
    if isinstance(failed, BaseException):
        return failed
    durability = getattr(getattr(log, "log", None), "_durability", None)
    failed = getattr(durability, "failed", None)
    if not isinstance(failed, BaseException):
        return None
    err = LogFailedError("an earlier write or fsync failed")
    err.__cause__ = failed
    return err


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
    max_topics = config.max_topics or default_max_topics()
    service = LogService(
        topics,
        positions,
        servers=[server],
        observer=metrics,
        cache_bytes=config.read_cache_bytes,
        max_topics=max_topics,
    )
    budget = service.open_topics.budget
    metrics.limits(max_topics, config.read_cache_bytes)
    metrics.cache_bytes(lambda: budget.nbytes)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            prepare_data_dir(data)
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

    return define(
        log_contract(),
        service,
        lifespan=lifespan,
        drain=service.drain,
        health=storage_health(data, service.open_topics),
    )
