"""What the delivery worker (``delivery/``) needs from the newsletter: each queued mail
turned into the message that goes out (with its links signed now, see links.py), the
subscribers of a claimed batch looked up at once, and a subscriber's bounce counter kept
as deliveries succeed or fail."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence

from nats.js.errors import NotFoundError

from services.newsletter import delivery, domain, store
from services.newsletter.context import Context
from services.newsletter.delivery import (
    DeliveryWorker,
    MailRecord,
    MaterializedMail,
    NotReady,
    SmtpPool,
)
from services.newsletter.domain import Subscriber
from services.newsletter.issues import RenderedBundle, render
from services.newsletter.mail import compose
from services.newsletter.mail.rendering import render_mail
from services.runtime.unit_of_work import UnitOfWork

# A rendered issue is reused this long by the delivery worker; an erasure that scrubs a
# sending issue reaches the mails still to go within it.
ISSUE_CACHE_SECONDS = 60.0
# Subscribers looked up for a claimed batch are used for its mails this long at most (the
# batch waits behind the ones being sent); later, a mail looks its subscriber up again, so
# an unsubscribe or erasure stops mails already claimed within this time.
SUBSCRIBER_PREFETCH_SECONDS = 3.0
# A delivered mail resets its subscriber's bounce counter if the subscriber had any when
# the mail was materialized; what is remembered for that is forgotten after this long.
BOUNCE_MEMORY_SECONDS = 3600.0


class IssueCache:
    """Rendered issues for the delivery worker: rendered once, copied per subscriber."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, RenderedBundle | None]] = {}
        self._lock = asyncio.Lock()

    def clear(self) -> None:
        self._entries.clear()

    async def get(
        self, issue_id: str, build: Callable[[], Awaitable[RenderedBundle | None]]
    ) -> RenderedBundle | None:
        entry = self._entries.get(issue_id)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            return entry[1]
        # One render even when a whole batch of the issue's mails asks at once.
        async with self._lock:
            entry = self._entries.get(issue_id)
            if entry is not None and time.monotonic() - entry[0] < self.ttl:
                return entry[1]
            bundle = await build()
            self._entries = {
                k: v for k, v in self._entries.items() if time.monotonic() - v[0] < self.ttl
            }
            self._entries[issue_id] = (time.monotonic(), bundle)
            return bundle


class SubscriberLoader:
    """Subscribers for the mails being materialized, in as few queries as possible.

    The delivery worker hands each claimed batch to :meth:`prefetch`: one ``$in`` query for
    the whole batch, kept for :meth:`load` for up to ``max_age`` seconds, each entry used
    once. Anything else (an entry used or too old, no prefetch) is looked up on demand, and
    the requests made in one turn of the event loop share one query.
    """

    def __init__(self, ctx: Context, max_age: float = SUBSCRIBER_PREFETCH_SECONDS) -> None:
        self._ctx = ctx
        self._max_age = max_age
        self._waiting: dict[str, list[asyncio.Future[Subscriber | None]]] = {}
        self._flushing: set[asyncio.Task[None]] = set()
        # subscriber id -> (when looked up, the subscriber or None if there is none)
        self._prefetched: dict[str, tuple[float, Subscriber | None]] = {}

    async def prefetch(self, records: Sequence[MailRecord]) -> None:
        ids = {r.subscriber_id for r in records if r.subscriber_id is not None}
        if not ids:
            return
        found = await store.load_subscribers(self._ctx.service.reading(), ids)
        now = time.monotonic()
        # Entries nobody used (their mail was released or cancelled) go once too old: the
        # cache holds a few batches, whatever the number of subscribers.
        self._prefetched = {k: v for k, v in self._prefetched.items() if now - v[0] < self._max_age}
        for subscriber_id in ids:
            self._prefetched[subscriber_id] = (now, found.get(subscriber_id))

    def forget(self, subscriber_id: str) -> None:
        self._prefetched.pop(subscriber_id, None)

    async def load(self, subscriber_id: str) -> Subscriber | None:
        entry = self._prefetched.pop(subscriber_id, None)
        if entry is not None and time.monotonic() - entry[0] < self._max_age:
            return entry[1]
        future: asyncio.Future[Subscriber | None] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            task = asyncio.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        self._waiting.setdefault(subscriber_id, []).append(future)
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of this round's requests join
        waiting, self._waiting = self._waiting, {}
        try:
            found = await store.load_subscribers(self._ctx.service.reading(), waiting)
        except Exception as exc:
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for subscriber_id, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(subscriber_id))


class Outgoing:
    """The newsletter's side of delivery; one per service process."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.issues = IssueCache(ISSUE_CACHE_SECONDS)
        self.subscribers = SubscriberLoader(ctx)
        # Mail id -> (when, subscriber id) of mails materialized for a subscriber with hard
        # bounces: only their delivery resets a counter (see on_delivered).
        self.bounced_before: dict[str, tuple[float, str]] = {}
        self.worker: DeliveryWorker | None = None
        ctx.forget_subscriber = self.subscribers.forget
        ctx.forget_issues = self.issues.clear

    async def _attachment(self, a: delivery.Attachment) -> compose.Attachment:
        if a.text is not None:
            return compose.Attachment(
                filename=a.filename, content_type=a.content_type, data=a.text.encode("utf-8")
            )
        assert a.bucket is not None and a.object_name is not None  # see delivery.Attachment
        try:
            bucket = await self.ctx.service.js.object_store(a.bucket)
            found = await bucket.get(a.object_name)
        except NotFoundError:
            raise NotReady(f"{a.object_name} is not in {a.bucket} yet") from None
        return compose.Attachment(
            filename=a.filename, content_type=a.content_type, data=bytes(found.data or b"")
        )

    async def materialize(self, record: MailRecord) -> MaterializedMail | None:
        """A queued mail as bytes for SMTP; None when it is not to be sent any more."""
        ctx = self.ctx
        s = ctx.settings
        subscriber = None
        if record.subscriber_id is not None:
            subscriber = await self.subscribers.load(record.subscriber_id)
            if subscriber is None:
                return None  # merged into another subscriber meanwhile
        if not domain.may_receive(record.kind, subscriber):
            return None
        # The subscriber's address now: an ambassador may have changed it since queueing.
        to_address = subscriber.address if subscriber is not None else record.to_address
        to_name = subscriber.name if subscriber is not None else record.to_name
        if to_address is None:
            return None
        token = ctx.links.unsubscribe_token(subscriber.id) if subscriber is not None else None
        url = domain.unsubscribe_url(s.public_url, token) if token else None
        mailto = compose.mailto_unsubscribe(s.mail_unsubscribe_mailto, token) if token else None
        if record.kind in ("issue", "test_issue"):
            issue_id = record.issue_id or str(record.context.get("issue_id") or "")
            bundle = await self.issues.get(issue_id, lambda: self._bundle(issue_id))
            if bundle is None:
                return None
            ambassador = subscriber.ambassador_id if subscriber is not None else None
            message = bundle.prepared.message_for(
                to_address=to_address,
                to_name=to_name,
                message_id=record.message_id,
                unsubscribe_url=url,
                unsubscribe_mailto=mailto,
                stories_url=ctx.links.stories_url(ambassador) if ambassador else None,
            )
        else:
            attachments = [await self._attachment(a) for a in record.attachments]
            context = ctx.links.resolve(record.context)
            rendered = render_mail(
                record.kind,
                {
                    **context,
                    "unsubscribe_url": url,
                    "sender_name": s.mail_from_name,
                    "public_url": s.public_url,
                },
            )
            message = compose.compose_message(
                rendered,
                to_address=to_address,
                to_name=to_name,
                from_address=s.mail_from_address,
                from_name=s.mail_from_name,
                message_id=record.message_id,
                unsubscribe_url=url,
                unsubscribe_mailto=mailto,
                attachments=attachments,
                date=ctx.service.clock(),
            )
        if subscriber is not None and subscriber.hard_bounces > 0:
            self._remember_bounces(record.id, subscriber.id)
        return MaterializedMail(
            message=message, sender=s.mail_from_address, recipients=[to_address]
        )

    def _remember_bounces(self, mail_id: str, subscriber_id: str) -> None:
        now = time.monotonic()
        known = self.bounced_before
        if known and now - next(iter(known.values()))[0] > BOUNCE_MEMORY_SECONDS:
            # Mails that never reached on_delivered/on_hard_bounce (retried later, given up).
            self.bounced_before = known = {
                k: v for k, v in known.items() if now - v[0] <= BOUNCE_MEMORY_SECONDS
            }
        known.pop(mail_id, None)  # re-inserted last: the oldest entry stays first
        known[mail_id] = (now, subscriber_id)

    async def _bundle(self, issue_id: str) -> RenderedBundle | None:
        issue = await store.load_issue(self.ctx.service.reading(), issue_id)
        return await render(self.ctx, issue) if issue is not None else None

    async def prefetch(self, records: list[MailRecord]) -> None:
        """A claimed batch's subscribers, in one query, for materialize."""
        await self.subscribers.prefetch(records)

    async def on_delivered(self, records: list[MailRecord]) -> None:
        """A delivered mail resets its subscriber's hard bounces; most have none, and they
        are known from materialize, so a batch without any costs no write."""
        ids = []
        for record in records:
            entry = self.bounced_before.pop(record.id, None)
            if entry is not None:
                ids.append(entry[1])
        if ids:
            await store.reset_bounces(self.ctx.service.reading(), ids)

    async def on_hard_bounce(self, records: list[MailRecord]) -> None:
        for record in records:
            self.bounced_before.pop(record.id, None)
        await self.ctx.service.run(
            functools.partial(self._count_bounces, records=records), name="counting hard bounces"
        )

    async def _count_bounces(self, uow: UnitOfWork, records: list[MailRecord]) -> None:
        limit = self.ctx.settings.mail_hard_bounce_limit
        changed = []
        for record in records:
            if record.subscriber_id is None:
                continue
            subscriber = await store.load_subscriber(uow, record.subscriber_id)
            if subscriber is not None:
                changed.append(domain.hard_bounce(subscriber, limit))
        await store.record_bounces(uow, changed)

    async def run(self) -> None:
        """Sends every queued mail over a pool of persistent SMTP connections, until the
        service stops."""
        ctx = self.ctx
        pool = SmtpPool(ctx.settings)
        worker = DeliveryWorker(
            ctx.service.db,
            pool,
            ctx.settings,
            materialize=self.materialize,
            on_delivered=self.on_delivered,
            on_hard_bounce=self.on_hard_bounce,
            prefetch=self.prefetch,
            # The clock mails were queued by: when tests make time travel, due times agree.
            clock=ctx.service.clock,
            # What is queued outside this process (another replica) is found this often.
            poll_seconds=0.5,
        )
        self.worker = worker
        ctx.delivery_notify = worker.notify
        try:
            await worker.run_forever()
        finally:
            ctx.delivery_notify = None
            self.worker = None
            await pool.close()
