"""`python -m lokit` runs the CLI."""

from lokit.cli.main import main

main()
