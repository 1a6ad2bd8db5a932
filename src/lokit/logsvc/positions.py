"""Consumer positions: a named consumer's next offset per topic, kept across restarts.

Stored in SQLite (WAL mode) next to the topics, written through one dedicated
thread so the event loop never blocks and writes keep their order; every
position is also cached in memory, so fetching one never leaves the loop.
SQLite rather than an internal topic: positions are keyed upserts read by key,
which SQLite does durably in one statement, whereas a topic would need replay
and compaction to answer "latest position of (consumer, topic)".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import structlog

from lokit.errors import ResourceExhausted, Unavailable

_log = structlog.get_logger("lokit.logsvc")
SQLITE_FULL = 13

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (
    consumer    TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at  REAL    NOT NULL,
    PRIMARY KEY (consumer, topic)
) WITHOUT ROWID
"""
_UPSERT = """
INSERT INTO positions (consumer, topic, next_offset, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (consumer, topic) DO UPDATE
SET next_offset = excluded.next_offset, updated_at = excluded.updated_at
"""


def _owner_only(path: Path) -> None:
    """Create the database file 0600 (SQLite gives its -wal and -shm files the same
    mode), or take group and other access away from the files that exist."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o077:
                os.chmod(p, mode & 0o700)


class Positions:
    """Committed consumer positions in `path` (an SQLite file), cached in memory.

    `durable=True` makes every commit wait for fsync (SQLite `synchronous=FULL`);
    otherwise a commit survives a crash of the process but maybe not of the
    machine (`synchronous=NORMAL`), like the log's interval fsync.
    """

    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self._db: sqlite3.Connection | None = None
        self._cache: dict[tuple[str, str], int] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-positions")

    async def open(self) -> None:
        """Open (or create) the database and load every position."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _owner_only(self.path)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
                db.execute("PRAGMA busy_timeout=5000")
                db.execute(_SCHEMA)
                rows = db.execute("SELECT consumer, topic, next_offset FROM positions").fetchall()
            except BaseException:
                db.close()
                raise
        except (sqlite3.Error, OSError) as e:
            raise Unavailable(f"cannot open consumer positions at {self.path}: {e}") from None
        self._db = db
        self._cache = {(c, t): int(o) for c, t, o in rows}

    def get(self, consumer: str, topic: str) -> int | None:
        """The committed next offset, or None when this consumer never committed for topic."""
        return self._cache.get((consumer, topic))

    def all(self) -> list[tuple[str, str, int]]:
        """Every (consumer, topic, next offset), sorted."""
        return sorted((c, t, o) for (c, t), o in self._cache.items())

    async def commit(self, consumer: str, topic: str, offset: int) -> None:
        """Store `offset` durably (per the durability setting), then cache it.

        The cache changes on the loop once the write is done (so `all()` never sees
        it change mid-iteration), in the writer's order, and even when the caller
        is cancelled meanwhile (the write is not), so it always matches the database.
        """
        loop = asyncio.get_running_loop()
        write = loop.run_in_executor(self._writer, self._commit, consumer, topic, offset)
        write.add_done_callback(partial(self._cached, (consumer, topic), offset))
        await asyncio.shield(write)

    def _cached(self, key: tuple[str, str], offset: int, write: asyncio.Future[None]) -> None:
        if not write.cancelled() and write.exception() is None:
            self._cache[key] = offset

    def _commit(self, consumer: str, topic: str, offset: int) -> None:
        db = self._db
        if db is None:
            raise Unavailable("consumer positions are closed (the server is stopping)")
        try:
            db.execute(_UPSERT, (consumer, topic, offset, time.time()))
        except sqlite3.Error as e:
            _log.error("log.positions_failed", path=str(self.path), error=str(e), exc_info=e)
            if getattr(e, "sqlite_errorcode", None) == SQLITE_FULL:
                raise ResourceExhausted(
                    "cannot store the consumer position: no space left on device"
                ) from None
            raise Unavailable("cannot store the consumer position: its database failed") from None

    async def close(self) -> None:
        """Close the database (pending commits finish first)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._close)
        self._writer.shutdown(wait=True)

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
