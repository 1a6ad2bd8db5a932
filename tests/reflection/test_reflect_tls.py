"""Reflection over mTLS: it asks what any call asks (a client certificate), then works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.procs import LokitProcess
from tests.reflection.conftest import Buf
from tests.security.pki import PKI, pki

__all__ = ["pki"]


@pytest.fixture(scope="module")
def mtls_addsvc(
    tmp_path_factory: pytest.TempPathFactory, pki: PKI
) -> Iterator[tuple[LokitProcess, PKI]]:
    d = tmp_path_factory.mktemp("mtls")
    certs = pki
    args = [
        "serve",
        "addsvc",
        "--grpc=127.0.0.1:0",
        f"--tls-cert={certs.server.cert}",
        f"--tls-key={certs.server.key}",
        f"--tls-client-ca={certs.ca}",
    ]
    p = LokitProcess(args, d).wait_ready(1)
    yield p, certs
    p.stop()


def test_buf_curl_over_mtls(buf: Buf, mtls_addsvc: tuple[LokitProcess, PKI]) -> None:
    proc, certs = mtls_addsvc
    url = f"https://{proc.addr('grpc')}/pb.Add/Sum"
    tls = ["--cacert", str(certs.ca)]
    client = ["--cert", str(certs.root.cert), "--key", str(certs.root.key)]
    out = buf.curl(url, {"a": 20, "b": 22}, *tls, *client)
    assert out.returncode == 0, out.stderr
    assert '"v": "42"' in out.stdout
    out = buf.curl(url, {"a": 20, "b": 22}, *tls)  # no client certificate
    assert out.returncode != 0
