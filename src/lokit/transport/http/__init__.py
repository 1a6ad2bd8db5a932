"""HTTP transport: a raw ASGI app served by uvicorn, and an aiohttp client.

`asgi_app(service, observer)` turns a `ServiceDef`'s HTTP routes into an ASGI
app; `HttpServer` runs any ASGI app on `unix:` and TCP addresses inside the
running loop; `HttpClient` turns routes back into endpoints on the caller's side.
"""

from lokit.transport.http.app import HttpApp, asgi_app
from lokit.transport.http.client import HttpClient
from lokit.transport.http.server import HttpServer
from lokit.types import ASGIApp

__all__ = ["ASGIApp", "HttpApp", "HttpClient", "HttpServer", "asgi_app"]
