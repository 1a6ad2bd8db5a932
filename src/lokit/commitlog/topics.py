"""Many named logs (topics) under one data directory, each in ``<data_dir>/<name>/``.

A topic is created the first time it is asked for. Names become directory names,
so they are validated first: nothing that is empty, too long, hidden, or able to
escape the data directory.

All topics share one `FilePool`, so the descriptors their segments hold stay under one
bound however many topics there are (idle topics' files are closed and reopened on
use), and one lock on the data directory (``.topics.lock``, taken on the first `get`)
stands for every topic's own ``LOCK``: a topic directory opened as a standalone `Log`
while a `Topics` has the data directory is not detected.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import Callable
from functools import partial
from pathlib import Path

from .asynclog import AsyncLog
from .config import LogConfig
from .dirlock import DirLock
from .errors import InvalidTopicNameError, LogClosedError
from .files import FilePool, make_dirs

DEFAULT_TOPIC = "default"
"""The topic the network service uses when a request names none."""

MAX_TOPIC_NAME = 200

TOPICS_LOCK = ".topics.lock"
"""The data directory's lock file (a name no topic can have)."""


def validate_topic_name(name: object) -> str:
    """Return `name` if it can name a topic directory; InvalidTopicNameError otherwise."""
    if not isinstance(name, str):
        raise InvalidTopicNameError(
            repr(name), f"a topic name must be a string, not {type(name).__name__}"
        )
    if not name:
        raise InvalidTopicNameError(name, "the name is empty")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopicNameError(
            name[:40] + "...", f"the name is {len(name)} characters long; at most {MAX_TOPIC_NAME}"
        )
    if "\0" in name:
        raise InvalidTopicNameError(name, "the name contains a NUL character")
    if "/" in name or "\\" in name:
        raise InvalidTopicNameError(name, "the name contains a path separator ('/' or '\\')")
    if name.startswith("."):
        raise InvalidTopicNameError(
            name, "the name starts with '.' (this also rules out '.' and '..')"
        )
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise InvalidTopicNameError(name, "the name contains a control character")
    if len(name.encode("utf-8")) > 255:
        raise InvalidTopicNameError(name, "the name is longer than 255 bytes in UTF-8")
    return name


class Topics:
    """Named AsyncLogs under `data_dir`, opened on first use and shared afterwards.

    `on_fsync(topic, seconds)`, if given, observes every sync round of every topic.
    `max_open_files` bounds the descriptors all topics' segments hold together (by
    default `config.max_open_files`, else half the soft RLIMIT_NOFILE).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        config: LogConfig | None = None,
        *,
        on_fsync: Callable[[str, float], None] | None = None,
        max_open_files: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config or LogConfig()
        self.pool = FilePool(max_open_files or self.config.max_open_files)
        """The descriptor pool every topic's segments share."""
        self._dir_lock = DirLock(
            self.data_dir,
            TOPICS_LOCK,
            in_use="the topics in {dir} are already open (in this or another process)",
            unusable="cannot open the topics in {dir}: {strerror}",
            create=True,
        )
        self._on_fsync = on_fsync
        self._logs: dict[str, AsyncLog] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._closed = False

    async def get(self, name: str = DEFAULT_TOPIC) -> AsyncLog:
        """The topic's log, created (or opened and recovered) on first use."""
        validate_topic_name(name)
        if self._closed:
            raise LogClosedError(self.data_dir)
        alog = self._logs.get(name)
        if alog is not None:
            return alog
        lock = self._opening.setdefault(name, asyncio.Lock())
        async with lock:
            alog = self._logs.get(name)
            if alog is not None:
                return alog
            hook = partial(self._on_fsync, name) if self._on_fsync is not None else None
            if not self._dir_lock.held:
                await asyncio.to_thread(make_dirs, self.data_dir, self.config.perms)
                await asyncio.to_thread(self._dir_lock.acquire)
            alog = await AsyncLog.open(
                self.data_dir / name, self.config, on_fsync=hook, pool=self.pool, lock_dir=False
            )
            if self._closed:
                await alog.close()
                raise LogClosedError(self.data_dir)
            self._logs[name] = alog
        return alog

    def names(self) -> list[str]:
        """Every topic: those on disk and those open, sorted."""
        found = set(self._logs)
        try:
            with os.scandir(self.data_dir) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        try:
                            found.add(validate_topic_name(e.name))
                        except InvalidTopicNameError:
                            pass
        except FileNotFoundError:
            pass
        return sorted(found)

    def is_open(self, name: str) -> bool:
        return name in self._logs

    @property
    def open_files(self) -> int:
        """File descriptors the engine holds now for these topics: every open segment's
        (at most about `pool.max_open_files`) and the data directory's lock."""
        return self.pool.open_files + self._dir_lock.held

    async def close(self) -> None:
        """Close every open topic."""
        self._closed = True
        logs = list(self._logs.values())
        self._logs.clear()
        try:
            await asyncio.gather(*(log.close() for log in logs))
        finally:
            self._dir_lock.release()

    async def __aenter__(self) -> Topics:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
