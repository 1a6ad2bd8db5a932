"""`lokit serve log --acl-model --acl-policy` as a real process: the policy reloads on SIGHUP,
the files can come from the config file, and a file that cannot be used stops the start in
one sentence (exit 1)."""

from __future__ import annotations

import os
import pwd
import signal
import time
from pathlib import Path

import pytest

from lokit.errors import Code, PermissionDenied, rebuild
from tests.auth.acl_files import write_acl
from tests.auth.servers import http_call
from tests.logsvc.conftest import ServerProcess, run_cli

ME = pwd.getpwuid(os.getuid()).pw_name


def _serve(cwd: Path, *args: str) -> ServerProcess:
    sockets = ("--http", f"unix:{cwd}/log.http.sock", "--grpc", f"unix:{cwd}/log.grpc.sock")
    return ServerProcess(cwd, *sockets, "--data", str(cwd / "data"), "--fsync", "never", *args)


async def _produce_over_http(cwd: Path) -> int:
    """The Unix peer (this process's user) produces one record over HTTP: its offset."""
    addr = f"unix:{cwd}/log.http.sock"
    status, body = await http_call(
        addr, "POST", "/topics/default/records", json={"values": ["eA=="]}
    )
    if status != 200:
        raise rebuild(int(Code.PERMISSION_DENIED) if status == 403 else 2, body["error"])
    offset: int = body["first_offset"]
    return offset


def _wait_for(proc: ServerProcess, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(proc.stderr_lines):
            if text in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in:\n" + "\n".join(proc.stderr_lines[-20:]))


async def test_sighup_reloads_the_policy(tmp_path: Path) -> None:
    model, policy = write_acl(tmp_path, f"p, {ME}, *, consume\n")
    proc = _serve(tmp_path, "--acl-model", str(model), "--acl-policy", str(policy))
    try:
        with pytest.raises(PermissionDenied, match=rf"^{ME} not permitted to produce to default$"):
            await _produce_over_http(tmp_path)
        policy.write_text(f"p, {ME}, *, consume\np, {ME}, default, produce\n")
        proc.proc.send_signal(signal.SIGHUP)
        line = _wait_for(proc, "event=reloaded")
        assert f"ACL policy {policy}: 2 rules" in line
        assert await _produce_over_http(tmp_path) == 0
        # A policy that cannot be used keeps the one before, and the server serves on.
        policy.write_text("p, nobody\n")
        proc.proc.send_signal(signal.SIGHUP)
        assert "does not fit model" in _wait_for(proc, "reload failed")
        assert await _produce_over_http(tmp_path) == 1
    finally:
        assert proc.stop() == 0
    denied = [x for x in proc.stderr_lines if "code=PERMISSION_DENIED" in x]
    assert len(denied) == 1 and f"caller={ME} caller_source=unix" in denied[0]


async def test_the_acl_files_may_come_from_the_config_file(tmp_path: Path) -> None:
    model, policy = write_acl(tmp_path, f"p, {ME}, *, consume\n")
    config = tmp_path / "log.toml"
    config.write_text(f'acl-model = "{model}"\nacl-policy = "{policy}"\n')
    proc = _serve(tmp_path, "--config", str(config))
    try:
        with pytest.raises(PermissionDenied, match=rf"^{ME} not permitted to produce to default$"):
            await _produce_over_http(tmp_path)
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (("missing.conf", "policy.csv"), r"cannot read ACL model \S+missing\.conf: No such file"),
        (("model.conf", "model.conf"), r"ACL policy \S+model\.conf line 1 is not a rule of model"),
        (("model.conf", None), r"--acl-model and --acl-policy go together"),
    ],
)
def test_a_bad_acl_file_is_one_sentence_and_exit_1(
    tmp_path: Path, files: tuple[str, str | None], message: str
) -> None:
    write_acl(tmp_path)
    model, policy = files
    args = ["serve", "log", "--http", f"unix:{tmp_path}/h.sock", "--data", str(tmp_path / "d")]
    args += ["--acl-model", str(tmp_path / model)]
    if policy is not None:
        args += ["--acl-policy", str(tmp_path / policy)]
    done = run_cli(tmp_path, *args)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert __import__("re").search(message, err), err
    assert "Traceback" not in err and "r.sub" not in err
