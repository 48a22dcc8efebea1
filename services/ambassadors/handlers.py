"""One function per command and query: load, call the domain, save, emit.

Each command runs in the unit of work the runtime gives it (``uow``); the certificate PDFs
are rendered and recorded in the background (``certificate_worker``).
"""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from contracts.ambassadors import (
    Activated,
    AmbassadorPage,
    AmbassadorView,
    CertificateLocation,
    CertificateRef,
    CertificateSummary,
    Confirm,
    ConsentText,
    Directory,
    DirectoryEntry,
    Endpoints,
    Erase,
    Erased,
    GetCertificate,
    GetConsentText,
    GetDirectory,
    GetGoals,
    Goals,
    ImportCsv,
    ImportResult,
    ImportRowError,
    ListAmbassadors,
    ProfileUpdated,
    Register,
    ShowAmbassador,
    SignedUp,
    SignedUpAgain,
    SignUp,
    SignUpReceived,
    SignUpResult,
    Source,
    Status,
    UpdateProfile,
    VerifyCertificate,
    VerifyResult,
    Withdraw,
    Withdrawn,
)
from contracts.consent import CONSENT_TEXTS
from contracts.envelope import Event
from contracts.errors import ErrorCode, ServiceError
from contracts.jobs import JobView
from services.ambassadors import certificate_worker, domain, store
from services.ambassadors.context import Context
from services.ambassadors.domain import Ambassador
from services.ambassadors.importing import CsvRow, parse_ambassador_csv
from services.runtime import erasure, jobs
from services.runtime.jobs import RunningJob
from services.runtime.logging import get_logger
from services.runtime.rpc import field_errors
from services.runtime.tokens import token_hash
from services.runtime.unit_of_work import Reading, Scope, UnitOfWork

log = get_logger(__name__)


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
        networks_at_once=p.networks_at_once if p else None,
        paused_until=p.paused_until if p else None,
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


async def _load(scope: Scope, ambassador_id: str) -> Ambassador:
    found = await store.load(scope, ambassador_id)
    if found is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"ambassador {ambassador_id} not found")
    return found


# ---------------------------------------------------------------- activation


async def _activate(
    ctx: Context, uow: UnitOfWork, ambassador: Ambassador, cause: Event | None
) -> Ambassador:
    """Active, with a certificate (its PDF is rendered after the commit), and announced."""
    now = uow.now
    if ambassador.certificate is not None:
        # Rejoining keeps the number but gets a fresh code: the old paper stays revoked.
        number = ambassador.certificate.number
    else:
        number = domain.certificate_number(now.year, await ctx.serials.take(uow, now.year))
    # 30^8 codes: a clash is practically impossible, and the unique index turns one into a
    # failed (retried) command rather than two certificates with one code.
    code = domain.new_verification_code()
    certificate = domain.new_certificate(ambassador.id, number, code, now)
    active = domain.activate(ambassador, now=now, certificate=certificate)
    assert active.profile is not None
    uow.emit(
        Activated(
            ambassador_id=active.id,
            name=active.profile.name,
            email=active.profile.email,
            kind=active.kind,
            organisation=active.profile.organisation,
            public=active.profile.public,
            themes=list(active.themes),
            core_areas=list(active.core_areas),
            skills=list(active.profile.skills),
            networks_at_once=active.profile.networks_at_once,
            paused_until=active.profile.paused_until,
            certificate=CertificateRef(
                number=number,
                verification_code=code,
                bucket=ctx.settings.certificate_bucket,
                object_name=certificate.object_name,
            ),
            causation_id=cause.event_id if cause is not None else None,
            # One conversation: the sign-up and the activation it caused.
            correlation_id=(cause.correlation_id or cause.event_id) if cause is not None else None,
        )
    )
    uow.after_commit(ctx.wake_certificates)
    return active


# ---------------------------------------------------------------- commands


async def sign_up(ctx: Context, uow: UnitOfWork, cmd: SignUp) -> SignUpReceived:
    """A person signs up themselves: pending until the mailed link is followed. The answer
    is the same whatever the address (new, pending, active, over its daily mails)."""
    await _sign_up(ctx, uow, cmd, staff=False)
    return SignUpReceived()


async def register(
    ctx: Context, uow: UnitOfWork, cmd: Register, source: Source | None = None
) -> SignUpResult:
    """Staff enter an ambassador: active at once."""
    return await _sign_up(ctx, uow, cmd, staff=True, source=source)


async def _sign_up(
    ctx: Context, uow: UnitOfWork, cmd: SignUp, *, staff: bool, source: Source | None = None
) -> SignUpResult:
    s = ctx.settings
    profile = domain.validate_sign_up(
        cmd.model_dump(exclude={"consent", "consent_version"}),
        cmd.consent,
        consent_read=cmd.consent_version,
        consent_current=s.consent_text_version,
    )
    # Most sign-ups are new addresses: the first attempt just inserts, and the unique index
    # on the address turns a known one into a duplicate-key error, upon which the runtime
    # runs the unit again and it looks the address up (a lookup every time would cost each
    # sign-up a query for the rare re-sign-up's sake).
    existing = (
        await store.load_by_email_key(uow, domain.email_key(profile.email)) if uow.retried else None
    )
    outcome = domain.sign_up(
        profile,
        staff=staff,
        source=source,
        consent_version=s.consent_text_version,
        now=uow.now,
        token_ttl=timedelta(hours=s.confirmation_token_ttl_hours),
        existing=existing,
        confirmations_per_day=s.confirmation_mails_per_day,
    )
    ambassador = outcome.ambassador
    uow.about(ambassador.id)
    if outcome.already_active and outcome.mail:
        # Its owner is told; what the sender typed goes nowhere.
        await store.save(uow, ambassador)
        uow.emit(SignedUpAgain(ambassador_id=ambassador.id))
        return SignUpResult(ambassador=view(ambassador))
    if not outcome.mail:
        # The address had its confirmation mails for the day: nothing changes, nothing goes.
        uow.after_commit(
            functools.partial(
                log.info, "sign-up not mailed: daily limit", ambassador_id=ambassador.id
            )
        )
        return SignUpResult(ambassador=view(ambassador))
    # What the record holds: a repeated self sign-up does not change a pending profile.
    stored = ambassador.profile
    assert stored is not None
    signed = SignedUp(
        ambassador_id=ambassador.id,
        name=stored.name,
        email=stored.email,
        kind=stored.kind,
        source=ambassador.source,
        confirmation_nonce=ambassador.confirmation_nonce,
        token_expires_at=ambassador.token_expires_at,
        consent_version=s.consent_text_version,
    )
    uow.emit(signed)
    if staff:
        ambassador = await _activate(ctx, uow, ambassador, signed)
    if existing is None:
        await store.insert(uow, ambassador)
    else:
        await store.save(uow, ambassador)
    uow.after_commit(
        functools.partial(
            log.debug,
            "sign-up handled",
            ambassador_id=ambassador.id,
            status=ambassador.status.value,
            token_reissued=outcome.token_reissued,
        )
    )
    return SignUpResult(ambassador=view(ambassador))


async def confirm(ctx: Context, uow: UnitOfWork, cmd: Confirm) -> AmbassadorView:
    parts = ctx.confirmations.parts(cmd.token, 3)
    if parts is not None:
        ambassador_id, nonce, _expires = parts
        found = await store.load(uow, str(ambassador_id))
        pending = domain.check_confirmation(found, str(nonce), uow.now)
    else:
        # A link mailed by an older release: a random token, stored as its hash.
        digest = token_hash(cmd.token)
        found = await store.load_by_token_hash(uow, digest)
        confirmed = None if found else await store.load_by_confirmed_token_hash(uow, digest)
        pending = domain.check_token(found, uow.now, confirmed=confirmed)
    active = await _activate(ctx, uow, pending, None)
    await store.save(uow, active)
    return view(active)


async def update(ctx: Context, uow: UnitOfWork, cmd: UpdateProfile) -> AmbassadorView:
    current = await _load(uow, cmd.ambassador_id)
    changes = {k: getattr(cmd, k) for k in cmd.model_fields_set if k != "ambassador_id"}
    updated, changed = domain.update_profile(current, changes)
    if not changed:
        return view(current)
    if "email" in changed:
        other = await store.load_by_email_key(uow, updated.email_key or "")
        if other is not None and other.id != updated.id:
            raise ServiceError(
                ErrorCode.CONFLICT, "another ambassador already has this e-mail address"
            )
    await store.save(uow, updated)
    profile = updated.profile
    assert profile is not None
    uow.emit(
        ProfileUpdated(
            ambassador_id=updated.id,
            name=profile.name,
            email=profile.email,
            kind=updated.kind,
            organisation=profile.organisation,
            public=profile.public,
            themes=list(updated.themes),
            core_areas=list(updated.core_areas),
            skills=list(profile.skills),
            networks_at_once=profile.networks_at_once,
            paused_until=profile.paused_until,
            changed=changed,
            status=updated.status,
        )
    )
    return view(updated)


async def withdraw(ctx: Context, uow: UnitOfWork, cmd: Withdraw) -> AmbassadorView:
    current = await _load(uow, cmd.ambassador_id)
    withdrawn = domain.withdraw(current, now=uow.now, reason=cmd.reason)
    await store.save(uow, withdrawn)
    uow.emit(Withdrawn(ambassador_id=withdrawn.id, reason=withdrawn.withdraw_reason))
    return view(withdrawn)


async def erase(ctx: Context, uow: UnitOfWork, cmd: Erase) -> AmbassadorView:
    current = await _load(uow, cmd.ambassador_id)
    erased = domain.erase(current, now=uow.now)
    await store.save(uow, erased)
    uow.emit(Erased(ambassador_id=erased.id))
    # Only ``erased`` stays on the stream: consumers that have not seen the person yet learn
    # that there is nothing to keep. The certificate PDF goes with the next render round.
    await erasure.forget(uow, erased.id, keep_subjects=[Erased.subject])
    uow.after_commit(ctx.service.erasures.wake)
    uow.after_commit(ctx.wake_certificates)
    return view(erased)


async def import_rows(ctx: Context, job: RunningJob, cmd: ImportCsv) -> ImportResult:
    """The import job: each good row a staff sign-up in a unit of work of its own, which
    also moves the job on, so that after a crash the job goes on from the first row not
    committed. A bad row, or an address already known, stops only that row."""
    rows, problems = parse_ambassador_csv(cmd.csv_text)
    if job.total is None:
        await job.sized(ctx.service.reading(), len(rows))
    for row in rows[job.done :]:
        await _import_row(ctx, job, row)
    await job.reload(ctx.service.reading())
    errors = [ImportRowError(row=p.line, message=p.message) for p in problems]
    errors += [ImportRowError.model_validate(e) for e in job.partial.get("errors", [])]
    errors.sort(key=lambda e: e.row)
    imported = [str(i) for i in job.partial.get("imported", [])]
    return ImportResult(
        imported=len(imported),
        skipped_existing=int(job.partial.get("skipped", 0)),
        errors=errors,
        ambassador_ids=imported,
    )


async def _import_row(ctx: Context, job: RunningJob, row: CsvRow) -> None:
    try:
        command = Register.model_validate({**row.fields, "consent": True})
    except ValidationError as exc:
        details = [{"field": d.field, "message": d.message} for d in field_errors(exc)]
        error = ImportRowError(row=row.line, message="invalid row", details=details)
        await job.advance(ctx.service.reading(), push={"errors": error.model_dump()})
        return

    async def register_row(uow: UnitOfWork) -> None:
        result = await register(ctx, uow, command, source=Source.IMPORT)
        await job.advance(uow, push={"imported": result.ambassador.id})

    try:
        await ctx.service.run(register_row, name="importing a row")
    except ServiceError as exc:
        if exc.code == ErrorCode.CONFLICT:
            await job.advance(ctx.service.reading(), add={"skipped": 1})
            return
        details = [d.model_dump() for d in exc.error.details]
        error = ImportRowError(row=row.line, message=exc.error.message, details=details)
        await job.advance(ctx.service.reading(), push={"errors": error.model_dump()})


async def import_demo_if_empty(ctx: Context) -> None:
    """make up starts with the 2022 list of organisations, once, into an empty store: an
    import job like any other, run to its end before the service takes requests."""
    s = ctx.settings
    if not s.demo_import or await store.count(ctx.service.reading()) > 0:
        return
    if s.demo_csv is not None:
        text = await asyncio.to_thread(Path(s.demo_csv).read_text, encoding="utf-8")
    else:
        text = (
            resources.files("services.ambassadors")
            .joinpath("demo/ambassadors-2022.csv")
            .read_text(encoding="utf-8")
        )
    demo = ImportCsv(csv_text=text, filename="ambassadors-2022.csv")

    async def start(uow: UnitOfWork) -> JobView:
        return await jobs.start(
            uow,
            ctx.service.name,
            Endpoints.IMPORT,
            runner_input=demo,
            key=jobs.request_key(demo),
        )

    job = await ctx.service.run(start, name="starting the demo import")
    await ctx.service.run_jobs_now()
    report = (await jobs.load(ctx.service.reading(), job.id)).report or {}
    log.info(
        "demo ambassadors imported",
        job_id=job.id,
        imported=report.get("imported"),
        errors=len(report.get("errors", [])),
    )


async def get_certificate(ctx: Context, cmd: GetCertificate) -> CertificateLocation:
    """Where the PDF is; rendered (and recorded, in a unit of its own) if not yet."""
    ambassador = await _load(ctx.service.reading(), cmd.ambassador_id)
    if ambassador.status != Status.ACTIVE or ambassador.certificate is None:
        raise ServiceError(
            ErrorCode.INVALID_STATE,
            "only an active ambassador has a valid certificate; "
            f"this one is {ambassador.status.value}",
        )
    if ambassador.certificate.rendered_at is None:
        ambassador = await certificate_worker.render_certificate(ctx, ambassador)
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


async def list_ambassadors(ctx: Context, scope: Reading, query: ListAmbassadors) -> AmbassadorPage:
    total, found = await store.find_page(
        scope, store.list_filter(query), limit=query.limit, offset=query.offset
    )
    return AmbassadorPage(total=total, items=[view(a) for a in found])


async def show(ctx: Context, scope: Reading, query: ShowAmbassador) -> AmbassadorView:
    return view(await _load(scope, query.ambassador_id))


async def verify(ctx: Context, scope: Reading, query: VerifyCertificate) -> VerifyResult:
    code = domain.normalise_code(query.code)
    found = await store.load_by_code(scope, code)
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


async def directory(ctx: Context, scope: Reading, _: GetDirectory) -> Directory:
    entries = []
    for a in await store.directory_entries(scope):
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
    return Directory(generated_at=scope.now, entries=entries)


async def consent_text(ctx: Context, _scope: Reading, _: GetConsentText) -> ConsentText:
    version = ctx.settings.consent_text_version
    return ConsentText(version=version, text=CONSENT_TEXTS[version])


async def goals(ctx: Context, scope: Reading, _: GetGoals) -> Goals:
    s = ctx.settings
    return domain.compute_goals(
        await store.goal_records(scope),
        target=s.goal_ambassadors,
        citizen_share_target=s.goal_citizen_share,
        now=scope.now,
    )
