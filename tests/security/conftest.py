"""The security tests' shared fixtures: the session PKI (`tests.security.pki`)."""

from __future__ import annotations

from tests.security.pki import pki

__all__ = ["pki"]
