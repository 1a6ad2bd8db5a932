"""Routing for a service's HTTP side: `(verb, path)` to a prepared `Target`.

Built once per app from the service's `HttpRoute`s. Paths without parameters
are one dict lookup (`Router.exact`, read by the app directly); paths with
`{name}` segments are matched after that, segment by segment, and give their
values as path params. A miss reports the verbs allowed at the path, for 405.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import msgspec
import orjson

from lokit import errors
from lokit.codec import JsonCodec
from lokit.routes import HttpInput, HttpRoute

__all__ = ["NO_PARAMS", "Router", "Target"]

NO_PARAMS: Mapping[str, str] = types.MappingProxyType({})


class Target:
    """One route, prepared for serving."""

    __slots__ = (
        "codec",
        "decode",
        "endpoint",
        "name",
        "status",
        "streams",
        "streams_in",
        "streams_out",
    )

    def __init__(self, route: HttpRoute) -> None:
        self.name = route.method.name
        self.endpoint = route.method.endpoint
        self.codec = route.codec
        self.decode = route.decode
        if self.decode is None and "{" in route.path and not route.method.kind.streams_requests:
            self.decode = _path_params_decoder(route)
        self.status = route.status
        self.streams_in = route.method.kind.streams_requests
        self.streams_out = route.method.kind.streams_responses
        self.streams = self.streams_in or self.streams_out


def _path_params_decoder(route: HttpRoute) -> Callable[[HttpInput], Any] | None:
    """For a derived JSON route with `{name}` segments: body fields plus path params.

    Path values are strings; msgspec's lax conversion turns `"5"` into an int
    field's 5. Routes with their own codec must give `decode` to see path params.
    """
    if not isinstance(route.codec, JsonCodec):
        return None
    request_type = route.method.request_type

    def decode(inp: HttpInput) -> Any:
        fields = orjson.loads(inp.body) if inp.body.strip() else {}
        if not isinstance(fields, dict):
            raise errors.InvalidArgument("invalid request: the body must be a JSON object")
        fields.update(inp.path_params)
        return msgspec.convert(fields, request_type, strict=False)

    return decode


class _Template:
    """A route path with `{name}` segments, split once: the literal segments to compare
    and the positions and names of the parameters (ValueError for a malformed one)."""

    __slots__ = ("literals", "names", "params", "size", "target", "verb")

    def __init__(self, path: str, verb: str, target: Target) -> None:
        segments = path.split("/")
        for seg in segments:
            if ("{" in seg or "}" in seg) and not (
                seg.startswith("{") and seg.endswith("}") and len(seg) > 2
            ):
                raise ValueError(
                    f"HTTP route path {path!r}: a parameter must fill a whole segment, "
                    "like /items/{id}"
                )
        self.size = len(segments)
        self.literals = [(i, seg) for i, seg in enumerate(segments) if not seg.startswith("{")]
        self.params = [i for i, seg in enumerate(segments) if seg.startswith("{")]
        self.names = [segments[i][1:-1] for i in self.params]
        self.verb = verb
        self.target = target

    def values(self, segments: list[str]) -> list[str] | None:
        """The parameters' values (percent-decoded) if `segments` fit, else None."""
        for i, want in self.literals:
            got = segments[i]
            if got != want and ("%" not in got or unquote(got) != want):
                return None
        values = [segments[i] for i in self.params]
        if not all(values):
            return None  # an empty segment is no value
        return [unquote(v) if "%" in v else v for v in values]


class Router:
    """Exact `(verb, path)` lookup first, then routes with `{name}` segments."""

    def __init__(self, routes: list[HttpRoute]) -> None:
        self.exact: dict[tuple[str, str], Target] = {}
        self._allow: dict[str, list[str]] = {}
        self._templates: list[_Template] = []
        seen: set[tuple[str, str]] = set()
        for route in routes:
            verb = route.verb.upper()
            if not route.path.startswith("/"):
                raise ValueError(f"HTTP route path {route.path!r} must start with '/'")
            key = (verb, route.path)
            if key in seen:
                raise ValueError(f"two HTTP routes for {verb} {route.path}")
            seen.add(key)
            target = Target(route)
            if "{" in route.path:
                self._templates.append(_Template(route.path, verb, target))
            else:
                self.exact[key] = target
                self._allow.setdefault(route.path, []).append(verb)

    @property
    def templated(self) -> bool:
        """Some route has `{name}` segments."""
        return bool(self._templates)

    def match(
        self, verb: str, path: str, raw_path: bytes | None
    ) -> tuple[Target | None, Mapping[str, str], list[str]]:
        """(target, path params, verbs allowed at this path) for a request without an exact hit."""
        allow = list(self._allow.get(path, ()))
        if not self._templates:
            return None, NO_PARAMS, allow
        segments = raw_path.decode("latin-1").split("/") if raw_path else path.split("/")
        size = len(segments)
        for template in self._templates:
            if template.size != size:
                continue
            values = template.values(segments)
            if values is None:
                continue
            if template.verb == verb:
                return template.target, dict(zip(template.names, values, strict=True)), allow
            allow.append(template.verb)
        return None, NO_PARAMS, allow
