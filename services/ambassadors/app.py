"""The ambassadors service: sign-up, confirmation, profile, withdrawal, erasure,
certificates, directory and goals. Run with ``python -m services.ambassadors``."""

from __future__ import annotations

from contracts.ambassadors import (
    EVENTS,
    SERVICE,
    AmbassadorPage,
    AmbassadorView,
    CertificateLocation,
    Confirm,
    Directory,
    Erase,
    GetCertificate,
    GetDirectory,
    GetGoals,
    Goals,
    ImportCsv,
    ImportResult,
    ListAmbassadors,
    ShowAmbassador,
    SignUp,
    SignUpResult,
    Subjects,
    UpdateProfile,
    VerifyCertificate,
    VerifyResult,
    Withdraw,
)
from services.ambassadors import handlers, store
from services.runtime.service import Service
from services.runtime.settings import get_settings

settings = get_settings()
service = Service(
    SERVICE, produces=EVENTS, buckets=[settings.certificate_bucket], settings=settings
)
ctx = handlers.Context(service)
app = service.app


@service.on_startup
async def prepare() -> None:
    await store.ensure_indexes(service.db)
    await handlers.import_demo_if_empty(ctx)


@service.background
async def certificates() -> None:
    await handlers.certificate_worker(ctx)


@service.on_shutdown
async def stop_renderer() -> None:
    handlers.stop_renderer(ctx)


@service.endpoint(Subjects.SIGN_UP, SignUp)
async def sign_up(cmd: SignUp) -> SignUpResult:
    """Sign up an ambassador: self sign-ups wait for e-mail confirmation, staff ones are active."""
    return await handlers.sign_up(ctx, cmd)


@service.endpoint(Subjects.CONFIRM, Confirm)
async def confirm(cmd: Confirm) -> AmbassadorView:
    """Confirm a self sign-up with the token from the confirmation mail."""
    return await handlers.confirm(ctx, cmd)


@service.endpoint(Subjects.UPDATE, UpdateProfile)
async def update(cmd: UpdateProfile) -> AmbassadorView:
    """Change the given profile fields."""
    return await handlers.update(ctx, cmd)


@service.endpoint(Subjects.WITHDRAW, Withdraw)
async def withdraw(cmd: Withdraw) -> AmbassadorView:
    """The ambassador leaves the network; history is kept, the certificate revoked."""
    return await handlers.withdraw(ctx, cmd)


@service.endpoint(Subjects.ERASE, Erase)
async def erase(cmd: Erase) -> AmbassadorView:
    """Remove every personal field; an anonymous record keeps the goals' history true."""
    return await handlers.erase(ctx, cmd)


@service.endpoint(Subjects.IMPORT, ImportCsv)
async def import_csv(cmd: ImportCsv) -> ImportResult:
    """Import a CSV list as staff sign-ups; each bad row is reported, good rows go in."""
    return await handlers.import_csv(ctx, cmd)


@service.endpoint(Subjects.CERTIFICATE, GetCertificate)
async def certificate(cmd: GetCertificate) -> CertificateLocation:
    """Where the certificate PDF is in the Object Store (rendered now if not yet)."""
    return await handlers.get_certificate(ctx, cmd)


@service.endpoint(Subjects.LIST, ListAmbassadors)
async def list_ambassadors(query: ListAmbassadors) -> AmbassadorPage:
    """Ambassadors, filtered by status, kind, theme or skill."""
    return await handlers.list_ambassadors(ctx, query)


@service.endpoint(Subjects.SHOW, ShowAmbassador)
async def show(query: ShowAmbassador) -> AmbassadorView:
    """One ambassador."""
    return await handlers.show(ctx, query)


@service.endpoint(Subjects.VERIFY, VerifyCertificate)
async def verify(query: VerifyCertificate) -> VerifyResult:
    """Is a certificate with this verification code genuine and still valid?"""
    return await handlers.verify(ctx, query)


@service.endpoint(Subjects.DIRECTORY, GetDirectory)
async def directory(_: GetDirectory) -> Directory:
    """The public directory: active ambassadors who chose to be listed."""
    return await handlers.directory(ctx)


@service.endpoint(Subjects.GOALS, GetGoals)
async def goals(_: GetGoals) -> Goals:
    """Active ambassadors and citizen share against the strategy's targets, month by month."""
    return await handlers.goals(ctx)
