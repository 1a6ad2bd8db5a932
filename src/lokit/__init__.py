"""lokit: a Go-kit-style toolkit and runtime for local-first Python microservices."""

from lokit.app import connect, define, main
from lokit.endpoint import Endpoint, Kind, Method, Middleware, chain
from lokit.errors import Code, Error
from lokit.routes import ServiceDef

__version__ = "0.1.0"

__all__ = [
    "Code",
    "Endpoint",
    "Error",
    "Kind",
    "Method",
    "Middleware",
    "ServiceDef",
    "chain",
    "connect",
    "define",
    "main",
]
