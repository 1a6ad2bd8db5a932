"""Shared plumbing for benchmarks: the `--quick` / `--json PATH` contract and the table.

Every `bench/NAME.py` builds a list of `Row`s, then calls `report(rows, args)`, which
prints a rich table and, with `--json PATH`, writes `{"rows": [...]}` as DESIGN.md says.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


@dataclass(frozen=True)
class Row:
    """One measured figure."""

    case: str
    system: str
    metric: str
    value: float
    unit: str


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the contract's two flags already on it."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a smaller run that ends within a minute")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    return p


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of samples, by nearest rank."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def cpu_seconds(pid: int | None = None) -> float:
    """User+system CPU seconds of a process (default: this one, children excluded)."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` onto `cpus` (threads it starts later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(tid), cpus)


def placements() -> dict[str, int]:
    """Where a ping-pong's servers go: `same`, the core this process is pinned to, and
    `cross`, another one (absent on one core).

    A sequential call is wakeup-bound, and placement decides much of its cost: beside
    its client, a wakeup is a switch on one core; on the other core it is an
    inter-processor interrupt (on a VM, an idle vCPU to wake). Left alone, the kernel
    keeps whichever placement a server started with, so two systems could each be
    measured in another one; pinned, both are measured in both."""
    cores = sorted(os.sched_getaffinity(0))
    return {"same": cores[0]} | ({"cross": cores[1]} if len(cores) > 1 else {})


@contextlib.contextmanager
def placed(pids: list[int], core: int) -> Iterator[None]:
    """For the block, this process on its first core and the `pids` on `core`; after
    it, every one of them back on all the cores this process had."""
    mine = os.sched_getaffinity(0)
    try:
        pin(os.getpid(), {min(mine)})
        for pid in pids:
            pin(pid, {core})
        yield
    finally:
        for pid in [os.getpid(), *pids]:
            with contextlib.suppress(OSError):  # a server that has exited
                pin(pid, mine)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cell(row: Row) -> str:
    """A row's value as the table shows it: one decimal and its unit; a unitless ratio
    (a success ratio of 0.997) with four significant digits, so it does not round to 1.0."""
    if not row.unit:
        return f"{row.value:.4g}"
    return f"{row.value:,.1f} {row.unit}"


def report(rows: list[Row], args: argparse.Namespace, title: str) -> None:
    """Print rows as a table (cases down, systems across) and honour --json."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("case")
    table.add_column("metric")
    systems = list(dict.fromkeys(r.system for r in rows))
    for s in systems:
        table.add_column(s, justify="right")
    keys = list(dict.fromkeys((r.case, r.metric) for r in rows))
    index = {(r.case, r.metric, r.system): r for r in rows}
    for case, metric in keys:
        cells = []
        for s in systems:
            r = index.get((case, metric, s))
            cells.append("" if r is None else cell(r))
        table.add_row(case, metric, *cells)
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [asdict(r) for r in rows]}, indent=2))


def stop(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM a server the bench started and wait for it; SIGKILL it if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
