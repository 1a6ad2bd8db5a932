"""Each test starts with default logging (info, logfmt) and tracing off."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from lokit.observability import logs, tracing


@pytest.fixture(autouse=True)
def _reset_observability() -> Iterator[None]:
    tracing.shutdown_tracing()
    logs.configure_logging()
    yield
    tracing.shutdown_tracing()
    logs.configure_logging()


@pytest.fixture
def out() -> io.StringIO:
    """A stream the test configures logging to."""
    return io.StringIO()
