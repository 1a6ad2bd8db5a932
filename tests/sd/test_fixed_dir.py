"""Fixed sets and `dir:` registries, with real Unix sockets in a tmp dir."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from lokit.sd import Endpointer, FixedInstancer, instancer_for
from lokit.sd.directory import DirInstancer
from lokit.transport.address import AddressError
from tests.sd.helpers import Recorder, errors, eventually, listen_unix


def test_plain_addresses_need_no_instancer() -> None:
    assert instancer_for("unix:run/x.grpc.sock", "grpc") is None
    assert instancer_for("127.0.0.1:8080", "http") is None


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("dir:", "no directory"),
        ("srv:", "DNS name"),
        ("srv:bad name", "DNS name"),
        ("serf:", "service name"),
        ("serf:a/b", "service name"),
        ("127.0.0.1:1,,127.0.0.1:2", "empty entry"),
        ("127.0.0.1:1,nonsense", "neither"),
        ("127.0.0.1:1,dir:x", "plain addresses only"),
        ("nonsense", "neither"),
    ],
)
def test_malformed_addresses_fail_in_one_sentence(addr: str, message: str) -> None:
    with pytest.raises(AddressError, match=message) as e:
        instancer_for(addr, "grpc")
    assert "\n" not in str(e.value)


async def test_fixed_set_is_sorted_deduplicated_and_sent_at_once() -> None:
    inst = instancer_for("127.0.0.1:2, unix:/tmp/a.sock,127.0.0.1:2", "grpc")
    assert isinstance(inst, FixedInstancer)
    await inst.start()
    rec = Recorder(inst)
    assert rec.sets == [("127.0.0.1:2", "unix:/tmp/a.sock")]
    assert inst.target == "127.0.0.1:2, unix:/tmp/a.sock,127.0.0.1:2"
    await inst.close()


def _dir(tmp_path: Path, kind: str = "grpc") -> DirInstancer:
    inst = instancer_for(f"dir:{tmp_path}", kind)  # type: ignore[arg-type]
    assert isinstance(inst, DirInstancer)
    return inst


async def test_dir_finds_live_sockets_of_its_kind_only(tmp_path: Path) -> None:
    a = listen_unix(tmp_path / "a.grpc.sock")
    b = listen_unix(tmp_path / "b.http.sock")
    (tmp_path / "c.grpc.sock").write_text("not a socket")
    try:
        grpc, http = _dir(tmp_path, "grpc"), _dir(tmp_path, "http")
        await grpc.start()
        await http.start()
        assert grpc.instances == (f"unix:{tmp_path}/a.grpc.sock",)
        assert http.instances == (f"unix:{tmp_path}/b.http.sock",)
        await grpc.close()
        await http.close()
    finally:
        a.close()
        b.close()


async def test_dir_joins_leaves_and_sends_only_changes(tmp_path: Path) -> None:
    a = listen_unix(tmp_path / "a.grpc.sock")
    inst = _dir(tmp_path)
    await inst.start()
    rec = Recorder(inst)
    one = (f"unix:{tmp_path}/a.grpc.sock",)
    assert rec.sets == [one]
    b = listen_unix(tmp_path / "b.grpc.sock")
    two = (*one, f"unix:{tmp_path}/b.grpc.sock")
    await rec.wait(lambda s: s == two)
    # A server that shuts down removes its socket: it leaves.
    b.close()
    os.unlink(tmp_path / "b.grpc.sock")
    await rec.wait(lambda s: s == one and len(rec.sets) == 3)
    await asyncio.sleep(3 * inst.interval)  # several polls, nothing changed: nothing sent
    assert rec.sets == [one, two, one]
    await inst.close()
    a.close()


async def test_dir_leaves_out_a_stale_socket_file(tmp_path: Path) -> None:
    """A server killed with SIGKILL leaves its socket file; it refuses connections."""
    live = listen_unix(tmp_path / "live.grpc.sock")
    stale = listen_unix(tmp_path / "stale.grpc.sock")
    inst = _dir(tmp_path)
    await inst.start()
    rec = Recorder(inst)
    assert len(rec.sets[0]) == 2
    stale.close()  # closed without unlink: the file stays
    assert (tmp_path / "stale.grpc.sock").exists()
    only_live = (f"unix:{tmp_path}/live.grpc.sock",)
    await rec.wait(lambda s: s == only_live)
    await inst.close()
    live.close()


async def test_dir_keeps_the_last_set_when_the_directory_goes(tmp_path: Path) -> None:
    """A discovery error (the directory is gone) keeps the last set, never an empty one."""
    reg, away = tmp_path / "reg", tmp_path / "away"
    reg.mkdir()
    a = listen_unix(reg / "a.grpc.sock")
    inst = _dir(reg)
    await inst.start()
    rec = Recorder(inst)
    before = errors(inst.target)
    reg.rename(away)
    await eventually(lambda: errors(inst.target) >= before + 2)
    assert inst.instances == (f"unix:{reg}/a.grpc.sock",)
    assert len(rec.sets) == 1
    away.rename(reg)
    await asyncio.sleep(3 * inst.interval)
    assert rec.sets == [(f"unix:{reg}/a.grpc.sock",)]  # recovered to the same set: nothing sent
    await inst.close()
    a.close()


async def test_dir_missing_at_start_is_an_error_not_a_failure(tmp_path: Path) -> None:
    reg = tmp_path / "later"
    inst = _dir(reg)
    await inst.start()
    assert inst.instances == ()
    assert errors(inst.target) >= 1
    rec = Recorder(inst)
    reg.mkdir()
    a = listen_unix(reg / "a.grpc.sock")
    await rec.wait(lambda s: s == (f"unix:{reg}/a.grpc.sock",))
    await inst.close()
    a.close()


async def test_endpointer_makes_one_client_per_instance_and_closes_leavers(
    tmp_path: Path,
) -> None:
    made: list[str] = []
    closed: list[str] = []

    async def close(c: str) -> None:
        closed.append(c)

    def factory(instance: str) -> str:
        made.append(instance)
        if instance.endswith("bad.grpc.sock"):
            raise RuntimeError("no client for you")
        return "client " + instance

    a = listen_unix(tmp_path / "a.grpc.sock")
    inst = _dir(tmp_path)
    await inst.start()
    ep: Endpointer[str] = Endpointer(inst, factory, close)
    ia = f"unix:{tmp_path}/a.grpc.sock"
    assert ep.members() == ["client " + ia]
    b = listen_unix(tmp_path / "b.grpc.sock")
    bad = listen_unix(tmp_path / "bad.grpc.sock")
    ib = f"unix:{tmp_path}/b.grpc.sock"
    rec = Recorder(inst)
    await rec.wait(lambda s: len(s) == 3)
    assert ep.members() == ["client " + ia, "client " + ib]  # the factory's failure: skipped
    assert ep.entries() == [(ia, "client " + ia), (ib, "client " + ib)]
    assert ep.members() is ep.members()  # built once per change
    a.close()
    os.unlink(tmp_path / "a.grpc.sock")
    await rec.wait(lambda s: ia not in s)
    await asyncio.sleep(0)
    assert ep.members() == ["client " + ib]
    assert made.count(ia) == 1 and made.count(ib) == 1
    await ep.close()
    assert sorted(closed) == ["client " + ia, "client " + ib]
    await inst.close()
    b.close()
    bad.close()
