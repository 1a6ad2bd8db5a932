"""`lokit serve log` settings: flags, a config file (TOML or YAML) and the environment.

The three use the same keys (`segment-max-bytes` or `segment_max_bytes`), with
DESIGN.md's precedence: flags win over the file, the file over `LOKIT_LOG_<KEY>`
environment variables, and those over the defaults. A config file may hold the
keys at its top level or under a `log` table. Every mistake is one sentence.

The serve flag groups' settings (TLS, socket permissions, ACLs, ...) are keys
too: the CLI passes their converters as `group_keys`, and their values come back
in `ServerConfig.groups`, apart from the log's own settings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lokit.commitlog import FsyncPolicy, LogConfig
from lokit.commitlog.config import parse_age, parse_size
from lokit.logsvc.defaults import ADDR_ENV, DEFAULT_CACHE_BYTES, DEFAULT_DATA, ENV_PREFIX

# `LOKIT_LOG_<KEY>` variables that configure the client commands, not the server.
CLIENT_ENV = frozenset({ADDR_ENV})
LOG_FORMATS = ("logfmt", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A setting that cannot be used; the message is one sentence."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything `lokit serve log` needs; field names are the config keys."""

    data: str = DEFAULT_DATA
    grpc: tuple[str, ...] = ()
    http: tuple[str, ...] = ()
    debug: str | None = None
    fsync: str = "always"
    segment_max_bytes: int | None = None
    max_record_bytes: int | None = None
    retention_bytes: int | None = None
    retention_age: float | None = None
    read_cache_bytes: int = DEFAULT_CACHE_BYTES
    max_topics: int | None = None  # None: from the open-file limit at start
    log_format: str = "logfmt"
    log_level: str = "info"
    grace: float = 10.0
    # listener limits (lokit.transport.limits; the flags of every `lokit serve`)
    max_body_bytes: int = 8 << 20
    idle_timeout: float = 60.0
    header_timeout: float = 10.0
    max_connections: int = 0  # 0: from the open-file limit
    max_streams: int = 100
    max_body_rate: int = 64 << 20
    # the serve flag groups' settings from the file or environment, by option name
    groups: dict[str, Any] = field(default_factory=dict, compare=False)

    def log_config(self) -> LogConfig:
        """The storage engine's configuration for every topic."""
        kw: dict[str, Any] = {
            "fsync": self.fsync,
            "retention_bytes": self.retention_bytes,
            "retention_age": self.retention_age,
        }
        if self.segment_max_bytes is not None:
            kw["max_store_bytes"] = self.segment_max_bytes
        if self.max_record_bytes is not None:
            kw["max_record_bytes"] = self.max_record_bytes
        try:
            return LogConfig(**kw)
        except ValueError as e:
            raise ConfigError(str(e)) from None


KEYS: tuple[str, ...] = tuple(f.name for f in fields(ServerConfig) if f.name != "groups")
GroupKeys = Mapping[str, Callable[[Any], Any]]


def _key(raw: str) -> str:
    return raw.strip().lower().replace("-", "_")


def _addresses(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(a.strip() for a in value.split(",") if a.strip())
    if isinstance(value, list | tuple) and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise ConfigError(f"{key} must be an address or a list of addresses, not {value!r}")


def _optional(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "none", "off")


def _listener_limit(key: str, parse: Any, low: float, strict: bool) -> Any:
    def convert(value: Any) -> Any:
        number = parse(value)
        if number < low or (strict and number == low):
            raise ConfigError(f"{key} must be {'>' if strict else '>='} {low:g}, not {value!r}")
        return number

    return convert


_LISTENER_LIMITS = {
    "max_body_bytes": _listener_limit(
        "max-body-bytes", lambda v: parse_size(v, "max-body-bytes"), 1, False
    ),
    "idle_timeout": _listener_limit("idle-timeout", float, 0, True),
    "header_timeout": _listener_limit("header-timeout", float, 0, True),
    "max_connections": _listener_limit("max-connections", int, 0, False),
    "max_streams": _listener_limit("max-streams", int, 1, False),
    "max_body_rate": _listener_limit(
        "max-body-rate", lambda v: parse_size(v, "max-body-rate"), 1, False
    ),
}


def _convert(key: str, value: Any) -> Any:
    """One setting converted to its type; ConfigError when it does not fit."""
    try:
        if key in ("grpc", "http"):
            return _addresses(value, key)
        if key in ("data", "debug"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{key} must be a non-empty string, not {value!r}")
            return value.strip()
        if key == "fsync":
            return str(FsyncPolicy.parse(value))
        if key in ("segment_max_bytes", "max_record_bytes", "read_cache_bytes"):
            return parse_size(value, key.replace("_", "-"))
        if key == "max_topics":
            if _optional(value) or value == "auto":
                return None
            n = int(value) if isinstance(value, int | str) and str(value).isdigit() else 0
            if n < 1:
                raise ConfigError(f"max-topics must be a whole number >= 1, not {value!r}")
            return n
        if key == "retention_bytes":
            return None if _optional(value) else parse_size(value, "retention-bytes")
        if key == "retention_age":
            return None if _optional(value) else parse_age(value, "retention-age")
        if key == "log_format":
            if value not in LOG_FORMATS:
                choices = ", ".join(LOG_FORMATS)
                raise ConfigError(f"log-format must be one of {choices}, not {value!r}")
            return value
        if key == "log_level":
            if value not in LOG_LEVELS:
                choices = ", ".join(LOG_LEVELS)
                raise ConfigError(f"log-level must be one of {choices}, not {value!r}")
            return value
        if key == "grace":
            seconds = float(value)
            if seconds < 0:
                raise ConfigError("grace must be a number of seconds >= 0")
            return seconds
        if key in _LISTENER_LIMITS:
            return _LISTENER_LIMITS[key](value)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None
    raise ConfigError(f"unknown setting {key!r}; valid keys: {', '.join(KEYS)}")


def _normalized(
    values: Mapping[str, Any], where: str, group_keys: GroupKeys | None = None
) -> dict[str, Any]:
    """The settings in `values`, converted; the groups' ones under `groups`."""
    out: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    extra = group_keys or {}
    for raw, value in values.items():
        key = _key(str(raw))
        if key in extra:
            try:
                groups[key] = extra[key](value)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{where}: {e}") from None
            continue
        if key not in KEYS:
            valid = ", ".join(k.replace("_", "-") for k in (*KEYS, *extra))
            raise ConfigError(f"{where}: unknown setting {raw!r}; valid keys: {valid}")
        try:
            out[key] = _convert(key, value)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    if groups:
        out["groups"] = groups
    return out


def load_file(path: str | Path, group_keys: GroupKeys | None = None) -> dict[str, Any]:
    """The settings in a TOML or YAML file (by extension; otherwise TOML, then YAML)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from None
    suffix = p.suffix.lower()
    data: Any
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError:
                data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"config file {p} is not valid TOML or YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold key = value settings at its top level")
    section = data.get("log")
    if isinstance(section, dict):
        data = section
    return _normalized(data, f"config file {p}", group_keys)


def from_env(
    environ: Mapping[str, str] | None = None, group_keys: GroupKeys | None = None
) -> dict[str, Any]:
    """Settings from `LOKIT_LOG_<KEY>` variables (e.g. LOKIT_LOG_FSYNC=interval:200).

    The client commands' variables (`LOKIT_LOG_ADDR`) are not server settings: skipped.
    """
    env = os.environ if environ is None else environ
    values = {
        name[len(ENV_PREFIX) :].lower(): value
        for name, value in env.items()
        if name.startswith(ENV_PREFIX) and value != "" and name not in CLIENT_ENV
    }
    return _normalized(values, "environment", group_keys)


def merge(
    flags: Mapping[str, Any],
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    group_keys: GroupKeys | None = None,
) -> ServerConfig:
    """Defaults < environment < config file < flags (only the flags given explicitly).

    `group_keys` are the serve flag groups' keys; their values from the environment
    and the file end up in `groups` (the CLI lets their flags win over them).
    """
    values: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for layer in (
        from_env(environ, group_keys),
        load_file(config_file, group_keys) if config_file else {},
    ):
        groups.update(layer.pop("groups", {}))
        values.update(layer)
    values.update(_normalized(flags, "flag"))
    config = ServerConfig(**values, groups=groups)
    config.log_config()  # surface invalid storage settings now, in one sentence
    return config
