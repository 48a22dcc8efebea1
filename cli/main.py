"""The operator CLI: `samskab --help`."""

from __future__ import annotations

import typer

from cli import ambassadors, events, newsletter, operations

app = typer.Typer(
    help="samskab: run the ambassador network (talks to the running stack over NATS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(ambassadors.app, name="ambassadors")
app.add_typer(newsletter.app, name="newsletter")
app.add_typer(events.app, name="events")
app.add_typer(operations.dead_letters, name="dead-letters")
app.command("goals")(operations.goals)
app.command("health")(operations.health)
app.command("audit")(operations.audit)

if __name__ == "__main__":
    app()
