"""HTTP transport: a raw ASGI app served by uvicorn, and lokit's own keep-alive client.

`asgi_app(service, observer)` turns a `ServiceDef`'s HTTP routes into an ASGI
app; `HttpServer` runs any ASGI app on `unix:` and TCP addresses inside the
running loop; `HttpClient` turns routes back into endpoints on the caller's side.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lokit.transport.http.app import HttpApp, asgi_app
    from lokit.transport.http.client import HttpClient
    from lokit.transport.http.server import HttpServer
    from lokit.types import ASGIApp

__all__ = ["ASGIApp", "HttpApp", "HttpClient", "HttpServer", "asgi_app"]

# Loaded on first use, so a client never imports the server (uvicorn) and back.
_HOME = {
    "ASGIApp": "lokit.types",
    "HttpApp": "lokit.transport.http.app",
    "asgi_app": "lokit.transport.http.app",
    "HttpClient": "lokit.transport.http.client",
    "HttpServer": "lokit.transport.http.server",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
