"""The short path for a new service: `define` it, run it with `main`, call it with `connect`.

    class Greeter:
        async def greet(self, name: str) -> str: ...

    if __name__ == "__main__":
        lokit.main(lambda: lokit.define("greeter", Greeter()))

`main` gives the script the same flags as `lokit serve` (--grpc, --http, --debug,
--log-format, --log-level, --grace); `connect` returns an object with the
service's methods that calls a remote instance over gRPC or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from lokit.codec import Codec
from lokit.derive import describe
from lokit.endpoint import Middleware
from lokit.proxy import proxy
from lokit.routes import ServiceDef, grpc_routes, http_routes


def define(
    name: str,
    service: object,
    *,
    grpc_name: str | None = None,
    middlewares: tuple[Middleware, ...] = (),
    codecs: Mapping[str, Codec] | None = None,
) -> ServiceDef:
    """A `ServiceDef` serving every typed async method of `service` over gRPC and HTTP.

    gRPC methods live at `/<grpc_name>/<Method>` (default `grpc_name`: `<name>.v1.<Class>`),
    HTTP routes at `POST /<method-name>`; JSON unless `codecs` names another codec.
    """
    grpc_name = grpc_name or default_grpc_name(name, type(service))
    methods = describe(service, middlewares=middlewares)
    return ServiceDef(
        name=name,
        grpc=grpc_routes(grpc_name, methods, codecs),
        http=http_routes(methods, codecs),
        grpc_services=[grpc_name],
    )


def default_grpc_name(name: str, service_cls: type) -> str:
    return f"{name}.v1.{service_cls.__name__}"


def main(build: Callable[[], ServiceDef], name: str | None = None) -> None:
    """Run a service from a script with the flags of `lokit serve`."""
    import click

    from lokit.cli.errors import friendly
    from lokit.cli.main import common_serve_options, serve_service

    @click.command(help=f"Serve {name or 'the service'} until SIGTERM or Ctrl-C.")
    @common_serve_options
    @friendly
    def command(**opts: Any) -> None:
        serve_service(name or "service", build, **opts)

    command()


class Connection:
    """A remote service: call its methods as attributes; close it when done."""

    def __init__(self, client: Any, service: Any) -> None:
        self._client = client
        self.service = service

    def __getattr__(self, item: str) -> Any:
        return getattr(self.service, item)

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def connect(
    service_cls: type,
    *,
    grpc: str | None = None,
    http: str | None = None,
    name: str | None = None,
    grpc_name: str | None = None,
    timeout: float | None = None,
    codecs: Mapping[str, Codec] | None = None,
) -> Connection:
    """A client for a service defined with `define(name, service_cls(...))`.

    Give exactly one of `grpc` or `http` (an address). Request id, deadline and
    trace context of the current request are sent on automatically.
    """
    if (grpc is None) == (http is None):
        raise ValueError("connect needs exactly one of grpc= or http=")
    methods = describe(_blank(service_cls))
    if grpc is not None:
        from lokit.transport.grpc.client import GrpcClient

        gname = grpc_name or default_grpc_name(name or service_cls.__name__.lower(), service_cls)
        gclient = GrpcClient(grpc, timeout=timeout)
        return Connection(
            gclient, proxy(service_cls, gclient.endpoints(grpc_routes(gname, methods, codecs)))
        )
    from lokit.transport.http.client import HttpClient

    assert http is not None
    hclient = HttpClient(http, timeout=timeout)
    return Connection(hclient, proxy(service_cls, hclient.endpoints(http_routes(methods, codecs))))


def _blank(service_cls: type) -> object:
    """An instance for reading method signatures only (constructor not run)."""
    return object.__new__(service_cls)
