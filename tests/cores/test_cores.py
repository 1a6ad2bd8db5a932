"""`--cpu` and `--instances`: real `lokit serve` processes, pinned, supervised, sharing ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lokit
from lokit.cli.affinity import CpuError, format_cpus, parse_cpus
from lokit.cli.instances import instance_addresses
from lokit.cli.serve_cores import share_cpus
from lokit.examples.addsvc.contract import addsvc_contract
from lokit.transport.address import AddressError
from tests.e2e.procs import LokitProcess, run_cli

CPUS = sorted(os.sched_getaffinity(0))
PID = re.compile(r"instance=(\d+) pid=(\d+)")


def cpus_allowed(pid: int, tid: int | None = None) -> str:
    path = f"/proc/{pid}/task/{tid}/status" if tid else f"/proc/{pid}/status"
    for line in Path(path).read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list in {path}")


def started(proc: LokitProcess) -> dict[int, int]:
    """The newest pid of each instance, from the supervisor's "instance started" lines."""
    pids: dict[int, int] = {}
    for line in proc.stderr_lines:
        if "instance started" in line and (m := PID.search(line)):
            pids[int(m[1])] = int(m[2])
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.05)


async def total(addr: str, calls: int = 4, kind: str = "grpc") -> list[int]:
    async with lokit.connect(addsvc_contract(), **{kind: addr}, timeout=5.0) as svc:
        return [await svc.sum(i, 1) for i in range(calls)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the pieces, without processes ---------------------------------------------------


def test_cpu_lists_parse_like_the_kernels() -> None:
    assert parse_cpus(str(CPUS[0])) == [CPUS[0]]
    assert parse_cpus(format_cpus(CPUS)) == CPUS
    assert format_cpus([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    huge = "0-100000000"  # named in the refusal, never enumerated
    for bad, words in (
        ("x", "not a CPU list"),
        ("1-0", "backwards"),
        ("4096", "does not have"),
        (huge, f"CPUs {CPUS[-1] + 1}-100000000, which this machine does not have"),
    ):
        with pytest.raises(CpuError, match=words) as e:
            parse_cpus(bad)
        assert "\n" not in str(e.value)


def test_cpus_are_divided_among_instances() -> None:
    assert share_cpus([0, 1], 2) == [[0], [1]]
    assert share_cpus([0, 1, 2, 3], 2) == [[0, 1], [2, 3]]
    assert share_cpus([0, 1], 1) == [[0, 1]]
    assert share_cpus([0, 1], 3) == [[0], [1], [0]]


def test_instance_addresses() -> None:
    g, h, d = instance_addresses("addsvc", 1, 2, ["dir:run/a.d"], ["127.0.0.1:80"], "[::1]:9100")
    assert g == ["unix:run/a.d/addsvc-1.grpc.sock"]
    assert h == ["127.0.0.1:80"]  # shared with SO_REUSEPORT
    assert d == "[::1]:9101"
    _, _, d = instance_addresses("addsvc", 1, 2, [], [], "unix:run/addsvc.debug.sock")
    assert d == "unix:run/addsvc-1.debug.sock"
    with pytest.raises(AddressError, match="cannot share the Unix socket"):
        instance_addresses("addsvc", 0, 2, ["unix:run/addsvc.grpc.sock"], [], None)
    assert instance_addresses("addsvc", 0, 1, ["unix:x.sock"], [], "127.0.0.1:9")[0] == [
        "unix:x.sock"
    ]


# --- real processes ------------------------------------------------------------------


def test_a_bad_cpu_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    for spec in ("4096", "zero"):
        r = run_cli(["serve", "addsvc", "--grpc", "unix:g.sock", "--cpu", spec], tmp_path)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("error: --cpu") and r.stderr.count("\n") == 1, r.stderr
    # a service's own script takes the flag too
    r = subprocess_script(tmp_path, "--cpu", "4096")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


def subprocess_script(cwd: Path, *args: str) -> object:
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "lokit.examples.greeter", "--grpc", "unix:s.sock", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_log_keeps_one_writer(tmp_path: Path) -> None:
    r = run_cli(["serve", "log", "--data", "d", "--instances", "2"], tmp_path)
    assert r.returncode == 1
    assert "one writer" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_instances_do_not_register_one_shared_entry(tmp_path: Path) -> None:
    r = run_cli(
        ["serve", "addsvc", "--grpc", "dir:reg", "--instances", "2", "--register", "serf"], tmp_path
    )
    assert r.returncode != 0
    assert "--register serf with --instances 2 is refused" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


def test_a_pinned_process_and_dir_slots(tmp_path: Path) -> None:
    """--cpu pins every thread; processes started alone with dir: take slots 0, 1."""
    a = LokitProcess(["serve", "addsvc", "--grpc", "dir:reg", "--cpu", str(CPUS[-1])], tmp_path)
    try:
        a.wait_ready(1)
        b = LokitProcess(["serve", "addsvc", "--grpc", "dir:reg", "--cpu", str(CPUS[0])], tmp_path)
        try:
            b.wait_ready(1)
            assert a.addr("grpc") == "unix:reg/addsvc-0.grpc.sock"
            assert b.addr("grpc") == "unix:reg/addsvc-1.grpc.sock"
            pid = a.proc.pid
            assert cpus_allowed(pid) == str(CPUS[-1])
            threads = os.listdir(f"/proc/{pid}/task")
            assert len(threads) > 1  # grpc-core's threads: pinned as well
            assert {cpus_allowed(pid, int(t)) for t in threads} == {str(CPUS[-1])}
            assert cpus_allowed(b.proc.pid) == str(CPUS[0])
        finally:
            assert b.stop() == 0
    finally:
        assert a.stop() == 0


def test_processes_started_together_with_dir_take_distinct_slots(tmp_path: Path) -> None:
    """As systemd template units do: all at once, each claims its own slot (a lock)."""
    procs = [LokitProcess(["serve", "addsvc", "--grpc", "dir:reg"], tmp_path) for _ in range(4)]
    try:
        for p in procs:
            p.wait_ready(1)
        addrs = [p.addr("grpc") for p in procs]
        assert sorted(addrs) == [f"unix:reg/addsvc-{i}.grpc.sock" for i in range(4)]
        for addr in addrs:  # every one still there and served
            assert (tmp_path / addr.removeprefix("unix:")).is_socket()
    finally:
        codes = [p.stop() for p in procs]  # every one stopped, then judged
    assert codes == [0, 0, 0, 0]


async def test_instances_over_dir_restart_and_stop(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    sup = LokitProcess(
        ["serve", "addsvc", "--grpc", "dir:reg", "--http", "dir:reg", "--instances", "2"],
        tmp_path,
    )
    try:
        sup.wait_ready(4)
        assert sorted(sup.addrs["grpc"]) == [
            "unix:reg/addsvc-0.grpc.sock",
            "unix:reg/addsvc-1.grpc.sock",
        ]
        pids = started(sup)
        assert set(pids) == {0, 1}
        if len(CPUS) >= 2:  # each instance on its own CPU
            assert cpus_allowed(pids[0]) == str(CPUS[0])
            assert cpus_allowed(pids[1]) == str(CPUS[1])
        for i in (0, 1):  # both instances answer, each on its own socket
            assert await total(f"unix:{reg}/addsvc-{i}.grpc.sock") == [1, 2, 3, 4]
        assert await total(f"dir:{reg}", 8) == list(range(1, 9))

        os.kill(pids[0], signal.SIGKILL)
        sup.wait_stderr(lambda line: "instance exited; restarting" in line)
        assert any("killed by SIGKILL" in line for line in sup.stderr_lines)
        assert await total(f"dir:{reg}") == [1, 2, 3, 4]  # the other carries on meanwhile
        until(lambda: started(sup).get(0) not in (None, pids[0]))
        until(lambda: sup.addrs["grpc"].count("unix:reg/addsvc-0.grpc.sock") == 2)
        assert await total(f"unix:{reg}/addsvc-0.grpc.sock") == [1, 2, 3, 4]
        children = list(started(sup).values())
    finally:
        code = sup.stop(signal.SIGTERM)
    assert code == 0, sup.stderr
    assert not any(alive(p) for p in children)
    assert list(reg.iterdir()) == []  # every instance removed its sockets


async def test_instances_share_a_tcp_port_refuse_strangers_and_die_with_it(tmp_path: Path) -> None:
    port = free_port()
    addr = f"127.0.0.1:{port}"
    args = ["serve", "addsvc", "--grpc", addr, "--http", "127.0.0.1:0", "--instances", "2"]
    sup = LokitProcess(args, tmp_path)
    try:
        sup.wait_ready(4)
        assert sup.addrs["grpc"] == [addr, addr]
        http = sup.addrs["http"]  # port 0 is chosen once, for both instances
        assert len(http) == 2 and http[0] == http[1] and not http[0].endswith(":0")
        assert await total(http[0], kind="http") == [1, 2, 3, 4]
        assert set(started(sup)) == {0, 1}
        assert await total(addr) == [1, 2, 3, 4]
        # an unrelated server, and a second run, are refused with today's sentence
        for extra in ([], ["--instances", "2"]):
            r = run_cli(["serve", "addsvc", "--grpc", addr, *extra], tmp_path)
            assert r.returncode == 1
            assert "the port is already in use" in r.stderr, r.stderr
        assert await total(addr) == [1, 2, 3, 4]
        children = list(started(sup).values())
        # a supervisor killed outright takes its instances with it (PR_SET_PDEATHSIG)
        sup.proc.kill()
        until(lambda: not any(alive(p) for p in children))
        with socket.socket() as again:  # and the port is free again (as lokit binds)
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))
            again.listen()
    finally:
        sup.stop()


def test_a_reserved_port_admits_only_its_instances() -> None:
    from lokit.transport.address import bind, bound_address, parse, reserve_shared_port

    held = reserve_shared_port(parse("127.0.0.1:0"))
    addr = bound_address(parse("127.0.0.1:0"), held)
    try:
        a, b = bind(addr, reuse_port=True), bind(addr, reuse_port=True)  # the run's instances
        with pytest.raises(AddressError, match="the port is already in use"):
            bind(addr)  # an unrelated server
        with pytest.raises(AddressError, match="the port is already in use"):
            reserve_shared_port(addr)  # a second run
        a.close()
        b.close()
    finally:
        held.close()


def test_a_port_left_in_time_wait_by_the_last_run_can_be_reserved() -> None:
    from lokit.transport.address import bind, bound_address, parse, reserve_shared_port

    listener = bind(parse("127.0.0.1:0"))
    addr = bound_address(parse("127.0.0.1:0"), listener)
    listener.setblocking(True)
    client = socket.create_connection(("127.0.0.1", addr.port))
    served, _ = listener.accept()
    served.close()  # the server's side closes first: its end stays in TIME_WAIT
    client.close()
    listener.close()
    held = reserve_shared_port(addr)
    try:
        with pytest.raises(AddressError, match="the port is already in use"):
            reserve_shared_port(addr)  # still only one run at a time
    finally:
        held.close()


def test_an_instance_that_cannot_start_fails_the_run(tmp_path: Path) -> None:
    with socket.socket() as busy:  # instance 1's debug port (PORT+1) is taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1] - 1
        args = ["serve", "addsvc", "--grpc", "dir:reg", "--debug", f"127.0.0.1:{port}"]
        sup = LokitProcess([*args, "--instances", "2"], tmp_path)
        assert sup.wait_exit(60) == 1
    assert any("instance failed to start" in line for line in sup.stderr_lines), sup.stderr
    assert not any(alive(p) for p in started(sup).values())
    assert list((tmp_path / "reg").glob("*.sock")) == []


def test_ctrl_c_while_the_instances_start_stops_them_cleanly(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole foreground group: the instances (their own
    sessions) hear it only from the supervisor, so none dies with a traceback."""
    args = ["serve", "addsvc", "--grpc", "dir:reg", "--instances", "2"]
    sup = subprocess.Popen(
        [sys.executable, "-m", "lokit", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a group of its own, like a terminal's foreground job
        text=True,
    )
    try:
        assert sup.stderr is not None
        seen = []
        for line in sup.stderr:  # both instances spawned, neither serving yet
            seen.append(line)
            if sum("instance started" in x for x in seen) == 2:
                break
        os.killpg(sup.pid, signal.SIGINT)
        _, rest = sup.communicate(timeout=60)
    finally:
        if sup.poll() is None:
            sup.kill()
    stderr = "".join(seen) + rest
    assert sup.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
