"""The log service's business errors; clients that import this raise the same classes.

Each travels with its canonical code (gRPC status) and its registered name, so a
lokit client rebuilds the very class the server raised.
"""

from __future__ import annotations

from lokit.errors import InvalidArgument, OutOfRange, ResourceExhausted, Unavailable


class OffsetOutOfRangeError(OutOfRange):
    """Reading past the end (or below the start) of a log.

    gRPC status OUT_OF_RANGE with proglog's message `offset out of range: N`;
    over HTTP a 404, as proglog's chapter-1 server answers.
    """

    error_name = "log.OffsetOutOfRange"
    http_status = 404

    @classmethod
    def at(cls, offset: int) -> OffsetOutOfRangeError:
        return cls(f"offset out of range: {offset}")


class RecordTooLargeError(InvalidArgument):
    """A record over the server's max_record_bytes; nothing was appended."""

    error_name = "log.RecordTooLarge"


class ServerStoppingError(Unavailable):
    """A tailing stream ended because the server is shutting down (retry elsewhere/later)."""

    error_name = "log.ServerStopping"
    default_message = "the log server is shutting down"


class InvalidTopicError(InvalidArgument):
    """A topic name the server cannot use."""

    error_name = "log.InvalidTopic"


class TooManyTopicsError(ResourceExhausted):
    """A write would create a topic past the server's `--max-topics`; nothing was written."""

    error_name = "log.TooManyTopics"

    @classmethod
    def limit(cls, limit: int, name: str) -> TooManyTopicsError:
        return cls(
            f"cannot create topic {name!r}: the server holds its maximum of {limit} topics "
            "(--max-topics); write to an existing topic, or raise the limit"
        )
