"""stringsvc's business rules, its middlewares and its ServiceDef."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from lokit.errors import InvalidArgument
from lokit.examples.stringsvc.definition import stringsvc_definition
from lokit.examples.stringsvc.middleware import InstrumentingMiddleware, LoggingMiddleware
from lokit.examples.stringsvc.service import EmptyStringError, StringService

svc = StringService()


async def test_uppercase_and_count() -> None:
    assert await svc.uppercase("foo bar") == "FOO BAR"
    assert await svc.count("héllo") == 5
    assert await svc.count("") == 0


async def test_uppercase_of_empty_string() -> None:
    with pytest.raises(EmptyStringError) as e:
        await svc.uppercase("")
    assert e.value.message == "empty string"
    assert isinstance(e.value, InvalidArgument) and e.value.status == 400


async def test_logging_middleware() -> None:
    s = LoggingMiddleware(svc)
    with capture_logs() as logs:
        assert await s.uppercase("a") == "A"
        with pytest.raises(EmptyStringError):
            await s.uppercase("")
    assert [(e["method"], e["s"], e["v"], e["err"]) for e in logs] == [
        ("Uppercase", "a", "A", None),
        ("Uppercase", "", None, "empty string"),
    ]


async def test_count_result_histogram() -> None:
    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    count, total = sample("stringsvc_count_result_count"), sample("stringsvc_count_result_sum")
    assert await InstrumentingMiddleware(svc).count("abcd") == 4
    assert sample("stringsvc_count_result_count") == count + 1
    assert sample("stringsvc_count_result_sum") == total + 4


async def test_definition() -> None:
    d = stringsvc_definition()
    assert d.name == "stringsvc" and d.grpc_services == ["stringsvc.v1.StringService"]
    assert sorted(r.path for r in d.grpc) == [
        "/stringsvc.v1.StringService/Count",
        "/stringsvc.v1.StringService/Uppercase",
    ]
    assert sorted((r.verb, r.path) for r in d.http) == [("POST", "/count"), ("POST", "/uppercase")]
    up = next(r for r in d.http if r.path == "/uppercase")
    req = up.codec.decode_request(b'{"s":"foo"}')
    assert up.codec.encode_response(await up.method.endpoint(req)) == b'{"v":"FOO"}'
    stringsvc_definition()  # building twice in one process is fine (metrics created once)
