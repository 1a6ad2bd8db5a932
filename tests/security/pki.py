"""A throwaway PKI for the security tests, made once per session with `lokit.security.certs`.

    from tests.security.pki import PKI, pki  # noqa: F401 (the fixture)

    def test_x(pki: PKI) -> None:
        pki.server.cert, pki.root.key, pki.ca ...

`ca` signs `server` (SANs localhost, 127.0.0.1, ::1) and the client certificates
`root`, `nobody` and `expired` (CN=expired, valid for one day a month ago);
`other_ca` is a second CA nobody trusts, which signs `stranger` (a client, CN
root) and `impostor` (a server for the same hosts).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from lokit.security.certs import Issued, init_ca, issue


@dataclass(frozen=True)
class PKI:
    """Paths of the session's certificates (see the module docstring)."""

    dir: Path
    ca: Path
    server: Issued
    root: Issued
    nobody: Issued
    expired: Issued
    other_ca: Path
    stranger: Issued
    impostor: Issued

    def client(self, name: str) -> Issued:
        """The client certificate `name` (root, nobody, expired, stranger)."""
        issued = getattr(self, name)
        assert isinstance(issued, Issued)
        return issued


def make_pki(base: Path) -> PKI:
    """Make the PKI under `base` (`base/ca`, `base/other`)."""
    main, other = base / "ca", base / "other"
    init_ca(main)
    server = issue(main, "server", server=True)
    root = issue(main, "root")
    nobody = issue(main, "nobody")
    a_month_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = issue(main, "expired", days=1, not_before=a_month_ago)
    init_ca(other, name="unknown CA")
    stranger = issue(other, "root")
    impostor = issue(other, "server", server=True)
    return PKI(
        dir=main,
        ca=main / "ca.pem",
        server=server,
        root=root,
        nobody=nobody,
        expired=expired,
        other_ca=other / "ca.pem",
        stranger=Issued(stranger.cert, stranger.key),
        impostor=impostor,
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """The session's PKI (made once, ~50 ms)."""
    return make_pki(tmp_path_factory.mktemp("pki"))
