"""A certificate authority in a directory: make it, issue certificates from it, read them.

What proglog used cfssl for, with `cryptography` (no cfssl, no openssl CLI):

    init_ca("certs")                          # certs/ca.pem, certs/ca-key.pem
    issue("certs", "log", server=True)        # certs/log.pem, log-key.pem: SANs for this host
    issue("certs", "root")                    # a client certificate, CN=root

Keys are EC P-256 and written `0600` (the directory `0700` when created here);
certificates are PEM. Client certificates carry their name as CN and the
clientAuth usage; server certificates carry serverAuth and their `hosts` as
SANs (DNS names, or IP addresses for anything that parses as one). Every
failure is a `CertError` with one sentence naming the file, never its contents.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lokit.security.errors import CertError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "DEFAULT_HOSTS",
    "CertError",
    "CertInfo",
    "Issued",
    "init_ca",
    "inspect",
    "issue",
    "read_certificate",
    "read_private_key",
]

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
DAYS = 365

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Issued:
    """The files of one certificate: the PEM certificate and its private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CertInfo:
    """What a certificate says, for `lokit certs show` and for checks at start-up."""

    path: Path
    subject: str
    common_name: str | None
    sans: tuple[str, ...]
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    usages: tuple[str, ...]  # serverAuth, clientAuth
    serial: int

    def expired(self, now: dt.datetime | None = None) -> bool:
        """True when `now` (default: the current time) is past the certificate's validity."""
        return (now or _now()) > self.not_after

    def not_yet_valid(self, now: dt.datetime | None = None) -> bool:
        """True when `now` is before the certificate's validity starts."""
        return (now or _now()) < self.not_before


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name in ("ca", "ca-key"):
        raise CertError(
            f"{name!r} cannot name a certificate: use letters, digits, '.', '_' or '-' "
            "(up to 64, not 'ca')"
        )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` with `mode` from the first byte on, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        raise CertError(f"cannot write {path}: {e.strerror or e}") from None


def _ensure_dir(directory: Path) -> None:
    try:
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
    except OSError as e:
        raise CertError(f"cannot create {directory}: {e.strerror or e}") from None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertError(f"the {what} {path} does not exist") from None
    except IsADirectoryError:
        raise CertError(f"the {what} {path} is a directory, not a file") from None
    except OSError as e:
        raise CertError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def read_certificate(path: str | Path, what: str = "certificate") -> x509.Certificate:
    """The first PEM certificate in `path`; CertError (one sentence) when there is none."""
    p = Path(path)
    data = _read(p, what)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertError(f"the {what} {p} is not a PEM certificate") from None


def read_private_key(path: str | Path, what: str = "key") -> ec.EllipticCurvePrivateKey:
    """An unencrypted EC private key from `path` (what `issue` writes)."""
    p = Path(path)
    data = _read(p, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise CertError(f"the {what} {p} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError(f"the {what} {p} is not an EC key")
    return key


def init_ca(
    directory: str | Path,
    *,
    force: bool = False,
    name: str = "lokit CA",
    days: int = CA_DAYS,
) -> Issued:
    """Make a CA in `directory`: `ca.pem` and `ca-key.pem` (0600).

    An existing CA is kept (CertError) unless `force`: certificates it issued
    would stop verifying.
    """
    d = Path(directory)
    cert_path, key_path = d / CA_CERT, d / CA_KEY
    if not force and (cert_path.exists() or key_path.exists()):
        raise CertError(
            f"{d} already holds a CA ({CA_CERT}); give --force to replace it "
            "(certificates it issued will no longer verify)"
        )
    if days < 1:
        raise CertError(f"a CA must be valid for at least 1 day, not {days}")
    _ensure_dir(d)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert_path, key_path)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise CertError(f"{host!r} is neither a host name nor an IP address")
    return x509.DNSName(host)


def issue(
    directory: str | Path,
    name: str,
    *,
    server: bool = False,
    hosts: Sequence[str] = (),
    days: int = DAYS,
    not_before: dt.datetime | None = None,
    force: bool = False,
) -> Issued:
    """Issue `NAME.pem` and `NAME-key.pem` (0600) in `directory`, signed by its CA.

    A client certificate (the default) carries `name` as CN and the clientAuth
    usage; a server certificate (`server=True`) carries serverAuth and `hosts`
    as SANs (default `DEFAULT_HOSTS`). The validity starts at `not_before`
    (default: now, less a few minutes of clock skew) and lasts `days`; a past
    `not_before` with few days makes an expired certificate (for tests).
    Existing files are kept (CertError) unless `force`.
    """
    _check_name(name)
    d = Path(directory)
    cert_path, key_path = d / f"{name}.pem", d / f"{name}-key.pem"
    if not force and (cert_path.exists() or key_path.exists()):
        raise CertError(f"{cert_path} already exists; give --force to replace it")
    if days < 1:
        raise CertError(f"a certificate must be valid for at least 1 day, not {days}")
    if not (d / CA_CERT).exists():
        raise CertError(f"{d} has no CA ({CA_CERT}); make one first: lokit certs init --dir {d}")
    ca_cert = read_certificate(d / CA_CERT, "CA certificate")
    ca_key = read_private_key(d / CA_KEY, "CA key")
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or (_now() - dt.timedelta(minutes=5))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        names = [_san(h) for h in (hosts or DEFAULT_HOSTS)]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Issued(cert_path, key_path)


def _usages(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    names = {
        ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
        ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    }
    return tuple(names.get(oid, oid.dotted_string) for oid in eku)


def inspect(path: str | Path) -> CertInfo:
    """What the certificate in `path` says (subject, SANs, issuer, validity, usages)."""
    cert = read_certificate(path)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(
            [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)]
            + [f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        sans = ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        path=Path(path),
        subject=cert.subject.rfc4514_string(),
        common_name=cn if isinstance(cn, str) else None,
        sans=sans,
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=is_ca,
        usages=_usages(cert),
        serial=cert.serial_number,
    )
