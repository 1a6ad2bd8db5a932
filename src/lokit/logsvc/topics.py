"""The log service's open topics: each topic's log and the cache of its newest records.

`OpenTopics` keeps every topic the service has opened, by the name a request
used ("" too, for the default topic). Only writes create topics (`create`), and
a tailing read of the default topic, which always exists in proglog; any other
read either finds the topic (`existing`) or waits for a produce to create it
(`awaited`), so reads never create topics (a directory and an open log each)
from arbitrary names. At startup `open_existing` opens (and recovers) every
topic on disk, so afterwards a name that is not open does not exist, and
looking it up needs no disk access.

Storage errors become the errors a client sees in one place, `mapped`.
"""

from __future__ import annotations

import asyncio

from lokit import commitlog
from lokit.commitlog import AsyncLog, LogError, Topics, validate_topic_name
from lokit.errors import DataLoss, Error, Internal, Unavailable
from lokit.logsvc.cache import TailCache
from lokit.logsvc.errors import InvalidTopicError, OffsetOutOfRangeError, RecordTooLargeError
from lokit.logsvc.waiting import Waits

__all__ = ["OpenTopic", "OpenTopics", "mapped"]


def mapped(exc: LogError) -> Error:
    """The lokit error a client sees for a storage error."""
    if isinstance(exc, commitlog.OffsetOutOfRangeError):
        return OffsetOutOfRangeError.at(exc.offset)
    if isinstance(exc, commitlog.RecordTooLargeError):
        return RecordTooLargeError(str(exc))
    if isinstance(exc, commitlog.InvalidTopicNameError):
        return InvalidTopicError(str(exc))
    if isinstance(exc, commitlog.CorruptRecordError):
        return DataLoss(str(exc))
    if isinstance(exc, commitlog.LogClosedError):
        return Unavailable("the log is closed: the server is stopping")
    return Internal(f"log storage error: {exc}")


class OpenTopic:
    """An open topic: its name, its log and the cache of its newest records."""

    __slots__ = ("cache", "log", "name")

    def __init__(self, name: str, log: AsyncLog, cache_bytes: int) -> None:
        self.name = name
        self.log = log
        self.cache = TailCache(cache_bytes)

    async def read(self, offset: int, max_records: int, max_bytes: int) -> tuple[int, list[bytes]]:
        """(offset of the first, values) from `offset`, moved up to the lowest retained
        offset; no values at the end. From the tail cache when it holds `offset`."""
        log = self.log
        for _ in range(8):
            low = log.lowest_offset
            if low is not None and offset < low:
                offset = low
            if offset >= log.next_offset:
                return offset, []
            cached = self.cache.get(offset, max_records, max_bytes)
            if cached is not None:
                return offset, cached
            try:
                items = await log.read_range(offset, max_records, max_bytes)
                return items[0][0], [v for _, v in items]
            except commitlog.OffsetOutOfRangeError:
                continue  # retention removed the segment meanwhile: retry from the new lowest
            except LogError as e:
                raise mapped(e) from None
        raise Internal(f"could not read from offset {offset}: the log kept moving")


class OpenTopics:
    """The topics of `topics` the service has opened, by requested name ("" = `default`).

    `get` is the no-await fast path for a topic already open; `awaited` waits
    through `waits`, so a drain ends it.
    """

    __slots__ = ("_cache_bytes", "_default", "_open", "_opened", "_topics", "_waits", "get")

    def __init__(self, topics: Topics, waits: Waits, *, default: str, cache_bytes: int) -> None:
        self._topics = topics
        self._waits = waits
        self._default = default
        self._cache_bytes = cache_bytes
        self._open: dict[str, OpenTopic] = {}  # by the name requested ("" too)
        self._opened = asyncio.Event()  # set (and replaced) whenever a topic opens
        self.get = self._open.get  # the open topic a request names, or None: no disk access

    async def create(self, topic: str) -> OpenTopic:
        """Open (creating it if needed) the topic a request names ("" = the default)."""
        name = topic or self._default
        t = self._open.get(name)
        if t is None:
            try:
                t = OpenTopic(name, await self._topics.get(name), self._cache_bytes)
            except LogError as e:
                raise mapped(e) from None
            t = self._open.setdefault(name, t)
            opened, self._opened = self._opened, asyncio.Event()
            opened.set()  # wake the reads waiting for a topic to be created
        self._open[topic] = t
        return t

    async def existing(self, topic: str) -> OpenTopic | None:
        """The topic when it exists; None (without creating it) when it does not.

        `open_existing` opened every topic on disk at startup, so a name that is
        not open does not exist: no disk access here.
        """
        t = self._open.get(topic)
        if t is not None:
            return t
        name = topic or self._default
        try:
            validate_topic_name(name)
        except LogError as e:
            raise mapped(e) from None
        if not self._topics.is_open(name):
            return None
        return await self.create(topic)

    async def awaited(self, topic: str) -> OpenTopic:
        """For a read that waits for records: the topic, once it exists.

        The default topic is opened (created) at once, as proglog's one log always
        exists; any other topic is waited for until a produce creates it.
        """
        if not topic or topic == self._default:
            return self._open.get(topic) or await self.create(topic)
        while (t := await self.existing(topic)) is None:
            await self._waits.until(self._opened.wait())
        return t

    async def open_existing(self) -> list[tuple[str, AsyncLog]]:
        """Open (and recover) every topic on disk at startup; (name, log) of each."""
        return [(name, (await self.create(name)).log) for name in self._topics.names()]
