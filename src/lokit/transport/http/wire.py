"""lokit's HTTP wire format, shared by the server (`app`, `streams`) and the client.

Bodies are JSON (`application/json`). An error answer is `{"error": message}`
with the status from the error and its class name in `X-Lokit-Error`, so a
lokit client raises the same exception. Streamed responses and requests are
NDJSON (`application/x-ndjson`), one encoded message per line; an error after
the first response line ends the stream with an error line (`error_line`):
`{"error": message, "lokit_error": name, "status": status}`.

Nothing here knows about serving or calling: the client imports this module,
not the server's.
"""

from __future__ import annotations

import orjson

from lokit import errors

__all__ = [
    "ERROR_HEADER",
    "JSON_TYPE",
    "NDJSON_TYPE",
    "STREAM_ERROR_KEY",
    "STREAM_ERROR_PREFIX",
    "LineSplitter",
    "error_body",
    "error_line",
]

JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"
ERROR_HEADER = "x-lokit-error"
# The key that marks the final error line of an NDJSON stream (with "error" and "status").
STREAM_ERROR_KEY = "lokit_error"
STREAM_ERROR_PREFIX = b'{"error":'


def error_body(message: str) -> bytes:
    """`{"error": message}` as bytes."""
    return orjson.dumps({"error": message})


def error_line(err: errors.Error) -> bytes:
    """The last line of a stream that failed after its first line."""
    return orjson.dumps(
        {"error": err.message, STREAM_ERROR_KEY: err.error_name, "status": err.status}
    )


class LineSplitter:
    """Splits a byte stream into NDJSON lines, however the chunks fall."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The complete non-empty lines `chunk` finishes."""
        lines: list[bytes] = []
        start = 0
        nl = chunk.find(b"\n")
        while nl >= 0:
            if self._parts:
                self._parts.append(chunk[start:nl])
                line = b"".join(self._parts)
                self._parts.clear()
            else:
                line = chunk[start:nl]
            if line.strip():
                lines.append(line)
            start = nl + 1
            nl = chunk.find(b"\n", start)
        if start < len(chunk):
            self._parts.append(chunk[start:])
        return lines

    def pending(self) -> int:
        """The bytes of the line not finished yet."""
        return sum(len(p) for p in self._parts)

    def tail(self) -> bytes | None:
        """What is left after the last newline, if anything but whitespace."""
        line = b"".join(self._parts)
        self._parts.clear()
        return line if line.strip() else None
