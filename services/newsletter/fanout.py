"""The fan-out: an issue being sent is queued for every confirmed subscriber, in bulk
delivery batches, then marked sent (once) with its public web version in the archive
bucket. Resumable at any point; also rewrites the web version of an issue an erasure
scrubbed."""

from __future__ import annotations

import functools

from contracts.newsletter import ARCHIVE_BUCKET, IssueSent, IssueState
from services.newsletter import delivery, domain, store
from services.newsletter.context import Context
from services.newsletter.domain import Issue
from services.newsletter.issues import render
from services.newsletter.views import issue_summary
from services.runtime import jobs
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)

# How often issues left sending (by a crash) and stale web versions are looked for when
# nothing woke the fan-out.
POLL_SECONDS = 10.0


async def fanout(ctx: Context, issue_id: str) -> Issue | None:
    """Queue the issue for every confirmed subscriber, then mark it sent (once).

    The mails are queued as bulk batches (see ``delivery.batches``) of ``batch_size_for``
    subscribers each, which the delivery worker claims a batch at a time; a page of
    ``newsletter_fanout_page`` batches is read and written at once. Resumable at any point:
    subscribers are taken in id order from the stored cursor, and a batch is named after
    the cursor it starts after, so a batch queued again after a crash (before the cursor
    was stored) is found, and the fan-out goes on after it.
    """
    scope = ctx.service.reading()
    db = scope.db
    issue = await store.load_issue(scope, issue_id)
    if issue is None or issue.state != IssueState.SENDING:
        return issue
    cursor = issue.fanout_cursor
    size = delivery.batch_size_for(ctx.settings)
    page_batches = ctx.settings.newsletter_fanout_page
    queued = 0
    scan = store.ConfirmedScan()
    while page := await store.confirmed_after(scope, cursor, size * page_batches, scan):
        now = ctx.service.clock()
        chain: list[delivery.PlannedBatch] = []
        after = cursor
        for start in range(0, len(page), size):
            subscribers = page[start : start + size]
            records = [
                delivery.new_mail(
                    kind="issue",
                    dedupe_key=f"issue:{issue.id}:{doc['_id']}",
                    to_address=doc["address"],
                    to_name=doc.get("name"),
                    subscriber_id=doc["_id"],
                    issue_id=issue.id,
                    message_id_domain=ctx.settings.mail_message_id_domain,
                    now=now,
                )
                for doc in subscribers
                if doc.get("address")
            ]
            last = str(subscribers[-1]["_id"])
            batch_id = delivery.batch_id_for(issue.id, after)
            chain.append(delivery.PlannedBatch(batch_id, issue.id, records, last))
            after = last
        first = cursor == issue.fanout_cursor
        queued_now, cursor = await delivery.queue_batches(db, chain, now)
        queued += queued_now
        assert cursor is not None  # the chain is not empty
        await store.advance_fanout(scope, issue.id, cursor)
        if issue.job_id is not None:
            so_far = (await delivery.issue_progress(db, issue.id)).recipients
            await jobs.progress(scope, issue.job_id, done=so_far)
        if first:
            # The worker starts on the first batches; it finds the later ones by itself
            # when it runs out.
            ctx.notify_delivery()
    recipients = (await delivery.issue_progress(db, issue.id)).recipients
    log.info("issue fanned out", issue_id=issue.id, number=issue.number, queued_now=queued)
    await store_archive(ctx, issue)
    return await ctx.service.run(
        functools.partial(_mark_sent, issue=issue, recipients=recipients),
        name="marking an issue sent",
    )


async def _mark_sent(uow: UnitOfWork, issue: Issue, recipients: int) -> Issue:
    current = await store.load_issue(uow, issue.id)
    if current is None or current.state != IssueState.SENDING:
        return current or issue  # another replica finished it
    sent = domain.mark_sent(current, recipients=recipients, now=uow.now)
    await store.save_issue(uow, sent)
    if sent.job_id is not None:
        # Subscribers who left during the fan-out are not counted: the total is what went.
        await jobs.progress(uow, sent.job_id, done=recipients, total=recipients)
        await jobs.finish(uow, sent.job_id, issue_summary(sent))
    assert sent.sent_at is not None and sent.archive_object is not None
    uow.emit(
        IssueSent(
            issue_id=sent.id,
            number=sent.number,
            title=sent.title,
            sent_at=sent.sent_at,
            recipients=recipients,
            archive_object=sent.archive_object,
        )
    )
    return sent


async def store_archive(ctx: Context, issue: Issue) -> None:
    """The issue's web version into the archive bucket (a re-put overwrites)."""
    bundle = await render(ctx, issue)
    bucket = await ctx.service.js.object_store(ARCHIVE_BUCKET)
    await bucket.put(
        domain.archive_object_name(issue.number), bundle.rendered.archive.html.encode()
    )


async def step(ctx: Context) -> bool:
    """One round of the fan-out loop: issues being sent (also those a crash interrupted),
    then web versions to rewrite. An issue that fails is logged and tried on the next round;
    the others go on."""
    scope = ctx.service.reading()
    for issue_id in await store.sending_issue_ids(scope):
        try:
            await fanout(ctx, issue_id)
        except Exception:
            log.exception("issue fan-out failed, trying again", issue_id=issue_id)
    for issue_id in await store.stale_archive_ids(scope):
        try:
            issue = await store.load_issue(scope, issue_id)
            if issue is not None:
                await store_archive(ctx, issue)
                await store.archive_refreshed(scope, issue_id)
        except Exception:
            log.exception("rewriting an archived issue failed", issue_id=issue_id)
    return False
