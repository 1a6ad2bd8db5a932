"""Structured logs: one event per line, logfmt by default, JSON on request, to stderr.

Every line starts with `ts` (RFC 3339, UTC, microseconds), `level` and `event`,
then `logger` (the name given to `get_logger`), `request_id` when logged while a
request is being served (from `lokit.context`), then the event's fields in the
order they were given. General logging goes
through structlog with a one-processor chain (our renderer); the per-request line
has a precompiled fast path (`RequestLine`) because it is written on every call.

Format and stream live in module state that both paths read on each write, so
`configure_logging` can be called again (tests do). structlog's rule still holds
for the *level* of loggers already used once: call `configure_logging` first
thing in `main`, before anything logs.
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO, cast

import orjson
import structlog
from structlog.typing import FilteringBoundLogger

from lokit.context import Caller
from lokit.context import current as current_request

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40

LEVELS: dict[str, int] = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
FORMATS = ("logfmt", "json")

_LEVEL_NAME = {DEBUG: "debug", INFO: "info", WARNING: "warning", ERROR: "error"}
# structlog method names -> the level name written on the line.
_METHOD_LEVEL = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
    "msg": "info",
}


class _State:
    """What every write reads: the threshold, the format and where lines go."""

    __slots__ = ("json", "threshold", "write")

    def __init__(self) -> None:
        self.threshold = INFO
        self.json = False
        self.write: Callable[[str], object] = _write_stderr


def _write_stderr(line: str) -> object:
    # Looked up per call until configured, so pytest's capture and redirections work.
    return sys.stderr.write(line)


_state = _State()


def configure_logging(
    format: str = "logfmt", level: str = "info", stream: TextIO | None = None
) -> None:
    """Set the log format ("logfmt" or "json"), the minimum level and the stream (stderr)."""
    fmt = format.strip().lower() if isinstance(format, str) else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {format!r}: use logfmt or json.")
    lvl = level.strip().lower() if isinstance(level, str) else level
    if lvl == "warn":
        lvl = "warning"
    if lvl not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error.")
    threshold = LEVELS[lvl]
    _state.threshold = threshold
    _state.json = fmt == "json"
    _state.write = _write_stderr if stream is None else stream.write
    structlog.configure(
        processors=[_render],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_SinkFactory(),
        context_class=dict,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger whose lines carry `logger=name` after `event`."""
    return cast(FilteringBoundLogger, structlog.get_logger(name))


def enabled(level: int) -> bool:
    """Whether a line at `level` (DEBUG..ERROR) would be written."""
    return level >= _state.threshold


def debug_enabled() -> bool:
    return _state.threshold <= DEBUG


# --- timestamps -----------------------------------------------------------------

_ts_cache: tuple[int, str] = (-1, "")


def _now() -> tuple[str, float]:
    """Now as the RFC 3339 text up to the seconds' point (cached) and the microseconds."""
    global _ts_cache
    t = time.time()
    sec = int(t)
    cached_sec, head = _ts_cache
    if sec != cached_sec:
        head = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        _ts_cache = (sec, head)  # one assignment: threads never see a torn pair
    return head, (t - sec) * 1_000_000


def timestamp() -> str:
    """Now as RFC 3339 UTC with microseconds."""
    return _TS % _now()


# %-formatting: half the time of f-strings' format specs; %d truncates, as int() would.
_TS = "%s%06dZ"


# --- logfmt ---------------------------------------------------------------------

_NEEDS_QUOTE = re.compile(r'[\s"=\\]|[^\x21-\x7e]')
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def logfmt_value(value: object) -> str:
    """One logfmt value: bare when safe, else double-quoted with escapes."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return str(value)
    s = value if isinstance(value, str) else str(value)
    if not s:
        return '""'
    if _NEEDS_QUOTE.search(s) is None:
        return s
    return '"' + s.translate(_ESCAPES) + '"'


def _logfmt(head: str, fields: MutableMapping[str, Any]) -> str:
    if not fields:
        return head + "\n"
    return head + "".join([f" {k}={logfmt_value(v)}" for k, v in fields.items()]) + "\n"


def _json_default(value: object) -> str:
    return str(value)


# --- structlog plumbing -----------------------------------------------------------


def _render(logger: object, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
    """The only processor: order ts, level, event first; render logfmt or JSON."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        event_dict["exception"] = _format_exc(exc_info)
    event = event_dict.pop("event", "")
    level = _METHOD_LEVEL.get(method_name, method_name)
    name = logger.name if isinstance(logger, _Sink) else ""
    req = current_request()
    rid = req.request_id if req is not None and "request_id" not in event_dict else None
    ts = timestamp()
    if _state.json:
        out = {"ts": ts, "level": level, "event": event}
        if name:
            out["logger"] = name
        if rid is not None:
            out["request_id"] = rid
        out.update(event_dict)
        return orjson.dumps(out, default=_json_default).decode() + "\n"
    head = f"ts={ts} level={level} event={logfmt_value(event)}"
    if name:
        head += " logger=" + logfmt_value(name)
    if rid is not None:
        head += " request_id=" + logfmt_value(rid)
    return _logfmt(head, event_dict)


def _format_exc(exc_info: object) -> str:
    if isinstance(exc_info, BaseException):
        return "".join(traceback.format_exception(exc_info)).rstrip()
    if exc_info is True:
        info = sys.exc_info()
        if info[1] is None:
            return ""
        return "".join(traceback.format_exception(info[1])).rstrip()
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[1] is not None:
        return "".join(traceback.format_exception(exc_info[1])).rstrip()
    return str(exc_info)


class _Sink:
    """structlog's output 'logger' for one name: hands rendered lines to the current stream."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _write(self, line: str) -> None:
        _state.write(line)

    debug = info = warning = warn = error = critical = fatal = exception = msg = _write


class _SinkFactory:
    """One sink per logger name (the name given to `get_logger`)."""

    def __init__(self) -> None:
        self._sinks: dict[str, _Sink] = {}

    def __call__(self, *args: Any) -> _Sink:
        name = str(args[0]) if args else ""
        sink = self._sinks.get(name)
        if sink is None:
            sink = self._sinks[name] = _Sink(name)
        return sink


# --- the request line -------------------------------------------------------------


_CALLER_FIELDS: dict[Caller, str] = {}


def _caller_fields(caller: Caller) -> str:
    """` caller=NAME caller_source=SOURCE`, formatted once per caller (a bounded cache)."""
    fields = _CALLER_FIELDS.get(caller)
    if fields is None:
        if len(_CALLER_FIELDS) >= 4096:
            _CALLER_FIELDS.clear()
        fields = _CALLER_FIELDS[caller] = (
            f" caller={logfmt_value(caller.name)} caller_source={logfmt_value(caller.source)}"
        )
    return fields


_LINE = "ts=" + _TS + " level=%s%s%s took=%.6f code=%s"
_LINE_END = _LINE + "\n"


class RequestLine:
    """The precompiled per-request log line for one (service, method, transport).

    Fields, in order: service, method, transport, request_id, the authenticated
    caller (`caller`, `caller_source`) and the `x-caller-id` hint (`caller_hint`)
    when there are, took (seconds), code (canonical name), err (only when there
    is one), then any extras.
    """

    __slots__ = ("_fields", "_head")

    def __init__(self, service: str, method: str, transport: str) -> None:
        self._head = (
            f" event=request service={logfmt_value(service)} method={logfmt_value(method)}"
            f" transport={logfmt_value(transport)} request_id="
        )
        self._fields = {
            "event": "request",
            "service": service,
            "method": method,
            "transport": transport,
        }

    def write(
        self,
        level: int,
        request_id: str,
        took: float,
        code: str,
        err: str | None = None,
        extra: dict[str, Any] | None = None,
        caller: Caller | None = None,
        hint: str | None = None,
    ) -> None:
        """Write the line if `level` passes the threshold."""
        st = _state
        if level < st.threshold:
            return
        if st.json:
            out: dict[str, Any] = {"ts": timestamp(), "level": _LEVEL_NAME[level]}
            out.update(self._fields)
            out["request_id"] = request_id
            if caller is not None:
                out["caller"] = caller.name
                out["caller_source"] = caller.source
            if hint is not None:
                out["caller_hint"] = hint
            out["took"] = round(took, 6)
            out["code"] = code
            if err is not None:
                out["err"] = err
            if extra:
                out.update(extra)
            st.write(orjson.dumps(out, default=_json_default).decode() + "\n")
            return
        rid = request_id
        # lokit's own ids (hex) and most callers' are alphanumeric ASCII: bare, no regex.
        if not (rid.isalnum() and rid.isascii()) and (
            not rid or _NEEDS_QUOTE.search(rid) is not None
        ):
            rid = logfmt_value(rid)
        if caller is not None:
            rid += _caller_fields(caller)
        if hint is not None:
            rid += " caller_hint=" + logfmt_value(hint)
        head, micros = _now()
        if err is None and not extra:  # one format for the whole line
            st.write(_LINE_END % (head, micros, _LEVEL_NAME[level], self._head, rid, took, code))
            return
        line = _LINE % (head, micros, _LEVEL_NAME[level], self._head, rid, took, code)
        if err is not None:
            line += " err=" + logfmt_value(err)
        if extra:
            line += "".join(f" {k}={logfmt_value(v)}" for k, v in extra.items())
        st.write(line + "\n")


if not structlog.is_configured():
    # Sensible lines (logfmt, info, stderr) even before `configure_logging` runs,
    # instead of structlog's development console renderer on stdout.
    configure_logging()
