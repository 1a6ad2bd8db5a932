"""lokit: a Go-kit-style toolkit and runtime for local-first Python microservices.

The public surface: `contract` (a service's wire contract, from its interface),
`define` (serve an implementation), `connect` (call a remote one), endpoints
and middlewares (`Endpoint`, `Middleware`, `chain`), errors (`Error`,
`Code`) and `field` (pin a protobuf field number in a type hint). `main`,
the command line for a service's own script, lives with the CLI and is
loaded only when used, so importing lokit never loads the CLI.
"""

from typing import TYPE_CHECKING, Any

from lokit.client import Connection, connect
from lokit.contract import Contract, contract
from lokit.endpoint import Endpoint, Kind, Method, Middleware, chain
from lokit.errors import Code, Error
from lokit.protobuf.numbers import field
from lokit.service import ServiceDef, define

if TYPE_CHECKING:
    from lokit.cli.script import main

__version__ = "0.1.0"

__all__ = [
    "Code",
    "Connection",
    "Contract",
    "Endpoint",
    "Error",
    "Kind",
    "Method",
    "Middleware",
    "ServiceDef",
    "chain",
    "connect",
    "contract",
    "define",
    "field",
    "main",
]


def __getattr__(name: str) -> Any:
    if name == "main":
        from lokit.cli.script import main

        return main
    raise AttributeError(f"module 'lokit' has no attribute {name!r}")
