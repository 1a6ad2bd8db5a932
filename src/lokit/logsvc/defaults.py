"""Defaults shared by the log server, its client and the CLI.

Plain constants (the addresses from the one socket-path convention), so `lokit`'s
command line can use them without loading the server (the config module pulls
in the storage engine and YAML).
"""

from lokit.transport.address import default_address

DEFAULT_GRPC_ADDR = default_address("log", "grpc")
"""Where `lokit serve log` listens for gRPC, and where clients call, by default."""
DEFAULT_HTTP_ADDR = default_address("log", "http")
DEFAULT_DATA = "data/log"
DEFAULT_CACHE_BYTES = 64 << 20
"""Memory for the newest records of all topics together (`--read-cache-bytes`)."""

ENV_PREFIX = "LOKIT_LOG_"
"""Server settings come from `LOKIT_LOG_<KEY>` variables."""
ADDR_ENV = ENV_PREFIX + "ADDR"
"""The client commands' server address; not a server setting."""
DEFAULT_TOPIC = "default"
"""The topic of a write without one: the storage engine's DEFAULT_TOPIC, written here so
the client commands do not load the engine (a test keeps the two equal)."""
