"""TLS and mTLS on both transports through real handshakes (a greeter served in-process).

proglog's TLS cases: a client with `root`'s certificate is served; no client
certificate, one from an unknown CA, an expired one, a server the client's CA did
not sign, and a plaintext client all fail in one sentence, and the server keeps
serving everyone else.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import lokit
from lokit.errors import Unavailable
from lokit.examples.greeter import Greeter
from lokit.runtime import Listeners, Runtime
from lokit.security.certs import CertError
from lokit.security.tls import ClientTLS, ServerTLS
from tests.security.pki import PKI

KINDS = ["grpc", "http"]


def server_tls(pki: PKI, *, mutual: bool = True, unix: bool = False) -> ServerTLS:
    return ServerTLS.load(
        str(pki.server.cert),
        str(pki.server.key),
        str(pki.ca) if mutual else None,
        unix=unix,
    )


def client(pki: PKI, name: str | None = "root", ca: Path | None = None) -> ClientTLS:
    ca_file = str(ca or pki.ca)
    if name is None:
        return ClientTLS.load(ca_file)
    issued = pki.client(name)
    return ClientTLS.load(ca_file, str(issued.cert), str(issued.key))


@pytest.fixture
async def mtls(pki: PKI) -> AsyncIterator[dict[str, str]]:
    """A greeter with mTLS on TCP gRPC and HTTP; its addresses by kind."""
    runtime = Runtime(
        lokit.define("greeter", Greeter()),
        Listeners(["127.0.0.1:0"], ["127.0.0.1:0"], tls=server_tls(pki)),
    )
    await runtime.start()
    yield {kind: str(addr) for kind, addr in runtime.bound}
    await runtime.stop()


def connect(kind: str, addr: str, tls: ClientTLS | None) -> lokit.Connection[Greeter]:
    if kind == "grpc":
        return lokit.connect(Greeter, grpc=addr, timeout=5.0, tls=tls)
    return lokit.connect(Greeter, http=addr, timeout=5.0, tls=tls)


async def greet(kind: str, addr: str, tls: ClientTLS | None) -> str:
    async with connect(kind, addr, tls) as g:
        return await g.greet("ada")


@pytest.mark.parametrize("kind", KINDS)
async def test_root_is_served_over_mtls(pki: PKI, mtls: dict[str, str], kind: str) -> None:
    tls = client(pki)
    assert await greet(kind, mtls[kind], tls) == "hello, ada"
    async with connect(kind, mtls[kind], tls) as g:
        assert [n async for n in g.countdown(3)] == [3, 2, 1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("who", [None, "expired", "stranger"])
async def test_refused_client_certificates_fail_cleanly(
    pki: PKI, mtls: dict[str, str], kind: str, who: str | None
) -> None:
    addr = mtls[kind]
    with pytest.raises(Unavailable) as refused:
        await greet(kind, addr, client(pki, who))
    message = str(refused.value)
    assert message.startswith(f"TLS handshake with {addr} failed: ")
    assert "\n" not in message and "BEGIN" not in message
    assert await greet(kind, addr, client(pki)) == "hello, ada"  # the server serves on


@pytest.mark.parametrize("kind", KINDS)
async def test_a_server_the_ca_did_not_sign_is_one_sentence(
    pki: PKI, mtls: dict[str, str], kind: str
) -> None:
    addr = mtls[kind]
    with pytest.raises(Unavailable) as refused:
        await greet(kind, addr, client(pki, "root", ca=pki.other_ca))
    assert str(refused.value).startswith(
        f"TLS handshake with {addr} failed: certificate verify failed"
    )
    assert await greet(kind, addr, client(pki)) == "hello, ada"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_plaintext_client_fails_and_the_server_serves_on(
    pki: PKI, mtls: dict[str, str], kind: str
) -> None:
    with pytest.raises(Unavailable, match=r"is unavailable"):
        await greet(kind, mtls[kind], None)
    assert await greet(kind, mtls[kind], client(pki)) == "hello, ada"


async def test_tls_without_client_certificates(pki: PKI) -> None:
    runtime = Runtime(
        lokit.define("greeter", Greeter()),
        Listeners(["127.0.0.1:0"], ["127.0.0.1:0"], tls=server_tls(pki, mutual=False)),
    )
    await runtime.start()
    try:
        for kind, addr in runtime.bound:
            assert await greet(kind, str(addr), client(pki, None)) == "hello, ada"
    finally:
        await runtime.stop()


async def test_unix_sockets_stay_plaintext_unless_tls_unix(pki: PKI, tmp_path: Path) -> None:
    plain_unix = Runtime(
        lokit.define("greeter", Greeter()),
        Listeners(
            [f"unix:{tmp_path}/a.grpc", "127.0.0.1:0"],
            [f"unix:{tmp_path}/a.http"],
            tls=server_tls(pki),
        ),
    )
    await plain_unix.start()
    try:
        tls = client(pki)  # applies to TCP only: the Unix sockets are plaintext
        for kind, addr in plain_unix.bound:
            assert await greet(kind, str(addr), tls) == "hello, ada"
    finally:
        await plain_unix.stop()

    tls_unix = Runtime(
        lokit.define("greeter", Greeter()),
        Listeners(
            [f"unix:{tmp_path}/b.grpc"], [f"unix:{tmp_path}/b.http"], tls=server_tls(pki, unix=True)
        ),
    )
    await tls_unix.start()
    try:
        root = pki.root
        over_unix = ClientTLS.load(str(pki.ca), str(root.cert), str(root.key), unix=True)
        for kind, addr in tls_unix.bound:
            assert await greet(kind, str(addr), over_unix) == "hello, ada"
            with pytest.raises(Unavailable):
                await greet(kind, str(addr), None)
    finally:
        await tls_unix.stop()


async def test_debug_tls_needs_only_the_ca(pki: PKI) -> None:
    runtime = Runtime(
        lokit.define("greeter", Greeter()),
        Listeners(debug="127.0.0.1:0", tls=server_tls(pki), debug_tls=True),
    )
    await runtime.start()
    try:
        ((_, addr),) = runtime.bound
        context = ssl.create_default_context(cafile=str(pki.ca))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://localhost:{addr.port}/metrics", ssl=context) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):
                await session.get(f"http://127.0.0.1:{addr.port}/metrics")
    finally:
        await runtime.stop()


def test_server_files_are_checked_at_load(pki: PKI, tmp_path: Path) -> None:
    cert, key = str(pki.server.cert), str(pki.server.key)
    with pytest.raises(CertError, match="does not belong to the certificate"):
        ServerTLS.load(cert, str(pki.root.key))
    with pytest.raises(CertError, match="expired on"):
        ServerTLS.load(str(pki.expired.cert), str(pki.expired.key))
    with pytest.raises(CertError, match="does not exist"):
        ServerTLS.load(str(tmp_path / "nope.pem"), key)
    with pytest.raises(CertError, match="is not a PEM certificate"):
        ServerTLS.load(cert, key, client_ca=key)
    with pytest.raises(CertError, match="--tls-cert needs --tls-key"):
        ClientTLS.load(str(pki.ca), cert=cert)


def test_client_tls_from_the_environment(pki: PKI) -> None:
    assert ClientTLS.from_env({}) is None
    env = {"LOKIT_TLS_CA": str(pki.ca), "LOKIT_TLS_CERT": str(pki.root.cert)}
    with pytest.raises(CertError, match="needs --tls-key"):
        ClientTLS.from_env(env)
    tls = ClientTLS.from_env({**env, "LOKIT_TLS_KEY": str(pki.root.key)})
    assert tls is not None and tls.cert == str(pki.root.cert) and not tls.unix


@pytest.mark.parametrize("kind", KINDS)
async def test_a_certificate_for_another_host_is_one_sentence(pki: PKI, kind: str) -> None:
    from lokit.security.certs import issue

    elsewhere = issue(pki.dir, f"elsewhere-{kind}", server=True, hosts=["example.com"])
    runtime = Runtime(
        lokit.define("greeter", Greeter()),
        Listeners(
            ["127.0.0.1:0"] if kind == "grpc" else [],
            ["127.0.0.1:0"] if kind == "http" else [],
            tls=ServerTLS.load(str(elsewhere.cert), str(elsewhere.key)),
        ),
    )
    await runtime.start()
    try:
        ((_, addr),) = runtime.bound
        with pytest.raises(Unavailable) as refused:
            await greet(kind, str(addr), client(pki, None))
        message = str(refused.value)
        assert message.startswith(f"TLS handshake with {addr} failed: ")
        assert "not for this host" in message or "mismatch" in message, message
    finally:
        await runtime.stop()


async def test_an_unfinished_tls_handshake_is_closed_at_the_header_timeout(pki: PKI) -> None:
    """A client that opens a TLS connection and never says hello does not hold it for 60 s."""
    import asyncio

    from lokit.transport.limits import Limits

    runtime = Runtime(
        lokit.define("greeter", Greeter()),
        Listeners([], ["127.0.0.1:0"], limits=Limits(header_timeout=0.5), tls=server_tls(pki)),
    )
    await runtime.start()
    try:
        [(_, addr)] = runtime.bound
        assert addr.host is not None and addr.port is not None
        reader, writer = await asyncio.open_connection(addr.host, addr.port)
        assert await asyncio.wait_for(reader.read(), 10.0) == b""  # closed by the server
        writer.close()
        assert await greet("http", str(addr), client(pki)) == "hello, ada"  # still serving
    finally:
        await runtime.stop()


async def test_no_frames_where_tls_covers_unix_sockets(pki: PKI, tmp_path: Path) -> None:
    """Frames have no TLS: a server with --tls-unix serves none, so mTLS stays the way in."""
    import lokit
    from lokit.examples.greeter import Greeter
    from lokit.runtime import Listeners, Runtime

    listeners = Listeners(http=[f"unix:{tmp_path}/g.http.sock"], tls=server_tls(pki, unix=True))
    runtime = Runtime(lokit.define("greeter", Greeter()), listeners)
    await runtime.start()
    try:
        assert [k for k, _ in runtime.bound] == ["http"]
        assert not (tmp_path / "g.frames.sock").exists()
    finally:
        await runtime.stop()
