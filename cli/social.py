"""`samskab social ...`: stories, their review, and publishing to the Facebook Page."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import calls
from cli.output import build, fail, fields, read_text_file, reporting, show, table
from contracts.errors import DomainValidationError, FieldError
from contracts.events import COPENHAGEN, as_utc
from contracts.social import (
    KIND_LABELS,
    PICTURES_MAX,
    TEXT_MAX,
    UPLOADS_BUCKET,
    ApproveStory,
    CheckStory,
    CheckToken,
    ConfirmPublished,
    Endpoints,
    GetPublishing,
    GetReviewQueue,
    Hint,
    HintSeverity,
    ListStories,
    ListUnconfirmed,
    PublishingView,
    RejectStory,
    RequestChanges,
    RetryStory,
    ScheduleStory,
    ShowStory,
    StoryDetail,
    StoryKind,
    StoryPage,
    StoryReceipt,
    StoryStatus,
    UnpublishStory,
    UnscheduleStory,
)
from services.runtime.client import ServiceClient

app = typer.Typer(
    help="Stories from ambassadors: review against the guide, schedule, publish to the Page.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
StoryArg = Annotated[str, typer.Argument(metavar="ID", help="The story's id.")]
# What a phone or camera sends; the service re-encodes and checks the pixels itself.
UPLOAD_MAX_BYTES = 25_000_000


def _read_text(path: Path, as_json: bool) -> str:
    return read_text_file(
        path, as_json, what="the story", empty="a story needs some text", max_chars=TEXT_MAX
    )


def _local(value: datetime | None) -> str | None:
    return None if value is None else f"{value.astimezone(COPENHAGEN):%Y-%m-%d %H:%M}"


def _hints(hints: list[Hint]) -> None:
    for hint in hints:
        typer.echo(f"  [{hint.severity.value}] {hint.field}: {hint.message}")


def _show_detail(d: StoryDetail) -> None:
    s = d.story
    fields(
        [
            ("id", s.id),
            ("status", s.status),
            ("kind", f"{s.kind.value} ({KIND_LABELS[s.kind]})"),
            ("source", s.source),
            (
                "ambassador",
                f"{s.ambassador_name or ''} ({s.ambassador_id})" if s.ambassador_id else None,
            ),
            ("submitted", _local(s.submitted_at)),
            ("scheduled for", _local(s.scheduled_for)),
            ("published", f"{_local(s.published_at)}, post {s.post_id}" if s.post_id else None),
            ("comment", s.comment),
        ]
    )
    typer.echo("\nmessage:")
    for line in d.message.splitlines() or [""]:
        typer.echo(f"  {line}")
    current = d.versions[-1]
    if current.link:
        typer.echo(f"link: {current.link}")
    for number, picture in enumerate(current.pictures, start=1):
        typer.echo(
            f"picture {number}: {picture.name} {picture.width}x{picture.height}, "
            f"alt: {picture.alt or '(none)'}"
        )
    if current.hints:
        typer.echo("hints:")
        _hints(current.hints)
    typer.echo("\nversions:")
    for v in d.versions:
        edit = " (staff's edit)" if v.staff_edit else ""
        typer.echo(f"  {v.number}  {_local(v.at)}  by {v.by}{edit}")
    typer.echo("history:")
    for c in d.history:
        detail = f": {c.detail}" if c.detail else ""
        typer.echo(f"  {_local(c.at)}  {c.what} ({c.actor}){detail}")
    if d.attempts:
        typer.echo("publishing attempts:")
        for a in d.attempts:
            trace = f" fbtrace_id {a.fbtrace_id}" if a.fbtrace_id else ""
            typer.echo(
                f"  {a.attempt_id[:8]}  {_local(a.started_at)}  {a.outcome or a.phase}"
                f"{': ' + a.detail if a.detail else ''}{trace}"
            )


def _page(page: StoryPage) -> None:
    table(
        [
            (
                s.id,
                s.status,
                s.kind,
                s.source,
                s.ambassador_name or s.ambassador_id or "",
                _local(s.scheduled_for or s.published_at or s.submitted_at),
                s.title or s.excerpt,
            )
            for s in page.items
        ],
        ["ID", "STATUS", "KIND", "SOURCE", "AMBASSADOR", "WHEN", "TITLE"],
    )
    typer.echo(f"{len(page.items)} of {page.total}")


def _detail_line(verb: str) -> Any:
    def human(d: StoryDetail) -> None:
        when = f" for {_local(d.story.scheduled_for)}" if verb == "scheduled" else ""
        typer.echo(f"{d.story.id} {verb}{when}: {d.story.status.value}")

    return human


# ---------------------------------------------------------------- submitting


async def _upload(client: ServiceClient, data: bytes, suffix: str) -> str:
    return await calls.upload(client, UPLOADS_BUCKET, data, suffix, "social")


KindOpt = Annotated[StoryKind, typer.Option("--kind", help="What kind of story (the guide's).")]
TextOpt = Annotated[Path, typer.Option("--text", metavar="FILE", help="The text (- for stdin).")]
TitleOpt = Annotated[str | None, typer.Option("--title", help="A headline.")]
ImageOpt = Annotated[
    list[Path] | None,
    typer.Option("--image", metavar="FILE", help="A picture; repeat (at most 10)."),
]
AltOpt = Annotated[
    list[str] | None,
    typer.Option("--alt", help="What each picture shows, in the order of --image."),
]
EventDateOpt = Annotated[
    datetime | None,
    typer.Option("--event-date", formats=["%Y-%m-%d"], help="The event's date."),
]
EventPublicOpt = Annotated[
    bool | None,
    typer.Option("--event-public/--event-closed", help="Open to everyone, or closed."),
]
LinkOpt = Annotated[str | None, typer.Option("--link", help="A web address to go with it.")]
ConsentOpt = Annotated[
    bool,
    typer.Option("--people-consent", help="Those shown in the pictures agreed to be shown."),
]


def _send(
    endpoint: Any,
    values: dict[str, Any],
    images: list[Path],
    alts: list[str],
    kept: list[dict[str, Any]],
    as_json: bool,
) -> StoryReceipt:
    """Check the story (the guide, then the contract) before any picture is uploaded, then
    upload the pictures and send it."""
    if len(kept) + len(images) > PICTURES_MAX:
        fail(f"at most {PICTURES_MAX} pictures", as_json)
    if len(alts) > len(images):
        fail("more --alt than --image: each --alt describes the --image before it", as_json)
    for path in images:
        if not path.is_file():
            fail(f"{path}: no such file", as_json)
        if path.stat().st_size > UPLOAD_MAX_BYTES:
            fail(f"{path}: larger than {UPLOAD_MAX_BYTES // 1_000_000} MB", as_json)
    pictures = [
        *kept,
        *(
            {"upload": f"upload-{n}", "alt": alts[n] if n < len(alts) else None}
            for n in range(len(images))
        ),
    ]
    # Checked before the uploads: a typo or a missing alt text costs no transfer.
    build(endpoint.request, **values, pictures=pictures)
    content = {k: v for k, v in values.items() if k not in ("ambassador_id", "story_id")}
    checked = calls.call(Endpoints.CHECK, build(CheckStory, **content, pictures=pictures))
    stopping = [h for h in checked.hints if h.severity != HintSeverity.HINT]
    if stopping:
        raise DomainValidationError(
            [FieldError(field=h.field, message=h.message) for h in stopping],
            "the story cannot be sent as it is",
        )

    def send() -> StoryReceipt:
        for number, path in enumerate(images, start=len(kept)):
            pictures[number]["upload"] = calls.with_client(
                partial(_upload, data=path.read_bytes(), suffix=path.suffix)
            )
        receipt: StoryReceipt = calls.call(
            endpoint, build(endpoint.request, **values, pictures=pictures)
        )
        return receipt

    return calls.run(send)


def _receipt(verb: str) -> Any:
    def human(r: StoryReceipt) -> None:
        typer.echo(f"{r.story_id} {verb}: {r.status.value} (version {r.version})")
        if r.hints:
            typer.echo("hints:")
            _hints(r.hints)

    return human


def _content(
    kind: StoryKind,
    text: Path,
    title: str | None,
    event_date: datetime | None,
    event_public: bool | None,
    link: str | None,
    people_consent: bool,
    as_json: bool,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "text": _read_text(text, as_json),
        "title": title,
        "event_date": event_date.date() if event_date else None,
        "event_public": event_public,
        "link": link,
        "people_consent": people_consent,
    }


@app.command("submit")
def submit(
    ambassador: Annotated[str, typer.Option("--ambassador", help="Whose story it is (id).")],
    kind: KindOpt,
    text: TextOpt,
    title: TitleOpt = None,
    image: ImageOpt = None,
    alt: AltOpt = None,
    event_date: EventDateOpt = None,
    event_public: EventPublicOpt = None,
    link: LinkOpt = None,
    people_consent: ConsentOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Enter a story on an ambassador's behalf; the guide checks answer at once."""
    with reporting(as_json):
        values = _content(
            kind, text, title, event_date, event_public, link, people_consent, as_json
        )
        values["ambassador_id"] = ambassador
        receipt = _send(Endpoints.SUBMIT, values, list(image or []), list(alt or []), [], as_json)
    show(receipt, as_json, _receipt("submitted"))


@app.command("revise")
def revise(
    story_id: StoryArg,
    kind: KindOpt,
    text: TextOpt,
    title: TitleOpt = None,
    image: ImageOpt = None,
    alt: AltOpt = None,
    keep_pictures: Annotated[
        bool,
        typer.Option("--keep-pictures", help="Keep the story's pictures (before new ones)."),
    ] = False,
    event_date: EventDateOpt = None,
    event_public: EventPublicOpt = None,
    link: LinkOpt = None,
    people_consent: ConsentOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """A new version of a story in review or sent back for changes."""
    with reporting(as_json):
        values = _content(
            kind, text, title, event_date, event_public, link, people_consent, as_json
        )
        values["story_id"] = story_id
        kept: list[dict[str, Any]] = []
        if keep_pictures:
            current = calls.call(Endpoints.SHOW, build(ShowStory, story_id=story_id))
            kept = [{"name": p.name, "alt": p.alt} for p in current.versions[-1].pictures]
        receipt = _send(Endpoints.REVISE, values, list(image or []), list(alt or []), kept, as_json)
    show(receipt, as_json, _receipt("revised"))


# ---------------------------------------------------------------- looking


@app.command("list")
def list_(
    status: Annotated[StoryStatus | None, typer.Option("--status")] = None,
    ambassador: Annotated[str | None, typer.Option("--ambassador", help="Only theirs.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Stories, newest first."""
    with reporting(as_json):
        query = build(
            ListStories, status=status, ambassador_id=ambassador, limit=limit, offset=offset
        )
        result = calls.call(Endpoints.LIST, query)
    show(result, as_json, _page)


@app.command("show")
def show_(story_id: StoryArg, as_json: JsonOpt = False) -> None:
    """One story: its text as it goes out, pictures, hints, versions, history, attempts."""
    with reporting(as_json):
        result = calls.call(Endpoints.SHOW, build(ShowStory, story_id=story_id))
    show(result, as_json, _show_detail)


@app.command("review")
def review(as_json: JsonOpt = False) -> None:
    """The review queue, oldest first, with each story's hints."""
    with reporting(as_json):
        result = calls.call(Endpoints.REVIEW, GetReviewQueue())

    def human(page: StoryPage) -> None:
        if not page.items:
            typer.echo("nothing to review")
            return
        for s in page.items:
            who = s.ambassador_name or s.ambassador_id or f"suggested ({s.source.value})"
            pictures = f", {s.pictures} picture(s)" if s.pictures else ""
            typer.echo(f"{s.id}  {_local(s.submitted_at)}  {s.kind.value}  {who}{pictures}")
            typer.echo(f"  {s.title or s.excerpt}")
            if s.comment:
                typer.echo(f"  note: {s.comment}")
            _hints(s.hints)
        typer.echo(f"{len(page.items)} of {page.total} waiting")

    show(result, as_json, human)


@app.command("unconfirmed")
def unconfirmed(as_json: JsonOpt = False) -> None:
    """Stories whose publishing could not be confirmed: check the Page, then
    `confirm-published ID --post-id P` or `retry ID`."""
    with reporting(as_json):
        result = calls.call(Endpoints.UNCONFIRMED, ListUnconfirmed())

    def human(page: StoryPage) -> None:
        for s in page.items:
            typer.echo(f"{s.id}  {s.title or s.excerpt}")
            typer.echo(f"  {s.comment or ''}")
        typer.echo(f"{page.total} unconfirmed")

    show(result, as_json, human)


@app.command("publishing")
def publishing(as_json: JsonOpt = False) -> None:
    """Whether publishing to the Page works, and the token's last check."""
    with reporting(as_json):
        result = calls.call(Endpoints.PUBLISHING, GetPublishing())
    show(result, as_json, _show_publishing)


def _show_publishing(p: PublishingView) -> None:
    fields(
        [
            ("state", p.state),
            ("reason", p.reason),
            ("since", _local(p.since)),
            ("token checked", _local(p.checked_at)),
            ("page", p.page_id),
            ("graph version", p.graph_version),
            ("scheduled", str(p.scheduled)),
            ("unconfirmed", str(p.unconfirmed)),
        ]
    )


# ---------------------------------------------------------------- deciding


@app.command("approve")
def approve(
    story_id: StoryArg,
    text: Annotated[
        Path | None,
        typer.Option("--text", metavar="FILE", help="Staff's final text (kept as a version)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a story for publishing (then `schedule` it)."""
    with reporting(as_json):
        final = _read_text(text, as_json) if text is not None else None
        result = calls.call(Endpoints.APPROVE, build(ApproveStory, story_id=story_id, text=final))
    show(result, as_json, _detail_line("approved"))


@app.command("request-changes")
def request_changes(
    story_id: StoryArg,
    comment: Annotated[str, typer.Option("--comment", help="What to change (mailed to them).")],
    as_json: JsonOpt = False,
) -> None:
    """Send a story back to its ambassador with a comment."""
    with reporting(as_json):
        command = build(RequestChanges, story_id=story_id, comment=comment)
        result = calls.call(Endpoints.REQUEST_CHANGES, command)
    show(result, as_json, _detail_line("sent back"))


@app.command("reject")
def reject(
    story_id: StoryArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (mailed to the ambassador).")],
    as_json: JsonOpt = False,
) -> None:
    """Reject a story (a scheduled one never goes out)."""
    with reporting(as_json):
        result = calls.call(Endpoints.REJECT, build(RejectStory, story_id=story_id, reason=reason))
    show(result, as_json, _detail_line("rejected"))


@app.command("schedule")
def schedule(
    story_id: StoryArg,
    at: Annotated[
        datetime | None,
        typer.Option(
            "--at",
            formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
            help="When, Copenhagen time: 2027-03-04T09:00. Left out: now.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Schedule an approved story for publishing."""
    with reporting(as_json):
        try:
            when = as_utc(at) if at is not None else None
        except ValueError as exc:
            fail(str(exc), as_json)
        result = calls.call(Endpoints.SCHEDULE, build(ScheduleStory, story_id=story_id, at=when))
    show(result, as_json, _detail_line("scheduled"))


@app.command("unschedule")
def unschedule(story_id: StoryArg, as_json: JsonOpt = False) -> None:
    """Cancel a scheduled publish (back to approved): it never goes out."""
    with reporting(as_json):
        result = calls.call(Endpoints.UNSCHEDULE, build(UnscheduleStory, story_id=story_id))
    show(result, as_json, _detail_line("unscheduled"))


@app.command("retry")
def retry(story_id: StoryArg, as_json: JsonOpt = False) -> None:
    """Publish an unconfirmed story (checked: it is not on the Page) or a failed one again."""
    with reporting(as_json):
        result = calls.call(Endpoints.RETRY, build(RetryStory, story_id=story_id))
    show(result, as_json, _detail_line("to be published again"))


@app.command("confirm-published")
def confirm_published(
    story_id: StoryArg,
    post_id: Annotated[str, typer.Option("--post-id", help="Its post's id on the Page.")],
    as_json: JsonOpt = False,
) -> None:
    """An unconfirmed story is on the Page after all: record its post."""
    with reporting(as_json):
        command = build(ConfirmPublished, story_id=story_id, post_id=post_id)
        result = calls.call(Endpoints.CONFIRM_PUBLISHED, command)
    show(result, as_json, _detail_line("confirmed"))


@app.command("unpublish")
def unpublish(story_id: StoryArg, as_json: JsonOpt = False) -> None:
    """Delete a published story's post from the Page."""
    with reporting(as_json):
        result = calls.call(Endpoints.UNPUBLISH, build(UnpublishStory, story_id=story_id))
    show(result, as_json, _detail_line("unpublished"))


@app.command("check-token")
def check_token(as_json: JsonOpt = False) -> None:
    """Check the Page access token now; publishing resumes when it works."""
    with reporting(as_json):
        result = calls.call(Endpoints.CHECK_TOKEN, CheckToken())
    show(result, as_json, _show_publishing)
