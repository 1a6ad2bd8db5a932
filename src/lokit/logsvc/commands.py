"""`lokit log produce | consume | info`: the log's client commands, over `LogClient` (gRPC).

They load no storage engine and no server: the defaults come from `defaults`,
the client and rich load when a command runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import IO, Any

import click

from lokit.cli.client_options import BALANCERS
from lokit.cli.errors import fail, friendly
from lokit.cli.tls_options import tls_options
from lokit.logsvc.defaults import ADDR_ENV, DEFAULT_GRPC_ADDR, DEFAULT_TOPIC

__all__ = ["PRODUCE_BATCH_BYTES", "PRODUCE_BATCH_RECORDS", "log_group"]

PRODUCE_BATCH_RECORDS = 1_000
PRODUCE_BATCH_BYTES = 1 << 20


_LB_KEY = "lokit.log.lb"


def _remember_lb(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.meta[_LB_KEY] = value
    return value


def _addr_option(fn: Callable[..., None]) -> Callable[..., None]:
    """`--addr` and, for an address naming many servers, `--lb` (read by `_run`)."""
    fn = click.option(
        "--lb",
        type=click.Choice(BALANCERS),
        default="p2c",
        show_default=True,
        expose_value=False,
        callback=_remember_lb,
        help="How calls spread over the servers of a discovery address.",
    )(fn)
    return click.option(
        "--addr",
        default=DEFAULT_GRPC_ADDR,
        show_default=True,
        envvar=ADDR_ENV,
        metavar="ADDR",
        help="The log server's gRPC address: unix:PATH or HOST:PORT, or every server of "
        "ADDR,ADDR, dir:PATH, srv:NAME or serf:SERVICE.",
    )(fn)


def _topic_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--topic", "-t", default="", metavar="T", help="Topic (default: the default log)."
    )(fn)


@click.group(name="log")
def log_group() -> None:
    """Produce to and consume from a lokit log server."""


def _run(addr: str, body: Callable[[Any], Awaitable[int]], tls: Any = None) -> None:
    """Run `body(client)` on a fresh client; a server that is not there is one sentence."""
    import asyncio

    from lokit.errors import Unavailable
    from lokit.logsvc.client import LogClient
    from lokit.sd import instancer_for
    from lokit.transport.address import parse

    if instancer_for(addr, "grpc") is None:  # one server (a malformed address fails here)
        address = parse(addr)
        if address.path is not None and not os.path.exists(address.path):
            fail(
                f"no log server at {addr}: {address.path} does not exist "
                "(start one: lokit serve log)"
            )
    lb = click.get_current_context().meta.get(_LB_KEY, "p2c")

    async def main() -> int:
        client = LogClient(addr, tls=tls, lb=lb)
        try:
            return await body(client)
        except Unavailable as e:
            fail(await _unavailable(addr, e))
        finally:
            await client.close()

    sys.exit(asyncio.run(main()))


async def _unavailable(addr: str, e: Exception) -> str:
    """The sentence for an UNAVAILABLE call: stopping, the HTTP socket, nobody there, or the
    server's own reason."""
    from lokit.cli.errors import listener_kind
    from lokit.logsvc.errors import ServerStoppingError

    if isinstance(e, ServerStoppingError):
        return f"the log server at {addr} is shutting down"
    if str(e).startswith("TLS handshake with "):
        return str(e)
    kind = await listener_kind(addr)
    if kind == "http":
        return (
            f"{addr} is an HTTP listener; lokit log talks gRPC: give --addr the log's gRPC "
            f"address ({DEFAULT_GRPC_ADDR} by default)"
        )
    if kind == "grpc" and "is unavailable: " not in str(e):
        return str(e)  # the server's own sentence (a storage that cannot write, ...)
    from lokit.cli.tls_options import plaintext_to_tls, speaks_tls

    if await speaks_tls(addr):
        return plaintext_to_tls(addr)
    return f"cannot reach the log server at {addr}; is `lokit serve log` running there?"


def _offsets(first: int, count: int) -> str:
    return f"offset {first}" if count == 1 else f"offsets {first}-{first + count - 1}"


def _records(n: int) -> str:
    return f"{n:,} record" + ("" if n == 1 else "s")


def _lines(n: int) -> str:
    return f"{n:,} line" + ("" if n == 1 else "s")


@log_group.command(name="produce")
@_addr_option
@_topic_option
@click.argument("values", nargs=-1)
@tls_options
@friendly
def produce(addr: str, topic: str, values: tuple[str, ...], tls: Any = None) -> None:
    """Append VALUEs (or, without any, one record per line of stdin) to a topic.

    One VALUE is one record, sent on a ProduceStream (proglog's, acknowledged);
    several go in one batch: all of them, or none. Each VALUE's offset is printed,
    one per line. Lines from stdin go in batches, with a progress bar when stderr
    is a terminal; a line over the server's maximum record size is skipped with a
    warning naming its line number, the others are produced, and the command then
    exits 1 saying how many lines were refused.
    """

    async def with_values(client: Any) -> int:
        # os.fsencode gives back argv's own bytes, also those that are not UTF-8
        if len(values) == 1:
            click.echo(await client.produce(os.fsencode(values[0]), topic))
            return 0
        appended = await client.produce_batch([os.fsencode(v) for v in values], topic)
        for i in range(appended.count):
            click.echo(appended.first_offset + i)
        return 0

    async def from_stdin(client: Any) -> int:
        from lokit.errors import Unavailable

        name = topic or DEFAULT_TOPIC
        try:
            done = await _produce_lines(client, topic, sys.stdin.buffer)
        except _ProduceStopped as stop:
            e = stop.error
            reason = await _unavailable(addr, e) if isinstance(e, Unavailable) else str(e)
            fail(f"{reason}; {stop.done.before_it(name)}")
        if done.count:
            click.echo(f"produced {_records(done.count)} to {name} ({done.offsets()})")
        elif not done.refused:
            click.echo(f"nothing to produce: stdin had no lines for {name}")
        if done.refused:
            n = len(done.refused)
            listed = ", ".join(str(i) for i in done.refused[:5]) + (", ..." if n > 5 else "")
            fail(
                f"{n:,} of {_lines(done.lines)} {'was' if n == 1 else 'were'} refused as over "
                f"the server's maximum record size ({'line' if n == 1 else 'lines'} {listed}); "
                + (
                    f"the other {_records(done.count)} {'was' if done.count == 1 else 'were'}"
                    if done.count
                    else "nothing was"
                )
                + f" produced to {name}"
            )
        return 0

    _run(addr, with_values if values else from_stdin, tls)


class _Produced:
    """What `_produce_lines` did: records produced (from `first`), lines read and refused."""

    def __init__(self) -> None:
        self.count = 0
        self.first = -1
        self.lines = 0
        self.refused: list[int] = []  # line numbers, from 1

    def offsets(self) -> str:
        return _offsets(self.first, self.count)

    def before_it(self, topic: str) -> str:
        """What was produced before a failure, as a clause."""
        if not self.count:
            return f"nothing was produced to {topic}"
        return f"{_records(self.count)} were produced to {topic} before it ({self.offsets()})"


class _ProduceStopped(Exception):
    """A batch failed for a reason that skipping lines cannot help; what was done before it."""

    def __init__(self, error: Exception, done: _Produced) -> None:
        super().__init__(str(error))
        self.error = error
        self.done = done


def _read_batch(stream: IO[bytes]) -> tuple[list[bytes], int]:
    """Up to a batch of lines (without their newline) and the bytes read; [] at EOF."""
    lines: list[bytes] = []
    size = 0
    while len(lines) < PRODUCE_BATCH_RECORDS and size < PRODUCE_BATCH_BYTES:
        line = stream.readline()
        if not line:
            break
        size += len(line)
        lines.append(line[:-1] if line.endswith(b"\n") else line)
    return lines, size


def _too_large(e: Exception) -> bool:
    """A refusal of a record's size: the log's own, or gRPC's message limit."""
    from lokit.errors import ResourceExhausted
    from lokit.logsvc.errors import RecordTooLargeError

    if isinstance(e, RecordTooLargeError):
        return True
    return type(e) is ResourceExhausted and "message larger than max" in str(e)


async def _produce_batch(
    client: Any, topic: str, lines: list[bytes], first_line: int, done: _Produced
) -> None:
    """Produce `lines` (numbered from `first_line`); a batch refused for a record's size is
    split until the refused lines stand alone, each skipped with a warning."""
    from lokit.errors import Error

    try:
        appended = await client.produce_batch(lines, topic)
    except Error as e:
        if not _too_large(e):
            raise _ProduceStopped(e, done) from None
        if len(lines) == 1:
            done.refused.append(first_line)
            limit = re.search(r"limit of (\d+) bytes", str(e))
            over = f" of {int(limit[1]):,} bytes" if limit else ""
            click.echo(
                f"warning: line {first_line:,} not produced: its {len(lines[0]):,} bytes are "
                f"over the server's maximum record size{over}",
                err=True,
            )
            return
        half = len(lines) // 2
        await _produce_batch(client, topic, lines[:half], first_line, done)
        await _produce_batch(client, topic, lines[half:], first_line + half, done)
        return
    if done.first < 0:
        done.first = appended.first_offset
    done.count += appended.count


async def _produce_lines(client: Any, topic: str, stream: IO[bytes]) -> _Produced:
    """Produce every line of `stream` in batches, in order; what was produced and refused.

    Raises `_ProduceStopped` for a failure other than a record's size.
    """
    import asyncio

    total: int | None = None
    try:
        st = os.fstat(stream.fileno())
        if stat.S_ISREG(st.st_mode):
            total = st.st_size - stream.tell()
    except (OSError, ValueError):
        pass
    show = sys.stderr.isatty()
    if show and stream.isatty():
        click.echo("reading records from stdin, one per line (Ctrl-D to end)", err=True)
    done = _Produced()
    with _progress(total, show) as advance:
        while True:
            lines, size = await asyncio.to_thread(_read_batch, stream)
            if not lines:
                break
            await _produce_batch(client, topic, lines, done.lines + 1, done)
            done.lines += len(lines)
            advance(size, done.count)
    return done


@contextlib.contextmanager
def _progress(total: int | None, show: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr when `show` (only then is rich loaded).

    Yields `advance(bytes_read, records_produced)`.
    """
    if not show:
        yield lambda size, records: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.fields[records]:,} records")]
    if total is not None:
        columns += [BarColumn(), DownloadColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("produce", total=total, records=0)
        yield lambda size, records: progress.update(task, advance=size, records=records)


@log_group.command(name="consume")
@_addr_option
@_topic_option
@click.option(
    "--from",
    "from_offset",
    metavar="OFFSET",
    help="First offset (default: the group's position, else the start).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new records.")
@click.option("--group", metavar="NAME", help="Resume from and commit this consumer's position.")
@tls_options
@friendly
def consume(
    addr: str,
    topic: str,
    from_offset: str | None,
    follow: bool,
    group: str | None,
    tls: Any = None,
) -> None:
    """Print records, one value per line, from an offset to the end (or on, with --follow)."""
    first: int | None = None
    if from_offset is not None:
        if not (from_offset.isascii() and from_offset.isdigit()):
            fail(f"--from must be an offset (an integer >= 0), not {from_offset!r}")
        first = int(from_offset)

    async def body(client: Any) -> int:
        start = first
        if start is None:
            start = 0
            if group:
                position = await client.fetch_position(group, topic)
                start = position.offset
        out = sys.stdout.buffer
        stream: AsyncIterator[Any] = client.consume_batches(start, topic, stop_at_end=not follow)
        try:
            async for batch in stream:
                if not batch.values:
                    continue
                try:
                    out.write(b"\n".join(batch.values) + b"\n")
                    out.flush()
                except BrokenPipeError:
                    _quiet_stdout()
                    return 0
                if group:
                    await client.commit_position(
                        group, batch.first_offset + len(batch.values), topic
                    )
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        return 0

    _run(addr, body, tls)


def _quiet_stdout() -> None:
    """After a closed pipe (`| head`), point stdout at /dev/null so exit stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


@log_group.command(name="info")
@_addr_option
@tls_options
@friendly
def info(addr: str, tls: Any = None) -> None:
    """Show topics (offset ranges, records, sizes) and consumer positions."""

    async def body(client: Any) -> int:
        from rich.console import Console
        from rich.table import Table

        data = await client.list_topics()
        console = Console()
        if not data.topics:
            console.print("no topics yet")
        else:
            table = Table(title=f"log server at {addr}")
            for col, justify in (
                ("topic", "left"),
                ("offsets", "right"),
                ("records", "right"),
                ("next offset", "right"),
                ("size", "right"),
            ):
                table.add_column(col, justify=justify)  # type: ignore[arg-type]
            for t in data.topics:
                records = t.next_offset - t.lowest_offset
                offsets = f"{t.lowest_offset}-{t.next_offset - 1}" if records else "empty"
                table.add_row(
                    t.name, offsets, f"{records:,}", str(t.next_offset), _size(t.size_bytes)
                )
            console.print(table)
        if data.positions:
            ends = {t.name: t.next_offset for t in data.topics}
            table = Table(title="consumer positions")
            for col in ("consumer", "topic", "next offset", "lag"):
                table.add_column(col, justify="left" if col in ("consumer", "topic") else "right")
            for p in data.positions:
                lag = max(0, ends.get(p.topic, p.offset) - p.offset)
                table.add_row(p.consumer, p.topic, str(p.offset), f"{lag:,}")
            console.print(table)
        return 0

    _run(addr, body, tls)
