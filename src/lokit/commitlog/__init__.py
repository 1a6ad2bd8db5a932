"""lokit.commitlog: a segmented, offset-addressed, crash-safe commit log (a library).

proglog's storage design ("Distributed Services with Go") with its defects fixed:
checksummed records, torn-tail recovery, indexes rebuilt from their stores, rolling
before a limit is passed, separate prefix/suffix truncation, group-committed fsync,
retention, snapshots, an asyncio facade and many named logs (topics) per directory.
"""

from .asynclog import AsyncLog
from .config import FsyncPolicy, LogConfig
from .dirlock import DirLock
from .errors import (
    CorruptRecordError,
    DirLockError,
    InvalidTopicNameError,
    LogClosedError,
    LogError,
    LogFailedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from .log import Log
from .topics import DEFAULT_TOPIC, Topics, validate_topic_name

__all__ = [
    "DEFAULT_TOPIC",
    "AsyncLog",
    "CorruptRecordError",
    "DirLock",
    "DirLockError",
    "FsyncPolicy",
    "InvalidTopicNameError",
    "Log",
    "LogClosedError",
    "LogConfig",
    "LogError",
    "LogFailedError",
    "OffsetOutOfRangeError",
    "RecordTooLargeError",
    "Topics",
    "validate_topic_name",
]
