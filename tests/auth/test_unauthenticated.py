"""No caller to authorize: TLS without a client certificate, and a client certificate without a
common name, are UNAUTHENTICATED on both transports (real handshakes), each saying why."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import lokit
from lokit.errors import Unauthenticated
from lokit.runtime import Extension, Listeners, Runtime
from lokit.security.certs import read_certificate, read_private_key
from lokit.security.tls import ClientTLS, ServerTLS
from tests.auth.acl_files import write_acl
from tests.auth.servers import http_call
from tests.auth.test_any_service import LEDGER, Ledger
from tests.security.pki import PKI


def no_cn_client(pki: PKI, directory: Path) -> ClientTLS:
    """A client certificate from the session's CA with a SAN but no common name."""
    ca_cert = read_certificate(pki.ca)
    ca_key = read_private_key(pki.dir / "ca-key.pem")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lokit")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("client.test")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "nocn.pem", directory / "nocn-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ClientTLS.load(str(pki.ca), str(cert_file), str(key_file))


async def _serve(tmp: Path, tls: ServerTLS) -> AsyncIterator[dict[str, str]]:
    from lokit.auth import Authorizer, acl

    model, policy = write_acl(tmp, "p, root, *, read\n")
    listeners = Listeners(["127.0.0.1:0"], ["127.0.0.1:0"], grace=1, tls=tls)
    ext = Extension(middleware=acl(Authorizer(model, policy)))
    runtime = Runtime(lokit.define(LEDGER, Ledger()), listeners, (ext,))
    await runtime.start()
    try:
        yield {kind: str(addr) for kind, addr in runtime.bound}
    finally:
        await runtime.stop()


async def _expect(addrs: dict[str, str], tls: ClientTLS, message: str) -> None:
    async with lokit.connect(LEDGER, grpc=addrs["grpc"], tls=tls) as client:
        with pytest.raises(Unauthenticated) as info:
            await client.balance("alice")
        assert info.value.message == message
    status, body = await http_call(
        addrs["http"], "POST", "/balance", tls=tls, json={"account": "alice"}
    )
    assert (status, body) == (401, {"error": message})


async def test_tls_without_a_client_certificate(tmp_path: Path, pki: PKI) -> None:
    server = ServerTLS.load(str(pki.server.cert), str(pki.server.key))  # no client CA
    async for addrs in _serve(tmp_path, server):
        await _expect(addrs, ClientTLS.load(str(pki.ca)), "no client certificate was presented")


async def test_a_client_certificate_without_a_common_name(tmp_path: Path, pki: PKI) -> None:
    server = ServerTLS.load(str(pki.server.cert), str(pki.server.key), str(pki.ca))
    async for addrs in _serve(tmp_path, server):
        await _expect(
            addrs,
            no_cn_client(pki, tmp_path),
            "the client certificate has no common name (CN) to go by",
        )
