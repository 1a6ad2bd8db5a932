"""The log service's open topics: each topic's log and the cache of its newest records.

`OpenTopics` keeps every topic the service has opened, by the name a request
used ("" too, for the default topic). Only writes create topics (`create`), and
a tailing read of the default topic, which always exists in proglog; any other
read either finds the topic (`existing`) or waits for a produce to create it
(`awaited`), so reads never create topics (a directory and an open log each)
from arbitrary names. At startup `open_existing` opens (and recovers) every
topic on disk, so afterwards a name that is not open does not exist, and
looking it up needs no disk access.

At most `max_topics` topics exist: a write that would create one more is
refused (`TooManyTopicsError`, RESOURCE_EXHAUSTED) while every existing topic is
still served. One slot is kept for the default topic, so proglog's one log can
always be created. Topics already on disk at startup are all opened, even past
the limit (a server never refuses its own data): it then says so at warning.

Every topic's tail cache draws on one `CacheBudget`. Storage errors become the
errors a client sees in one place, `storage.mapped`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from lokit import commitlog
from lokit.commitlog import AsyncLog, LogError, Topics, validate_topic_name
from lokit.errors import Internal
from lokit.logsvc.cache import CacheBudget, TailCache
from lokit.logsvc.errors import TooManyTopicsError
from lokit.logsvc.storage import StorageHealth, mapped
from lokit.logsvc.waiting import Waits

__all__ = ["OpenTopic", "OpenTopics", "mapped"]

_log = structlog.get_logger("lokit.logsvc")


class OpenTopic:
    """An open topic: its name, its log and the cache of its newest records."""

    __slots__ = ("cache", "log", "name", "path")

    def __init__(self, name: str, log: AsyncLog, budget: CacheBudget, path: str) -> None:
        self.name = name
        self.log = log
        self.cache = TailCache(budget)
        self.path = path

    async def read_one(self, offset: int) -> bytes:
        """The value at `offset`. From the tail cache when it holds `offset` within the
        retained range, as `read` does (retention may have dropped what it still holds)."""
        log = self.log
        low = log.lowest_offset
        if low is not None and low <= offset < log.next_offset:
            cached = self.cache.one(offset)
            if cached is not None:
                return cached
        try:
            return await log.read(offset)
        except (LogError, OSError) as e:
            raise mapped(e, self.name, self.path) from None

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
            except (LogError, OSError) as e:
                raise mapped(e, self.name, self.path) from None
        raise Internal(f"could not read from offset {offset}: the log kept moving")


class OpenTopics:
    """The topics of `topics` the service has opened, by requested name ("" = `default`).

    `get` is the no-await fast path for a topic already open; `awaited` waits
    through `waits`, so a drain ends it. `max_topics` (None: no limit) bounds how
    many exist; `on_count(n)` hears the number of topics whenever it changes and
    `on_refused()` every refused creation.
    """

    __slots__ = (
        "_creating",
        "_default",
        "_names",
        "_on_count",
        "_on_refused",
        "_open",
        "_opened",
        "_topics",
        "_waits",
        "budget",
        "get",
        "health",
        "max_topics",
    )

    def __init__(
        self,
        topics: Topics,
        waits: Waits,
        *,
        default: str,
        cache_bytes: int,
        max_topics: int | None = None,
        on_count: Callable[[int], None] | None = None,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self._topics = topics
        self._waits = waits
        self._default = default
        self.budget = CacheBudget(cache_bytes)
        self.max_topics = max_topics
        self.health = StorageHealth()
        self._on_count = on_count
        self._on_refused = on_refused
        self._open: dict[str, OpenTopic] = {}  # by the name requested ("" too)
        self._names: dict[str, OpenTopic] = {}  # by the topic's own name
        self._creating: dict[str, int] = {}  # names being opened: how many calls each
        self._opened = asyncio.Event()  # set (and replaced) whenever a topic opens
        self.get = self._open.get  # the open topic a request names, or None: no disk access

    @property
    def count(self) -> int:
        """How many topics are open."""
        return len(self._names)

    def topics(self) -> list[OpenTopic]:
        """Every open topic."""
        return list(self._names.values())

    def _admit(self, name: str) -> None:
        """Refuse a new topic past the limit (one slot is the default topic's)."""
        limit = self.max_topics
        if limit is None or name == self._default:
            return
        held = len(self._names) + sum(1 for n in self._creating if n not in self._names)
        if self._default not in self._names and self._default not in self._creating:
            held += 1
        if held >= limit:
            if self._on_refused is not None:
                self._on_refused()
            raise TooManyTopicsError.limit(limit, name)

    async def create(self, topic: str, *, admit: bool = True) -> OpenTopic:
        """Open (creating it if needed) the topic a request names ("" = the default)."""
        name = topic or self._default
        t = self._open.get(name)
        if t is None:
            t = self._names.get(name)
        if t is None:
            if admit and name not in self._creating and not self._topics.is_open(name):
                try:
                    validate_topic_name(name)
                except LogError as e:
                    raise mapped(e) from None
                self._admit(name)
            creating = self._creating
            creating[name] = creating.get(name, 0) + 1
            try:
                log = await self._topics.get(name)
            except (LogError, OSError) as e:
                raise mapped(e, name, str((self._topics.data_dir / name).absolute())) from None
            finally:
                if creating[name] == 1:
                    del creating[name]
                else:
                    creating[name] -= 1
            t = self._names.get(name)
            if t is None:
                path = str((self._topics.data_dir / name).absolute())
                t = self._names[name] = OpenTopic(name, log, self.budget, path)
                if self._on_count is not None:
                    self._on_count(len(self._names))
            self._open.setdefault(name, t)
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
        """Open (and recover) every topic on disk at startup; (name, log) of each.

        All of them, even past `max_topics`: that is said once, at warning.
        """
        names = self._topics.names()
        limit = self.max_topics
        if limit is not None and len(names) > limit:
            _log.warning(
                "log.topics_over_limit",
                topics=len(names),
                max_topics=limit,
                message=f"the data directory holds {len(names)} topics, more than "
                f"--max-topics {limit}: all are served, and no new topic is created",
            )
        return [(name, (await self.create(name, admit=False)).log) for name in names]
