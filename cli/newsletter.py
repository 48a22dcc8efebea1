"""`samskab newsletter ...`: subscribers, news items, issues and the archive."""

from __future__ import annotations

import html
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from nats.errors import Error as NatsError

from cli import calls, jobs, spreadsheet
from cli.output import build, emit_json, fail, plain, reporting, show, table
from contracts.errors import ErrorCode, ServiceError
from contracts.newsletter import (
    PAGE_MAX,
    UPLOADS_BUCKET,
    AddItem,
    Archive,
    ArchiveEntry,
    ConfirmSubscription,
    DraftIssue,
    Endpoints,
    GetArchive,
    IssueRendering,
    IssueSummary,
    ItemPage,
    ItemView,
    ListItems,
    ListSubscribers,
    PreviewIssue,
    PublicImage,
    RemoveItem,
    SendIssue,
    Subscribe,
    SubscriberPage,
    SubscriberStatus,
    SubscriberView,
    TestSend,
    Unsubscribe,
)
from services.runtime.client import ServiceClient

app = typer.Typer(
    help="Newsletter: subscribers, news items, issues and the archive.", no_args_is_help=True
)
item_app = typer.Typer(help="News items for the next issue.", no_args_is_help=True)
app.add_typer(item_app, name="item")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
IssueArg = Annotated[str, typer.Argument(metavar="ID", help="The issue's id (from draft).")]


def _who(s: SubscriberView) -> str:
    if s.status == SubscriberStatus.ERASED:
        return "(erased)"
    return f"{s.name} <{s.email}>" if s.name else s.email or ""


# ---------------------------------------------------------------- subscribers

RECEIVED = "received: if {email} can be used, a mail is on its way to it"


@app.command()
def subscribe(
    email: str,
    name: Annotated[str | None, typer.Option("--name", help="Name to greet them by.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe an address; a confirmation mail is sent first (double opt-in)."""
    with reporting(as_json):
        result = calls.call(Endpoints.SUBSCRIBE, build(Subscribe, email=email, name=name))

    # The service answers every address alike: whether it was known stays between it and
    # the mailbox (`samskab newsletter subscribers` shows staff the list).
    show(result, as_json, lambda _: typer.echo(RECEIVED.format(email=email)))


@app.command()
def confirm(token: str, as_json: JsonOpt = False) -> None:
    """Confirm a subscription with the token from the confirmation mail."""
    with reporting(as_json):
        result = calls.call(Endpoints.CONFIRM, build(ConfirmSubscription, token=token))
    show(result, as_json, lambda s: typer.echo(f"{s.id} subscribed: {_who(s)}"))


@app.command()
def unsubscribe(token: str, as_json: JsonOpt = False) -> None:
    """Unsubscribe with the token from any newsletter mail (the link's last part)."""
    with reporting(as_json):
        result = calls.call(Endpoints.UNSUBSCRIBE, build(Unsubscribe, token=token))
    show(result, as_json, lambda s: typer.echo(f"{s.id} unsubscribed"))


SUBSCRIBERS_CSV = ("id", "status", "source", "name", "email", "created_at", "confirmed_at")


@app.command()
def subscribers(
    status: Annotated[SubscriberStatus | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE.csv",
            help="Write every subscriber with this status to a spreadsheet file.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List subscribers, optionally by status."""
    with reporting(as_json):
        query = build(ListSubscribers, status=status, limit=limit, offset=offset)
        if csv_file is not None:
            everyone = calls.every_item(Endpoints.SUBSCRIBERS, query, PAGE_MAX)
            rows = (
                (s.id, s.status, s.source, s.name, s.email, s.created_at, s.confirmed_at)
                for s in everyone
            )
            written = spreadsheet.write(csv_file, SUBSCRIBERS_CSV, rows)
            exported = {"file": str(csv_file), "rows": written}
            show(
                exported,
                as_json,
                lambda e: typer.echo(f"wrote {e['rows']} subscribers to {e['file']}"),
            )
            return
        result = calls.call(Endpoints.SUBSCRIBERS, query)

    def human(page: SubscriberPage) -> None:
        table(
            [(s.id, s.status, s.source, _who(s)) for s in page.items],
            ["ID", "STATUS", "SOURCE", "SUBSCRIBER"],
        )
        typer.echo(f"{len(page.items)} of {page.total}")

    show(result, as_json, human)


# ---------------------------------------------------------------- news items


@item_app.command("add")
def item_add(
    title: Annotated[str, typer.Option("--title", help="Headline of the item.")],
    body: Annotated[
        str, typer.Option("--body", help="Text; blank lines make paragraphs (simple HTML works).")
    ],
    link: Annotated[str | None, typer.Option("--link", help="Read-more address.")] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="JPEG, PNG, WebP or GIF; re-encoded.")
    ] = None,
    ambassador: Annotated[
        str | None, typer.Option("--ambassador", help="Id of the ambassador it came from.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a news item for the next issue."""
    with reporting(as_json):
        max_bytes = calls.settings().newsletter_image_max_bytes
        if image is not None and not image.is_file():
            fail(f"{image}: no such file", as_json)
        if image is not None and image.stat().st_size > max_bytes:
            fail(f"{image}: larger than {max_bytes // 1_000_000} MB", as_json)
        # Checked before the upload: a typo costs no transfer.
        fields = {"title": title, "body": body, "link": link, "ambassador_id": ambassador}
        build(AddItem, **fields)
        picture = (image.read_bytes(), image.suffix) if image is not None else None

        def add() -> ItemView:
            upload = None
            if picture is not None:
                data, suffix = picture
                upload = calls.with_client(
                    lambda client: calls.upload(client, UPLOADS_BUCKET, data, suffix, "newsletter")
                )
            command = build(AddItem, **fields, image_object=upload)
            return calls.call(Endpoints.ITEM_ADD, command)

        result = calls.run(add)
    show(result, as_json, lambda i: typer.echo(f"{i.id} added: {i.title}"))


@item_app.command("list")
def item_list(
    unused: Annotated[bool, typer.Option("--unused", help="Only those not yet sent.")] = False,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List news items, oldest first."""
    with reporting(as_json):
        query = build(ListItems, unused=unused, limit=limit, offset=offset)
        result = calls.call(Endpoints.ITEM_LIST, query)

    def human(page: ItemPage) -> None:
        table(
            [
                (
                    i.id,
                    plain(i.created_at)[:10],
                    "sent" if i.used_in_issue else "unused",
                    "image" if i.image else "",
                    i.title,
                )
                for i in page.items
            ],
            ["ID", "ADDED", "STATE", "", "TITLE"],
        )
        typer.echo(f"{len(page.items)} of {page.total}")

    show(result, as_json, human)


@item_app.command("remove")
def item_remove(
    item_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOpt = False
) -> None:
    """Remove a news item that was not sent in an issue."""
    with reporting(as_json):
        result = calls.call(Endpoints.ITEM_REMOVE, build(RemoveItem, item_id=item_id))
    show(result, as_json, lambda i: typer.echo(f"{i.id} removed"))


# ---------------------------------------------------------------- issues


def _summary_line(r: IssueSummary) -> str:
    sections = ", ".join(f"{k} {v}" for k, v in r.sections.items())
    line = f"{r.id} issue {r.number} {r.state}: {r.title} ({r.items} items"
    return line + (f"; {sections})" if sections else ")")


@app.command()
def draft(
    since: Annotated[
        datetime | None,
        typer.Option("--since", formats=["%Y-%m-%d"], help="Gather from this date (YYYY-MM-DD)."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title")] = None,
    intro: Annotated[str | None, typer.Option("--intro", help="Opening words.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Assemble an issue from the unused items and what happened since the last one."""
    day: date | None = since.date() if since else None
    with reporting(as_json):
        command = build(DraftIssue, since=day, title=title, intro=intro)
        result = calls.call(Endpoints.DRAFT, command)
    show(result, as_json, lambda r: typer.echo(_summary_line(r)))


async def _fetch_images(client: ServiceClient, images: list[PublicImage], out: Path) -> None:
    for image in images:
        try:
            bucket = await client.nc.jetstream().object_store(image.bucket)
            found = await bucket.get(image.object_name)
        except (NatsError, TimeoutError) as exc:
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"the image {image.object_name} could not be read from the bucket "
                f"{image.bucket} ({type(exc).__name__}); the HTML and text were written without it",
            ) from None
        target = out / image.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(found.data or b""))


def _write_images(images: list[PublicImage], out: Path) -> None:
    """The issue's images, from the buckets the service keeps them in."""
    if images:
        calls.with_client(lambda client: _fetch_images(client, images, out))


def _write_issue(rendering: IssueRendering, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in ((".html", rendering.html), (".txt", rendering.text)):
        path = out / f"issue-{rendering.number}{suffix}"
        path.write_text(text, encoding="utf-8")
        written.append(str(path))
    return written


@app.command()
def preview(
    issue_id: IssueArg,
    out: Annotated[Path, typer.Option("--out", help="Directory for issue-<n>.html and .txt.")],
    as_json: JsonOpt = False,
) -> None:
    """Write an issue's HTML and text versions (and its images) to a directory."""

    def fetch() -> dict[str, Any]:
        rendering = calls.call(Endpoints.PREVIEW, build(PreviewIssue, issue_id=issue_id))
        files = _write_issue(rendering, out)
        _write_images(rendering.images, out)
        return {"id": rendering.id, "number": rendering.number, "files": files}

    with reporting(as_json):
        result = calls.run(fetch)
    show(result, as_json, lambda r: typer.echo(f"issue {r['number']}: {', '.join(r['files'])}"))


@app.command("test-send")
def test_send(
    issue_id: IssueArg,
    to: Annotated[str, typer.Option("--to", help="Address for the test copy.")],
    as_json: JsonOpt = False,
) -> None:
    """Mail one test copy of an issue."""
    with reporting(as_json):
        result = calls.call(Endpoints.TEST_SEND, build(TestSend, issue_id=issue_id, to=to))
    show(result, as_json, lambda r: typer.echo(f"test copy queued for {r.to}"))


@jobs.shows(Endpoints.SEND, "sending the issue")
def _sent(r: IssueSummary) -> None:
    typer.echo(f"issue {r.number} sent: queued for {r.recipients} subscribers")


@app.command()
def send(issue_id: IssueArg, as_json: JsonOpt = False, no_wait: jobs.NoWaitOpt = False) -> None:
    """Send an issue to every confirmed subscriber (a job, with a progress bar)."""
    with reporting(as_json):
        command = build(SendIssue, issue_id=issue_id)
        result = jobs.run(Endpoints.SEND, command, as_json=as_json, wait=not no_wait)
    if result is not None:
        show(result, as_json, _sent)


def _index(entries: list[ArchiveEntry]) -> str:
    rows = "\n".join(
        f'<li><a href="issue-{e.number}.html">{html.escape(e.title)}</a>'
        f" ({html.escape(plain(e.sent_at)[:10])})</li>"
        for e in reversed(entries)
    )
    return (
        '<!doctype html>\n<html lang="da"><head><meta charset="utf-8">'
        "<title>Nyhedsbreve</title></head>\n"
        f"<body><h1>Nyhedsbreve</h1>\n<ul>\n{rows}\n</ul></body></html>\n"
    )


@app.command()
def archive(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write every sent issue and an index.html here."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List sent issues; with --out, write their public web versions for the website."""

    def fetch() -> tuple[Archive, list[str] | None]:
        listing = calls.call(Endpoints.ARCHIVE, GetArchive())
        if out is None:
            return listing, None
        files: list[str] = []
        for entry in listing.issues:
            issue = calls.call(Endpoints.ARCHIVE, GetArchive(number=entry.number)).issue
            if issue is None:
                raise ServiceError(
                    ErrorCode.INTERNAL, f"the archive did not return issue {entry.number}"
                )
            files += _write_issue(issue, out)
            _write_images(issue.images, out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "index.html").write_text(_index(listing.issues), encoding="utf-8")
        return listing, [*files, str(out / "index.html")]

    with reporting(as_json):
        listing, files = calls.run(fetch)

    if as_json:
        result = listing.model_dump(mode="json")
        emit_json(result if files is None else {**result, "files": files})
        return
    table(
        [(e.number, plain(e.sent_at)[:10], e.title) for e in listing.issues],
        ["NO", "SENT", "TITLE"],
    )
    if files is not None:
        typer.echo(f"{len(files)} files written to {out}")
