"""CPU lists (`0`, `0,1`, `0-3,6`) and pinning a process to them (`--cpu`).

`pin` uses `os.sched_setaffinity` on every thread the process has so far: on
Linux it sets one thread's mask, and threads inherit the mask of the thread
that creates them, so pinning before the servers start (grpc-core starts its
poller and executor threads when a server is created) pins those threads too.
The list syntax is the kernel's own (`Cpus_allowed_list`, `taskset -c`).
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["CpuError", "allowed_cpus", "format_cpus", "parse_cpus", "pin"]


class CpuError(ValueError):
    """A CPU list that is malformed or names a CPU this process may not use; one sentence."""


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask: a container's or taskset's limit)."""
    return sorted(os.sched_getaffinity(0))


def parse_cpus(spec: str, flag: str = "--cpu") -> list[int]:
    """`0,2-3` -> [0, 2, 3]; raises CpuError for bad syntax or a CPU this process cannot use."""
    allowed = allowed_cpus()
    top = allowed[-1]
    cpus: set[int] = set()
    beyond: list[tuple[int, int]] = []  # past the last usable CPU: named, never enumerated
    for part in spec.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise CpuError(
                f"{flag} {spec!r} is not a CPU list: give CPU numbers and ranges, "
                "such as 0, 0,1 or 0-1"
            )
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise CpuError(f"{flag} {spec!r} has a range that runs backwards ({part})")
        cpus.update(range(first, min(last, top) + 1))
        if last > top:
            beyond.append((max(first, top + 1), last))
    missing = sorted(cpus - set(allowed))
    if missing or beyond:
        names = [format_cpus(missing)] if missing else []
        names += [str(a) if a == b else f"{a}-{b}" for a, b in beyond]
        many = len(missing) + sum(b - a + 1 for a, b in beyond) > 1
        raise CpuError(
            f"{flag} {spec!r} names {'CPUs' if many else 'CPU'} {','.join(names)}, which this "
            "machine does not have (or this process may not use): it may use CPU "
            f"{format_cpus(allowed)}"
        )
    return sorted(cpus)


def format_cpus(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> `0-2,5` (the kernel's list syntax)."""
    out: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def pin(cpus: list[int]) -> None:
    """Pin every thread of this process to `cpus` (threads started later inherit it)."""
    mask = set(cpus)
    os.sched_setaffinity(0, mask)
    with contextlib.suppress(OSError):
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), mask)
