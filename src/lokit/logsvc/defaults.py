"""Defaults shared by the log server, its client and the CLI.

Plain constants with no imports, so `lokit`'s command line can use them without
loading the server (the config module pulls in the storage engine and YAML).
"""

DEFAULT_GRPC_ADDR = "unix:run/log.grpc.sock"
"""Where `lokit serve log` listens for gRPC, and where clients call, by default."""
DEFAULT_HTTP_ADDR = "unix:run/log.http.sock"
DEFAULT_DATA = "data/log"
DEFAULT_CACHE_BYTES = 64 << 20
"""Memory per topic for its newest records (`--read-cache-bytes`)."""

ENV_PREFIX = "LOKIT_LOG_"
"""Server settings come from `LOKIT_LOG_<KEY>` variables."""
ADDR_ENV = ENV_PREFIX + "ADDR"
"""The client commands' server address; not a server setting."""
