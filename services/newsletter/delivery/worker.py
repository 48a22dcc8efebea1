"""The delivery loop: claim due mails, turn each into bytes, send, mark the outcome.

Mails are claimed in batches (one set of queries per batch, not per mail, their subscribers
looked up by a ``prefetch`` callback per batch too) and marked in batches (one update per
outcome, up to a batch or ``flush_seconds`` at a time). :meth:`DeliveryWorker.run_forever`
keeps the SMTP connections busy: the next batch is claimed while the last one is still
being sent, and results are marked while later mails go out. Bulk mail (an issue) is
claimed a whole queued batch at a time and written to ``mails`` once, finished (see
:mod:`services.newsletter.delivery.batches`); everything else one record per mail.
:meth:`DeliveryWorker.deliver_once` does one batch start to finish, for tests and one-off
runs.

What is guaranteed: a mail is marked only by the worker that holds its claim; a worker that
dies leaves its mails ``sending`` until the lease runs out, and then any worker sends them
again with the same Message-ID. A worker stopping cleanly lets its sends finish, marks
them, and hands back the mails it had claimed but not started.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from services.newsletter.delivery import batches, store
from services.newsletter.delivery.smtp import SmtpPool
from services.newsletter.delivery.states import (
    Cancelled,
    DeliveryFailure,
    MailRecord,
    MailState,
    MaterializedMail,
    NotReady,
    TransientFailure,
    Update,
    apply,
    cancelled,
    delivered,
    not_ready,
    permanent_failure,
    release,
    scrub,
    transient_failure,
)
from services.newsletter.settings import NewsletterSettings
from services.runtime import background, metrics
from services.runtime.logging import get_logger
from services.runtime.mongo import DatabaseT

__all__ = ["DeliveryWorker", "Materialize", "RecordsCallback", "batch_size_for", "utc_now"]

log = get_logger(__name__)

Materialize = Callable[[MailRecord], Awaitable[MaterializedMail | None] | MaterializedMail | None]
"""Turns a claimed record into what goes on the wire; None (or raising Cancelled) cancels
the mail, raising NotReady requeues it shortly, any other exception is a transient failure."""

RecordsCallback = Callable[[list[MailRecord]], Awaitable[None] | None]
"""Called after the marks committed, with the records as they now are (one batch at a time).
As ``prefetch``: called with each claimed batch before its mails are materialized, to load
what they need in one query instead of one per mail; a failure there is logged and ignored
(materialize must still work without it)."""

Outcome = Literal["sent", "retry", "failed", "bounced", "not_ready", "cancelled", "released"]


# Due ids fetched per query, in batches; how long they are trusted, and how soon a
# notify() may trigger a fresh fetch.
CANDIDATE_BATCHES = 40
# Batches claimed beyond the one being sent, so a slow claim never leaves SMTP idle.
BATCHES_AHEAD = 2
CANDIDATES_MAX_AGE = timedelta(seconds=5)
CANDIDATES_MIN_AGE = timedelta(seconds=0.2)


def utc_now() -> datetime:
    return datetime.now(UTC)


def batch_size_for(settings: NewsletterSettings) -> int:
    """Mails claimed at once, per-mail or as one bulk batch (the fan-out queues batches of
    this size)."""
    batch = settings.mail_batch_size
    rate = settings.mail_rate_per_second
    if rate > 0:
        # Up to BATCHES_AHEAD + 1 batches are claimed at once; at this rate their last
        # mail must go out well within the lease, or another worker would take it over
        # and send it a second time.
        span = 2 * (BATCHES_AHEAD + 1)
        batch = min(batch, max(1, int(rate * settings.mail_send_lease_seconds / span)))
    return batch


@dataclass(frozen=True)
class _Result:
    record: MailRecord
    update: Update
    outcome: Outcome


class DeliveryWorker:
    """Sends queued mails; several may run (in one process or many), each with its own id."""

    def __init__(
        self,
        db: DatabaseT,
        pool: SmtpPool,
        settings: NewsletterSettings,
        materialize: Materialize,
        on_delivered: RecordsCallback | None = None,
        on_hard_bounce: RecordsCallback | None = None,
        clock: Callable[[], datetime] = utc_now,
        *,
        prefetch: RecordsCallback | None = None,
        worker_id: str | None = None,
        poll_seconds: float = 1.0,
        flush_seconds: float = 0.5,
    ) -> None:
        self._db = db
        self._pool = pool
        self._settings = settings
        self._materialize = materialize
        self._on_delivered = on_delivered
        self._on_hard_bounce = on_hard_bounce
        self._prefetch = prefetch
        self._clock = clock
        self.worker_id = worker_id or f"mail-{uuid.uuid4().hex}"
        self._poll = poll_seconds
        self._flush = flush_seconds
        self._lease = timedelta(seconds=settings.mail_send_lease_seconds)
        self.batch_size = batch_size_for(settings)
        # Mails materialized or being sent at once: enough to render the next ones while the
        # connections are busy, few enough that message bytes in memory stay bounded.
        self._slots = asyncio.Semaphore(pool.size * 2)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._stopping = False
        self._closing = False
        # Set once stopping has let every send finish: a mark failing after that is left
        # to the leases rather than retried.
        self._closed = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[_Result]] = {}
        # Sent (or failed) but not marked yet: still "sending" in the database, so a lease
        # that runs out meanwhile must not make this worker claim and send it again.
        self._unmarked: set[str] = set()
        self._results: list[_Result] = []
        self._task: asyncio.Task[None] | None = None
        # Due mail ids fetched ahead and claimed a batch at a time; see _refresh.
        self._candidates: collections.deque[str] = collections.deque()
        self._candidates_full = False
        self._refreshed_at = datetime.min.replace(tzinfo=UTC)
        self._refresh_asked = False
        # Mails claimed as part of a bulk batch (see batches), by id: their batch's.
        self._batch_of: dict[str, str] = {}

    # ------------------------------------------------------------------ control

    def notify(self) -> None:
        """Call after a commit that queued mail: it goes out without waiting for a poll."""
        self._refresh_asked = True
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name=f"delivery-{self.worker_id}")

    async def stop(self) -> None:
        """Let sends in flight finish and mark them; hand back claimed mails not started."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        self._progress.set()
        if self._task is not None:
            await self._task

    # ------------------------------------------------------------------ one batch

    async def deliver_once(self) -> int:
        """Claim one batch, send it, mark it; returns how many mails were claimed."""
        records = await self._claim(self.batch_size)
        if not records:
            return 0
        ready = self._start_prefetch(records)
        results = await asyncio.gather(*(self._process(record, ready) for record in records))
        await self._finish(list(results))
        return len(records)

    # ------------------------------------------------------------------ the loop

    async def run_forever(self, wakeup: asyncio.Event | None = None) -> None:
        """Deliver until :meth:`stop` (or cancellation, which stops just as cleanly).

        ``wakeup``: an event the caller sets after queueing mail (the same as notify()).
        """
        if wakeup is not None:
            self._wake = wakeup
        marker = asyncio.create_task(self._mark_loop(), name=f"delivery-marks-{self.worker_id}")
        log.info("delivery worker started", worker_id=self.worker_id, batch=self.batch_size)
        try:
            await self._feed()
        finally:
            # Also on cancellation: the sends already on the wire finish and are marked,
            # so a clean shutdown leaves nothing for a lease to recover.
            await self._drain(marker)
            log.info("delivery worker stopped", worker_id=self.worker_id)

    async def _feed(self) -> None:
        while not self._stopping:
            if len(self._in_flight) > BATCHES_AHEAD * self.batch_size:
                # Enough claimed ahead to cover a slow claim query: wait for room rather
                # than claim mails that would sit in memory with their lease running.
                self._progress.clear()
                await self._progress.wait()
                continue
            try:
                # The loop must outlive a database outage: a failed claim is retried.
                claimed = await background.retry(
                    self._claim_and_start, what="claiming mail to deliver", cancel_on=self._stop
                )
            except background.Cancelled:
                return
            if claimed < self.batch_size:
                # Caught up: sleep until mail is queued (notify) or a retry falls due.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                self._wake.clear()

    async def _claim_and_start(self) -> int:
        records = await self._claim(self.batch_size)
        # What the batch's mails need (their subscribers), in one query rather than one per
        # mail. The mails are in flight from here on (so stopping marks or releases them
        # whatever happens); each waits for the lookup before it materializes.
        ready = self._start_prefetch(records)
        for record in records:
            self._spawn(record, ready)
        return len(records)

    def _start_prefetch(self, records: list[MailRecord]) -> asyncio.Task[None] | None:
        if self._prefetch is None or not records:
            return None
        return asyncio.create_task(self._call(self._prefetch, records), name="mail-prefetch")

    def _spawn(self, record: MailRecord, ready: asyncio.Task[None] | None = None) -> None:
        task = asyncio.create_task(self._process(record, ready), name=f"mail-{record.id}")
        self._in_flight[record.id] = task
        task.add_done_callback(functools.partial(self._done, record.id))

    def _done(self, mail_id: str, task: asyncio.Task[_Result]) -> None:
        self._in_flight.pop(mail_id, None)
        if not task.cancelled() and task.exception() is None:
            self._unmarked.add(mail_id)
            self._results.append(task.result())
            self._results_ready.set()
            if len(self._results) >= self.batch_size:
                self._batch_full.set()
        elif not task.cancelled():
            # _process catches everything; reaching here is a bug. The mail stays sending
            # and its lease brings it back.
            log.error("mail task crashed", mail_id=mail_id, error=repr(task.exception()))
        self._progress.set()

    async def _mark_loop(self) -> None:
        while True:
            await self._results_ready.wait()
            if not self._closing and len(self._results) < self.batch_size:
                # Let more results arrive, up to a batch's worth: one statement for many
                # mails (each mark costs SecantusDB a commit, delivery competes for it).
                self._batch_full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_full.wait(), timeout=self._flush)
            batch, self._results = self._results, []
            self._results_ready.clear()
            if batch:
                await self._finish_retrying(batch)
                self._unmarked.difference_update(result.record.id for result in batch)
            if self._closing and not self._results:
                return

    async def _drain(self, marker: asyncio.Task[None]) -> None:
        self._stopping = True
        self._progress.set()
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        self._closing = True
        self._closed.set()
        self._results_ready.set()
        self._batch_full.set()
        await marker

    # ------------------------------------------------------------------ one mail

    async def _claim(self, limit: int) -> list[MailRecord]:
        now = self._clock()
        expired: list[str] = []
        if self._needs_refresh(now):
            expired = await self._refresh(now, limit)
        take = self._take(limit)
        if len(take) < limit and self._candidates_full:
            # The cache ran dry but the query had more to give: ask again now, not a poll later.
            expired = await self._refresh(now, limit)
            take += self._take(limit - len(take))
        # Our own mail whose lease ran out while in flight or waiting for its mark: the
        # running send or the pending mark finishes it.
        expired = [mail_id for mail_id in expired if not self._ours(mail_id)]
        records = await store.claim_ids(self._db, self.worker_id, take, expired, now, self._lease)
        records = [record for record in records if not self._ours(record.id)]
        if len(records) < limit and not self._stopping:
            # Mail someone waits for goes first; bulk mail fills what is left, a batch at once.
            busy = frozenset(self._in_flight) | frozenset(self._unmarked)
            claimed = await batches.claim_batch(self._db, self.worker_id, now, self._lease, busy)
            if claimed is not None:
                for record in claimed.records:
                    self._batch_of[record.id] = claimed.id
                records += claimed.records
        return records

    def _ours(self, mail_id: str) -> bool:
        return mail_id in self._in_flight or mail_id in self._unmarked

    def _needs_refresh(self, now: datetime) -> bool:
        age = now - self._refreshed_at
        if not self._candidates or age >= CANDIDATES_MAX_AGE:
            return True
        # New mail was queued (notify): a confirmation should not wait behind the cache.
        return self._refresh_asked and age >= CANDIDATES_MIN_AGE

    async def _refresh(self, now: datetime, limit: int) -> list[str]:
        """Fetch many due ids at once (SecantusDB's cost is per due mail, not per id returned)."""
        want = limit * CANDIDATE_BATCHES
        self._refresh_asked = False
        self._refreshed_at = now
        self._candidates = collections.deque(await store.due_ids(self._db, now, want))
        self._candidates_full = len(self._candidates) >= want
        return await store.expired_ids(self._db, now, limit)

    def _take(self, limit: int) -> list[str]:
        take: list[str] = []
        while self._candidates and len(take) < limit:
            mail_id = self._candidates.popleft()
            if not self._ours(mail_id):
                take.append(mail_id)
        return take

    async def _process(
        self, record: MailRecord, ready: asyncio.Task[None] | None = None
    ) -> _Result:
        if ready is not None and not ready.done():
            # wait(), not await: never raises, and leaves the shared lookup to the others.
            await asyncio.wait([ready])
        async with self._slots:
            if self._stopping:
                return _Result(record, release(record), "released")
            if record.to_address is None:
                return self._cancel(record, "recipient erased")
            try:
                made = self._materialize(record)
                mail = await made if inspect.isawaitable(made) else made
            except NotReady as exc:
                return _Result(record, not_ready(record, str(exc), self._clock()), "not_ready")
            except Cancelled as exc:
                return self._cancel(record, str(exc) or "cancelled")
            except Exception as exc:
                log.exception("materializing a mail failed", mail_id=record.id, kind=record.kind)
                failure = TransientFailure(f"materialize: {type(exc).__name__}: {exc}")
                return self._transient(record, failure)
            if mail is None:
                return self._cancel(record, "nothing to send")
            try:
                await self._pool.send(mail.message, mail.sender, mail.recipients)
            except DeliveryFailure as failure:
                if failure.permanent:
                    update = permanent_failure(record, failure, self._clock())
                    return _Result(record, update, "bounced")
                return self._transient(record, failure)
            return _Result(record, delivered(record, self._clock()), "sent")

    def _cancel(self, record: MailRecord, reason: str) -> _Result:
        return _Result(record, cancelled(record, reason, self._clock()), "cancelled")

    def _transient(self, record: MailRecord, failure: DeliveryFailure) -> _Result:
        update = transient_failure(
            record,
            failure,
            self._clock(),
            max_attempts=self._settings.mail_max_attempts,
            backoff=self._settings.mail_retry_backoff_seconds,
        )
        gave_up = update["$set"]["state"] == MailState.FAILED.value
        return _Result(record, update, "failed" if gave_up else "retry")

    # ------------------------------------------------------------------ marking

    async def _finish_retrying(self, results: list[_Result]) -> None:
        try:
            await background.retry(
                functools.partial(self._finish, results),
                what="marking mails",
                wait_max=10.0,
                cancel_on=self._closed,
            )
        except background.Cancelled:
            # Shutting down: the leases bring these mails back after a restart.
            log.error("marking mails failed, leaving them to their lease", count=len(results))

    async def _finish(self, results: list[_Result]) -> None:
        # One time for the whole batch's deliveries, so they share one update statement.
        now = self._clock()
        results = [
            _Result(r.record, delivered(r.record, now), r.outcome) if r.outcome == "sent" else r
            for r in results
        ]
        single = [r for r in results if r.record.id not in self._batch_of]
        applied = await store.mark(
            self._db, self.worker_id, [(result.record, result.update) for result in single]
        )
        bulk = [r for r in results if r.record.id in self._batch_of]
        applied |= await self._record_bulk(bulk, now)
        for result in results:
            self._batch_of.pop(result.record.id, None)
        mine = [result for result in results if result.record.id in applied]
        counts: Counter[str] = Counter(result.outcome for result in mine)
        metrics.count_mails(self._db, "sent", counts["sent"])
        # By the state written: a mail never ready in time fails too, not only a refused one.
        failed = [r for r in mine if r.update["$set"].get("state") == MailState.FAILED.value]
        metrics.count_mails(self._db, "failed", len(failed))
        for result in mine:
            if result.outcome in ("retry", "failed", "bounced", "not_ready"):
                after = result.update["$set"]
                log.warning(
                    "mail not delivered",
                    mail_id=result.record.id,
                    kind=result.record.kind,
                    outcome=result.outcome,
                    attempts=after.get("attempts", result.record.attempts),
                    code=after.get("last_code"),
                    error=scrub(str(after.get("last_error")), result.record.to_address),
                )
        if len(mine) < len(results):
            log.warning("mails taken over by another worker", count=len(results) - len(mine))
        if set(counts) - {"sent"}:
            log.info("mail batch marked", worker_id=self.worker_id, **counts)
        else:
            log.debug("mail batch marked", worker_id=self.worker_id, **counts)
        await self._call(
            self._on_delivered,
            [apply(r.record, r.update) for r in mine if r.outcome == "sent"],
        )
        await self._call(
            self._on_hard_bounce,
            [apply(r.record, r.update) for r in mine if r.outcome == "bounced"],
        )

    async def _record_bulk(self, results: list[_Result], now: datetime) -> set[str]:
        """Bulk mails are written to ``mails`` once, finished (see batches.record); a batch
        whose mails were handed back (the worker is stopping) is released."""
        by_batch: dict[str, list[_Result]] = {}
        for result in results:
            by_batch.setdefault(self._batch_of[result.record.id], []).append(result)
        applied: set[str] = set()
        for batch_id, group in by_batch.items():
            finished = [apply(r.record, r.update) for r in group if r.outcome != "released"]
            applied |= await batches.record(self._db, batch_id, finished, now)
            if len(finished) < len(group):
                await batches.release_batch(self._db, batch_id, self.worker_id)
                # Released mails were not written: they count as handled, not applied.
                applied |= {r.record.id for r in group if r.outcome == "released"}
        return applied

    async def _call(self, callback: RecordsCallback | None, records: list[MailRecord]) -> None:
        if callback is None or not records:
            return
        try:
            outcome = callback(records)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            # The marks are committed; a failing callback must not resend or unmark mail.
            log.exception(
                "delivery callback failed",
                callback=getattr(callback, "__name__", repr(callback)),
                mail_ids=[record.id for record in records][:20],
            )
