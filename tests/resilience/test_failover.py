"""Three real stringsvc instances behind a `dir:` registry: a dying, a stalled, a new instance.

The client is `lokit.connect(..., grpc="dir:PATH")`: discovery, p2c, a breaker per
instance and budgeted retries. No instance is simulated: each is a `lokit serve
stringsvc` process, killed or stopped with real signals.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import lokit
from lokit.errors import DeadlineExceeded, Unavailable
from lokit.examples.addsvc.contract import addsvc_contract
from lokit.examples.stringsvc.contract import stringsvc_contract
from tests.e2e.procs import LokitProcess

pytestmark = pytest.mark.timeout(120)


class Registry:
    """A `dir:` registry of stringsvc processes, started and stopped by the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "stringsvc.d"
        self.dir.mkdir()
        self.procs: dict[str, LokitProcess] = {}

    def start(self, *names: str) -> list[LokitProcess]:
        started = []
        for name in names:
            sock = f"unix:{self.dir}/{name}.grpc.sock"
            p = LokitProcess(["serve", "stringsvc", "--grpc", sock], self.root)
            self.procs[name] = p
            started.append(p)
        return [p.wait_ready(1) for p in started]

    def served(self, name: str) -> int:
        """How many requests instance `name` has logged."""
        return _served(self, name)

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGCONT)
            p.stop()

    @property
    def target(self) -> str:
        return f"dir:{self.dir}"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path)
    reg.start("a", "b", "c")
    yield reg
    reg.stop_all()


def _breaker_state(target: str, instance: str) -> float | None:
    return REGISTRY.get_sample_value(
        "lokit_breaker_state", {"target": target, "instance": instance}
    )


def _addsvc(registry: Registry) -> LokitProcess:
    """A real addsvc whose Concat reaches every stringsvc of the registry."""
    sock = f"unix:{registry.root}/addsvc.grpc.sock"
    return LokitProcess(
        ["serve", "addsvc", "--grpc", sock, "--stringsvc", registry.target], registry.root
    ).wait_ready(1)


def _served(registry: Registry, name: str) -> int:
    return sum(1 for line in registry.procs[name].stderr_lines if "method=Uppercase" in line)


async def test_500_concats_survive_an_instance_killed_among_three(registry: Registry) -> None:
    """addsvc's Concat goes through stringsvc; one of three is SIGKILLed on the way."""
    addsvc = _addsvc(registry)
    ok = 0
    errors: list[BaseException] = []
    try:
        grpc = addsvc.addr("grpc")
        async with lokit.connect(addsvc_contract(), grpc=grpc, timeout=3.0) as a:
            for i in range(500):
                if i == 150:
                    assert all(_served(registry, n) > 0 for n in "abc"), "an idle instance"
                    registry.procs["b"].stop(signal.SIGKILL)  # its socket file stays behind
                try:
                    assert await a.concat("a", str(i)) == f"A{i}"
                    ok += 1
                except Exception as e:
                    errors.append(e)
    finally:
        addsvc.stop()
    assert ok / 500 >= 0.998, errors
    assert not any(isinstance(e, DeadlineExceeded) for e in errors)


@pytest.mark.parametrize("lb", ["p2c", "round-robin"])
async def test_a_stalled_instance_is_avoided_and_ejected(registry: Registry, lb: str) -> None:
    """SIGSTOP: the instance accepts connections and never answers.

    Each call still succeeds within its deadline (an idempotent method's attempt
    gets a share of it, then the call moves on). Round-robin keeps sending the
    stalled instance its turn until the breaker opens; p2c stops choosing it after
    its first slow answer (its latency loses every comparison), so its breaker
    sees too few calls to open, and the instance is probed again as that
    latency decays.
    """
    stalled = registry.procs["c"]
    instance = f"unix:{registry.dir}/c.grpc.sock"
    target = registry.target
    async with lokit.connect(stringsvc_contract(), grpc=target, timeout=1.0, lb=lb) as s:
        for i in range(6):
            assert await s.uppercase(f"w{i}") == f"W{i}"
        stalled.proc.send_signal(signal.SIGSTOP)
        try:
            for i in range(40):
                assert await s.uppercase(f"y{i}") == f"Y{i}"  # within each call's deadline
            if lb == "round-robin":
                assert _breaker_state(target, instance) == 2  # open
        finally:
            stalled.proc.send_signal(signal.SIGCONT)


async def test_a_new_instance_gets_traffic_and_all_gone_is_unavailable_at_once(
    registry: Registry,
) -> None:
    async with lokit.connect(stringsvc_contract(), grpc=registry.target, timeout=1.0) as s:
        assert await s.uppercase("a") == "A"
        registry.start("d")
        loop = asyncio.get_running_loop()
        joined_by = loop.time() + 2.0
        while registry.served("d") == 0:
            assert loop.time() < joined_by, "the new instance got no call within 2 s"
            await s.uppercase("join")
            await asyncio.sleep(0.01)
        for p in registry.procs.values():
            p.stop()
        await asyncio.sleep(1.2)  # the registry notices the removed sockets
        with pytest.raises(Unavailable):
            await asyncio.wait_for(s.uppercase("nobody"), 0.5)
