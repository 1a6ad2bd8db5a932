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


def _template(path: str) -> list[str | None]:
    """Segments of a route path; None stands for a `{name}` segment (names kept apart)."""
    return [None if seg.startswith("{") and seg.endswith("}") else seg for seg in path.split("/")]


class Router:
    """Exact `(verb, path)` lookup first, then routes with `{name}` segments."""

    def __init__(self, routes: list[HttpRoute]) -> None:
        self.exact: dict[tuple[str, str], Target] = {}
        self._allow: dict[str, list[str]] = {}
        self._templates: list[tuple[list[str | None], list[str], str, Target]] = []
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
                segments = route.path.split("/")
                names: list[str] = []
                for seg in segments:
                    if "{" in seg or "}" in seg:
                        if not (seg.startswith("{") and seg.endswith("}") and len(seg) > 2):
                            raise ValueError(
                                f"HTTP route path {route.path!r}: a parameter must fill "
                                "a whole segment, like /items/{id}"
                            )
                        names.append(seg[1:-1])
                self._templates.append((_template(route.path), names, verb, target))
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
        for template, names, route_verb, target in self._templates:
            if len(template) != len(segments):
                continue
            values: list[str] = []
            for want, got in zip(template, segments, strict=True):
                if want is None:
                    if not got:
                        break
                    values.append(unquote(got))
                elif want != (unquote(got) if "%" in got else got):
                    break
            else:
                if route_verb == verb:
                    return target, dict(zip(names, values, strict=True)), allow
                allow.append(route_verb)
        return None, NO_PARAMS, allow
