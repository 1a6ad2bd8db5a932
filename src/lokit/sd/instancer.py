"""Instancers: the current set of instances of a target, pushed to subscribers on change.

Go kit's `sd.Instancer` and its instance cache, made asyncio-native: a watch
(directory poll, DNS SRV, Serf stream) feeds `_update` with each set it sees;
subscribers hear only *changed* sets, sorted; on a discovery error the last
known set is kept (one log line and `lokit_sd_errors_total{target}`), never
replaced by an empty one; a failed watch is retried with capped exponential
backoff and jitter. `lokit_sd_instances{target}` shows the set's size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from lokit.observability.logs import get_logger
from lokit.sd.backoff import Backoff
from lokit.sd.metrics import ERRORS, INSTANCES

Instances = tuple[str, ...]
Subscriber = Callable[[Instances], None]

_log = get_logger("lokit.sd")

# `start()` waits this long at most for the first attempt (a DNS server that does not answer).
FIRST_ATTEMPT_WAIT = 5.0


class Instancer:
    """The instances of one target: `instances` now, `subscribe` for every change.

    Subclasses implement `_watch`, which runs until the source fails (raise) and
    calls `_update` with each set it resolves. The base class retries a failed
    watch with backoff, keeps the last known set on errors and broadcasts only
    changes. Callbacks run on the event loop and must not block.
    """

    def __init__(self, target: str, backoff: Backoff | None = None) -> None:
        self.target = target
        self.instances: Instances = ()
        self._known = False  # a set was resolved at least once
        self._subscribers: list[Subscriber] = []
        self._backoff = backoff or Backoff()
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._failing: str | None = None  # the last error's text while failing
        self._gauge = INSTANCES.labels(target)
        self._errors = ERRORS.labels(target)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with the current set now (when there is one), then with each change.

        Returns the function that unsubscribes.
        """
        self._subscribers.append(callback)
        if self._known:
            self._notify(callback, self.instances)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    async def start(self) -> None:
        """Begin watching; return once the first attempt is over (success or not)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lokit.sd {self.target}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), FIRST_ATTEMPT_WAIT)

    async def close(self) -> None:
        """Stop watching; subscribers keep the last set they were sent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subscribers.clear()

    async def __aenter__(self) -> Instancer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _watch(self) -> None:
        """Watch the source, calling `_update` with each set; raise when the source fails."""
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            try:
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._failed(e)
            await asyncio.sleep(self._backoff.next())

    def _update(self, instances: Iterable[str]) -> None:
        """A set resolved: broadcast it if it differs from the last one."""
        new = tuple(sorted(set(instances)))
        self._backoff.reset()
        self._attempted.set()
        if self._failing is not None:
            _log.info("discovery recovered", target=self.target, instances=len(new))
            self._failing = None
        if self._known and new == self.instances:
            return
        self._known = True
        self.instances = new
        self._gauge.set(len(new))
        for callback in list(self._subscribers):
            self._notify(callback, new)

    def _failed(self, error: BaseException) -> None:
        """A discovery attempt failed: keep the last set, count it, log it (once per error)."""
        self._attempted.set()
        self._errors.inc()
        text = str(error) or type(error).__name__
        if text != self._failing:
            _log.warning(
                "discovery failed; keeping the last known instances",
                target=self.target,
                instances=len(self.instances),
                err=text,
            )
            self._failing = text
        else:
            _log.debug("discovery still failing", target=self.target, err=text)

    def _notify(self, callback: Subscriber, instances: Instances) -> None:
        try:
            callback(instances)
        except Exception as e:
            _log.error("instance subscriber failed", target=self.target, err=repr(e))


class FixedInstancer(Instancer):
    """A fixed set (`ADDR,ADDR,...`): known at once, never changes."""

    def __init__(self, target: str, instances: Iterable[str]) -> None:
        super().__init__(target)
        self._update(instances)

    async def start(self) -> None:
        return None


class PollingInstancer(Instancer):
    """An instancer that resolves its set again and again (`_poll`), at the delay it returns."""

    async def _poll(self) -> tuple[Iterable[str], float]:
        """One resolution: the set and the seconds until the next one; raise on failure."""
        raise NotImplementedError

    async def _watch(self) -> None:
        while True:
            instances, delay = await self._poll()
            self._update(instances)
            await asyncio.sleep(delay)
