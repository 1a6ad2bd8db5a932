"""`watching`: reload an `Authorizer` when its files change, for as long as a service runs.

Polls the model's and policy's mtime and size (`Authorizer.reload_if_changed`)
every `interval` seconds: two `stat` calls, nothing on the request path. A new
policy takes effect within a poll, and SIGHUP reloads at once. A file that
cannot be used keeps the old policy and is said once at error level.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from lokit.auth.authorizer import ACLError, Authorizer
from lokit.observability.logs import get_logger

__all__ = ["POLL_SECONDS", "watching"]

POLL_SECONDS = 1.0

_log = get_logger("lokit.auth")


@contextlib.asynccontextmanager
async def watching(authorizer: Authorizer, interval: float = POLL_SECONDS) -> AsyncIterator[None]:
    """Poll `authorizer`'s files while the block runs."""
    task = asyncio.create_task(_poll(authorizer, interval), name="lokit-acl-watch")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _poll(authorizer: Authorizer, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            what = authorizer.reload_if_changed()
        except ACLError as e:
            _log.error("acl reload failed, keeping the old policy", err=str(e))
        else:
            if what is not None:
                _log.info("acl reloaded", what=what)
