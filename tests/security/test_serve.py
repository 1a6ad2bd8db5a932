"""TLS, mTLS and socket permissions through real `lokit serve` processes and the CLI.

The log server with mTLS and the `lokit log` commands (flags and LOKIT_TLS_*),
curl with --cacert/--cert/--key, `lokit call`, addsvc's stringsvc dependency
dialing with mTLS from the environment, bad certificate files at start-up, and
socket files whose mode and group decide which local user may connect.
"""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import LokitProcess, run_cli
from tests.security.pki import PKI

Start = Callable[..., LokitProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start `lokit ARGS` in tmp_path; every child is stopped at the end of the test."""
    started: list[LokitProcess] = []

    def _start(
        *args: str, listeners: int = 2, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> LokitProcess:
        p = LokitProcess(list(args), cwd or tmp_path, env)
        started.append(p)
        return p.wait_ready(listeners)

    yield _start
    for p in started:
        p.stop()


def server_flags(pki: PKI, mutual: bool = True) -> list[str]:
    flags = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    return [*flags, "--tls-client-ca", str(pki.ca)] if mutual else flags


def client_flags(pki: PKI, name: str = "root") -> list[str]:
    issued = pki.client(name)
    return ["--tls-ca", str(pki.ca), "--tls-cert", str(issued.cert), "--tls-key", str(issued.key)]


def tls_env(pki: PKI, name: str = "root") -> dict[str, str]:
    issued = pki.client(name)
    return {
        "LOKIT_TLS_CA": str(pki.ca),
        "LOKIT_TLS_CERT": str(issued.cert),
        "LOKIT_TLS_KEY": str(issued.key),
    }


def cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if env is None:
        return run_cli(args, cwd)
    return subprocess.run(
        [sys.executable, "-m", "lokit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )


def one_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and text in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_log_cli_and_curl_with_mtls(pki: PKI, start: Start, tmp_path: Path) -> None:
    log = start(
        "serve",
        "log",
        "--grpc",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data",
        "data",
        *server_flags(pki),
    )
    grpc, http = log.addr("grpc"), log.addr("http")
    produced = cli(["log", "produce", "--addr", grpc, "a", "b", *client_flags(pki)], tmp_path)
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout.split() == ["0", "1"]
    consumed = cli(["log", "consume", "--addr", grpc], tmp_path, tls_env(pki))
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == ["a", "b"]
    info = cli(["log", "info", "--addr", grpc, *client_flags(pki)], tmp_path)
    assert info.returncode == 0 and "default" in info.stdout

    one_error(cli(["log", "consume", "--addr", grpc], tmp_path), "is a TLS listener")
    no_cert = cli(["log", "consume", "--addr", grpc, "--tls-ca", str(pki.ca)], tmp_path)
    one_error(no_cert, f"TLS handshake with {grpc} failed")
    wrong_ca = cli(["log", "info", "--addr", grpc, "--tls-ca", str(pki.other_ca)], tmp_path)
    one_error(wrong_ca, f"TLS handshake with {grpc} failed: certificate verify failed")

    curl = shutil.which("curl")
    assert curl is not None, "curl is needed (scripts/ensure-servers.sh installs it)"
    port = http.rsplit(":", 1)[1]
    base = [curl, "-sS", "--cacert", str(pki.ca), f"https://localhost:{port}/topics"]
    ok = subprocess.run(
        [*base, "--cert", str(pki.root.cert), "--key", str(pki.root.key)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert ok.returncode == 0 and '"name":"default"' in ok.stdout, ok.stderr
    refused = subprocess.run(base, capture_output=True, text=True, timeout=10)
    assert refused.returncode != 0
    assert log.proc.poll() is None  # it serves on
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_call_and_the_stringsvc_dependency_with_mtls(
    pki: PKI, start: Start, tmp_path: Path
) -> None:
    strings = start(
        "serve", "stringsvc", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", *server_flags(pki)
    )
    s_grpc, s_http = strings.addr("grpc"), strings.addr("http")
    for flag, addr in (("--grpc", s_grpc), ("--http", s_http)):
        done = cli(
            ["call", "stringsvc", "uppercase", "abc", flag, addr, *client_flags(pki)], tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert "ABC" in done.stdout
        one_error(
            cli(["call", "stringsvc", "uppercase", "abc", flag, addr], tmp_path),
            "is a TLS listener",
        )

    addsvc = start(
        "serve",
        "addsvc",
        "--grpc",
        "unix:run/add.grpc.sock",
        "--http",
        "unix:run/add.http.sock",
        "--stringsvc",
        s_grpc,
        env=tls_env(pki),
    )
    done = cli(["call", "addsvc", "concat", "ab", "cd", "--grpc", addsvc.addr("grpc")], tmp_path)
    assert done.returncode == 0, done.stderr + addsvc.stderr
    assert "ABCD" in done.stdout
    lines = strings.wait_stderr(lambda line: "method=Uppercase" in line and "caller=root" in line)
    assert any("method=Uppercase" in line and "caller=root" in line for line in lines)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--tls-cert", "missing.pem", "--tls-key", "k.pem"], "missing.pem does not exist"),
        (["--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--socket-mode", "0999"], "must be an octal file mode"),
        (["--socket-group", "no-such-group-here"], "there is no group"),
    ],
)
def test_bad_serve_settings_are_one_sentence(tmp_path: Path, flags: list[str], says: str) -> None:
    one_error(cli(["serve", "stringsvc", "--grpc", "127.0.0.1:0", *flags], tmp_path), says)


def test_bad_certificate_files_at_serve(pki: PKI, tmp_path: Path) -> None:
    mismatched = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.root.key)]
    one_error(
        cli(["serve", "stringsvc", *mismatched], tmp_path), "does not belong to the certificate"
    )
    expired = ["--tls-cert", str(pki.expired.cert), "--tls-key", str(pki.expired.key)]
    one_error(cli(["serve", "stringsvc", *expired], tmp_path), "expired on")
    (tmp_path / "log.toml").write_text(
        f'tls-cert = "{pki.server.cert}"\ntls-key = "{tmp_path}/none.pem"\n'
    )
    one_error(cli(["serve", "log", "--config", "log.toml"], tmp_path), "none.pem does not exist")


def _other_group() -> tuple[str, int]:
    for name in ("daemon", "adm", "users", "nogroup"):
        try:
            return name, grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    raise AssertionError("no group to give the socket files to")


def test_socket_mode_and_group(start: Start, tmp_path: Path) -> None:
    name, gid = _other_group()
    start(
        "serve",
        "stringsvc",
        "--grpc",
        "unix:run/s.grpc.sock",
        "--http",
        "unix:run/s.http.sock",
        "--socket-mode",
        "0640",
        "--socket-group",
        name,
    )
    for sock in ("s.grpc.sock", "s.http.sock"):
        st = (tmp_path / "run" / sock).stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_gid == gid
    (tmp_path / "log.toml").write_text('socket-mode = "0600"\ndata = "d"\n')
    start("serve", "log", "--config", "log.toml")
    for sock in ("log.grpc.sock", "log.http.sock"):
        assert stat.S_IMODE((tmp_path / "run" / sock).stat().st_mode) == 0o600


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory any user can reach (tmp_path's parents are root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="lokit-perm-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_a_user_the_socket_file_refuses_gets_one_sentence(start: Start, shared_dir: Path) -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed"
    start(
        "serve",
        "stringsvc",
        "--grpc",
        "unix:run/s.grpc.sock",
        "--http",
        "unix:run/s.http.sock",
        cwd=shared_dir,
    )
    (shared_dir / "run").chmod(0o755)
    for flag, sock in (("--grpc", "run/s.grpc.sock"), ("--http", "run/s.http.sock")):
        done = subprocess.run(
            [
                setpriv,
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                sys.executable,
                "-m",
                "lokit",
                "call",
                "stringsvc",
                "count",
                "abc",
                flag,
                f"unix:{sock}",
            ],
            cwd=shared_dir,
            capture_output=True,
            text=True,
            timeout=30,
        )
        one_error(done, f"permission denied connecting to unix:{sock}")
    ok = run_cli(
        ["call", "stringsvc", "count", "abc", "--grpc", "unix:run/s.grpc.sock"], shared_dir
    )
    assert ok.returncode == 0 and "3" in ok.stdout
