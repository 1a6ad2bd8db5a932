"""Child process for the crash tests: appends with fsync 'always' until it is killed.

Usage: python crash_child.py DIR MODE   (MODE: sync | async | batch)

Prints "ready" once the log is open, then one line per acknowledged offset, written
with a single unbuffered write after `append` returned (so after the fsync).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys

CONFIG_KW: dict[str, object] = {
    "max_store_bytes": 4096,
    "max_index_bytes": 12 * 40,
    "fsync": "always",
}


def value_for(offset: int) -> bytes:
    """A deterministic record for `offset`, of varying length."""
    tag = f"{offset}:".encode()
    return tag + hashlib.shake_128(tag).digest((offset * 7919) % 300)


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def run_sync(directory: str) -> None:
    from lokit.commitlog import Log, LogConfig

    log = Log.open(directory, LogConfig(**CONFIG_KW))  # type: ignore[arg-type]
    _say("ready")
    while True:
        off = log.next_offset
        got = log.append(value_for(off))
        assert got == off
        _say(str(got))


async def run_async(directory: str, batch: bool) -> None:
    from lokit.commitlog import AsyncLog, LogConfig

    alog = await AsyncLog.open(directory, LogConfig(**CONFIG_KW))  # type: ignore[arg-type]
    _say("ready")
    rng = random.Random()
    reserved = alog.next_offset

    async def worker() -> None:
        nonlocal reserved
        while True:
            # offsets follow the order of the append calls on the loop
            first = reserved
            n = rng.randint(1, 20) if batch else 1
            reserved += n
            if batch:
                got = await alog.append_batch([value_for(first + i) for i in range(n)])
                assert got == first
                _say("\n".join(str(first + i) for i in range(n)))
            else:
                got = await alog.append(value_for(first))
                assert got == first
                _say(str(got))

    await asyncio.gather(*(worker() for _ in range(8)))


def main() -> None:
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    directory, mode = sys.argv[1], sys.argv[2]
    if mode == "sync":
        run_sync(directory)
    else:
        asyncio.run(run_async(directory, batch=mode == "batch"))


if __name__ == "__main__":
    main()
