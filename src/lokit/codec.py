"""Codecs: bytes on the wire <-> the request and response values endpoints see.

`JsonCodec` is derived from a `Method`'s types (msgspec validates as it decodes,
so a wrong field type is a clear 400/INVALID_ARGUMENT, not a crash). Explicit
codecs — someone else's `.proto`, business errors carried inside a reply as Go
kit's addsvc does — implement the same `Codec` protocol.

`JsonCodec(method, fold_case=True)` also accepts request keys that match a
field name only case-insensitively, as Go's `encoding/json` does: a Go client
whose request struct has no JSON tags (go-kit's `SumRequest{A, B int}`) sends
`{"A":1,"B":2}`. A key names the field it matches exactly, else the one it
matches case-insensitively; of several keys naming one field the last wins
(Go's rule); only the request's own fields fold, not nested records. A body
that holds every field by its exact name decodes on the fast path, as is;
others are re-keyed and decoded again. Derived services keep exact names
(the default).
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from lokit.endpoint import Method
from lokit.errors import Error, InvalidArgument, Unknown


class Codec(Protocol):
    """How one method's messages are turned into bytes and back."""

    def decode_request(self, data: bytes) -> Any: ...
    def encode_request(self, request: Any) -> bytes: ...
    def decode_response(self, data: bytes) -> Any: ...
    def encode_response(self, response: Any) -> bytes: ...
    def encode_error(self, error: Error) -> bytes | None:
        """Bytes of an OK reply that carries `error`, or None to send a status."""
        ...


class _Reply(msgspec.Struct, omit_defaults=True):
    v: Any = None


# What msgspec (and orjson) raise besides DecodeError for bytes that are not JSON:
# invalid UTF-8 is a UnicodeDecodeError, nesting past the C decoder's depth limit
# a RecursionError. Both are the client's fault, so INVALID_ARGUMENT, never INTERNAL.
UNDECODABLE: tuple[type[Exception], ...] = (
    msgspec.ValidationError,
    msgspec.DecodeError,
    UnicodeError,
    RecursionError,
)


def malformed(exc: Exception) -> InvalidArgument:
    """A clear INVALID_ARGUMENT for a request that did not decode."""
    if isinstance(exc, UnicodeError):
        return InvalidArgument("malformed JSON: the request is not valid UTF-8")
    if isinstance(exc, RecursionError):
        return InvalidArgument("malformed JSON: the request is nested too deeply")
    text = str(exc)
    if text.startswith("JSON is malformed") or text.startswith("Input data was truncated"):
        return InvalidArgument(f"malformed JSON: {text}")
    return InvalidArgument(f"invalid request: {text}")


class JsonCodec:
    """JSON derived from a method's request and response types."""

    def __init__(self, method: Method, *, fold_case: bool = False) -> None:
        self._fold = _folded_fields(method.request_type) if fold_case else None
        self._wrap = method.wrap_response
        self._req_decoder = msgspec.json.Decoder(method.request_type)
        rt = method.response_type
        if self._wrap:
            reply = msgspec.defstruct("Reply", [("v", rt, None)], omit_defaults=False)
            self._resp_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(reply)
        else:
            self._resp_decoder = msgspec.json.Decoder(rt)
        self._encoder = msgspec.json.Encoder()
        self._empty = method.request_type is not Any and _accepts_empty(method.request_type)

    def decode_request(self, data: bytes) -> Any:
        if not data and self._empty:
            data = b"{}"
        try:
            if self._fold is None:
                return self._req_decoder.decode(data)
            return self._decode_folded(data, self._fold)
        except UNDECODABLE as e:
            raise malformed(e) from None

    def _decode_folded(self, data: bytes, fold: _Fold) -> Any:
        """Exact names on the fast path (if no defaulted field can hide a key), else re-keyed."""
        if fold.all_required:
            try:
                return self._req_decoder.decode(data)
            except msgspec.ValidationError:
                pass
        raw = msgspec.json.decode(data)
        if not isinstance(raw, dict):
            return self._req_decoder.decode(data)
        keyed: dict[str, Any] = {}
        for key, value in raw.items():
            name = str(key)  # JSON object keys are strings
            if name not in fold.exact:
                name = fold.lower.get(name.lower(), name)
            keyed[name] = value
        return self._req_decoder.decode(self._encoder.encode(keyed))

    def encode_request(self, request: Any) -> bytes:
        return self._encoder.encode(request)

    def encode_response(self, response: Any) -> bytes:
        if self._wrap:
            return self._encoder.encode(_Reply(response))
        return self._encoder.encode(response)

    def decode_response(self, data: bytes) -> Any:
        try:
            value = self._resp_decoder.decode(data)
        except UNDECODABLE as e:
            raise Unknown(f"undecodable response: {e}") from None
        return value.v if self._wrap else value

    def encode_error(self, error: Error) -> bytes | None:
        return None


class _Fold(msgspec.Struct, frozen=True):
    exact: frozenset[str]  # the fields' wire names
    lower: dict[str, str]  # lowercased wire name -> wire name
    all_required: bool


def _folded_fields(tp: Any) -> _Fold | None:
    """How keys fold onto the fields of record type `tp`; None when it has no named fields."""
    try:
        info = msgspec.inspect.type_info(tp)
    except TypeError:
        return None
    fields = getattr(info, "fields", None)
    if not isinstance(fields, tuple):
        return None
    names = [f.encode_name for f in fields]
    return _Fold(
        exact=frozenset(names),
        lower={n.lower(): n for n in reversed(names)},
        all_required=all(f.required for f in fields),
    )


def _accepts_empty(tp: Any) -> bool:
    try:
        msgspec.json.decode(b"{}", type=tp)
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError):
        return False
    return True
