"""The `lokit` command line: serve services, call them, run the local stack.

Services add their own `serve` commands (and any others) through plugins
(`lokit.cli.plugins`); `call` reaches any of them by its contract, and any other
service by `MODULE:OBJECT`.

Starting must stay fast (`lokit --help`, `lokit call`, `lokit log ...`): this
module imports click and the plugins only; each command imports what it needs
when it runs. A usage mistake (an unknown flag, a missing argument) is one
sentence on stderr and exit 1, like every other CLI error.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import click

from lokit.cli.client_options import lb_option
from lokit.cli.errors import fail, friendly
from lokit.cli.plugins import load
from lokit.cli.tls_options import tls_options

PLUGINS = load()

# A word that is a negative number is an argument (`lokit call addsvc sum -1 2`).
_NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _usage_sentence(e: click.UsageError) -> str:
    """Click's usage error as one sentence, pointing at the command's --help."""
    if isinstance(e, click.NoSuchOption):
        message = f"no such option: {e.option_name}"
        if e.possibilities:
            message += f" (did you mean {' or '.join(sorted(e.possibilities))}?)"
    else:
        message = e.format_message().strip().rstrip(".")
        if len(message) > 1 and message[1].islower():
            message = message[0].lower() + message[1:]
    path = e.ctx.command_path if e.ctx is not None else "lokit"
    return f"{message}; see `{path} --help`"


class Lokit(click.Group):
    """The `lokit` group: usage mistakes are one sentence and exit 1, not click's usage text."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        from lokit.cli.grpc_env import client_defaults

        client_defaults()
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as e:
            fail(_usage_sentence(e))
        except click.ClickException as e:
            fail(e.format_message())
        except click.Abort:
            sys.exit(130)
        except BrokenPipeError:  # `lokit --help | head -1`: exit quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class CallCommand(click.Command):
    """`lokit call`: an unknown flag is refused; a negative number is an argument.

    Click would take `-1` for an option, so the command ignores unknown options
    and this checks every flag-like word before `--` against the known ones.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                for opt in (*param.opts, *param.secondary_opts):
                    takes_value[opt] = not (param.is_flag or param.count)
        words = iter(args)
        for word in words:
            if word == "--":
                break
            if not word.startswith("-") or word == "-" or _NEGATIVE_NUMBER.fullmatch(word):
                continue
            name, eq, _ = word.partition("=")
            if name not in takes_value:
                import difflib

                close = difflib.get_close_matches(name, [o for o in takes_value if o[1] == "-"])
                raise click.NoSuchOption(name, possibilities=close, ctx=ctx)
            if takes_value[name] and not eq:
                next(words, None)  # the option's value, whatever it looks like
        return super().parse_args(ctx, args)


def _services() -> str:
    return ", ".join(sorted(PLUGINS))


@click.group(cls=Lokit, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lokit")
def cli() -> None:
    """lokit: local-first microservices, the Go kit way."""


@cli.group()
def serve() -> None:
    """Serve a lokit service until SIGTERM or Ctrl-C."""


@cli.command(cls=CallCommand, context_settings={"ignore_unknown_options": True})
@click.argument("service", metavar="SERVICE|MODULE:OBJECT")
@click.argument("method")
@click.argument("args", nargs=-1)
@click.option("--grpc", "grpc_addr", metavar="ADDR", help="Call over gRPC at ADDR.")
@click.option("--http", "http_addr", metavar="ADDR", help="Call over HTTP at ADDR.")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds.")
@tls_options
@lb_option
@friendly
def call(
    service: str,
    method: str,
    args: tuple[str, ...],
    grpc_addr: str | None,
    http_addr: str | None,
    timeout: float,
    lb: str,
    tls: Any = None,
) -> None:
    """Call METHOD of a service with ARGS (positional, or name=value) and print the JSON result.

    SERVICE is a registered service (see `lokit serve --help`), or MODULE:OBJECT
    for any other: a lokit.Contract, a class or Protocol, or a function returning
    a Contract, imported with the current directory on the path. A streaming
    method prints one JSON line per item. Without --grpc or --http the call goes
    to the service's own sockets under run/, over HTTP when it serves it, as
    lokit services call each other. Examples:

    \b
    lokit call addsvc sum 1 2
    lokit call addsvc sum 1 2 --grpc unix:run/addsvc.grpc.sock
    lokit call lokit.examples.greeter:Greeter greet ada --http unix:run/greeter.http.sock
    lokit call stringsvc uppercase hi --grpc dir:run/stringsvc.d
    """
    from lokit.cli.call import call_method, contract_from_import

    if ":" in service:
        spec = contract_from_import(service)
    elif service in PLUGINS:
        spec = PLUGINS[service].contract()
    else:
        fail(
            f"no service {service!r} is registered (there are {_services()}); "
            "give one of those, or MODULE:OBJECT such as lokit.examples.greeter:Greeter"
        )
    call_method(spec, method, args, grpc_addr, http_addr, timeout, lb, tls=tls)


@cli.command(name="proto")
@click.argument("service", metavar="SERVICE|MODULE:OBJECT")
@click.option("--out", metavar="FILE", help="Write the .proto to FILE instead of stdout.")
@click.option(
    "--check",
    "committed",
    metavar="FILE",
    help="Refuse (exit 1) a change that would break callers built from FILE, a committed .proto.",
)
@friendly
def proto(service: str, out: str | None, committed: str | None) -> None:
    """Print a service's .proto (package, service, messages, comments from the docstrings).

    SERVICE is a registered service or MODULE:OBJECT, as for `lokit call`. With
    --check FILE, compare today's schema with FILE and list, one per line, every
    field renumbered, retyped or removed (and removed methods): `buf breaking`
    does it when buf is on PATH, else lokit's own check. Examples:

    \b
    lokit proto lokit.examples.greeter:Greeter --out greeter.proto
    lokit proto stringsvc --check proto/stringsvc.proto
    """
    from lokit.cli import proto as proto_cli

    spec = _contract(service)
    if committed is not None:
        if out is not None:
            fail("give --out or --check, not both")
        proto_cli.check(spec, committed)
    else:
        proto_cli.write(spec, out)


def _contract(service: str) -> Any:
    """The contract a registered service's name or MODULE:OBJECT names."""
    from lokit.cli.call import contract_from_import
    from lokit.protobuf import SchemaError

    if ":" in service:
        try:
            return contract_from_import(service)
        except SchemaError as e:  # a class whose type hints have no protobuf form
            fail(f"{service}: {e}")
    if service in PLUGINS:
        return PLUGINS[service].contract()
    fail(
        f"no service {service!r} is registered (there are {_services()}); "
        "give one of those, or MODULE:OBJECT such as lokit.examples.greeter:Greeter"
    )


@cli.command(name="run")
@click.option(
    "--log-format", type=click.Choice(["logfmt", "json"]), default="logfmt", show_default=True
)
@friendly
def run_stack(log_format: str) -> None:
    """Run the local stack on Unix sockets under ./run/ until Ctrl-C.

    The log, two stringsvc instances in run/stringsvc.d/ and addsvc, which finds
    them there (--stringsvc dir:run/stringsvc.d).
    """
    import asyncio

    from lokit.cli.stack import run_stack as run_local_stack

    sys.exit(asyncio.run(run_local_stack(log_format)))


def _certs_group() -> click.Group:
    from lokit.cli.certs import certs

    return certs


cli.add_command(_certs_group())

for _plugin in PLUGINS.values():
    serve.add_command(_plugin.serve, name=_plugin.name)
    for _command in _plugin.commands:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="lokit")
