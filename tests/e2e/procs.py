"""Start real `python -m lokit` processes for end-to-end tests and read their ready lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

# Sets RLIMIT_NOFILE, then execs the real command: a child's limit without a preexec_fn.
# A preexec_fn runs Python in a forked copy of this process, whose gRPC threads (a test's
# client) make grpc-core's fork handlers race the exec: the child can abort (SIGABRT,
# "epoll_wait error: Bad file descriptor") before it starts. DESIGN: never fork after
# importing grpc.
_WITH_NOFILE = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def with_nofile(nofile: int, argv: list[str]) -> list[str]:
    """`argv` (a `python ...` command) run with an open-file limit of `nofile`."""
    assert argv[0] == sys.executable
    return [sys.executable, "-c", _WITH_NOFILE, str(nofile), *argv[1:]]


class LokitProcess:
    """A `python -m lokit ARGS...` child: ready addresses, captured stderr, clean stop."""

    def __init__(
        self,
        args: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        module: str = "lokit",
    ) -> None:
        """`python -m MODULE ARGS` (`module`: another command, such as a service's own script)."""
        self.args = args
        self.cwd = cwd
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        self.addrs: dict[str, list[str]] = defaultdict(list)
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._ready:
                self.stdout_lines.append(line)
                if " listening on " in line:
                    kind = line.split(": ", 1)[1].split(" ", 1)[0]
                    self.addrs[kind].append(line.rsplit(" listening on ", 1)[1])
                self._ready.notify_all()
        with self._ready:
            self._ready.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._ready:
                self.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._ready.notify_all()
        with self._ready:
            self._ready.notify_all()

    def wait_stderr(self, match: Callable[[str], bool], timeout: float = 20.0) -> list[str]:
        """The stderr lines so far, once one of them satisfies `match` (or the time is up).

        A server logs a request (and ends its span) after it answered, and this process
        reads the pipe in a thread: a line is not there yet when the answer arrives.
        """
        deadline = time.monotonic() + timeout
        with self._ready:
            while not any(match(line) for line in self.stderr_lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(min(left, 0.2))
            return list(self.stderr_lines)

    def wait_ready(self, listeners: int, timeout: float = 20.0) -> LokitProcess:
        """Block until `listeners` ready lines arrived; fail with the child's stderr otherwise."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while sum(len(v) for v in self.addrs.values()) < listeners:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"lokit {' '.join(self.args)} not ready (rc={self.proc.poll()}):\n"
                        + "\n".join(self.stderr_lines[-20:])
                    )
                self._ready.wait(min(left, 0.2))
        return self

    def addr(self, kind: str, i: int = 0) -> str:
        return self.addrs[kind][i]

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the child and wait for its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"lokit {' '.join(self.args)} did not stop on signal {sig}"
            ) from None

    def wait_exit(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)


def run_cli(args: list[str], cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run `python -m lokit ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "lokit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
