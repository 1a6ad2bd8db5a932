"""`lokit certs` and `lokit.security.certs`: a CA, server and client certificates, `show`."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest

from lokit.security.certs import CertError, init_ca, inspect, issue
from tests.e2e.procs import run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_issue_show_through_the_cli(tmp_path: Path) -> None:
    made = run_cli(["certs", "init"], tmp_path)
    assert made.returncode == 0, made.stderr
    certs = tmp_path / "certs"
    assert mode(certs / "ca-key.pem") == 0o600
    assert mode(certs) == 0o700
    again = run_cli(["certs", "init"], tmp_path)
    assert again.returncode == 1
    assert again.stderr.startswith("error: ") and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    server = run_cli(["certs", "issue", "log", "--server", "--host", "log.internal"], tmp_path)
    assert server.returncode == 0, server.stderr
    client = run_cli(["certs", "issue", "root"], tmp_path)
    assert client.returncode == 0, client.stderr
    assert mode(certs / "root-key.pem") == 0o600
    assert mode(certs / "log-key.pem") == 0o600

    shown = run_cli(["certs", "show", "certs/log.pem"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    for text in ("CN=log", "DNS:log.internal", "CN=lokit CA", "serverAuth", "not after"):
        assert text in shown.stdout
    root = inspect(certs / "root.pem")
    assert root.common_name == "root" and root.usages == ("clientAuth",) and not root.sans


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["certs", "show", "missing.pem"], "missing.pem does not exist"),
        (["certs", "show", "certs/ca-key.pem"], "is not a PEM certificate"),
        (["certs", "issue", "x", "--dir", "elsewhere"], "has no CA"),
        (["certs", "issue", "../x"], "cannot name a certificate"),
        (["certs", "issue", "x", "--host", "h"], "--host is for server certificates"),
    ],
)
def test_bad_input_is_one_sentence(tmp_path: Path, args: list[str], says: str) -> None:
    init_ca(tmp_path / "certs")
    done = run_cli(args, tmp_path)
    assert done.returncode == 1
    assert says in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_server_certificates_get_default_sans_and_force_replaces(tmp_path: Path) -> None:
    init_ca(tmp_path)
    first = issue(tmp_path, "api", server=True)
    info = inspect(first.cert)
    assert info.sans == ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
    assert info.usages == ("serverAuth",) and not info.is_ca
    with pytest.raises(CertError, match="already exists"):
        issue(tmp_path, "api", server=True)
    issue(tmp_path, "api", server=True, force=True, hosts=["10.1.2.3"])
    assert inspect(first.cert).sans == ("IP:10.1.2.3",)
    assert inspect(tmp_path / "ca.pem").is_ca


def test_validity_and_expiry(tmp_path: Path) -> None:
    init_ca(tmp_path)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    old = inspect(issue(tmp_path, "old", days=2, not_before=past).cert)
    assert old.expired()
    fresh = inspect(issue(tmp_path, "fresh", days=30).cert)
    assert not fresh.expired() and 29 <= (fresh.not_after - fresh.not_before).days <= 30
