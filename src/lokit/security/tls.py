"""TLS settings of a server (`ServerTLS`) and of a client (`ClientTLS`), loaded and checked once.

Both read their PEM files at load time, so a missing, unreadable or mismatched
file is one sentence (`CertError`) when a service starts or a client is made,
never a handshake failure later. From the loaded material they build what each
transport needs: grpc credentials (grpc.aio) and an `ssl.SSLContext` (uvicorn
serves with it, lokit's HTTP client dials with it), each built once and shared by every
connection, so TLS session tickets are reused across reconnects.

Decisions the issue leaves open: TLS 1.2 is the oldest version accepted on every
listener and by every client (grpc core's own floor is the same); grpc
negotiates ALPN h2 itself; a server refuses to start with an expired or
not-yet-valid certificate (every handshake would fail); a client without
`ca` trusts the system's CAs, as curl does.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lokit.security.errors import CertError

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "ENV_CA",
    "ENV_CERT",
    "ENV_KEY",
    "ENV_UNIX",
    "MIN_VERSION",
    "CertError",
    "ClientTLS",
    "ServerTLS",
]

ENV_CA = "LOKIT_TLS_CA"
ENV_CERT = "LOKIT_TLS_CERT"
ENV_KEY = "LOKIT_TLS_KEY"
ENV_UNIX = "LOKIT_TLS_UNIX"
MIN_VERSION = ssl.TLSVersion.TLSv1_2


def _pem(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CertError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def _public(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_pair(cert_file: str, key_file: str, flag: str) -> None:
    """The certificate parses, the key parses and belongs to it (one sentence otherwise)."""
    from cryptography.hazmat.primitives import serialization

    from lokit.security.certs import read_certificate, read_private_key

    cert = read_certificate(cert_file, f"certificate ({flag}-cert)")
    key = read_private_key(key_file, f"key ({flag}-key)")
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if pub != _public(cert):
        raise CertError(f"the key {key_file} does not belong to the certificate {cert_file}")


def _check_ca(ca_file: str, flag: str) -> None:
    from lokit.security.certs import read_certificate

    read_certificate(ca_file, f"CA certificate ({flag})")


def _check_validity(cert_file: str) -> None:
    from lokit.security.certs import read_certificate

    cert = read_certificate(cert_file)
    now = dt.datetime.now(dt.UTC)
    if now > cert.not_valid_after_utc:
        day = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
        raise CertError(f"the certificate {cert_file} expired on {day}; issue a new one")
    if now < cert.not_valid_before_utc:
        day = cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")
        raise CertError(f"the certificate {cert_file} is not valid before {day}")


def _secure(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = MIN_VERSION
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate and key, and the CA its clients' certificates must chain to.

    With `client_ca` set the listeners require a client certificate (mTLS);
    `unix` also puts TLS on Unix-socket listeners (plaintext by default: the
    socket's file permissions decide who connects).
    """

    cert: str
    key: str
    client_ca: str | None = None
    unix: bool = False
    cert_pem: bytes = field(default=b"", repr=False)
    key_pem: bytes = field(default=b"", repr=False)
    client_ca_pem: bytes | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls, cert: str, key: str, client_ca: str | None = None, *, unix: bool = False
    ) -> ServerTLS:
        """Read and check the files; CertError (one sentence naming the file) on any problem."""
        _check_pair(cert, key, "--tls")
        _check_validity(cert)
        if client_ca is not None:
            _check_ca(client_ca, "--tls-client-ca")
        tls = cls(
            cert,
            key,
            client_ca,
            unix,
            _pem(cert, "certificate"),
            _pem(key, "key"),
            _pem(client_ca, "CA certificate") if client_ca else None,
        )
        tls.ssl_context()  # what Python's ssl refuses fails now, in one sentence
        return tls

    @property
    def mutual(self) -> bool:
        """True when clients must present a certificate signed by `client_ca`."""
        return self.client_ca is not None

    def grpc_credentials(self) -> Any:
        """grpc server credentials (clients' certificates required with `client_ca`)."""
        import grpc

        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.client_ca_pem,
            require_client_auth=self.mutual,
        )

    def ssl_context(self, *, client_auth: bool = True) -> ssl.SSLContext:
        """The server's SSLContext (built once per `client_auth`).

        `client_auth=False` leaves client certificates out even with `client_ca`
        (the debug listener, so probes need only the CA).
        """
        return _server_context(self, client_auth and self.mutual)


@functools.cache
def _server_context(tls: ServerTLS, mutual: bool) -> ssl.SSLContext:
    ctx = _secure(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
        if mutual:
            assert tls.client_ca is not None
            ctx.load_verify_locations(cafile=tls.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as e:
        raise CertError(f"cannot use {tls.cert} with {tls.key}: {_ssl_reason(e)}") from None
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@dataclass(frozen=True)
class ClientTLS:
    """A client's trust (`ca`; None: the system's CAs) and its own certificate, for mTLS.

    TLS applies to TCP addresses, and to Unix sockets too when `unix` is set
    (for servers started with `--tls-unix`).
    """

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    unix: bool = False
    ca_pem: bytes | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        *,
        unix: bool = False,
    ) -> ClientTLS:
        """Read and check the files; CertError (one sentence naming the file) on any problem."""
        if (cert is None) != (key is None):
            given, missing = ("--tls-cert", "--tls-key") if cert else ("--tls-key", "--tls-cert")
            raise CertError(f"{given} needs {missing} too (a client certificate and its key)")
        if ca is not None:
            _check_ca(ca, "--tls-ca")
        if cert is not None and key is not None:
            _check_pair(cert, key, "--tls")
        tls = cls(
            ca,
            cert,
            key,
            unix,
            _pem(ca, "CA certificate") if ca else None,
            _pem(cert, "certificate") if cert else None,
            _pem(key, "key") if key else None,
        )
        tls.ssl_context()
        return tls

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientTLS | None:
        """From LOKIT_TLS_CA / _CERT / _KEY (and LOKIT_TLS_UNIX=1); None when none is set."""
        env = os.environ if environ is None else environ
        ca, cert, key = (env.get(n) or None for n in (ENV_CA, ENV_CERT, ENV_KEY))
        if ca is None and cert is None and key is None:
            return None
        unix = (env.get(ENV_UNIX) or "").strip().lower() in ("1", "true", "yes", "on")
        return cls.load(ca, cert, key, unix=unix)

    def refused_reason(self) -> str:
        """What a server closing the connection right after the handshake most likely means.

        Under TLS 1.3 a server checks the client's certificate after the client
        finished its side of the handshake, and then just closes the connection.
        """
        if self.cert is None:
            return (
                "the server closed the connection (it may require a client certificate: "
                "--tls-cert and --tls-key, or LOKIT_TLS_CERT and LOKIT_TLS_KEY)"
            )
        return (
            f"the server closed the connection (it may refuse the client certificate "
            f"{self.cert}: expired, or not signed by a CA it trusts)"
        )

    def applies_to(self, is_unix: bool) -> bool:
        """True when a connection to such an address uses TLS."""
        return self.unix or not is_unix

    def grpc_credentials(self) -> Any:
        """grpc channel credentials (the client certificate included when given)."""
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The client's SSLContext, built once (hostname checked against the server's SANs)."""
        return _client_context(self)


@functools.cache
def _client_context(tls: ClientTLS) -> ssl.SSLContext:
    try:
        ctx = _secure(ssl.create_default_context(cafile=tls.ca))
        if tls.cert is not None:
            ctx.load_cert_chain(tls.cert, tls.key)
    except (ssl.SSLError, OSError) as e:
        raise CertError(f"cannot use the client TLS files: {_ssl_reason(e)}") from None
    return ctx


def _ssl_reason(e: BaseException) -> str:
    """An ssl error's reason (`KEY_VALUES_MISMATCH` -> `key values mismatch`), else its text."""
    reason = getattr(e, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    return getattr(e, "strerror", None) or str(e)
