"""`serf:` discovery and `--register serf` against real Serf agents on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lokit.sd import instancer_for
from lokit.sd.serf import SerfInstancer, member_instances, register
from lokit.sd.serfrpc import Member
from tests.e2e.procs import LokitProcess
from tests.sd.conftest import SerfAgent
from tests.sd.helpers import Recorder, errors, eventually


def _serf(
    agent: SerfAgent, monkeypatch: pytest.MonkeyPatch, target: str, kind: str = "grpc"
) -> SerfInstancer:
    monkeypatch.setenv("LOKIT_SERF_RPC", agent.rpc)
    inst = instancer_for(target, kind)  # type: ignore[arg-type]
    assert isinstance(inst, SerfInstancer)
    return inst


async def test_a_registered_serve_appears_and_disappears_with_its_process(
    cluster: tuple[SerfAgent, SerfAgent], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a, b = cluster
    grpc = _serf(a, monkeypatch, "serf:stringsvc", "grpc")
    http = _serf(a, monkeypatch, "serf:stringsvc", "http")
    await grpc.start()
    await http.start()
    rec_grpc, rec_http = Recorder(grpc), Recorder(http)
    assert rec_grpc.sets == [()]
    # The service registers with agent b; the instancers ask agent a: the tag travels by gossip.
    proc = LokitProcess(
        ["serve", "stringsvc", "--register", "serf"], tmp_path, {"LOKIT_SERF_RPC": b.rpc}
    )
    try:
        proc.wait_ready(2)
        sock = tmp_path / "run" / "stringsvc"
        await rec_grpc.wait(lambda s: s == (f"unix:{sock}.grpc.sock",))
        await rec_http.wait(lambda s: s == (f"unix:{sock}.http.sock",))
    finally:
        assert proc.stop(signal.SIGTERM) == 0
    assert "deregistered from serf" in proc.stderr
    await rec_grpc.wait(lambda s: s == () and len(rec_grpc.sets) == 3)
    assert rec_grpc.sets == [(), (f"unix:{sock}.grpc.sock",), ()]  # only changes are sent
    await grpc.close()
    await http.close()


async def test_instances_on_one_node_share_its_tag(
    cluster: tuple[SerfAgent, SerfAgent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags are per node: two instances behind one agent add to the value, each removes its own."""
    a, b = cluster
    inst = _serf(a, monkeypatch, "serf:shared")
    await inst.start()
    rec = Recorder(inst)
    async with register("shared", ["grpc=unix:/run/x.grpc.sock", "http=0.0.0.0:8080"], b.rpc):
        async with register("shared", ["grpc=0.0.0.0:9090", "127.0.0.1:7000"], b.rpc):
            both = ("127.0.0.1:7000", "127.0.0.1:9090", "unix:/run/x.grpc.sock")
            await rec.wait(lambda s: s == both)  # a wildcard host: the member's own address
        await rec.wait(lambda s: s == ("unix:/run/x.grpc.sock",))
    await rec.wait(lambda s: s == () and len(rec.sets) > 1)
    await inst.close()


async def test_a_failed_agent_leaves_the_last_set_and_retries_with_backoff(
    own_cluster: tuple[SerfAgent, SerfAgent], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = own_cluster
    inst = _serf(a, monkeypatch, "serf:kept")
    async with register("kept", ["grpc=127.0.0.1:7001"], b.rpc):
        await inst.start()
        rec = Recorder(inst)
        await rec.wait(lambda s: s == ("127.0.0.1:7001",))
        before = errors(inst.target)
        a.kill()  # the agent the instancer talks to fails
        await eventually(lambda: errors(inst.target) > before)
        await asyncio.sleep(2.0)
        attempts = errors(inst.target) - before
        # Backoff from 0.25 s, doubling: a handful of reconnects in 2 s, not a hot loop.
        assert 1 <= attempts <= 6, attempts
        assert inst.instances == ("127.0.0.1:7001",)
        assert rec.sets == [("127.0.0.1:7001",)]
        # The agent comes back (rejoining the cluster): the watch recovers by itself.
        a.start(join=b)
        async with register("kept", ["grpc=127.0.0.1:7002"], b.rpc):
            both = ("127.0.0.1:7001", "127.0.0.1:7002")
            await rec.wait(lambda s: s == both, within=20)
            # The registering agent restarts, its tags gone: both registrations set theirs again.
            b.kill()
            b.start(join=a)
            await eventually(
                lambda: (
                    sorted(b.tags().get("lokit.kept", "").split(","))
                    == ["grpc=127.0.0.1:7001", "grpc=127.0.0.1:7002"]
                ),
                within=20,
            )
            await rec.wait(lambda s: s == both and inst.instances == both, within=20)
    await inst.close()


async def test_serve_without_its_agent_serves_unregistered_then_registers(
    cluster: tuple[SerfAgent, SerfAgent], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An unreachable agent at start: one warning, the service serves, registration retries."""
    a, _ = cluster
    late = SerfAgent("late", tmp_path, start=False)  # nobody listens on its RPC port yet
    proc = LokitProcess(
        ["serve", "stringsvc", "--register", "serf", "--grpc", "127.0.0.1:0"],
        tmp_path,
        {"LOKIT_SERF_RPC": late.rpc},
    )
    try:
        proc.wait_ready(1)
        lines = proc.wait_stderr(lambda line: "not registered with serf" in line)
        assert sum("not registered with serf" in line for line in lines) == 1
        inst = _serf(a, monkeypatch, "serf:stringsvc")
        await inst.start()
        rec = Recorder(inst)
        late.start(join=a)
        port = proc.addr("grpc").rsplit(":", 1)[1]
        await rec.wait(lambda s: f"127.0.0.1:{port}" in s, within=30)
        await inst.close()
    finally:
        proc.stop()
        late.kill()


def test_serve_with_a_malformed_serf_address_fails_in_one_sentence(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "lokit", "serve", "stringsvc", "--register", "serf"],
        cwd=tmp_path,
        env={**os.environ, "LOKIT_SERF_RPC": "nonsense"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert "must be HOST:PORT" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_tag_entries_by_kind_wildcards_and_unix_sockets_elsewhere() -> None:
    tags = {"lokit.s": "grpc=unix:/r/s.grpc.sock, http=0.0.0.0:80,10.0.0.9:81,grpc=bad"}
    here = Member(name="n1", addr="10.0.0.1", status="alive", tags=tags)
    there = Member(name="n2", addr="10.0.0.2", status="alive", tags=tags)
    assert member_instances(here, "lokit.s", "grpc", "10.0.0.1") == [
        "unix:/r/s.grpc.sock",
        "10.0.0.9:81",
    ]
    assert member_instances(here, "lokit.s", "http", "10.0.0.1") == ["10.0.0.1:80", "10.0.0.9:81"]
    assert member_instances(there, "lokit.s", "grpc", "10.0.0.1") == ["10.0.0.9:81"]
