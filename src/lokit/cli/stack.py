"""`make run`: the local stack as child processes wired on Unix sockets under ./run/.

Which services run, with which flags, is `lokit.examples.stack` (the CLI names
none). Each service instance runs in its own process (as it would under
systemd), its debug server on loopback TCP. The stack prints what runs where
(with each process's pid, to try failover by hand), then waits for Ctrl-C or
SIGTERM and stops the children gracefully, dependencies last. A replica (one of
several instances of a service) may die without stopping the stack: its peers
carry on, which is the point of running several; any other exit stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from lokit.examples.stack import HINTS, stack
from lokit.transport.address import beside


@dataclass
class Child:
    """One service process of the stack: `lokit ARGS...`."""

    name: str
    args: list[str]
    replica: bool = False
    proc: asyncio.subprocess.Process | None = None
    listening: list[tuple[str, str]] = field(default_factory=list)


def stack_children(log_format: str) -> list[Child]:
    """The stack's processes, dependencies first."""
    return [Child(i.name, i.args, i.replica) for i in stack(log_format)]


async def _start(child: Child) -> bool:
    child.proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lokit", *child.args, stdout=asyncio.subprocess.PIPE
    )
    assert child.proc.stdout is not None
    expected = _listeners(child.args)
    while len(child.listening) < expected:
        line = await child.proc.stdout.readline()
        if not line:
            return False
        text = line.decode().strip()
        # "<name>: <kind> listening on <addr>"
        _, _, rest = text.partition(": ")
        kind, _, addr = rest.partition(" listening on ")
        if addr:
            child.listening.append((kind, addr))
    return True


def _listeners(args: list[str]) -> int:
    """How many ready lines `lokit ARGS` prints: one per listener flag, and one per Unix
    HTTP socket for the frames listener beside it (`lokit.runtime`)."""
    count = sum(1 for a in args if a in ("--grpc", "--http", "--debug"))
    if "--no-frames" not in args and "--tls-unix" not in args:
        pairs = itertools.pairwise(args)
        count += sum(1 for a, v in pairs if a == "--http" and beside(v, "frames", of="http"))
    return count


async def _stop(children: list[Child]) -> None:
    for child in reversed(children):
        if child.proc is not None and child.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.proc.wait(), 15)
            except TimeoutError:
                child.proc.kill()
                await child.proc.wait()


def _table(children: list[Child]) -> Table:
    """What runs where: one row per listener, with the process's pid."""
    table = Table(title="lokit stack (Ctrl-C to stop)")
    for col in ("service", "pid", "listener", "address"):
        table.add_column(col)
    for child in children:
        pid = str(child.proc.pid) if child.proc is not None else ""
        for kind, addr in child.listening:
            table.add_row(child.name, pid, kind, addr)
    return table


def _service(child: Child) -> str:
    """The service a child serves (`lokit serve NAME ...`)."""
    return child.args[1] if len(child.args) > 1 and child.args[0] == "serve" else child.name


async def _watch(children: list[Child], stop: asyncio.Event, console: Console) -> int:
    """Wait for a stop signal (0) or a fatal exit (1); a replica with live peers may exit."""
    waiters = {asyncio.ensure_future(c.proc.wait()): c for c in children if c.proc is not None}
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while True:
            done, _ = await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                console.print("stopping…")
                return 0
            for waiter in done:
                child = waiters.pop(waiter)
                peers = [
                    c.name for c in waiters.values() if c.replica and _service(c) == _service(child)
                ]
                rc = child.proc.returncode if child.proc is not None else None
                if not (child.replica and peers):
                    console.print(
                        f"[red]error:[/red] {child.name} exited (code {rc}); stopping the stack"
                    )
                    return 1
                console.print(
                    f"[yellow]{child.name} exited (code {rc});[/yellow]"
                    f" carrying on with {', '.join(peers)}"
                )
    finally:
        stopper.cancel()
        for w in waiters:
            w.cancel()


async def run_stack(log_format: str = "logfmt") -> int:
    """Start the stack, print the table, wait for a signal, stop it; the exit code."""
    console = Console()
    children = stack_children(log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for child in children:
            if not await _start(child):
                console.print(f"[red]error:[/red] {child.name} did not start; see its log above")
                return 1
        console.print(_table(children))
        for i, hint in enumerate(HINTS):
            console.print(("try: " if i == 0 else "     ") + hint)
        return await _watch(children, stop, console)
    finally:
        await _stop(children)
