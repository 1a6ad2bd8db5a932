"""Real discovery servers for tests: dnsmasq and Serf agents on loopback, each stopped by pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def binary(name: str) -> str:
    """The path of a Debian server binary; missing: a failure under CI=true, else a skip."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        why = f"{name} is not installed (scripts/ensure-servers.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


def free_port() -> int:
    """A loopback port free for both TCP and UDP (Serf gossips on both, dnsmasq answers on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port: int = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free loopback port")


class Server:
    """A child process, stopped (SIGTERM, then SIGKILL) by its own pid."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None


def _wait_tcp(port: int, server: Server, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not server.alive():
            raise AssertionError(f"{server.argv[0]} exited:\n{server.log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{server.argv[0]} not listening on {port}")


class Dnsmasq:
    """dnsmasq serving SRV records on a loopback port; `restart` serves new ones on that port."""

    def __init__(self, tmp: Path) -> None:
        self.exe = binary("dnsmasq")
        self.tmp = tmp
        self.port = free_port()
        self.server: Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *srv_hosts: str, ttl: int = 1) -> None:
        """Serve `--srv-host=` records (`NAME,TARGET,PORT`), with a TTL of `ttl` seconds."""
        argv = [
            self.exe,
            "--no-daemon",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            f"--local-ttl={ttl}",
            f"--pid-file={self.tmp / 'dnsmasq.pid'}",
            *(f"--srv-host={h}" for h in srv_hosts),
        ]
        self.server = Server(argv, self.tmp / "dnsmasq.log")
        _wait_tcp(self.port, self.server)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.server is not None:
            self.server.kill(sig)
            self.server = None

    def restart(self, *srv_hosts: str, ttl: int = 1) -> None:
        self.stop()
        self.start(*srv_hosts, ttl=ttl)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    d = Dnsmasq(tmp_path)
    yield d
    d.stop()


class SerfAgent:
    """One `serf agent` on loopback: gossip on `bind`, RPC on `rpc`."""

    def __init__(
        self, name: str, tmp: Path, join: SerfAgent | None = None, start: bool = True
    ) -> None:
        """An agent named `name` on free ports; started (joining `join`) unless `start` is False."""
        self.exe = binary("serf")
        self.name = name
        self.tmp = tmp
        self.bind_port = free_port()
        self.rpc_port = free_port()
        self.server: Server | None = None
        if start:
            self.start(join)

    @property
    def rpc(self) -> str:
        return f"127.0.0.1:{self.rpc_port}"

    @property
    def bind(self) -> str:
        return f"127.0.0.1:{self.bind_port}"

    def start(self, join: SerfAgent | None = None) -> None:
        argv = [
            self.exe,
            "agent",
            f"-node={self.name}",
            f"-bind={self.bind}",
            f"-rpc-addr={self.rpc}",
            "-log-level=warn",
        ]
        if join is not None:
            argv.append(f"-join={join.bind}")
        self.server = Server(argv, self.tmp / f"serf-{self.name}.log")
        _wait_tcp(self.rpc_port, self.server)

    def kill(self) -> None:
        if self.server is not None:
            self.server.kill(signal.SIGKILL)
            self.server = None

    def members(self) -> str:
        r = subprocess.run(
            [self.exe, "members", f"-rpc-addr={self.rpc}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return r.stdout

    def tags(self) -> dict[str, str]:
        """This agent's own tags (`serf members -format=json`), {} while it does not answer."""
        r = subprocess.run(
            [self.exe, "members", f"-rpc-addr={self.rpc}", "-format=json", f"-name={self.name}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if r.returncode != 0:
            return {}
        members = json.loads(r.stdout).get("members") or []
        return dict(members[0].get("tags") or {}) if members else {}


def serf_cluster(tmp: Path) -> tuple[SerfAgent, SerfAgent]:
    """Two joined agents, `a` and `b`; both alive in each other's view when returned."""
    a = SerfAgent("a", tmp)
    b = SerfAgent("b", tmp, join=a)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(m.members().count(" alive") == 2 for m in (a, b)):
            return a, b
        time.sleep(0.1)
    raise AssertionError(f"serf agents did not join:\n{a.members()}\n{b.members()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SerfAgent, SerfAgent]]:
    """Two joined Serf agents shared by a module's tests (which must not kill them)."""
    a, b = serf_cluster(tmp_path_factory.mktemp("serf"))
    yield a, b
    b.kill()
    a.kill()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[tuple[SerfAgent, SerfAgent]]:
    """Two joined Serf agents for one test, which may kill and restart them."""
    a, b = serf_cluster(tmp_path)
    yield a, b
    b.kill()
    a.kill()
