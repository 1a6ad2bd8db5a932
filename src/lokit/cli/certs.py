"""`lokit certs init | issue | show`: a CA and its certificates in a directory, no cfssl.

    lokit certs init                  # certs/ca.pem, certs/ca-key.pem (0600)
    lokit certs issue log --server    # certs/log.pem, log-key.pem; SANs localhost, 127.0.0.1, ::1
    lokit certs issue root            # a client certificate, CN=root
    lokit certs show certs/log.pem    # subject, SANs, issuer, validity

The work is `lokit.security.certs`'s; this module only parses flags, prints, and
turns a `CertError` into one sentence and exit 1. `cryptography` and rich load
when a command runs, not when `lokit` starts.
"""

from __future__ import annotations

import click

from lokit.cli.errors import friendly

__all__ = ["certs"]

DEFAULT_DIR = "certs"


def _dir_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--dir",
        "directory",
        default=DEFAULT_DIR,
        show_default=True,
        metavar="DIR",
        help="Where the CA and the certificates are.",
    )(fn)


@click.group(name="certs")
def certs() -> None:
    """Make a CA and issue TLS certificates for lokit servers and clients."""


@certs.command(name="init")
@_dir_option
@click.option(
    "--force", is_flag=True, help="Replace an existing CA (its certificates stop verifying)."
)
@click.option(
    "--days", type=click.IntRange(min=1), default=3650, show_default=True, help="Validity."
)
@friendly
def init(directory: str, force: bool, days: int) -> None:
    """Make a CA (EC P-256): DIR/ca.pem and DIR/ca-key.pem (mode 0600)."""
    from lokit.security.certs import init_ca

    made = init_ca(directory, force=force, days=days)
    click.echo(f"made a CA: {made.cert} (key {made.key}, mode 0600)")


@certs.command(name="issue")
@click.argument("name")
@_dir_option
@click.option("--server", is_flag=True, help="A server certificate (SANs from --host).")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="H",
    help="A host name or IP address the server is reached at (repeatable; "
    "default: localhost, 127.0.0.1, ::1).",
)
@click.option(
    "--days", type=click.IntRange(min=1), default=365, show_default=True, help="Validity."
)
@click.option("--force", is_flag=True, help="Replace an existing NAME.pem.")
@friendly
def issue_cmd(
    name: str, directory: str, server: bool, hosts: tuple[str, ...], days: int, force: bool
) -> None:
    """Issue DIR/NAME.pem and DIR/NAME-key.pem (0600), signed by the CA in DIR.

    A client certificate (the default) carries NAME as its CN: the identity an
    ACL sees. A server certificate carries the --host names as SANs.
    """
    from lokit.security.certs import DEFAULT_HOSTS, issue

    if hosts and not server:
        from lokit.cli.errors import fail

        fail("--host is for server certificates: give --server too")
    made = issue(directory, name, server=server, hosts=hosts, days=days, force=force)
    kind = "server" if server else "client"
    extra = f", hosts {', '.join(hosts or DEFAULT_HOSTS)}" if server else f", CN {name}"
    click.echo(f"issued a {kind} certificate: {made.cert} (key {made.key}{extra})")


@certs.command(name="show")
@click.argument("file", metavar="FILE")
@friendly
def show(file: str) -> None:
    """Print a certificate's subject, SANs, issuer, validity and usages."""
    import datetime as dt

    from rich.console import Console
    from rich.table import Table

    from lokit.security.certs import inspect

    info = inspect(file)
    now = dt.datetime.now(dt.UTC)
    if info.expired(now):
        state = "[red]expired[/red]"
    elif info.not_yet_valid(now):
        state = "[yellow]not yet valid[/yellow]"
    else:
        state = f"valid, {(info.not_after - now).days} days left"
    table = Table(title=str(info.path), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("subject", info.subject),
        ("SANs", ", ".join(info.sans) or "-"),
        ("issuer", info.issuer),
        ("not before", info.not_before.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("not after", info.not_after.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("status", state),
        ("CA", "yes" if info.is_ca else "no"),
        ("usages", ", ".join(info.usages) or "-"),
        ("serial", f"{info.serial:x}"),
    ]
    for field, value in rows:
        table.add_row(field, value)
    Console().print(table)
