"""A service's wire contract: what it looks like to a client, derived once from its interface.

A `Contract` holds the service name, the gRPC service name, every method (its
kind, request and response types, declared ACL action and idempotency) and
the gRPC and HTTP routes with their codecs. Servers (`lokit.define`), clients
(`lokit.connect`, typed service clients), `lokit call` and the benchmarks all
read the same object, so paths, codecs and names are written in one place.

    greeter = lokit.contract("greeter", Greeter)        # gRPC /greeter.v1.Greeter/Greet
    lokit.define(greeter, Greeter())                     # serve it
    lokit.connect(greeter, grpc="unix:run/greeter.grpc.sock")   # call it
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from lokit.derive import methods_of
from lokit.endpoint import Method
from lokit.routes import Codecs, GrpcRoute, HttpRoute, grpc_routes, http_routes

if TYPE_CHECKING:
    from google.protobuf.descriptor import FileDescriptor

    from lokit.protobuf import Schema

__all__ = [
    "Contract",
    "GrpcCodec",
    "Interface",
    "as_contract",
    "contract",
    "grpc_service_name",
]

GrpcCodec = Literal["protobuf", "json"]
"""A derived gRPC side's codec: protobuf from the type hints (default) or lokit's JSON-in-gRPC."""

T = TypeVar("T")

HttpRoutes = Callable[[Mapping[str, Method]], list[HttpRoute]]
"""Builds a service's own HTTP routes from its methods (by RPC name)."""


Interface = Callable[..., T]
"""A class or `Protocol` (typed so that a Protocol class is accepted where its type is bound)."""


def grpc_service_name(name: str, interface: Any) -> str:
    """The default gRPC service name: `<name>.v1.<Interface>`."""
    return f"{name}.v1.{interface.__name__}"


@dataclass(frozen=True)
class Contract(Generic[T]):
    """What a service looks like on the wire; `T` is its interface."""

    name: str
    grpc_service: str
    methods: Mapping[str, Method]  # by RPC name; without endpoints
    grpc: tuple[GrpcRoute, ...]
    http: tuple[HttpRoute, ...]
    interface: Any = None  # the class or Protocol it was derived from
    schema: Schema | None = None  # the derived protobuf schema (None: explicit or JSON codecs)
    grpc_file: FileDescriptor | None = None  # an explicit-codec service's generated file

    @property
    def grpc_files(self) -> tuple[FileDescriptor, ...]:
        """The FileDescriptors describing this contract's gRPC service (for reflection)."""
        if self.schema is not None:
            return (self.schema.file,)
        return (self.grpc_file,) if self.grpc_file is not None else ()

    def method(self, name: str) -> Method | None:
        """The method called `name` in any spelling: `get_servers`, `get-servers`, `GetServers`."""
        key = name.replace("-", "").replace("_", "").lower()
        for m in self.methods.values():
            if m.name.lower() == key:
                return m
        return None

    def grpc_route(self, name: str) -> GrpcRoute:
        """The gRPC route of the method with RPC name `name`."""
        for route in self.grpc:
            if route.method.name == name:
                return route
        raise KeyError(f"{self.name} has no gRPC method {name!r}")

    def http_route(self, name: str) -> HttpRoute | None:
        """The first HTTP route of the method with RPC name `name`, if it has one."""
        return next((r for r in self.http if r.method.name == name), None)


def contract(
    name: str,
    interface: Interface[T],
    *,
    grpc_service: str | None = None,
    grpc_codecs: Codecs | None = None,
    http_codecs: Codecs | None = None,
    http: HttpRoutes | None = None,
    actions: Mapping[str, str] | None = None,
    objects: Mapping[str, Callable[[Any], str]] | None = None,
    idempotent: Iterable[str] | bool = (),
    codec: GrpcCodec = "protobuf",
    grpc_file: FileDescriptor | None = None,
) -> Contract[T]:
    """The contract of `interface` (a class or Protocol: its public async methods).

    - `grpc_service`: default `<name>.v1.<Interface>`;
    - `grpc_codecs` / `http_codecs`: per transport, by RPC method name or a
      factory taking each `Method` (default: protobuf derived from the type
      hints on gRPC, derived JSON on HTTP; a mapping's other methods get JSON);
    - `codec`: the derived gRPC codec, `"protobuf"` (default) or `"json"`
      (lokit's JSON-in-gRPC, for callers from before protobuf);
    - `grpc_file`: the generated FileDescriptor of an explicit-codec gRPC
      service (`addsvc_pb2.DESCRIPTOR`), published by reflection;
    - `http`: the service's own HTTP routes instead of `POST /<method-name>`;
    - `actions`: RPC name -> the action an ACL checks (default the Python name);
    - `objects`: RPC name -> how the object an ACL checks is read from a request
      (an item of a request stream); default `*`, the whole service;
    - `idempotent`: RPC names a retry may run twice (True: every method).

    A name in `actions`, `objects`, `idempotent` or a codec mapping that is no
    method is refused at once, naming the methods there are.
    """
    if not isinstance(interface, type):
        raise TypeError(f"a contract is derived from a class or Protocol, not {interface!r}")
    methods = methods_of(interface)
    known = {m.name for m in methods}
    actions = dict(actions or {})
    objects = dict(objects or {})
    again = known if idempotent is True else set(idempotent or ())
    named: list[tuple[str, Iterable[str]]] = [
        ("actions", actions),
        ("objects", objects),
        ("idempotent", again),
    ]
    for what, codecs in (("grpc_codecs", grpc_codecs), ("http_codecs", http_codecs)):
        if isinstance(codecs, Mapping):
            named.append((what, codecs))
    for what, names in named:
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(
                f"{what} names {', '.join(unknown)}, which {interface.__name__} does not have "
                f"(its methods: {', '.join(sorted(known))})"
            )
    methods = [
        dataclasses.replace(
            m,
            action=actions.get(m.name, m.action),
            idempotent=m.name in again,
            acl_object=objects.get(m.name),
        )
        for m in methods
    ]
    by_name = {m.name: m for m in methods}
    service = grpc_service or grpc_service_name(name, interface)
    if codec not in ("protobuf", "json"):
        raise ValueError(f'codec is "protobuf" or "json", not {codec!r}')
    schema = None
    if grpc_codecs is None and codec == "protobuf":
        from lokit.protobuf.codec import ProtoCodec
        from lokit.protobuf.schema import Schema

        schema = Schema(name, service, methods, interface)
        derived = schema

        def proto_codec(method: Method) -> ProtoCodec:
            return ProtoCodec(method, derived)

        grpc_codecs = proto_codec
    return Contract(
        name=name,
        grpc_service=service,
        methods=by_name,
        grpc=tuple(grpc_routes(service, methods, grpc_codecs)),
        http=tuple(http(by_name) if http is not None else http_routes(methods, http_codecs)),
        interface=interface,
        schema=schema,
        grpc_file=grpc_file,
    )


def as_contract(target: Contract[T] | Interface[T], name: str | None = None) -> Contract[T]:
    """`target` itself, or the default contract of an interface (`name`: its lowercased name)."""
    if isinstance(target, Contract):
        return target
    return contract(name or getattr(target, "__name__", "service").lower(), target)
