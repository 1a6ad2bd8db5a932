"""Log lines: logfmt and JSON shapes, levels, configuration errors."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from lokit.context import RequestContext, scope
from lokit.observability import logs
from lokit.observability.logs import configure_logging, get_logger

from ._logfmt import lines

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _recent(ts: str) -> bool:
    assert RFC3339_UTC.match(ts), ts
    when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return abs(datetime.now(UTC) - when) < timedelta(minutes=5)


def test_logfmt_shape(out: io.StringIO) -> None:
    configure_logging("logfmt", "info", stream=out)
    get_logger("app.shape").info(
        "user joined", user="ann", note="two words", n=3, ratio=0.5, ok=True, q='say "hi"'
    )
    [line] = lines(out.getvalue())
    assert list(line) == ["ts", "level", "event", "logger", "user", "note", "n", "ratio", "ok", "q"]
    assert _recent(line["ts"])
    assert line["level"] == "info"
    assert line["event"] == "user joined"
    assert line["logger"] == "app.shape"
    assert (line["user"], line["note"], line["n"], line["ratio"]) == (
        "ann",
        "two words",
        "3",
        "0.5",
    )
    assert (line["ok"], line["q"]) == ("true", 'say "hi"')


def test_logfmt_keeps_one_event_per_line(out: io.StringIO) -> None:
    configure_logging(stream=out)
    log = get_logger("app.multiline")
    log.warning("odd values", text="a\nb\tc", empty="", none=None)
    try:
        raise KeyError("missing")
    except KeyError:
        log.exception("it failed")
    text = out.getvalue()
    assert text.count("\n") == 2
    first, second = lines(text)
    assert (first["text"], first["empty"], first["none"]) == ("a\nb\tc", "", "null")
    assert first["level"] == "warning"
    assert second["level"] == "error"
    assert "Traceback" in second["exception"] and "KeyError: 'missing'" in second["exception"]


def test_json_shape(out: io.StringIO) -> None:
    configure_logging("json", "info", stream=out)
    get_logger("app.json").info("user joined", user="ann", n=3, when=datetime(2026, 1, 2))
    [raw] = out.getvalue().splitlines()
    line = orjson.loads(raw)
    assert list(line) == ["ts", "level", "event", "logger", "user", "n", "when"]
    assert _recent(line["ts"])
    assert (line["level"], line["event"], line["user"], line["n"]) == (
        "info",
        "user joined",
        "ann",
        3,
    )
    assert line["when"].startswith("2026-01-02")


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_level_filtering(out: io.StringIO, fmt: str) -> None:
    configure_logging(fmt, "warning", stream=out)
    log = get_logger(f"app.levels.{fmt}")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    text = out.getvalue()
    events = (
        [orjson.loads(x)["event"] for x in text.splitlines()]
        if fmt == "json"
        else [x["event"] for x in lines(text)]
    )
    assert events == ["w", "e"]


def test_debug_level_lets_everything_through(out: io.StringIO) -> None:
    configure_logging("logfmt", "DEBUG", stream=out)
    log = get_logger("app.debug")
    log.debug("d")
    log.info("i")
    assert [(x["level"], x["event"]) for x in lines(out.getvalue())] == [
        ("debug", "d"),
        ("info", "i"),
    ]
    assert logs.enabled(logs.DEBUG)


def test_reconfiguring_moves_format_and_stream(out: io.StringIO) -> None:
    """A logger already used follows a later configure_logging's format and stream."""
    first = io.StringIO()
    configure_logging("logfmt", stream=first)
    log = get_logger("app.moved")
    log.info("one")
    configure_logging("json", stream=out)
    log.info("two")
    assert lines(first.getvalue())[0]["event"] == "one"
    assert orjson.loads(out.getvalue())["event"] == "two"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"format": "xml"}, "unknown log format 'xml'"),
        ({"level": "verbose"}, "unknown log level 'verbose'"),
        ({"level": ""}, "unknown log level ''"),
    ],
)
def test_invalid_configuration_is_one_sentence(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as e:
        configure_logging(**kwargs)
    message = str(e.value)
    assert message.startswith(words)
    assert "\n" not in message and message.endswith(".")


def test_timestamp_is_rfc3339_utc() -> None:
    assert _recent(logs.timestamp())


def test_logfmt_value_quoting() -> None:
    assert logs.logfmt_value("plain-value_1.2") == "plain-value_1.2"
    assert logs.logfmt_value("a=b") == '"a=b"'
    assert logs.logfmt_value("back\\slash") == '"back\\\\slash"'
    assert logs.logfmt_value("é") == '"é"'
    assert logs.logfmt_value(False) == "false"


def test_lines_logged_while_serving_carry_the_request_id(out: io.StringIO) -> None:
    configure_logging(stream=out)
    log = get_logger("app.correlated")
    with scope(RequestContext(request_id="req-7", service="s", method="M", transport="grpc")):
        log.info("inside", n=1)
        log.info("explicit", request_id="mine")
    log.info("outside")
    inside, explicit, outside = lines(out.getvalue())
    assert list(inside) == ["ts", "level", "event", "logger", "request_id", "n"]
    assert inside["request_id"] == "req-7"
    assert explicit["request_id"] == "mine"
    assert "request_id" not in outside
