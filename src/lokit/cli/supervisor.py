"""`--instances N`: a small supervisor that keeps N copies of one serve command running.

Each instance is a real child process running the same command line (the
interpreter's original argv), told its part by `LOKIT_INSTANCE` (an
`InstancePlan`: its listeners, its CPU). The supervisor:

- relays each instance's stdout ("listening on" lines) to its own; the
  instances' logs go straight to stderr;
- fails the whole start (stopping the others; exit 1) when an instance exits
  before it is ready: a mistake in the flags would otherwise restart forever;
- restarts an instance that exits later, with backoff (0.5 s doubling to 30 s,
  back to 0.5 s after 10 s of life), one log line each time;
- runs each instance in its own session, so a terminal's Ctrl-C reaches the
  supervisor alone, and forwards SIGTERM and SIGINT (graceful stop: each
  instance drains within its grace) and SIGHUP (reload) to every instance; an instance still running
  `grace` + 5 s after a stop is killed; socket files a killed instance left
  are removed;
- holds every shared TCP port (`reserve_shared_port`) for its whole life, so a
  restarted instance gets its port back and no unrelated server can take it.

An instance stops by itself when its supervisor dies (`PR_SET_PDEATHSIG`, set
by the instance: a `preexec_fn` is unsafe once grpc is loaded). Written here
rather than taken from a process manager (supervisord, circus): those are
daemons with their own config files; this is one command's copies, started,
watched and stopped with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import sys
import time
from dataclasses import dataclass, field

from lokit.cli.affinity import format_cpus
from lokit.cli.instances import ENV, InstancePlan, unix_paths
from lokit.observability.logs import get_logger
from lokit.transport.address import beside, unix_socket_alive

__all__ = ["Supervisor"]

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
STABLE_SECONDS = 10.0  # a life this long resets the backoff
KILL_MARGIN = 5.0  # seconds past the grace before an instance still running is killed


@dataclass
class _Instance:
    plan: InstancePlan
    proc: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    returncode: int | None = None
    serving: bool = False  # this run of it printed its listening lines: its handlers are in


def _status(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class Supervisor:
    """Run `argv` once per plan until a stop signal; `run()` returns the exit status."""

    def __init__(
        self,
        service: str,
        argv: list[str],
        plans: list[InstancePlan],
        grace: float,
        reserved: list[socket.socket] | None = None,
    ) -> None:
        self.service = service
        self.argv = argv
        self.instances = [_Instance(p) for p in plans]
        self.listeners = plans[0].listeners()  # "listening on" lines that make one ready
        self.grace = grace
        self.reserved = reserved or []
        self.log = get_logger("lokit")
        self._stop = asyncio.Event()
        self._failed: int | None = None
        self._all_ready = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._signal, sig)
        tasks = [asyncio.create_task(self._keep(inst)) for inst in self.instances]
        try:
            waiting = asyncio.create_task(self._wait_ready())
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not self._stop.is_set():
                self._all_ready = True
                self.log.info(
                    "instances ready",
                    service=self.service,
                    instances=len(self.instances),
                    pids=",".join(str(i.proc.pid) for i in self.instances if i.proc),
                )
            else:
                waiting.cancel()
            await self._stop.wait()
            stopped.cancel()
            self._forward(signal.SIGTERM)
            _, pending = await asyncio.wait(tasks, timeout=self.grace + KILL_MARGIN)
            for inst in self.instances:
                if inst.proc is not None and inst.proc.returncode is None:
                    self.log.error(
                        "instance did not stop in time; killing it",
                        service=self.service,
                        instance=inst.plan.index,
                        pid=inst.proc.pid,
                    )
                    with contextlib.suppress(ProcessLookupError):
                        inst.proc.kill()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
        finally:
            for task in tasks:
                task.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            for inst in self.instances:
                self._remove_leftovers(inst.plan)
            for sock in self.reserved:
                sock.close()
        if self._failed is not None:
            return self._failed
        codes = [i.returncode for i in self.instances]
        return 0 if all(c == 0 for c in codes) else 1

    async def _wait_ready(self) -> None:
        for inst in self.instances:
            await inst.ready.wait()

    def _signal(self, sig: int) -> None:
        if sig == signal.SIGHUP:
            self._forward(sig)
            return
        if not self._stop.is_set():
            self.log.info(
                "stopping instances", service=self.service, signal=signal.Signals(sig).name
            )
        self._stop.set()
        self._forward(sig)

    def _forward(self, sig: int) -> None:
        """`sig` to every live instance that serves; one still starting has no handlers
        yet (SIGHUP would kill it, SIGINT print a traceback): it gets no reload, and
        SIGTERM for a stop."""
        for inst in self.instances:
            if inst.proc is None or inst.proc.returncode is not None:
                continue
            send = sig
            if not inst.serving:
                if sig == signal.SIGHUP:
                    continue
                send = signal.SIGTERM
            with contextlib.suppress(ProcessLookupError):
                inst.proc.send_signal(send)

    async def _keep(self, inst: _Instance) -> None:
        """Run one instance, restarting it with backoff until the supervisor stops; a
        failure of the supervising itself (spawning, say) stops the run."""
        try:
            await self._restarting(inst)
        except Exception as e:
            self.log.error(
                "cannot supervise instance; stopping",
                service=self.service,
                instance=inst.plan.index,
                err=f"{type(e).__name__}: {e}",
            )
            self._failed = 1
            self._stop.set()

    async def _restarting(self, inst: _Instance) -> None:
        delay = BACKOFF_FIRST
        while True:
            began = time.monotonic()
            code = await self._run_once(inst)
            # Stopped before it served (its handlers not yet in): not a failure.
            inst.returncode = 0 if self._stop.is_set() and not inst.serving else code
            if self._stop.is_set():
                return
            if not self._all_ready:  # it never came up: the start fails as a whole
                self.log.error(
                    "instance failed to start; stopping the others",
                    service=self.service,
                    instance=inst.plan.index,
                    status=_status(code),
                )
                self._failed = code if code > 0 else 1
                self._stop.set()
                return
            self._remove_leftovers(inst.plan)
            if time.monotonic() - began >= STABLE_SECONDS:
                delay = BACKOFF_FIRST
            self.log.warning(
                "instance exited; restarting",
                service=self.service,
                instance=inst.plan.index,
                status=_status(code),
                restart_in=delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._stop.is_set():
                return
            delay = min(delay * 2, BACKOFF_CAP)

    async def _run_once(self, inst: _Instance) -> int:
        env = {**os.environ, ENV: inst.plan.to_env()}
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            # Its own session: a terminal's Ctrl-C reaches the supervisor only, which
            # forwards it to instances that serve (SIGTERM to one still starting).
            start_new_session=True,
        )
        inst.proc = proc
        inst.serving = False
        self.log.info(
            "instance started",
            service=self.service,
            instance=inst.plan.index,
            pid=proc.pid,
            cpu=format_cpus(inst.plan.cpus) if inst.plan.cpus else "any",
        )
        if self._stop.is_set():  # a stop arrived while it was being spawned
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        assert proc.stdout is not None
        seen = 0
        relay = True
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line over the reader's limit: skipped
                continue
            if not line:
                break
            if relay:
                try:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
                except OSError:  # our stdout is gone (`| head`): keep serving, stop relaying
                    relay = False
            if b" listening on " in line:
                seen += 1
                if seen >= self.listeners:
                    inst.serving = True
                    inst.ready.set()
        return await proc.wait()

    def _remove_leftovers(self, plan: InstancePlan) -> None:
        """Remove socket files of `plan` that no live server holds (its process was killed)."""
        frames = [beside(a, "frames", of="http") for a in plan.http]
        for path in unix_paths(*plan.grpc, *plan.http, *frames, plan.debug):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode) and not unix_socket_alive(path):
                    os.unlink(path)
