"""The operator CLI: `samskab --help`."""

from __future__ import annotations

import re
import sys

import typer
from typer.exceptions import TyperException

from cli import ambassadors, events, jobs, networks, newsletter, operations, privacy, social
from cli.output import emit_json
from contracts.errors import Error, ErrorCode
from services.runtime.settings import SamskabSettings
from services.runtime.tracing import command_span

# A usage error (an unknown option, a missing argument) exits as click's do.
EXIT_USAGE = 2

app = typer.Typer(
    help="samskab: run the ambassador network (talks to the running stack over NATS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(ambassadors.app, name="ambassadors")
app.add_typer(newsletter.app, name="newsletter")
app.add_typer(events.app, name="events")
app.add_typer(networks.app, name="networks")
app.add_typer(social.app, name="social")
app.add_typer(jobs.app, name="jobs")
app.add_typer(operations.dead_letters, name="dead-letters")
app.add_typer(privacy.app, name="privacy")
app.command("goals")(operations.goals)
app.command("health")(operations.health)
app.command("audit")(operations.audit)


def command_name(argv: list[str]) -> str:
    """``samskab privacy export``: the command's words, never its arguments (an address,
    an id) nor options."""
    words = []
    for arg in argv[:2]:
        if not re.fullmatch(r"[a-z][a-z-]*", arg):
            break
        words.append(arg)
    return " ".join(["samskab", *words])


def main() -> None:
    """``samskab``: the app, with usage errors under ``--json`` as the structured error
    every other failure gives, so a script reading the JSON never meets a usage text.
    With traces on, the command is a span the services' spans continue."""
    settings = SamskabSettings()
    with command_span(
        "cli", settings.otel_exporter, settings.otel_endpoint, command_name(sys.argv[1:])
    ):
        _run()


def _run() -> None:
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        # Typer's (vendored click's) usage and parameter errors.
        if "--json" in sys.argv[1:]:
            error = Error(code=ErrorCode.VALIDATION_FAILED, message=exc.format_message())
            emit_json({"ok": False, "error": error.model_dump(mode="json")})
            sys.exit(EXIT_USAGE)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
