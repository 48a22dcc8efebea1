"""One function per command, query and background job: load, call the domain, save + outbox."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from multiprocessing import get_context
from pathlib import Path

from nats.js.errors import ObjectNotFoundError
from pydantic import ValidationError

from contracts.ambassadors import (
    Activated,
    AmbassadorPage,
    AmbassadorView,
    CertificateIssued,
    CertificateLocation,
    CertificateRef,
    CertificateSummary,
    Confirm,
    Directory,
    DirectoryEntry,
    Erase,
    Erased,
    GetCertificate,
    Goals,
    ImportCsv,
    ImportResult,
    ImportRowError,
    ListAmbassadors,
    ProfileUpdated,
    ShowAmbassador,
    SignedUp,
    SignUp,
    SignUpResult,
    Source,
    Status,
    UpdateProfile,
    VerifyCertificate,
    VerifyResult,
    Withdraw,
    Withdrawn,
)
from contracts.envelope import Event
from contracts.errors import ErrorCode, ServiceError
from services.ambassadors import domain, store
from services.ambassadors.certificate import CertificateView, render_certificate_pdf
from services.ambassadors.domain import Ambassador
from services.ambassadors.importing import parse_ambassador_csv
from services.runtime.logging import get_logger
from services.runtime.mongo import Session
from services.runtime.outbox import purge_published_events
from services.runtime.rpc import field_errors
from services.runtime.service import Service
from services.runtime.settings import Settings
from services.runtime.tokens import token_hash
from services.runtime.workers import worker_init

log = get_logger(__name__)


def utcnow() -> datetime:
    # MongoDB keeps milliseconds: a reply must not show a time that a later read no longer has.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


@dataclass
class Context:
    service: Service
    clock: Callable[[], datetime] = utcnow
    renderer: ProcessPoolExecutor | None = None
    render_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    serials: store.CertificateSerials = field(default_factory=store.CertificateSerials)

    @property
    def settings(self) -> Settings:
        return self.service.settings


# ---------------------------------------------------------------- views


def view(a: Ambassador) -> AmbassadorView:
    p = a.profile
    cert = a.certificate
    return AmbassadorView(
        id=a.id,
        status=a.status,
        source=a.source,
        name=p.name if p else None,
        email=p.email if p else None,
        phone=p.phone if p else None,
        kind=a.kind,
        organisation=p.organisation if p else None,
        website=p.website if p else None,
        description=p.description if p else None,
        themes=list(a.themes),
        core_areas=list(a.core_areas),
        skills=list(p.skills) if p else [],
        public=p.public if p else False,
        consent_version=a.consent_version,
        consented_at=a.consented_at,
        signed_up_at=a.signed_up_at,
        activated_at=a.activated_at,
        withdrawn_at=a.withdrawn_at,
        erased_at=a.erased_at,
        certificate=CertificateSummary(
            number=cert.number,
            verification_code=cert.verification_code,
            issued_at=cert.issued_at,
            revoked_at=cert.revoked_at,
        )
        if cert
        else None,
    )


def _not_found(ambassador_id: str) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, f"ambassador {ambassador_id} not found")


# ---------------------------------------------------------------- activation


async def _activate(
    ctx: Context, ambassador: Ambassador, session: Session, cause: Event | None
) -> tuple[Ambassador, Activated]:
    db = ctx.service.db
    now = ctx.clock()
    if ambassador.certificate is not None:
        # Rejoining keeps the number but gets a fresh code: the old paper stays revoked.
        number = ambassador.certificate.number
    else:
        number = domain.certificate_number(now.year, await ctx.serials.take(db, now.year))
    # 30^8 codes: a clash is practically impossible, and the unique index turns one into a
    # failed (retried) command rather than two certificates with one code.
    code = domain.new_verification_code()
    certificate = domain.new_certificate(ambassador.id, number, code, now)
    active = domain.activate(ambassador, now=now, certificate=certificate)
    assert active.profile is not None
    event = Activated(
        ambassador_id=active.id,
        name=active.profile.name,
        email=active.profile.email,
        kind=active.kind,
        organisation=active.profile.organisation,
        public=active.profile.public,
        themes=list(active.themes),
        core_areas=list(active.core_areas),
        skills=list(active.profile.skills),
        certificate=CertificateRef(
            number=number,
            verification_code=code,
            bucket=ctx.settings.certificate_bucket,
            object_name=certificate.object_name,
        ),
        correlation_id=cause.correlation_id or cause.event_id if cause else None,
        causation_id=cause.event_id if cause else None,
    )
    return active, event


# ---------------------------------------------------------------- commands


async def sign_up(ctx: Context, cmd: SignUp, source: Source | None = None) -> SignUpResult:
    profile = domain.validate_sign_up(cmd.model_dump(exclude={"consent", "staff"}), cmd.consent)
    s = ctx.settings
    db = ctx.service.db

    attempts = 0
    # Ids this call's earlier attempts inserted: if a commit went through but its answer was
    # lost (a database restart forgets the transaction, so the driver runs ``work`` again),
    # the next attempt finds its own sign-up and must report it, not a conflict.
    tried: set[str] = set()

    async def work(session: Session) -> tuple[SignUpResult, Sequence[Event]]:
        nonlocal attempts
        attempts += 1
        now = ctx.clock()
        # Most sign-ups are new addresses: the first attempt just inserts, and the unique
        # index on the address turns a known one into a duplicate-key error, upon which
        # the transaction runs again and looks the address up (a lookup every time would
        # cost each sign-up a query for the rare re-sign-up's sake).
        existing = (
            await store.load_by_email_key(db, domain.email_key(profile.email), session)
            if attempts > 1
            else None
        )
        if existing is not None and existing.id in tried:
            # Committed with its events by an earlier attempt; their outbox entries go
            # out once the lease they were born with runs out.
            return SignUpResult(ambassador=view(existing), token_reissued=False), []
        outcome = domain.sign_up(
            profile,
            staff=cmd.staff,
            source=source,
            consent_version=s.consent_text_version,
            now=now,
            token_ttl=timedelta(hours=s.confirmation_token_ttl_hours),
            existing=existing,
        )
        ambassador = outcome.ambassador
        tried.add(ambassador.id)
        signed = SignedUp(
            ambassador_id=ambassador.id,
            name=profile.name,
            email=profile.email,
            kind=profile.kind,
            source=ambassador.source,
            confirmation_token=outcome.token,
            token_expires_at=ambassador.token_expires_at,
            consent_version=s.consent_text_version,
        )
        events: list[Event] = [signed]
        if cmd.staff:
            ambassador, activated = await _activate(ctx, ambassador, session, signed)
            events.append(activated)
        if existing is None:
            await store.insert(db, ambassador, session)
        else:
            await store.save(db, ambassador, session)
        result = SignUpResult(ambassador=view(ambassador), token_reissued=outcome.token_reissued)
        return result, events

    result = await ctx.service.transaction(work)
    if cmd.staff:
        ctx.render_wakeup.set()
    log.debug(
        "sign-up handled",
        ambassador_id=result.ambassador.id,
        status=result.ambassador.status.value,
        token_reissued=result.token_reissued,
    )
    return result


async def confirm(ctx: Context, cmd: Confirm) -> AmbassadorView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[AmbassadorView, Sequence[Event]]:
        digest = token_hash(cmd.token)
        found = await store.load_by_token_hash(db, digest, session)
        confirmed = (
            await store.load_by_confirmed_token_hash(db, digest, session) if found is None else None
        )
        pending = domain.check_token(found, ctx.clock(), confirmed=confirmed)
        active, activated = await _activate(ctx, pending, session, None)
        await store.save(db, active, session)
        return view(active), [activated]

    result = await ctx.service.transaction(work)
    ctx.render_wakeup.set()
    return result


async def update(ctx: Context, cmd: UpdateProfile) -> AmbassadorView:
    db = ctx.service.db
    changes = {k: getattr(cmd, k) for k in cmd.model_fields_set if k != "ambassador_id"}

    async def work(session: Session) -> tuple[AmbassadorView, Sequence[Event]]:
        current = await store.load(db, cmd.ambassador_id, session)
        if current is None:
            raise _not_found(cmd.ambassador_id)
        updated, changed = domain.update_profile(current, changes)
        if not changed:
            return view(current), []
        if "email" in changed:
            other = await store.load_by_email_key(db, updated.email_key or "", session)
            if other is not None and other.id != updated.id:
                raise ServiceError(
                    ErrorCode.CONFLICT, "another ambassador already has this e-mail address"
                )
        await store.save(db, updated, session)
        assert updated.profile is not None
        event = ProfileUpdated(
            ambassador_id=updated.id,
            name=updated.profile.name,
            email=updated.profile.email,
            kind=updated.kind,
            organisation=updated.profile.organisation,
            public=updated.profile.public,
            themes=list(updated.themes),
            core_areas=list(updated.core_areas),
            skills=list(updated.profile.skills),
            changed=changed,
            status=updated.status,
        )
        return view(updated), [event]

    return await ctx.service.transaction(work)


async def withdraw(ctx: Context, cmd: Withdraw) -> AmbassadorView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[AmbassadorView, Sequence[Event]]:
        current = await store.load(db, cmd.ambassador_id, session)
        if current is None:
            raise _not_found(cmd.ambassador_id)
        withdrawn = domain.withdraw(current, now=ctx.clock(), reason=cmd.reason)
        await store.save(db, withdrawn, session)
        return view(withdrawn), [
            Withdrawn(ambassador_id=withdrawn.id, reason=withdrawn.withdraw_reason)
        ]

    return await ctx.service.transaction(work)


async def erase(ctx: Context, cmd: Erase) -> AmbassadorView:
    db = ctx.service.db

    async def work(session: Session) -> tuple[AmbassadorView, Sequence[Event]]:
        current = await store.load(db, cmd.ambassador_id, session)
        if current is None:
            raise _not_found(cmd.ambassador_id)
        erased = domain.erase(current, now=ctx.clock())
        await store.save(db, erased, session)
        return view(erased), [Erased(ambassador_id=erased.id)]

    result = await ctx.service.transaction(work)
    ctx.render_wakeup.set()  # the sweep deletes the certificate PDF and the person's events
    return result


async def import_csv(ctx: Context, cmd: ImportCsv) -> ImportResult:
    rows, problems = parse_ambassador_csv(cmd.csv_text)
    errors = [ImportRowError(row=p.line, message=p.message) for p in problems]
    imported: list[str] = []
    skipped = 0
    for row in rows:
        try:
            command = SignUp.model_validate({**row.fields, "consent": True, "staff": True})
            result = await sign_up(ctx, command, source=Source.IMPORT)
        except ValidationError as exc:
            details = [{"field": d.field, "message": d.message} for d in field_errors(exc)]
            errors.append(ImportRowError(row=row.line, message="invalid row", details=details))
            continue
        except ServiceError as exc:
            if exc.code == ErrorCode.CONFLICT:
                skipped += 1
                continue
            details = [d.model_dump() for d in exc.error.details]
            errors.append(ImportRowError(row=row.line, message=exc.error.message, details=details))
            continue
        imported.append(result.ambassador.id)
    errors.sort(key=lambda e: e.row)
    return ImportResult(
        imported=len(imported), skipped_existing=skipped, errors=errors, ambassador_ids=imported
    )


async def import_demo_if_empty(ctx: Context) -> ImportResult | None:
    """make up starts with the 2022 list of organisations, once, into an empty store."""
    s = ctx.settings
    if not s.demo_import or await store.count(ctx.service.db) > 0:
        return None
    if s.demo_csv is not None:
        text = await asyncio.to_thread(Path(s.demo_csv).read_text, encoding="utf-8")
    else:
        text = (
            resources.files("services.ambassadors")
            .joinpath("demo/ambassadors-2022.csv")
            .read_text(encoding="utf-8")
        )
    result = await import_csv(ctx, ImportCsv(csv_text=text, filename="ambassadors-2022.csv"))
    log.info("demo ambassadors imported", imported=result.imported, errors=len(result.errors))
    return result


# ---------------------------------------------------------------- certificates


def _certificate_view(ctx: Context, a: Ambassador) -> CertificateView:
    assert a.profile is not None and a.certificate is not None
    return CertificateView(
        holder_name=a.profile.name,
        organisation=a.profile.organisation,
        kind_label=domain.KIND_LABELS[a.kind],
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


@dataclass(frozen=True)
class StoredPdf:
    """A certificate PDF put into the bucket, not yet recorded on its ambassador."""

    ambassador: Ambassador
    object_name: str
    digest: str
    size: int


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


async def record_certificates(ctx: Context, stored: Sequence[StoredPdf]) -> list[Ambassador]:
    """Record rendered PDFs on their ambassadors and announce each once, in one transaction
    (one commit for a batch of renders rather than one each)."""
    db = ctx.service.db
    orphans: list[str] = []

    async def work(session: Session) -> tuple[list[Ambassador], Sequence[Event]]:
        orphans.clear()
        results: list[Ambassador] = []
        events: list[Event] = []
        for item in stored:
            current = await store.load(db, item.ambassador.id, session)
            if current is None or current.status == Status.ERASED:
                orphans.append(item.object_name)
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
                update={"rendered_at": ctx.clock(), "digest": item.digest, "size": item.size}
            )
            rendered = current.model_copy(update={"certificate": cert})
            await store.save(db, rendered, session)
            events.append(
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
        return results, events

    results = await ctx.service.transaction(work)
    for object_name in orphans:
        # Erased while this PDF rendered: the sweep may have purged before the put.
        await _delete_certificate_object(ctx, object_name)
    return results


async def render_certificate(ctx: Context, ambassador: Ambassador) -> Ambassador:
    """Render the PDF into the bucket, then record it and announce it (once)."""
    return (await record_certificates(ctx, [await store_certificate_pdf(ctx, ambassador)]))[0]


async def _delete_certificate_object(ctx: Context, object_name: str) -> None:
    bucket = await ctx.service.js.object_store(ctx.settings.certificate_bucket)
    with contextlib.suppress(ObjectNotFoundError):  # never rendered, or deleted already
        await bucket.delete(object_name)


# Certificates rendered between two sweeps for erased ambassadors' PDFs and events.
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


async def certificate_worker(ctx: Context) -> None:
    """Renders pending certificates; for erased ambassadors, deletes their PDFs and their
    events on the stream. Forever."""
    while True:
        ctx.render_wakeup.clear()
        rendered = await _render_pending(ctx)
        await _finish_erasures(ctx)
        if rendered < RENDER_BATCH:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.render_wakeup.wait(), timeout=2.0)


async def _render_pending(ctx: Context) -> int:
    """Render up to a batch of certificates that no other replica is rendering."""
    db = ctx.service.db
    claimed = await store.claim_certificates_to_render(db, ctx.clock(), RENDER_LEASE, RENDER_BATCH)
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
                await store.release_render_claim(db, left.id)
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
        await record_certificates(ctx, stored)
    except Exception:
        # The PDFs are in the bucket; they are rendered and recorded again after the lease.
        log.exception("recording rendered certificates failed", count=len(stored))


async def _finish_erasures(ctx: Context) -> None:
    """Delete erased ambassadors' certificate PDFs and their events on the stream.

    Each is tried on its own: one that fails is logged and tried again on the next round.
    """
    db = ctx.service.db
    for doc in await store.certificates_to_purge(db, 50):
        try:
            await _delete_certificate_object(ctx, doc["certificate"]["object_name"])
            await store.mark_purged(db, doc["_id"])
        except Exception:
            log.exception("deleting an erased certificate failed", ambassador_id=doc["_id"])
    for ambassador_id in await store.erasures_with_events_to_purge(db, 50):
        try:
            # Only ``erased`` stays on the stream: consumers that have not seen the person
            # yet learn that there is nothing to keep. Events not yet published are
            # counted and purged on a later round.
            left = await purge_published_events(
                db, ctx.service.js, ambassador_id, keep_subjects=[Erased.subject]
            )
            if left == 0:
                await store.mark_events_purged(db, ambassador_id)
        except Exception:
            log.exception("purging erased events failed", ambassador_id=ambassador_id)


async def get_certificate(ctx: Context, cmd: GetCertificate) -> CertificateLocation:
    ambassador = await store.load(ctx.service.db, cmd.ambassador_id)
    if ambassador is None:
        raise _not_found(cmd.ambassador_id)
    if ambassador.status != Status.ACTIVE or ambassador.certificate is None:
        raise ServiceError(
            ErrorCode.INVALID_STATE,
            "only an active ambassador has a valid certificate; "
            f"this one is {ambassador.status.value}",
        )
    if ambassador.certificate.rendered_at is None:
        ambassador = await render_certificate(ctx, ambassador)
    cert = ambassador.certificate
    assert cert is not None
    return CertificateLocation(
        ambassador_id=ambassador.id,
        number=cert.number,
        bucket=ctx.settings.certificate_bucket,
        object_name=cert.object_name,
        digest=cert.digest or "",
        size=cert.size or 0,
    )


# ---------------------------------------------------------------- queries


async def list_ambassadors(ctx: Context, query: ListAmbassadors) -> AmbassadorPage:
    total, found = await store.find_page(
        ctx.service.db, store.list_filter(query), limit=query.limit, offset=query.offset
    )
    return AmbassadorPage(total=total, items=[view(a) for a in found])


async def show(ctx: Context, query: ShowAmbassador) -> AmbassadorView:
    found = await store.load(ctx.service.db, query.ambassador_id)
    if found is None:
        raise _not_found(query.ambassador_id)
    return view(found)


async def verify(ctx: Context, query: VerifyCertificate) -> VerifyResult:
    code = domain.normalise_code(query.code)
    found = await store.load_by_code(ctx.service.db, code)
    cert = domain.certificate_with_code(found, code) if found is not None else None
    if found is None or cert is None:
        return VerifyResult(code=code, genuine=False, valid=False, status="unknown")
    valid = found.status == Status.ACTIVE and cert is found.certificate and cert.revoked_at is None
    profile = found.profile
    return VerifyResult(
        code=code,
        genuine=True,
        valid=valid,
        number=cert.number,
        holder=profile.name if profile else None,
        organisation=profile.organisation if profile else None,
        issued_on=cert.issued_at.date(),
        status="valid" if valid else "revoked",
    )


async def directory(ctx: Context) -> Directory:
    entries = []
    for a in await store.directory_entries(ctx.service.db):
        p = a.profile
        assert p is not None
        entries.append(
            DirectoryEntry(
                id=a.id,
                display_name=p.display_name,
                kind=a.kind,
                # A private person's own name is what they chose to show; an organisation's
                # contact person stays out of the public listing.
                organisation=p.organisation,
                description=p.description,
                website=p.website,
                themes=list(a.themes),
                core_areas=list(a.core_areas),
            )
        )
    return Directory(generated_at=ctx.clock(), entries=entries)


async def goals(ctx: Context) -> Goals:
    s = ctx.settings
    return domain.compute_goals(
        await store.goal_records(ctx.service.db),
        target=s.goal_ambassadors,
        citizen_share_target=s.goal_citizen_share,
        now=ctx.clock(),
    )
