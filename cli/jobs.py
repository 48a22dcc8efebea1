"""Commands that run as jobs (import, send, plan-year) and `samskab jobs show ID`.

A job command answers at once with its job; the CLI then follows it, with a progress bar
on the terminal, until it is done, and shows its report as the command always did. Ctrl-C
(or ``--no-wait``) leaves it running in the service: ``samskab jobs show ID`` shows it
later, with its report once done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli import calls
from cli.output import emit_json, fail, plain, reporting
from contracts.errors import ErrorCode, ServiceError
from contracts.jobs import JobEndpoint, JobState, JobView, ShowJob, service_of, show_job

Req = TypeVar("Req", bound=BaseModel)
Report = TypeVar("Report", bound=BaseModel)

# How often a running job is asked about.
POLL_SECONDS = 0.25
# A service that stops answering while its job runs is asked this long before the CLI
# leaves the job to itself.
UNANSWERED_SECONDS = 30.0

NoWaitOpt = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="Print the job's id and return; `samskab jobs show ID` follows it.",
    ),
]

app = typer.Typer(help="Long work (import, send, plan-year) and how far it got.")


@dataclass(frozen=True)
class _Kind:
    report: type[BaseModel]
    human: Callable[[Any], None]
    what: str


_KINDS: dict[str, _Kind] = {}


def shows(
    endpoint: JobEndpoint[Any, Report], what: str
) -> Callable[[Callable[[Report], None]], Callable[[Report], None]]:
    """Register how a job's report is shown to a human (its command's own output)."""

    def register(human: Callable[[Report], None]) -> Callable[[Report], None]:
        _KINDS[endpoint.subject] = _Kind(endpoint.report, human, what)
        return human

    return register


def run(
    endpoint: JobEndpoint[Req, Report], request: Req, *, as_json: bool, wait: bool = True
) -> Report | None:
    """Start the job and follow it to its report (None with ``wait`` off: its id was
    printed). A failed job raises its error, as a failed command does."""
    started = calls.call(endpoint, request)
    if not wait:
        _announce(started, as_json)
        return None
    finished = follow(started, as_json=as_json)
    return _report(endpoint.report, finished)


def follow(job: JobView, *, as_json: bool) -> JobView:
    """Ask about ``job`` until it is finished; a progress bar on a terminal."""
    if job.finished:
        return job
    console = Console(stderr=True)
    if as_json or not console.is_terminal:
        return _poll(job, lambda _: None)
    what = _KINDS[job.command].what if job.command in _KINDS else job.command
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(what, total=job.total, completed=job.done, unit=job.unit)

        def update(seen: JobView) -> None:
            progress.update(task, total=seen.total, completed=seen.done)

        return _poll(job, update)


def _poll(job: JobView, update: Callable[[JobView], None]) -> JobView:
    service = service_of(job.id)
    assert service is not None  # the service made the id
    endpoint = show_job(service)
    silent_since: float | None = None
    try:
        while not job.finished:
            time.sleep(POLL_SECONDS)
            try:
                job = calls.call(endpoint, ShowJob(job_id=job.id))
            except ServiceError as exc:
                if exc.code != ErrorCode.SERVICE_UNAVAILABLE:
                    raise
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since > UNANSWERED_SECONDS:
                    raise ServiceError(
                        ErrorCode.SERVICE_UNAVAILABLE,
                        f"the service does not answer; job {job.id} goes on when it is back "
                        f"(samskab jobs show {job.id})",
                    ) from None
                continue
            silent_since = None
            update(job)
    except KeyboardInterrupt:
        typer.echo(
            f"job {job.id} goes on in the service; `samskab jobs show {job.id}` follows it",
            err=True,
        )
        raise typer.Exit(130) from None
    return job


def _report(model: type[Report], job: JobView) -> Report:
    if job.state == JobState.FAILED:
        assert job.error is not None
        raise ServiceError.from_error(job.error)
    return model.model_validate(job.report or {})


def _announce(job: JobView, as_json: bool) -> None:
    if as_json:
        emit_json(job.model_dump(mode="json"))
    else:
        typer.echo(f"job {job.id} started; `samskab jobs show {job.id}` follows it")


@app.command("show")
def show(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="A job id, as its command printed.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the job until it is done, then show it.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """A job: how far it got, and its report once done."""
    with reporting(as_json):
        service = service_of(job_id)
        if service is None:
            fail(f"{job_id!r} is not a job id (e.g. ambassadors-1a2b3c4d5e6f)", as_json)
        job = calls.call(show_job(service), ShowJob(job_id=job_id))
        if wait:
            job = follow(job, as_json=as_json)
    if as_json:
        emit_json(job.model_dump(mode="json"))
    else:
        _human(job)
    if job.state == JobState.FAILED:
        raise typer.Exit(1)


def _human(job: JobView) -> None:
    kind = _KINDS.get(job.command)
    of = f"/{job.total}" if job.total is not None else ""
    typer.echo(f"job {job.id}: {kind.what if kind else job.command}")
    typer.echo(f"  state     {job.state.value}, {job.done}{of} {job.unit}".rstrip())
    typer.echo(f"  started   {plain(job.started_at)}")
    if job.finished_at is not None:
        typer.echo(f"  finished  {plain(job.finished_at)}")
    if job.state == JobState.FAILED and job.error is not None:
        typer.echo(f"  error     {job.error.message}")
    if job.state == JobState.DONE and kind is not None:
        kind.human(kind.report.model_validate(job.report or {}))
    elif job.state == JobState.RUNNING:
        typer.echo(f"  (running: `samskab jobs show {job.id} --wait` follows it)")
