"""Certificate PDFs in the background: rendered after activation in a niced worker process,
put into the Object Store bucket, recorded on the ambassador and announced once
(``certificate_issued``); an erased ambassador's PDF is deleted from the bucket."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, timedelta
from multiprocessing import get_context

from nats.js.errors import ObjectNotFoundError

from contracts.ambassadors import KIND_LABELS, CertificateIssued, Status
from services.ambassadors import store
from services.ambassadors.certificate import CertificateView, render_certificate_pdf
from services.ambassadors.context import Context
from services.ambassadors.domain import Ambassador
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.workers import worker_init

log = get_logger(__name__)

# Certificates rendered between two looks for erased ambassadors' PDFs.
RENDER_BATCH = 20
# How long a claimed certificate is left to its renderer before another may take it over.
RENDER_LEASE = timedelta(seconds=60)
# Rendered PDFs are recorded together, at least this often while a batch renders.
RECORD_EVERY_SECONDS = 0.5
# Unless requests paused for QUIET_SECONDS, a PDF is rendered every RENDER_PACE_UNDER_LOAD
# seconds at most (looking again every BUSY_CHECK_SECONDS).
QUIET_SECONDS = 0.5
BUSY_CHECK_SECONDS = 0.05
RENDER_PACE_UNDER_LOAD = 30.0
# How often pending certificates are looked for when nothing woke the loop.
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class StoredPdf:
    """A certificate PDF put into the bucket, not yet recorded on its ambassador."""

    ambassador: Ambassador
    object_name: str
    digest: str
    size: int


def _certificate_view(ctx: Context, a: Ambassador) -> CertificateView:
    assert a.profile is not None and a.certificate is not None
    return CertificateView(
        holder_name=a.profile.name,
        organisation=a.profile.organisation,
        kind_label=KIND_LABELS[a.kind],
        issued_on=a.certificate.issued_at.astimezone(UTC).date(),
        number=a.certificate.number,
        verification_code=a.certificate.verification_code,
        verify_url=f"{ctx.settings.public_url.rstrip('/')}/verify/{a.certificate.verification_code}",
    )


async def _render(ctx: Context, certificate_view: CertificateView) -> bytes:
    loop = asyncio.get_running_loop()
    if ctx.renderer is None:
        # WeasyPrint holds the GIL for ~100 ms; a worker process keeps commands responsive,
        # and a nice one lets sign-ups win the CPU when a backlog of certificates renders.
        ctx.renderer = ProcessPoolExecutor(
            max_workers=1, mp_context=get_context("spawn"), initializer=worker_init
        )
    pool = ctx.renderer
    try:
        return await loop.run_in_executor(pool, render_certificate_pdf, certificate_view)
    except BrokenProcessPool:
        # The worker died (killed, out of memory): the next attempt gets a fresh one
        # instead of failing forever on the broken pool.
        if ctx.renderer is pool:
            ctx.renderer = None
        pool.shutdown(wait=False, cancel_futures=True)
        raise


def stop_renderer(ctx: Context) -> None:
    if ctx.renderer is not None:
        ctx.renderer.shutdown(wait=False, cancel_futures=True)
        ctx.renderer = None


async def store_certificate_pdf(ctx: Context, ambassador: Ambassador) -> StoredPdf:
    """Render the PDF and put it into the bucket (a re-put after a crash overwrites it)."""
    pdf = await _render(ctx, _certificate_view(ctx, ambassador))
    assert ambassador.certificate is not None
    object_name = ambassador.certificate.object_name
    bucket = await ctx.service.js.object_store(ctx.settings.certificate_bucket)
    info = await bucket.put(object_name, pdf)
    log.info(
        "certificate rendered",
        number=ambassador.certificate.number,
        ambassador_id=ambassador.id,
        size=len(pdf),
    )
    return StoredPdf(ambassador, object_name, info.digest or "", info.size or len(pdf))


async def record(ctx: Context, uow: UnitOfWork, stored: Sequence[StoredPdf]) -> list[Ambassador]:
    """Record rendered PDFs on their ambassadors and announce each once, in one unit of
    work (one commit for a batch of renders rather than one each)."""
    results: list[Ambassador] = []
    for item in stored:
        current = await store.load(uow, item.ambassador.id)
        if current is None or current.status == Status.ERASED:
            # Erased while this PDF rendered: the PDF goes (it carries the name).
            uow.after_commit(functools.partial(delete_pdf, ctx, item.object_name))
        if (
            current is None
            or current.certificate is None
            or current.certificate.object_name != item.object_name
            or current.status != Status.ACTIVE
        ):
            results.append(item.ambassador)  # withdrawn or erased meanwhile
            continue
        if current.certificate.rendered_at is not None:
            results.append(current)
            continue
        cert = current.certificate.model_copy(
            update={"rendered_at": uow.now, "digest": item.digest, "size": item.size}
        )
        rendered = current.model_copy(update={"certificate": cert})
        await store.save(uow, rendered)
        uow.emit(
            CertificateIssued(
                ambassador_id=current.id,
                number=cert.number,
                bucket=ctx.settings.certificate_bucket,
                object_name=item.object_name,
                digest=item.digest,
                size=item.size,
            )
        )
        results.append(rendered)
    return results


async def render_certificate(ctx: Context, ambassador: Ambassador) -> Ambassador:
    """Render the PDF into the bucket, then record it and announce it (once)."""
    stored = [await store_certificate_pdf(ctx, ambassador)]
    recorded = await ctx.service.run(
        functools.partial(record, ctx, stored=stored), name="recording a certificate"
    )
    return recorded[0]


async def delete_pdf(ctx: Context, object_name: str) -> None:
    bucket = await ctx.service.js.object_store(ctx.settings.certificate_bucket)
    with contextlib.suppress(ObjectNotFoundError):  # never rendered, or deleted already
        await bucket.delete(object_name)


async def step(ctx: Context) -> bool:
    """One round of the certificate loop: render what is pending (up to a batch), delete
    erased ambassadors' PDFs; True while there is more to render."""
    rendered = await _render_pending(ctx)
    await _delete_erased_pdfs(ctx)
    return rendered >= RENDER_BATCH


async def _render_pending(ctx: Context) -> int:
    """Render up to a batch of certificates that no other replica is rendering."""
    scope = ctx.service.reading()
    claimed = await store.claim_certificates_to_render(scope, RENDER_LEASE, RENDER_BATCH)
    stored: list[StoredPdf] = []
    since = time.monotonic()
    for i, ambassador in enumerate(claimed):
        await _yield_to_requests(ctx)
        try:
            stored.append(await store_certificate_pdf(ctx, ambassador))
        except BrokenProcessPool:
            # The renderer process was killed (at shutdown the whole process group is):
            # hand the rest back, and pause before a fresh process is started, so that a
            # shutdown is not kept waiting for one.
            log.warning("certificate renderer died", ambassador_id=ambassador.id)
            for left in claimed[i:]:
                await store.release_render_claim(scope, left.id)
            await asyncio.sleep(1.0)
            break
        except Exception:
            # Any replica tries again once the claim's lease has run out.
            log.exception("certificate rendering failed", ambassador_id=ambassador.id)
        if stored and time.monotonic() - since >= RECORD_EVERY_SECONDS:
            await _record(ctx, stored)
            stored, since = [], time.monotonic()
    if stored:
        await _record(ctx, stored)
    return len(claimed)


async def _yield_to_requests(ctx: Context) -> None:
    """While requests come in, render one PDF per RENDER_PACE_UNDER_LOAD at most.

    A PDF costs ~100 ms of CPU; on our two cores that shows in the answers people are
    waiting for (niceness alone does not prevent it), while a certificate that comes a
    minute later harms no one. Under constant load the pace still makes progress; once
    requests pause for QUIET_SECONDS, the backlog renders at full speed.
    """
    waited = 0.0
    while not ctx.service.quiet_for(QUIET_SECONDS) and waited < RENDER_PACE_UNDER_LOAD:
        await asyncio.sleep(BUSY_CHECK_SECONDS)
        waited += BUSY_CHECK_SECONDS


async def _record(ctx: Context, stored: list[StoredPdf]) -> None:
    try:
        await ctx.service.run(
            functools.partial(record, ctx, stored=stored), name="recording certificates"
        )
    except Exception:
        # The PDFs are in the bucket; they are rendered and recorded again after the lease.
        log.exception("recording rendered certificates failed", count=len(stored))


async def _delete_erased_pdfs(ctx: Context) -> None:
    """Each erased ambassador's PDF on its own: one that fails is tried on the next round."""
    scope = ctx.service.reading()
    for doc in await store.certificates_to_purge(scope, 50):
        try:
            await delete_pdf(ctx, doc["certificate"]["object_name"])
            await store.mark_purged(scope, doc["_id"])
        except Exception:
            log.exception("deleting an erased certificate failed", ambassador_id=doc["_id"])
