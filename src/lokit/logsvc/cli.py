"""The log's plugin: `lokit serve log` and the `lokit log produce | consume | info` commands."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

import click
from click.core import ParameterSource

from lokit.cli.errors import fail, friendly
from lokit.cli.options import common_serve_options, serve_service
from lokit.cli.plugins import ServicePlugin
from lokit.logsvc.defaults import ADDR_ENV, DEFAULT_DATA, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR

PRODUCE_BATCH_RECORDS = 1_000
PRODUCE_BATCH_BYTES = 1 << 20

# The common serve options whose click names differ from their config keys.
_RENAMED = {"grpc_addrs": "grpc", "http_addrs": "http", "debug_addr": "debug"}


def _serve_log_options(fn: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option(
                "--data",
                metavar="DIR",
                default=DEFAULT_DATA,
                show_default=True,
                help="Data directory.",
            ),
            click.option(
                "--fsync",
                metavar="always|interval:MS|never",
                default="always",
                show_default=True,
                help="When appends reach the disk: before each ack, every MS ms, or never.",
            ),
            click.option(
                "--segment-max-bytes", metavar="N", help="Roll segments at this size (64MiB)."
            ),
            click.option("--max-record-bytes", metavar="N", help="Refuse larger records (1MiB)."),
            click.option(
                "--retention-bytes", metavar="N", help="Delete the oldest segments above this."
            ),
            click.option(
                "--retention-age",
                metavar="DURATION",
                help="Delete segments older than this (e.g. 7d, 12h).",
            ),
            click.option(
                "--read-cache-bytes",
                metavar="N",
                help="Memory for the newest records of all topics together, served "
                "without reading the disk; the least recently used topics give theirs "
                "up first (64MiB; 0 turns it off).",
            ),
            click.option(
                "--max-topics",
                metavar="N",
                help="Refuse writes that would create more topics than this (429 / "
                "RESOURCE_EXHAUSTED); default: from the open-file limit at start.",
            ),
            click.option(
                "--config",
                "config_file",
                metavar="FILE",
                help="TOML or YAML file with the same keys; flags win.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _serve_log(config_file: str | None, **opts: Any) -> None:
    """Serve the commit log: proglog's log.v1 over gRPC, plus HTTP JSON.

    Without --grpc/--http it listens on unix:run/log.grpc.sock and unix:run/log.http.sock.
    """
    from lokit.logsvc.config import KEYS, ConfigError, merge

    ctx = click.get_current_context()
    given = {
        _RENAMED.get(name, name): value
        for name, value in opts.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }
    flags = {key: value for key, value in given.items() if key in KEYS}
    try:
        config = merge(flags, config_file)
    except ConfigError as e:
        fail(str(e))
    grpc, http = config.grpc, config.http
    if not grpc and not http:
        grpc, http = (DEFAULT_GRPC_ADDR,), (DEFAULT_HTTP_ADDR,)
    _serve(config, grpc, http)


def _serve(config: Any, grpc: tuple[str, ...], http: tuple[str, ...]) -> None:
    """Serve the log through the shared runtime; tailing streams end as shutdown begins."""
    from lokit.logsvc.definition import log_definition

    serve_service(
        "log",
        lambda: log_definition(config, rpc_addr=grpc[0] if grpc else ""),
        grpc,
        http,
        config.debug,
        config.log_format,
        config.log_level,
        config.grace,
        max_body_bytes=config.max_body_bytes,
        idle_timeout=config.idle_timeout,
        header_timeout=config.header_timeout,
        max_connections=config.max_connections,
        max_streams=config.max_streams,
    )


# --- the client commands -----------------------------------------------------------


def _addr_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--addr",
        default=DEFAULT_GRPC_ADDR,
        show_default=True,
        envvar=ADDR_ENV,
        metavar="ADDR",
        help="The log server's gRPC address (unix:PATH or HOST:PORT).",
    )(fn)


def _topic_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--topic", "-t", default="", metavar="T", help="Topic (default: the default log)."
    )(fn)


@click.group(name="log")
def log_group() -> None:
    """Produce to and consume from a lokit log server."""


def _run(addr: str, body: Callable[[Any], Awaitable[int]]) -> None:
    """Run `body(client)` on a fresh client; a server that is not there is one sentence."""
    import uvloop

    from lokit.errors import Unavailable
    from lokit.logsvc.client import LogClient
    from lokit.logsvc.errors import ServerStoppingError
    from lokit.transport.address import parse

    address = parse(addr)
    if address.path is not None and not os.path.exists(address.path):
        fail(f"no log server at {addr}: {address.path} does not exist (start one: lokit serve log)")

    async def main() -> int:
        client = LogClient(addr)
        try:
            return await body(client)
        except ServerStoppingError:
            fail(f"the log server at {addr} is shutting down")
        except Unavailable:
            fail(f"cannot reach the log server at {addr}; is `lokit serve log` running there?")
        finally:
            await client.close()

    sys.exit(uvloop.run(main()))


def _offsets(first: int, count: int) -> str:
    return f"offset {first}" if count == 1 else f"offsets {first}-{first + count - 1}"


@log_group.command(name="produce")
@_addr_option
@_topic_option
@click.argument("values", nargs=-1)
@friendly
def produce(addr: str, topic: str, values: tuple[str, ...]) -> None:
    """Append VALUEs (or, without any, one record per line of stdin) to a topic.

    Each VALUE's offset is printed, one per line. Lines from stdin go in batches
    (each all or nothing), with a progress bar when stderr is a terminal.
    """

    async def with_values(client: Any) -> int:
        # os.fsencode gives back argv's own bytes, also those that are not UTF-8
        appended = await client.produce_batch([os.fsencode(v) for v in values], topic)
        for i in range(appended.count):
            click.echo(appended.first_offset + i)
        return 0

    async def from_stdin(client: Any) -> int:
        from lokit.commitlog import DEFAULT_TOPIC

        produced, first = await _produce_lines(client, topic, sys.stdin.buffer)
        name = topic or DEFAULT_TOPIC
        if produced:
            click.echo(f"produced {produced:,} records to {name} ({_offsets(first, produced)})")
        else:
            click.echo(f"nothing to produce: stdin had no lines for {name}")
        return 0

    _run(addr, with_values if values else from_stdin)


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


async def _produce_lines(client: Any, topic: str, stream: IO[bytes]) -> tuple[int, int]:
    """Produce every line of `stream` in batches; (records produced, first offset)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from lokit.errors import Error

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
    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.fields[records]:,} records")]
    if total is not None:
        columns += [BarColumn(), DownloadColumn()]
    columns.append(TimeElapsedColumn())
    produced = 0
    first = -1
    with Progress(*columns, disable=not show, transient=False) as progress:
        task = progress.add_task("produce", total=total, records=0)
        while True:
            lines, size = await asyncio.to_thread(_read_batch, stream)
            if not lines:
                break
            try:
                appended = await client.produce_batch(lines, topic)
            except Error as e:
                done = f"{produced} records were produced before it" if produced else "nothing was"
                raise type(e)(f"{e.message} ({done})") from None
            if first < 0:
                first = appended.first_offset
            produced += appended.count
            progress.update(task, advance=size, records=produced)
    return produced, first


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
@friendly
def consume(
    addr: str, topic: str, from_offset: str | None, follow: bool, group: str | None
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

    _run(addr, body)


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
@friendly
def info(addr: str) -> None:
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

    _run(addr, body)


def _contract() -> Any:
    from lokit.logsvc.contract import log_contract

    return log_contract()


plugin = ServicePlugin(
    "log",
    click.command(name="log")(common_serve_options(_serve_log_options(friendly(_serve_log)))),
    _contract,
    commands=(log_group,),
)
