"""Log configuration: segment limits, fsync policy and retention.

`LogConfig` is a plain dataclass whose field names are also the config-file keys;
`LogConfig.from_mapping` accepts the string forms a config file or environment
variable carries ("64MiB", "interval:200", "7d").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from .files import MIN_OPEN_FILES, Perms
from .index import ENTRY_SIZE as INDEX_ENTRY_SIZE
from .record import HEADER_SIZE

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_AGE_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True)
class FsyncPolicy:
    """When appended bytes are forced to disk.

    - ``always``: an append returns only once its record is durable (one fdatasync
      of the store; the newest index is rebuilt from it on open); concurrent
      appenders share one fsync (group commit).
    - ``interval:<ms>``: a background thread fsyncs dirty segments every `<ms>`.
    - ``never``: lokit never calls fsync; the OS writes back in its own time.
    """

    mode: Literal["always", "interval", "never"]
    interval_ms: int = 0

    @classmethod
    def parse(cls, text: str | FsyncPolicy) -> FsyncPolicy:
        """Parse ``always``, ``never`` or ``interval:<ms>``; ValueError otherwise."""
        if isinstance(text, FsyncPolicy):
            return text
        if not isinstance(text, str):
            raise ValueError(
                f"fsync policy must be a string such as 'always', not {type(text).__name__}"
            )
        t = text.strip().lower()
        if t == "always":
            return cls("always")
        if t == "never":
            return cls("never")
        m = re.fullmatch(r"interval:(\d+)(ms)?", t)
        if m:
            ms = int(m.group(1))
            if ms <= 0:
                raise ValueError(f"fsync policy {text!r}: the interval must be at least 1 ms")
            return cls("interval", ms)
        raise ValueError(
            f"invalid fsync policy {text!r}: use 'always', 'never' or 'interval:<ms>' "
            "(for example 'interval:200')"
        )

    def __str__(self) -> str:
        return f"interval:{self.interval_ms}" if self.mode == "interval" else self.mode


def parse_size(value: int | str, key: str) -> int:
    """Bytes from an int or a string like ``64MiB``, ``10MB``, ``4096``."""
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a size in bytes, not a boolean")
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{key} must be a size such as 4096, '64MiB' or '1GB', not {value!r}")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def parse_age(value: float | int | str, key: str) -> float:
    """Seconds from a number or a string like ``7d``, ``12h``, ``30s``, ``500ms``."""
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a duration, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _AGE_UNITS:
        raise ValueError(f"{key} must be a duration such as 3600, '7d' or '12h', not {value!r}")
    return float(m.group(1)) * _AGE_UNITS[m.group(2).lower()]


@dataclass(frozen=True)
class LogConfig:
    """Per-log settings. Field names double as config-file keys.

    max_store_bytes / max_index_bytes: a segment rolls *before* a record would push
    either file over its limit. max_record_bytes: larger records are refused (the
    effective limit is also capped so one record always fits in an empty segment).
    retention_bytes / retention_age: delete whole oldest segments (never the active
    one) once the log is bigger than this, or their newest record older than this
    many seconds; None turns a rule off. max_open_files: file descriptors a log's
    segments may hold open together (a `Topics` applies it to all its topics at once;
    None: half the soft RLIMIT_NOFILE); the least recently used are closed beyond it.
    group: a group name or id; data files are then created 0640 and directories 0750,
    owned by that group (None: 0600 and 0700).
    """

    max_store_bytes: int = 64 * 1024 * 1024
    max_index_bytes: int = 12 * 1024 * 1024
    initial_offset: int = 0
    max_record_bytes: int = 1024 * 1024
    fsync: FsyncPolicy | str = "always"
    retention_bytes: int | None = None
    retention_age: float | None = None
    max_open_files: int | None = None
    group: str | int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fsync", FsyncPolicy.parse(self.fsync))
        for key in ("max_store_bytes", "max_index_bytes", "initial_offset", "max_record_bytes"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{key} must be an integer, not {v!r}")
        if self.max_store_bytes < 2 * HEADER_SIZE:
            raise ValueError(f"max_store_bytes must be at least {2 * HEADER_SIZE} bytes")
        if self.max_index_bytes < INDEX_ENTRY_SIZE:
            raise ValueError(
                f"max_index_bytes must hold at least one {INDEX_ENTRY_SIZE}-byte entry"
            )
        if not 0 <= self.initial_offset < 2**63:
            raise ValueError("initial_offset must be between 0 and 2**63 - 1")
        if not 0 <= self.max_record_bytes < 2**32:
            raise ValueError("max_record_bytes must be between 0 and 2**32 - 1")
        if self.retention_bytes is not None and (
            isinstance(self.retention_bytes, bool)
            or not isinstance(self.retention_bytes, int)
            or self.retention_bytes < 0
        ):
            raise ValueError("retention_bytes must be a non-negative integer or None")
        if self.max_open_files is not None and (
            isinstance(self.max_open_files, bool)
            or not isinstance(self.max_open_files, int)
            or self.max_open_files < MIN_OPEN_FILES
        ):
            raise ValueError(f"max_open_files must be an integer of at least {MIN_OPEN_FILES}")
        object.__setattr__(self, "_perms", Perms.for_group(self.group))
        if self.retention_age is not None:
            if isinstance(self.retention_age, bool) or not isinstance(
                self.retention_age, int | float
            ):
                raise ValueError("retention_age must be a number of seconds or None")
            if self.retention_age < 0:
                raise ValueError("retention_age must not be negative")

    @property
    def fsync_policy(self) -> FsyncPolicy:
        """The parsed fsync policy (`fsync` is always a FsyncPolicy after init)."""
        assert isinstance(self.fsync, FsyncPolicy)
        return self.fsync

    @property
    def perms(self) -> Perms:
        """Modes and group for the files and directories a log creates (`group`)."""
        perms: Perms = self.__dict__["_perms"]
        return perms

    @property
    def record_limit(self) -> int:
        """The largest record accepted: max_record_bytes, capped to fit a segment."""
        return min(self.max_record_bytes, self.max_store_bytes - HEADER_SIZE)

    @property
    def index_capacity(self) -> int:
        """Entries per segment index (max_index_bytes rounded down to whole entries)."""
        return self.max_index_bytes // INDEX_ENTRY_SIZE

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LogConfig:
        """Build from config-file/environment values; unknown keys are a ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown commit log config key(s): {', '.join(unknown)}; "
                f"valid keys: {', '.join(sorted(known))}"
            )
        kw: dict[str, Any] = {}
        for key, v in values.items():
            if key in ("max_store_bytes", "max_index_bytes", "max_record_bytes"):
                kw[key] = parse_size(v, key)
            elif key == "retention_bytes":
                kw[key] = None if v in (None, "", "none", "off") else parse_size(v, key)
            elif key == "retention_age":
                kw[key] = None if v in (None, "", "none", "off") else parse_age(v, key)
            elif key == "group":
                kw[key] = None if v in (None, "", "none") else v
            elif key == "max_open_files":
                kw[key] = None if v in (None, "", "auto") else _int(v, key)
            elif key == "initial_offset":
                try:
                    kw[key] = int(v)
                except (TypeError, ValueError):
                    raise ValueError(f"initial_offset must be an integer, not {v!r}") from None
            else:
                kw[key] = v
        return cls(**kw)


def _int(v: object, key: str) -> int:
    try:
        return int(v)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be an integer, not {v!r}") from None
