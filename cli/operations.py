"""`samskab goals`, `samskab health` and `samskab dead-letters ...`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli import calls
from cli.output import emit_json, fields, reporting, show, table
from contracts.ambassadors import Subjects
from contracts.errors import ErrorCode, ServiceError
from contracts.operations import (
    SERVICES,
    ListDeadLetters,
    ReplayDeadLetter,
    ShowDeadLetter,
    dead_letters_list_subject,
    dead_letters_replay_subject,
    dead_letters_show_subject,
    health_subject,
)
from services.runtime.client import ServiceClient

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ServiceOpt = Annotated[
    str | None, typer.Option("--service", help="Only this service (default: every running one).")
]

dead_letters = typer.Typer(help="Events a service could not apply: list, show, replay.")


def goals(as_json: JsonOpt = False) -> None:
    """The strategy's goals: active ambassadors and citizen share, month by month."""
    with reporting(as_json):
        result = calls.request(Subjects.GOALS, {})

    def human(g: dict[str, Any]) -> None:
        fields(
            [
                ("active ambassadors", f"{g['active']} of {g['target']} ({g['progress']:.0%})"),
                (
                    "citizens",
                    f"{g['citizens']} = {g['citizen_share']:.0%} "
                    f"(target {g['citizen_share_target']:.0%})",
                ),
                ("pending", g["pending"]),
                ("withdrawn", g["withdrawn"]),
                ("erased", g["erased"]),
            ]
        )
        typer.echo("")
        table([(k, v) for k, v in g["by_kind"].items() if v], ["KIND", "ACTIVE"])
        typer.echo("")
        table([(k, v) for k, v in g["by_theme"].items() if v], ["THEME", "ACTIVE"])
        typer.echo("")
        table(
            [
                (m["month"], m["active"], m["citizens"], m["activated"], m["left"])
                for m in g["months"]
            ],
            ["MONTH", "ACTIVE", "CITIZENS", "JOINED", "LEFT"],
        )

    show(result, as_json, human)


def _services(only: str | None) -> list[str]:
    if only is not None and only not in SERVICES:
        raise ServiceError(
            ErrorCode.VALIDATION_FAILED, f"unknown service {only!r}; one of {', '.join(SERVICES)}"
        )
    return [only] if only else list(SERVICES)


async def _ask_each(
    client: ServiceClient, services: list[str], subject_of: Any, payload: Any
) -> tuple[dict[str, Any], list[str]]:
    answers: dict[str, Any] = {}
    missing: list[str] = []
    for name in services:
        try:
            answers[name] = await client.request(subject_of(name), payload, timeout=3)
        except ServiceError as exc:
            if exc.code != ErrorCode.SERVICE_UNAVAILABLE:
                raise
            missing.append(name)
    return answers, missing


def health(as_json: JsonOpt = False) -> None:
    """Which services are running and healthy."""
    with reporting(as_json):
        answers, missing = calls.run(lambda c: _ask_each(c, list(SERVICES), health_subject, {}))
    result = {"running": answers, "not_running": missing}

    def human(r: dict[str, Any]) -> None:
        rows = [
            (n, a["status"], a.get("outbox_pending"), a.get("uptime_seconds"))
            for n, a in r["running"].items()
        ]
        rows += [(n, "not running", "", "") for n in r["not_running"]]
        table(rows, ["SERVICE", "STATUS", "OUTBOX", "UPTIME S"])

    show(result, as_json, human)


@dead_letters.command("list")
def list_dead_letters(
    service: ServiceOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed ones.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Dead letters of every running service, newest first."""
    with reporting(as_json):
        query = ListDeadLetters(include_replayed=all_)
        answers, missing = calls.run(
            lambda c: _ask_each(c, _services(service), dead_letters_list_subject, query)
        )
    items = [item for answer in answers.values() for item in answer["items"]]
    for item in items:
        item.setdefault("service", item.get("consumer"))
    result = {"items": items, "not_running": missing}

    def human(r: dict[str, Any]) -> None:
        table(
            [
                (i["id"], i["service"], i["subject"], i["dead_at"], (i["reason"] or "")[:60])
                for i in r["items"]
            ],
            ["ID", "SERVICE", "SUBJECT", "DEAD AT", "REASON"],
        )
        if r["not_running"]:
            typer.echo(f"not running (not asked): {', '.join(r['not_running'])}", err=True)

    show(result, as_json, human)


async def _find(client: ServiceClient, services: list[str], subject_of: Any, payload: Any) -> Any:
    """Ask each service in turn until one knows the dead letter."""
    for name in services:
        try:
            return await client.request(subject_of(name), payload)
        except ServiceError as exc:
            if exc.code not in (ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.NOT_FOUND):
                raise
    raise ServiceError(ErrorCode.NOT_FOUND, "no running service has this dead letter")


@dead_letters.command("show")
def show_dead_letter(
    dead_letter_id: Annotated[str, typer.Argument(metavar="ID")],
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One dead letter with its payload and the reason it died."""
    with reporting(as_json):
        query = ShowDeadLetter(id=dead_letter_id)
        result = calls.run(lambda c: _find(c, _services(service), dead_letters_show_subject, query))

    def human(r: dict[str, Any]) -> None:
        fields([(k, v) for k, v in r.items() if k not in ("payload", "payload_base64")])
        typer.echo("payload:")
        emit_json(r.get("payload", r.get("payload_base64")))

    show(result, as_json, human)


@dead_letters.command("replay")
def replay_dead_letter(
    dead_letter_id: Annotated[str, typer.Argument(metavar="ID")],
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply a dead letter again (a second replay changes nothing)."""
    with reporting(as_json):
        command = ReplayDeadLetter(id=dead_letter_id)
        result = calls.run(
            lambda c: _find(c, _services(service), dead_letters_replay_subject, command)
        )
    show(
        result,
        as_json,
        lambda r: typer.echo(
            f"{r['id']} replayed by {r['service']}"
            + ("" if r["applied"] else " (it had already been applied)")
        ),
    )
