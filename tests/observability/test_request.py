"""The request line and the RED metrics written by RequestObserver."""

from __future__ import annotations

import asyncio
import io
import itertools

import orjson
import pytest
from prometheus_client import REGISTRY

from lokit import errors
from lokit.context import RequestContext
from lokit.observability import metrics
from lokit.observability.logs import configure_logging
from lokit.observability.request import RequestObserver

from ._logfmt import lines

_ids = itertools.count()


def _service() -> str:
    """A service name no other test uses, so metric values start at zero."""
    return f"obs_test_{next(_ids)}"


def _ctx(
    service: str, method: str = "Sum", transport: str = "grpc", rid: str = "r1"
) -> RequestContext:
    return RequestContext(request_id=rid, service=service, method=method, transport=transport)


def _count(service: str, code: str, method: str = "Sum", transport: str = "grpc") -> float:
    labels = {"service": service, "method": method, "transport": transport, "code": code}
    return REGISTRY.get_sample_value("lokit_requests_total", labels) or 0.0


def _in_flight(service: str, method: str = "Sum") -> float | None:
    return REGISTRY.get_sample_value(
        "lokit_requests_in_flight", {"service": service, "method": method}
    )


def _hist(service: str, suffix: str, method: str = "Sum", le: str | None = None) -> float | None:
    labels = {"service": service, "method": method, "transport": "grpc"}
    if le is not None:
        labels["le"] = le
    return REGISTRY.get_sample_value(f"lokit_request_duration_seconds{suffix}", labels)


def test_ok_line_has_every_field(out: io.StringIO) -> None:
    configure_logging(stream=out)
    svc = _service()
    RequestObserver(svc).start(_ctx(svc, rid="abc123")).finish(None)
    [line] = lines(out.getvalue())
    assert list(line) == [
        "ts",
        "level",
        "event",
        "service",
        "method",
        "transport",
        "request_id",
        "took",
        "code",
    ]
    assert line["level"] == "info" and line["event"] == "request"
    assert (line["service"], line["method"], line["transport"]) == (svc, "Sum", "grpc")
    assert line["request_id"] == "abc123"
    assert line["code"] == "OK"
    assert float(line["took"]) >= 0 and len(line["took"].split(".")[1]) == 6


def test_lokit_error_is_an_info_line_with_err(out: io.StringIO) -> None:
    configure_logging(stream=out)
    svc = _service()
    RequestObserver(svc).start(_ctx(svc)).finish(errors.InvalidArgument("a must be positive"))
    [line] = lines(out.getvalue())
    assert line["level"] == "info"
    assert line["code"] == "INVALID_ARGUMENT"
    assert line["err"] == "a must be positive"
    assert list(line)[-2:] == ["code", "err"]


def test_unexpected_error_carries_its_traceback_under_the_request_id(out: io.StringIO) -> None:
    """The caller learns only `internal error (request id ...)`; the log keeps the rest."""
    configure_logging(stream=out)
    svc = _service()
    call = RequestObserver(svc).start(_ctx(svc))
    try:
        raise RuntimeError("deep failure")
    except RuntimeError as e:
        call.finish(e)
    text = out.getvalue()
    assert text.count("\n") == 1  # still one line
    [line] = lines(text)
    assert line["level"] == "error" and line["err"] == "RuntimeError: deep failure"
    assert line["traceback"].startswith("Traceback") and "deep failure" in line["traceback"]
    assert line["request_id"] == "r1"


@pytest.mark.parametrize(
    ("error", "code", "err"),
    [
        (asyncio.CancelledError(), "CANCELLED", "cancelled"),
        (
            errors.Cancelled("the client cancelled the call"),
            "CANCELLED",
            "the client cancelled the call",
        ),
        (TimeoutError(), "DEADLINE_EXCEEDED", "deadline exceeded"),
        (errors.DeadlineExceeded("too slow"), "DEADLINE_EXCEEDED", "too slow"),
    ],
)
def test_normal_failures_are_info(
    out: io.StringIO, error: BaseException, code: str, err: str
) -> None:
    configure_logging(stream=out)
    svc = _service()
    RequestObserver(svc).start(_ctx(svc)).finish(error)
    [line] = lines(out.getvalue())
    assert (line["level"], line["code"], line["err"]) == ("info", code, err)
    assert _count(svc, code) == 1


def test_json_request_line(out: io.StringIO) -> None:
    configure_logging("json", stream=out)
    svc = _service()
    obs = RequestObserver(svc)
    obs.start(_ctx(svc, transport="http", rid="j1")).finish(None)
    obs.start(_ctx(svc, transport="http", rid="j2")).finish(errors.NotFound("no such key"))
    ok, failed = (orjson.loads(x) for x in out.getvalue().splitlines())
    assert list(ok) == [
        "ts",
        "level",
        "event",
        "service",
        "method",
        "transport",
        "request_id",
        "took",
        "code",
    ]
    assert (ok["event"], ok["transport"], ok["request_id"], ok["code"]) == (
        "request",
        "http",
        "j1",
        "OK",
    )
    assert isinstance(ok["took"], float)
    assert (failed["code"], failed["err"], failed["request_id"]) == (
        "NOT_FOUND",
        "no such key",
        "j2",
    )


def test_odd_request_ids_are_quoted(out: io.StringIO) -> None:
    configure_logging(stream=out)
    svc = _service()
    obs = RequestObserver(svc)
    obs.start(_ctx(svc, rid='evil id="x"')).finish(None)
    obs.start(_ctx(svc, rid="")).finish(None)
    first, second = lines(out.getvalue())
    assert first["request_id"] == 'evil id="x"'
    assert second["request_id"] == ""


def test_warning_level_keeps_only_unexpected_errors(out: io.StringIO) -> None:
    configure_logging(level="warning", stream=out)
    svc = _service()
    obs = RequestObserver(svc)
    obs.start(_ctx(svc)).finish(None)
    obs.start(_ctx(svc)).finish(errors.NotFound("gone"))
    obs.start(_ctx(svc)).finish(KeyError("k"))
    [line] = lines(out.getvalue())
    assert (line["level"], line["err"]) == ("error", "KeyError: 'k'")
    assert _count(svc, "OK") == 1  # metrics do not depend on the log level


def test_metrics_move_with_labels(out: io.StringIO) -> None:
    configure_logging(stream=out)
    svc = _service()
    obs = RequestObserver(svc)
    for _ in range(3):
        obs.start(_ctx(svc)).finish(None)
    obs.start(_ctx(svc)).finish(errors.InvalidArgument("bad"))
    obs.start(_ctx(svc)).finish(ZeroDivisionError("x"))
    obs.start(_ctx(svc, method="Concat", transport="http")).finish(None)

    assert _count(svc, "OK") == 3
    assert _count(svc, "INVALID_ARGUMENT") == 1
    assert _count(svc, "INTERNAL") == 1
    assert _count(svc, "OK", method="Concat", transport="http") == 1
    assert _count(svc, "OK", transport="http") == 0
    assert _hist(svc, "_count") == 5
    assert _hist(svc, "_bucket", le="+Inf") == 5
    assert (_hist(svc, "_sum") or 0.0) > 0
    assert _in_flight(svc) == 0
    assert _in_flight(svc, "Concat") == 0


def test_duration_buckets_span_100us_to_10s() -> None:
    assert metrics.DURATION_BUCKETS[0] == 0.0001
    assert metrics.DURATION_BUCKETS[-1] == 10.0
    assert list(metrics.DURATION_BUCKETS) == sorted(metrics.DURATION_BUCKETS)


def test_in_flight_counts_open_calls_and_returns_to_zero(out: io.StringIO) -> None:
    configure_logging(stream=out)
    svc = _service()
    obs = RequestObserver(svc)
    a = obs.start(_ctx(svc))
    b = obs.start(_ctx(svc))
    c = obs.start(_ctx(svc, transport="http"))  # the gauge is per (service, method)
    assert _in_flight(svc) == 3
    a.finish(errors.Unavailable("down"))
    b.finish(RuntimeError("bug"))
    assert _in_flight(svc) == 1
    c.finish(asyncio.CancelledError())
    assert _in_flight(svc) == 0


def test_finish_twice_counts_once(out: io.StringIO) -> None:
    configure_logging(stream=out)
    svc = _service()
    call = RequestObserver(svc).start(_ctx(svc))
    call.finish(None)
    call.finish(RuntimeError("late"))
    assert _in_flight(svc) == 0
    assert _count(svc, "OK") == 1 and _count(svc, "INTERNAL") == 0
    assert len(lines(out.getvalue())) == 1
