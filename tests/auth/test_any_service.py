"""The ACL on a service of the tests' own (any service can use it): request streams checked
item by item on both transports, the caller from mTLS (gRPC) or the Unix peer (HTTP) on the
request line, a Unix peer who is another local user, and what an unexpected failure tells."""

from __future__ import annotations

import io
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lokit
from lokit.errors import Internal, PermissionDenied
from lokit.observability.logs import configure_logging
from lokit.observability.tracing import configure_tracing, shutdown_tracing
from tests.auth.acl_files import write_acl
from tests.auth.servers import Served, client_tls, serving
from tests.security.pki import PKI


class Entry(msgspec.Struct):
    account: str
    amount: int


class Ledger:
    async def post(self, entries: AsyncIterator[Entry]) -> int:
        """Client stream: the sum of the amounts."""
        total = 0
        async for e in entries:
            total += e.amount
        return total

    async def audit(self, entries: AsyncIterator[Entry]) -> AsyncIterator[int]:
        """Bidi: the running total after each entry."""
        total = 0
        async for e in entries:
            total += e.amount
            yield total

    async def balance(self, account: str) -> int:
        return len(account)

    async def accounts(self, n: int) -> AsyncIterator[str]:
        for i in range(n):
            yield f"a{i}"

    async def crash(self, n: int) -> int:
        raise RuntimeError("cannot open /srv/secret/ledger.db")


LEDGER = lokit.contract(
    "ledger",
    Ledger,
    actions={"Post": "write", "Audit": "write", "Balance": "read", "Accounts": "read"},
    objects={
        "Post": lambda e: e.account,
        "Audit": lambda e: e.account,
        "Balance": lambda r: r.account,
    },
)
ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """The request lines written while the test runs."""
    out = io.StringIO()
    configure_logging("logfmt", "info", out)
    try:
        yield out
    finally:
        configure_logging()


@pytest.fixture
async def ledger(tmp_path: Path, pki: PKI) -> AsyncIterator[Served]:
    """`root` (a certificate, and this user over a Unix socket) may write to alice only."""
    users = {"root", ME}
    policy = "".join(f"p, {u}, alice, write\np, {u}, *, read\np, {u}, *, crash\n" for u in users)
    model, policy_file = write_acl(tmp_path, policy)
    async with serving(lokit.define(LEDGER, Ledger()), tmp_path, model, policy_file, pki) as s:
        yield s


async def _entries(*pairs: tuple[str, int]) -> AsyncIterator[Entry]:
    for account, amount in pairs:
        yield Entry(account, amount)


def _connect(served: Served, transport: str, pki: PKI) -> Any:
    if transport == "grpc":  # mTLS: the certificate's CN
        return lokit.connect(LEDGER, grpc=served.tcp("grpc"), tls=client_tls(pki, "root"))
    return lokit.connect(LEDGER, http=served.unix("http"))  # the Unix peer: this process's user


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_request_stream_items_are_checked_as_they_arrive(
    ledger: Served, pki: PKI, transport: str
) -> None:
    who = "root" if transport == "grpc" else ME
    async with _connect(ledger, transport, pki) as client:
        assert await client.post(_entries(("alice", 1), ("alice", 2))) == 3
        with pytest.raises(PermissionDenied, match=rf"^{who} not permitted to write to bob$"):
            await client.post(_entries(("alice", 1), ("bob", 5)))
        totals: list[int] = []
        with pytest.raises(PermissionDenied, match=rf"^{who} not permitted to write to bob$"):
            async for total in client.audit(_entries(("alice", 1), ("bob", 5), ("alice", 1))):
                totals.append(total)
        assert totals == [1]
        assert await client.balance("carol") == 5  # p, *, read
        assert [a async for a in client.accounts(2)] == ["a0", "a1"]


async def test_the_caller_is_on_the_request_line(
    ledger: Served, pki: PKI, log: io.StringIO
) -> None:
    async with _connect(ledger, "http", pki) as client:
        await client.balance("alice")
    async with _connect(ledger, "grpc", pki) as client:
        await client.balance("alice")
    lines = [line for line in log.getvalue().splitlines() if "method=Balance" in line]
    assert len(lines) == 2
    assert f" caller={ME} caller_source=unix " in lines[0] and "transport=http" in lines[0]
    assert " caller=root caller_source=cert " in lines[1] and "transport=grpc" in lines[1]


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_a_certificate_on_a_unix_socket_wins_over_the_unix_peer(
    tmp_path: Path, pki: PKI, transport: str, log: io.StringIO
) -> None:
    """mTLS on Unix sockets (--tls-unix): the caller is the certificate's CN, not the user."""
    model, policy = write_acl(tmp_path, "p, nobody, *, read\n")
    service = lokit.define(LEDGER, Ledger())
    async with serving(service, tmp_path, model, policy, pki, tls_unix=True) as served:
        tls = client_tls(pki, "nobody", unix=True)
        if transport == "grpc":
            async with lokit.connect(LEDGER, grpc=served.unix("grpc"), tls=tls) as client:
                assert await client.balance("alice") == 5
        else:  # curl --cacert/--cert/--key over the socket
            curl = shutil.which("curl")
            assert curl, "curl is needed"
            nobody = pki.client("nobody")
            argv = [curl, "-sS", "--unix-socket", served.unix("http")[5:], "--cacert", str(pki.ca)]
            argv += ["--cert", str(nobody.cert), "--key", str(nobody.key)]
            argv += ["-d", '{"account":"alice"}', "https://localhost/balance"]
            done = await _run(argv)
            assert done.stdout == '{"v":5}', done
    line = next(x for x in log.getvalue().splitlines() if "method=Balance" in x)
    assert " caller=nobody caller_source=cert " in line


async def test_the_caller_is_in_the_trace(
    ledger: Served, pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    exporter = InMemorySpanExporter()
    configure_tracing("ledger", exporter=exporter)
    try:
        async with _connect(ledger, "grpc", pki) as client:
            await client.balance("alice")
        async with _connect(ledger, "http", pki) as client:
            await client.balance("alice")
    finally:
        shutdown_tracing()
    spans = [s for s in exporter.get_finished_spans() if s.name == "ledger/Balance"]
    assert [(s.attributes or {}).get("lokit.caller") for s in spans] == ["root", ME]
    assert [(s.attributes or {}).get("lokit.caller.source") for s in spans] == ["cert", "unix"]


async def test_the_caller_id_header_is_only_a_hint(tmp_path: Path, log: io.StringIO) -> None:
    """`x-caller-id: root` over plaintext TCP: still no caller, and the hint is logged as such."""
    model, policy = write_acl(tmp_path, "p, root, *, read\n")
    async with serving(lokit.define(LEDGER, Ledger()), tmp_path, model, policy, unix=False) as s:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://{s.tcp('http')}/balance",
                json={"account": "a"},
                headers={"x-caller-id": "root"},
            ) as r,
        ):
            assert r.status == 401
            assert await r.json() == {"error": "no transport security being used"}
    line = next(x for x in log.getvalue().splitlines() if "caller_hint=root" in x)
    assert " caller=" not in line and "code=UNAUTHENTICATED" in line


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_an_unexpected_failure_tells_only_its_request_id(
    ledger: Served, pki: PKI, log: io.StringIO, transport: str
) -> None:
    async with _connect(ledger, transport, pki) as client:
        with pytest.raises(Internal) as info:
            await client.crash(1)
    found = re.fullmatch(r"internal error \(request id ([0-9a-f]{32})\)", info.value.message)
    assert found is not None, info.value.message
    line = next(x for x in log.getvalue().splitlines() if "method=Crash" in x)
    assert f"request_id={found.group(1)} " in line  # the server's log has the rest
    assert 'err="RuntimeError: cannot open /srv/secret/ledger.db"' in line


@pytest.mark.skipif(os.geteuid() != 0, reason="runs curl as another user (needs root)")
async def test_another_local_user_is_that_user(tmp_path: Path, log: io.StringIO) -> None:
    """curl run as `nobody` on a Unix socket: the ACL sees nobody, whatever it claims."""
    curl, setpriv = shutil.which("curl"), shutil.which("setpriv")
    assert curl and setpriv, "curl and setpriv (util-linux) are needed"
    model, policy = write_acl(tmp_path, "p, root, *, read\n")
    shared = Path(tempfile.mkdtemp(prefix="lokit-acl-"))  # a directory nobody may enter
    try:
        shared.chmod(0o711)
        async with serving(
            lokit.define(LEDGER, Ledger()), shared, model, policy, socket_mode=0o666
        ) as served:
            argv = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", curl]
            argv += ["-sS", "--unix-socket", served.unix("http")[5:], "-H", "x-caller-id: root"]
            argv += ["-d", '{"account":"alice"}', "http://ledger/balance"]
            done = await _run(argv)
            assert done.stdout == '{"error":"nobody not permitted to read to alice"}', done
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    line = next(x for x in log.getvalue().splitlines() if "caller=nobody" in x)
    assert "caller_source=unix" in line and "caller_hint=root" in line


async def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    import asyncio

    return await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=20, check=False
    )
