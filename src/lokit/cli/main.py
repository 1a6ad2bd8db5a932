"""The `lokit` command line."""

import click


@click.group()
def cli() -> None:
    """lokit: local-first microservices."""


def main() -> None:
    cli()
