"""The ``herald`` command: one module per sub-command, gathered here."""

from __future__ import annotations

import click

from herald import db, dev, send, serve, sweep, validate, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """herald: event-driven workflows on Celery."""


for command in (
    validate.command,
    db.command,
    serve.command,
    worker.command,
    sweep.command,
    send.command,
    dev.command,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``herald`` script."""
    cli(prog_name="herald")
