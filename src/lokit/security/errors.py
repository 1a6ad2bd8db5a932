"""`CertError`: a certificate, key or TLS setting that cannot be used (one sentence).

Its own module so `lokit.security.tls` names it without loading `cryptography`.
"""

from __future__ import annotations

from lokit.errors import FailedPrecondition


class CertError(FailedPrecondition):
    """A certificate or key that cannot be made or read; the message is one sentence.

    A lokit error (FAILED_PRECONDITION), so every CLI command prints it as such.
    """

    error_name = "lokit.security.CertError"
