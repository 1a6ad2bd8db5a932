"""`make run`: the local stack as child processes wired on Unix sockets under ./run/.

Which services run, with which flags, is `lokit.examples.stack` (the CLI names
none). Each service runs in its own process (as it would under systemd), its
debug server on loopback TCP. The stack prints what runs where, then waits for
Ctrl-C or SIGTERM and stops the children gracefully, dependencies last.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from lokit.examples.stack import HINTS, stack


@dataclass
class Child:
    """One service process of the stack: `lokit ARGS...`."""

    name: str
    args: list[str]
    proc: asyncio.subprocess.Process | None = None
    listening: list[tuple[str, str]] = field(default_factory=list)


def stack_children(log_format: str) -> list[Child]:
    """The stack's processes, dependencies first."""
    return [Child(name, args) for name, args in stack(log_format)]


async def _start(child: Child) -> bool:
    child.proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lokit", *child.args, stdout=asyncio.subprocess.PIPE
    )
    assert child.proc.stdout is not None
    expected = sum(1 for a in child.args if a in ("--grpc", "--http", "--debug"))
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
        table = Table(title="lokit stack (Ctrl-C to stop)")
        for col in ("service", "listener", "address"):
            table.add_column(col)
        for child in children:
            for kind, addr in child.listening:
                table.add_row(child.name, kind, addr)
        console.print(table)
        for i, hint in enumerate(HINTS):
            console.print(("try: " if i == 0 else "     ") + hint)
        waiters = [asyncio.ensure_future(c.proc.wait()) for c in children if c.proc is not None]
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for w in waiters:
            w.cancel()
        if stopper not in done:
            dead = [
                c.name for c in children if c.proc is not None and c.proc.returncode is not None
            ]
            console.print(f"[red]error:[/red] {', '.join(dead)} exited; stopping the stack")
            return 1
        console.print("stopping…")
        return 0
    finally:
        await _stop(children)
