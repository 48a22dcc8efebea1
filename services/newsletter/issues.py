"""Issues (digests): drafted from the unused items and the sections since a date, previewed,
test-sent, sent (the fan-out does the rest, see fanout.py), and archived for the public."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass

from nats.js.errors import NotFoundError

from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.jobs import JobView
from contracts.newsletter import (
    ARCHIVE_IMAGE_CHUNK,
    ITEMS_PER_ISSUE_MAX,
    Archive,
    ArchiveEntry,
    ArchiveImage,
    DraftIssue,
    Endpoints,
    GetArchive,
    GetArchiveImage,
    IssueRendering,
    IssueState,
    IssueSummary,
    PreviewIssue,
    PublicImage,
    SendIssue,
    TestSend,
    TestSendResult,
)
from services.newsletter import delivery, domain, store
from services.newsletter.context import Context
from services.newsletter.domain import Issue
from services.newsletter.mail import compose
from services.newsletter.mail.rendering import RenderedIssue, render_issue
from services.newsletter.mailing import queue
from services.newsletter.views import issue_summary
from services.runtime import jobs
from services.runtime.unit_of_work import Reading, Scope, UnitOfWork


async def load_issue(scope: Scope, issue_id: str) -> Issue:
    issue = await store.load_issue(scope, issue_id)
    if issue is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"issue {issue_id} not found")
    return issue


async def draft(ctx: Context, uow: UnitOfWork, cmd: DraftIssue) -> IssueSummary:
    now = uow.now
    if cmd.since is not None:
        since = domain.start_of_day(cmd.since)
    else:
        since = domain.default_since(
            await store.last_sent_until(uow), now, ctx.settings.newsletter_default_since_days
        )
    issue = domain.assemble_issue(
        issue_id=uuid.uuid4().hex,
        # Provisional: a sent issue takes its final number when it starts sending.
        number=await store.current_issue_number(uow) + 1,
        title=cmd.title,
        intro=cmd.intro,
        since=since,
        until=now,
        items=await store.unused_items(uow, ITEMS_PER_ISSUE_MAX),
        sections=await ctx.sections.gather(uow, since, now) if since < now else [],
        now=now,
    )
    await store.save_issue(uow, issue)
    return issue_summary(issue)


@dataclass(frozen=True)
class RenderedBundle:
    """An issue rendered once: the web version, and the mail ready to copy per subscriber."""

    issue: Issue
    rendered: RenderedIssue
    prepared: compose.PreparedIssue


async def render(ctx: Context, issue: Issue) -> RenderedBundle:
    s = ctx.settings
    inline: list[compose.InlineImage] = []
    for item in issue.items:
        if item.image is None:
            continue
        bucket = await ctx.service.js.object_store(item.image.bucket)
        try:
            found = await bucket.get(item.image.object_name)
        except NotFoundError:
            raise ServiceError(
                ErrorCode.INVALID_STATE,
                f"issue {issue.number} is out of date: the image of {item.title!r} is gone "
                "(the item was removed); draft a new issue",
            ) from None
        inline.append(
            compose.InlineImage(
                cid=domain.image_cid(item.id, s.mail_message_id_domain),
                content_type=item.image.content_type,
                data=bytes(found.data or b""),
                filename=item.image.object_name,
            )
        )
    for picture in domain.section_pictures(issue):
        bucket = await ctx.service.js.object_store(picture.bucket)
        try:
            found = await bucket.get(picture.object_name)
        except NotFoundError:
            raise ServiceError(
                ErrorCode.INVALID_STATE,
                f"issue {issue.number} is out of date: a story's picture is gone (the story "
                "was taken off the Page); draft a new issue",
            ) from None
        inline.append(
            compose.InlineImage(
                cid=domain.picture_cid(picture.object_name, s.mail_message_id_domain),
                content_type=picture.content_type,
                data=bytes(found.data or b""),
                filename=picture.object_name,
            )
        )
    context = domain.issue_context(issue, message_id_domain=s.mail_message_id_domain)
    context |= {"sender_name": s.mail_from_name, "public_url": s.public_url}
    rendered = await asyncio.to_thread(render_issue, context)
    prepared = await asyncio.to_thread(
        compose.PreparedIssue,
        rendered,
        from_address=s.mail_from_address,
        from_name=s.mail_from_name,
        inline_images=inline,
    )
    return RenderedBundle(issue, rendered, prepared)


def public(issue: Issue, rendered: RenderedIssue) -> IssueRendering:
    return IssueRendering(
        id=issue.id,
        number=issue.number,
        state=issue.state,
        title=issue.title,
        subject=rendered.subject,
        html=rendered.archive.html,
        text=rendered.archive.text,
        images=[
            PublicImage(
                bucket=i.image.bucket,
                object_name=i.image.object_name,
                path=domain.image_path(i.image),
            )
            for i in issue.items
            if i.image is not None
        ]
        + [
            PublicImage(bucket=p.bucket, object_name=p.object_name, path=f"images/{p.object_name}")
            for p in domain.section_pictures(issue)
        ],
        sent_at=issue.sent_at,
    )


async def preview(ctx: Context, scope: Reading, query: PreviewIssue) -> IssueRendering:
    issue = await load_issue(scope, query.issue_id)
    return public(issue, (await render(ctx, issue)).rendered)


async def test_send(ctx: Context, uow: UnitOfWork, cmd: TestSend) -> TestSendResult:
    issue = await load_issue(uow, cmd.issue_id)
    to = domain.normalised_email(cmd.to, "to")
    # Every test-send is a mail of its own; its id (and Message-ID) follows from the key.
    dedupe_key = f"test_issue:{issue.id}:{uuid.uuid4().hex}"
    await queue(
        ctx,
        uow,
        kind="test_issue",
        dedupe_key=dedupe_key,
        to_address=to,
        # Not in issue_id: that counts the issue's real recipients.
        context={"issue_id": issue.id},
    )
    return TestSendResult(mail_id=delivery.mail_id_for(dedupe_key), to=to)


async def send(ctx: Context, uow: UnitOfWork, cmd: SendIssue) -> JobView:
    """Start sending: the issue takes its number and its items, and its job follows the
    fan-out to every confirmed subscriber (see fanout.py), ending with the sent issue. Sent
    again while it is being sent, the answer is the same job."""
    issue = await load_issue(uow, cmd.issue_id)
    uow.about(issue.id)
    if issue.state == IssueState.SENDING and issue.job_id is not None:
        return await jobs.load(uow, issue.job_id)
    if issue.state == IssueState.SENT:
        raise ServiceError(ErrorCode.INVALID_STATE, f"issue {issue.number} is sent already")
    if issue.state == IssueState.DRAFT:
        current = await store.load_items(uow, [i.id for i in issue.items])
        number = await store.take_issue_number(uow)
        issue = domain.start_sending(
            issue, {i.id: current.get(i.id) for i in issue.items}, number, uow.now
        )
        await store.mark_items_used(uow, [i.id for i in issue.items], issue.id)
    total = await store.confirmed_count(uow)
    job = await ctx.service.start_job(uow, Endpoints.SEND, total=total)
    await store.save_issue(uow, issue.model_copy(update={"job_id": job.id}))
    uow.after_commit(ctx.wake_fanout)
    return job


async def archive_image(ctx: Context, scope: Reading, query: GetArchiveImage) -> ArchiveImage:
    image = await store.sent_image(scope, query.name)
    if image is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"no sent issue has a picture {query.name}")
    bucket = await ctx.service.js.object_store(image.bucket)
    try:
        found = await bucket.get(image.object_name)
    except NotFoundError:
        raise ServiceError(ErrorCode.NOT_FOUND, f"the picture {query.name} is gone") from None
    data = found.data or b""
    if query.offset > len(data):
        raise ServiceError(
            ErrorCode.VALIDATION_FAILED,
            f"offset {query.offset} is past the end ({len(data)} bytes)",
            [FieldError(field="offset", message="past the end of the picture")],
        )
    return ArchiveImage(
        name=image.object_name,
        content_type=image.content_type,
        size=len(data),
        digest=hashlib.sha256(data).hexdigest(),
        offset=query.offset,
        data=data[query.offset : query.offset + ARCHIVE_IMAGE_CHUNK],
    )


async def archive(ctx: Context, scope: Reading, query: GetArchive) -> Archive:
    entries = [
        ArchiveEntry(
            number=i.number,
            title=i.title,
            since=i.since,
            until=i.until,
            sent_at=i.sent_at,
            archive_object=i.archive_object or domain.archive_object_name(i.number),
        )
        for i in await store.sent_issues(scope)
        if i.sent_at is not None
    ]
    rendering = None
    if query.number is not None:
        issue = await store.sent_issue_by_number(scope, query.number)
        if issue is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no sent issue has number {query.number}")
        rendering = public(issue, (await render(ctx, issue)).rendered)
    return Archive(issues=entries, issue=rendering)
