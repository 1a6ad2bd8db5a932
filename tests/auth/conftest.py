"""The auth tests share the session's PKI (S1's `tests.security.pki`)."""

from tests.security.pki import pki  # noqa: F401 (the session fixture)
