"""A raw ServerReflection client (v1 or v1alpha: the same messages) for the tests."""

from __future__ import annotations

import grpc
from grpc_reflection.v1alpha import reflection_pb2 as pb

Request = pb.ServerReflectionRequest
Response = pb.ServerReflectionResponse


def ask(target: str, request: Request, version: str = "v1") -> Response:
    """One request on a ServerReflectionInfo stream of `version` at `target`; its one reply."""
    with grpc.insecure_channel(target) as channel:
        call = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=Request.SerializeToString,
            response_deserializer=Response.FromString,
        )
        replies = list(call(iter([request]), timeout=10))
    assert len(replies) == 1
    return replies[0]


def services(target: str, version: str = "v1") -> set[str]:
    """The service names the server at `target` lists."""
    reply = ask(target, Request(list_services=""), version)
    return {s.name for s in reply.list_services_response.service}
