"""`samskab goals`, `samskab health`, `samskab dead-letters ...` and `samskab audit`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from cli import calls
from cli.output import EXIT_ERROR, build, emit_json, fields, reporting, show, table
from contracts import operations as ops
from contracts.ambassadors import Endpoints as Ambassadors
from contracts.ambassadors import GetGoals, Goals
from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from contracts.networks import Endpoints as Networks
from contracts.networks import GetInitiatives, Initiatives
from contracts.operations import (
    AuditRecord,
    DeadLetterView,
    GetHealth,
    ListAudit,
    ListDeadLetters,
    ReplayDeadLetter,
    ReplayResult,
    ShowDeadLetter,
)
from services import registry

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ServiceOpt = Annotated[
    str | None, typer.Option("--service", help="Only this service (default: every running one).")
]

dead_letters = typer.Typer(help="Events a service could not apply: list, show, replay.")


class GoalsReport(Goals):
    """The ambassadors service's goals and the networks service's initiatives (None when
    it does not answer: the rest is still shown)."""

    initiatives: Initiatives | None = None
    initiatives_unavailable: str | None = None


def goals(as_json: JsonOpt = False) -> None:
    """The strategy's goals: active ambassadors and citizen share, and the initiatives
    started in the goal period, month by month."""
    with reporting(as_json):
        found = calls.call(Ambassadors.GOALS, GetGoals())
        try:
            started: Initiatives | None = calls.call(Networks.INITIATIVES, GetInitiatives())
            unavailable = None
        except ServiceError as exc:
            if exc.code != ErrorCode.SERVICE_UNAVAILABLE:
                raise
            started, unavailable = None, exc.error.message
        result = GoalsReport.model_validate(
            {**found.model_dump(), "initiatives": started, "initiatives_unavailable": unavailable}
        )

    def human(g: GoalsReport) -> None:
        i = g.initiatives
        fields(
            [
                ("active ambassadors", f"{g.active} of {g.target} ({g.progress:.0%})"),
                (
                    "citizens",
                    f"{g.citizens} = {g.citizen_share:.0%} (target {g.citizen_share_target:.0%})",
                ),
                (
                    "initiatives",
                    f"{i.started} of {i.target} ({i.progress:.0%}) from {i.period_start} to "
                    f"{i.period_end}: {i.networks} networks started, {i.meetings} meetings held"
                    if i
                    else f"not known: {g.initiatives_unavailable}",
                ),
                ("pending", g.pending),
                ("withdrawn", g.withdrawn),
                ("erased", g.erased),
            ]
        )
        typer.echo("")
        table([(k, v) for k, v in g.by_kind.items() if v], ["KIND", "ACTIVE"])
        typer.echo("")
        table([(k, v) for k, v in g.by_theme.items() if v], ["THEME", "ACTIVE"])
        typer.echo("")
        table(
            [(m.month, m.active, m.citizens, m.activated, m.left) for m in g.months],
            ["MONTH", "ACTIVE", "CITIZENS", "JOINED", "LEFT"],
        )
        if i:
            typer.echo("")
            table(
                [(m.month, m.networks, m.meetings, m.total) for m in i.months],
                ["MONTH", "NETWORKS", "MEETINGS", "INITIATIVES SO FAR"],
            )

    show(result, as_json, human)


# ---------------------------------------------------------------- asking every service


def every_service() -> list[str]:
    """The services a command asking every service asks: those that exist (the registry's
    built ones); a planned service is not asked, nor reported as down."""
    return registry.built()


def chosen_services(only: str | None) -> list[str]:
    names = every_service()
    if only is not None and only not in names:
        raise ServiceError(
            ErrorCode.VALIDATION_FAILED, f"unknown service {only!r}; one of {', '.join(names)}"
        )
    return [only] if only else names


def unless_not_running(work: Callable[[], T]) -> T | None:
    """``work``'s answer, or None when the service it asks is not running. NATS itself out
    of reach is still raised: then nothing can answer, which is not one service down."""
    try:
        return work()
    except calls.Unreachable:
        raise
    except ServiceError as exc:
        if exc.code != ErrorCode.SERVICE_UNAVAILABLE:
            raise
        return None


def ask_each(
    services: list[str],
    endpoint_of: Callable[[str], Endpoint[Req, Rep]],
    request: Req,
    timeout: float | None = 3,
) -> tuple[dict[str, Rep], list[str]]:
    """Each service's answer, and the services that are not running (not asked)."""

    def ask() -> tuple[dict[str, Rep], list[str]]:
        answers: dict[str, Rep] = {}
        missing: list[str] = []
        for name in services:
            answer = unless_not_running(
                functools.partial(calls.call, endpoint_of(name), request, timeout=timeout)
            )
            if answer is None:
                missing.append(name)
            else:
                answers[name] = answer
        return answers, missing

    return calls.run(ask)


def _find(
    services: list[str], endpoint_of: Callable[[str], Endpoint[Req, Rep]], request: Req
) -> Rep:
    """Ask each service in turn until one knows the dead letter."""

    def ask() -> Rep:
        for name in services:
            try:
                return calls.call(endpoint_of(name), request)
            except calls.Unreachable:
                raise
            except ServiceError as exc:
                if exc.code not in (ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.NOT_FOUND):
                    raise
        raise ServiceError(ErrorCode.NOT_FOUND, "no running service has this dead letter")

    return calls.run(ask)


def _not_running(missing: list[str]) -> None:
    if missing:
        typer.echo(f"not running (not asked): {', '.join(missing)}", err=True)


# ---------------------------------------------------------------- health


def health(as_json: JsonOpt = False) -> None:
    """Whether every service that exists and the website answer and are healthy; exits 1
    when one does not (so it serves as a container's health check)."""
    with reporting(as_json):
        answers, missing = ask_each([*every_service(), *registry.GATEWAYS], ops.health, GetHealth())
    unwell = [name for name, answer in answers.items() if answer.status != "ok"]
    if as_json:
        emit_json(
            {
                "running": {n: a.model_dump(mode="json") for n, a in answers.items()},
                "not_running": missing,
                "healthy": not missing and not unwell,
            }
        )
    else:
        rows: list[tuple[Any, ...]] = [
            (
                n, a.status, a.version, a.outbox_pending, a.outbox_failed, a.consumer_lag,
                a.dead_letters, a.uptime_seconds,
            )
            for n, a in answers.items()
        ]  # fmt: skip
        rows += [(n, "not running", "", "", "", "", "", "") for n in missing]
        headers = ["SERVICE", "STATUS", "VERSION", "OUTBOX", "FAILED", "LAG", "DEAD", "UPTIME S"]
        table(rows, headers)
        for name, answer in answers.items():
            for problem in answer.problems:
                typer.echo(f"{name}: {problem}")
        if missing or unwell:
            typer.echo(f"not healthy: {', '.join([*missing, *unwell])}", err=True)
    if missing or unwell:
        raise typer.Exit(EXIT_ERROR)


# ---------------------------------------------------------------- dead letters


@dead_letters.command("list")
def list_dead_letters(
    service: ServiceOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed ones.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Dead letters and failed outbox entries of every running service, newest first."""
    with reporting(as_json):
        query = ListDeadLetters(include_replayed=all_)
        answers, missing = ask_each(chosen_services(service), ops.dead_letters_list, query)
    # Each page says whose it is; an entry names its service for the merged list.
    items = [
        item.model_copy(update={"service": item.service or page.service})
        for page in answers.values()
        for item in page.items
    ]
    if as_json:
        emit_json({"items": [i.model_dump(mode="json") for i in items], "not_running": missing})
        return
    table(
        [(i.id, i.kind, i.service, i.subject, i.dead_at, (i.reason or "")[:60]) for i in items],
        ["ID", "KIND", "SERVICE", "SUBJECT", "DEAD AT", "REASON"],
    )
    _not_running(missing)


@dead_letters.command("show")
def show_dead_letter(
    dead_letter_id: Annotated[str, typer.Argument(metavar="ID")],
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One dead letter (or failed outbox entry) with its payload and the reason it died."""
    with reporting(as_json):
        query = ShowDeadLetter(id=dead_letter_id)
        result = _find(chosen_services(service), ops.dead_letters_show, query)

    def human(r: DeadLetterView) -> None:
        fields(
            [
                ("service", r.service),
                ("id", r.id),
                ("kind", r.kind),
                ("stream", r.stream),
                ("seq", r.seq),
                ("consumer", r.consumer),
                ("subject", r.subject),
                ("event_id", r.event_id),
                ("deliveries", r.deliveries),
                ("reason", r.reason),
                ("dead_at", r.dead_at),
                ("replayed_at", r.replayed_at),
                ("replays", r.replays),
                ("scrubbed", "yes (the person was erased)" if r.scrubbed else None),
            ]
        )
        typer.echo("payload:")
        emit_json(r.payload if r.payload is not None else r.payload_base64)

    show(result, as_json, human)


def _replayed(r: ReplayResult) -> str:
    line = f"{r.id} replayed by {r.service}"
    if r.note:
        return f"{line} ({r.note})"
    if not r.applied:
        return f"{line} (it had already been applied)"
    return line


@dead_letters.command("replay")
def replay_dead_letter(
    dead_letter_id: Annotated[str, typer.Argument(metavar="ID")],
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply a dead letter again (a second replay changes nothing); a failed outbox entry
    is queued for publishing again."""
    with reporting(as_json):
        command = ReplayDeadLetter(id=dead_letter_id)
        result = _find(chosen_services(service), ops.dead_letters_replay, command)
    show(result, as_json, lambda r: typer.echo(_replayed(r)))


# ---------------------------------------------------------------- audit


def audit(
    service: ServiceOpt = None,
    target: Annotated[
        str | None, typer.Option("--target", metavar="ID", help="Only commands about this id.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many records.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Who asked for what: the commands of every running service, newest first."""
    with reporting(as_json):
        query = build(ListAudit, target=target, limit=limit)
        services = chosen_services(service)
        answers, missing = ask_each(services, ops.audit, query)
    records: list[AuditRecord] = sorted(
        (record for page in answers.values() for record in page.items),
        key=lambda record: record.at,
        reverse=True,
    )[:limit]
    if as_json:
        emit_json({"items": [r.model_dump(mode="json") for r in records], "not_running": missing})
        return
    table(
        [
            (
                f"{r.at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
                r.service,
                r.actor,
                r.command,
                ", ".join(r.targets),
                r.outcome,
            )
            for r in records
        ],
        ["AT", "SERVICE", "ACTOR", "COMMAND", "TARGETS", "OUTCOME"],
    )
    _not_running(missing)
