"""Storage failures: a real full disk (a 2 MiB tmpfs), a failed fsync, a vanished data
directory. Callers get UNAVAILABLE / RESOURCE_EXHAUSTED in a sentence that names no
path; the server logs the path and traceback at error; health says NOT_SERVING."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lokit import commitlog
from lokit.errors import Internal, ResourceExhausted, Unavailable
from lokit.logsvc.client import LogClient
from lokit.logsvc.storage import mapped
from tests.logsvc.conftest import start_in_process


def _unusable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"a full-disk test needs a small tmpfs: {why}")
    pytest.skip(f"a full-disk test needs a small tmpfs: {why}")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at tmp_path/disk (needs root to mount; unmounted afterwards)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        _unusable("mounting one needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        _unusable(f"mount failed: {r.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
        if os.path.ismount(disk):
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


async def get(sock: Path, path: str) -> tuple[int, str]:
    connector = aiohttp.UnixConnector(path=str(sock))
    async with aiohttp.ClientSession(connector=connector) as s, s.get("http://x" + path) as r:
        return r.status, await r.text()


async def post(sock: Path, path: str, body: bytes) -> tuple[int, bytes]:
    connector = aiohttp.UnixConnector(path=str(sock))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.post("http://x" + path, data=body) as r,
    ):
        return r.status, await r.read()


async def test_a_full_disk(tmp_path: Path, full_disk: Path, spawn: Any) -> None:
    args = ("--data", "disk/data", "--grpc", "unix:g.sock", "--http", "unix:h.sock")
    server = spawn(*args, "--debug", "unix:d.sock", "--fsync", "always", listeners=3)
    c = LogClient(f"unix:{tmp_path}/g.sock")
    value = b"v" * 10_000
    try:
        assert await get(tmp_path / "d.sock", "/healthz") == (200, '{"status":"ok"}')
        with pytest.raises(ResourceExhausted) as e:
            for _ in range(100):
                await c.produce_batch([value] * 20)
        message = str(e.value)
        assert message == "the log cannot write: no space left on device"
        with pytest.raises(ResourceExhausted):
            for _ in range(200):  # fill what is left
                await c.produce(value)
        for _ in range(20):  # many refusals; one error line
            with pytest.raises(ResourceExhausted):
                await c.produce(value)
        status, body = await post(tmp_path / "h.sock", "/", b'{"record":{"value":"eA=="}}')
        assert status in (200, 429)  # a small record may still fit
        if status == 429:
            assert b"/" not in body.replace(b"\\/", b"")
        status, text = await get(tmp_path / "d.sock", "/healthz")
        assert status == 503 and "the disk holding the log is full" in text
        assert str(tmp_path) not in text
        assert (await c.consume(0)).value == value  # reads are still served
    finally:
        await c.close()
    server.stop()
    errors = [ln for ln in server.stderr_lines if "event=log.storage_failed" in ln]
    assert errors and all("level=error" in ln for ln in errors), server.stderr_lines[-20:]
    assert len(errors) <= 2  # throttled: not one line per refused append
    assert str(full_disk / "data" / "default") in errors[0]
    assert "Traceback" in errors[0] and "No space left on device" in errors[0]
    assert not any("level=info" in ln and "No space left" in ln for ln in server.stderr_lines)


async def test_a_failed_fsync_poisons_the_topic_and_health_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = await start_in_process(tmp_path, fsync="always")
    health = srv.runtime.service.health
    assert health is not None and health() is None
    c = LogClient(srv.grpc)
    real = os.fdatasync

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    try:
        await c.produce(b"ok", topic="other")
        monkeypatch.setattr(os, "fdatasync", failing)
        with pytest.raises(Unavailable) as e:
            await c.produce(b"lost?")
        monkeypatch.setattr(os, "fdatasync", real)
        assert str(tmp_path) not in str(e.value) and "data/" not in str(e.value)
        assert "input/output error" in str(e.value)
        with pytest.raises(Unavailable, match="restarted"):
            await c.produce(b"again")
        reason = health()
        assert reason is not None and "'default'" in reason and "restart" in reason
        assert await c.produce(b"fine", topic="other") == 1  # other topics still write
        assert health() is not None  # the poisoned one stays failed until a restart
    finally:
        await c.close()
        await srv.runtime.stop()
    srv = await start_in_process(tmp_path, fsync="always")
    try:
        health = srv.runtime.service.health
        assert health is not None and health() is None
    finally:
        await srv.runtime.stop()


async def test_health_when_the_data_directory_is_gone(tmp_path: Path) -> None:
    srv = await start_in_process(tmp_path)
    health = srv.runtime.service.health
    try:
        assert health is not None and health() is None
        shutil.rmtree(srv.data)
        assert health() == "the log's data directory is gone"
    finally:
        await srv.runtime.stop()


def test_storage_errors_name_no_path() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/srv/data/t/0.store")
    wrapped = commitlog.LogError("append to /srv/data/t failed: No space left on device")
    wrapped.__cause__ = full
    err = mapped(wrapped, "t", "/srv/data/t")
    assert isinstance(err, ResourceExhausted)
    assert str(err) == "the log cannot write: no space left on device"
    emfile = mapped(OSError(errno.EMFILE, "Too many open files", "/srv/data/x"), "x")
    assert isinstance(emfile, ResourceExhausted)
    assert str(emfile) == "the log cannot open more files: too many open files"
    eio = mapped(OSError(errno.EIO, "Input/output error", "/srv/data/x"), "x")
    assert isinstance(eio, Unavailable) and "/srv" not in str(eio)
    odd = mapped(commitlog.LogError("secret detail at /srv/data"), "x")
    assert isinstance(odd, Internal) and "secret" not in str(odd) and "/srv" not in str(odd)
    corrupt = mapped(commitlog.CorruptRecordError("/srv/data/x/0.store", 7, "bad checksum"))
    assert "/srv" not in str(corrupt) and "offset 7" in str(corrupt)


async def test_too_many_open_files_is_resource_exhausted(tmp_path: Path, spawn: Any) -> None:
    """A --max-topics above what the fd limit holds: the writes that hit EMFILE are
    refused in a sentence without a path, and the open topics are still read.
    (While every fd is taken, writes to open topics fail too: a sync round dups
    its files' fds. The default --max-topics keeps a server from getting here.)

    RESOURCE_EXHAUSTED when opening the topic failed; UNAVAILABLE when the topic
    opened but its first sync round could not dup its fds (the engine then poisons
    that topic's log)."""
    args = ("--data", "data", "--grpc", "unix:g.sock", "--http", "unix:h.sock")
    server = spawn(*args, "--max-topics", "1000", fd_limit=128)
    c = LogClient(f"unix:{tmp_path}/g.sock")
    errors: list[str] = []
    try:
        for i in range(300):
            try:
                await c.produce(b"x", topic=f"t{i}")
            except (ResourceExhausted, Unavailable) as e:
                errors.append(str(e))
        for message in errors:
            assert "too many open files" in message and "data/" not in message, message
        assert (await c.consume(0, topic="t0")).value == b"x"  # reads are still served
    finally:
        await c.close()
    server.stop()
    lines = [ln for ln in server.stderr_lines if "event=log.storage_failed" in ln]
    assert bool(lines) == bool(errors)  # none when the engine kept within the fd limit
    assert all("level=error" in ln for ln in lines)
    assert all("Too many open files" in ln and str(tmp_path) in ln for ln in lines)
