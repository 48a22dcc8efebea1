"""`samskab ambassadors ...`: sign-up, confirmation, profile, certificate, directory, import."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import calls, jobs, spreadsheet
from cli.output import build, fail, fields, plain, reporting, show, table
from contracts.ambassadors import (
    IMPORT_CSV_MAX_BYTES,
    PAGE_MAX,
    AmbassadorPage,
    AmbassadorView,
    CertificateLocation,
    Confirm,
    CoreArea,
    Directory,
    Endpoints,
    Erase,
    GetCertificate,
    GetDirectory,
    ImportCsv,
    ImportResult,
    Kind,
    ListAmbassadors,
    Register,
    ShowAmbassador,
    SignUp,
    SignUpResult,
    Status,
    UpdateProfile,
    VerifyCertificate,
    VerifyResult,
    Withdraw,
)
from contracts.errors import ErrorCode, ServiceError
from services.runtime.client import ServiceClient

app = typer.Typer(
    help="Ambassadors: sign-up, profile, certificate, directory.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
NameOpt = Annotated[str, typer.Option("--name", help="Full name of the person.")]
EmailOpt = Annotated[str, typer.Option("--email", help="E-mail address.")]
KindOpt = Annotated[Kind, typer.Option("--kind", help="Kind of ambassador.")]
OrgOpt = Annotated[
    str | None,
    typer.Option("--organisation", help="Organisation (required unless citizen/volunteer)."),
]
PhoneOpt = Annotated[str | None, typer.Option("--phone", help="Phone number.")]
WebsiteOpt = Annotated[str | None, typer.Option("--website", help="Website URL.")]
DescriptionOpt = Annotated[
    str | None, typer.Option("--description", help="Public description (max 1000 characters).")
]
ThemeOpt = Annotated[list[int] | None, typer.Option("--theme", help="Theme 1-12; repeat for more.")]
AreaOpt = Annotated[
    list[CoreArea] | None, typer.Option("--core-area", help="Core area; repeat for more.")
]
SkillOpt = Annotated[list[str] | None, typer.Option("--skill", help="Skill tag; repeat for more.")]
AtOnceOpt = Annotated[
    int | None,
    typer.Option(
        "--networks-at-once",
        metavar="N",
        help="Takes part in at most N networks at once (1-10; in an update 0 lifts the limit).",
    ),
]
PausedOpt = Annotated[
    str | None,
    typer.Option(
        "--paused-until",
        metavar="DATE",
        help="Not asked to join a network until after DATE (YYYY-MM-DD; in an update "
        "'none' ends the pause).",
    ),
]
# What an update sends to lift the limit or end the pause: the field set to null.
NO_LIMIT = 0
NO_PAUSE = ("none", "")


def _who(a: AmbassadorView) -> str:
    if a.status == Status.ERASED:
        return "(erased)"
    name = a.name or ""
    return f"{name}, {a.organisation}" if a.organisation else name


def _show_ambassador(a: AmbassadorView) -> None:
    cert = a.certificate
    fields(
        [
            ("id", a.id),
            ("status", a.status),
            ("source", a.source),
            ("name", a.name),
            ("email", a.email),
            ("phone", a.phone),
            ("kind", a.kind),
            ("organisation", a.organisation),
            ("website", a.website),
            ("description", a.description),
            ("themes", a.themes),
            ("core areas", a.core_areas),
            ("skills", a.skills),
            ("listed publicly", "yes" if a.public else "no"),
            ("networks at once", a.networks_at_once or "no limit"),
            ("paused until", a.paused_until),
            (
                "consent",
                f"{a.consent_version} at {plain(a.consented_at) or None}"
                if a.consent_version
                else None,
            ),
            ("signed up", a.signed_up_at),
            ("activated", a.activated_at),
            ("withdrawn", a.withdrawn_at),
            ("erased", a.erased_at),
            (
                "certificate",
                f"{cert.number} (code {cert.verification_code})"
                + (" revoked" if cert.revoked_at else "")
                if cert
                else None,
            ),
        ]
    )


RECEIVED = "received: if {email} can be used, a mail is on its way to it"


@app.command("sign-up")
def sign_up(
    name: NameOpt,
    email: EmailOpt,
    kind: KindOpt,
    organisation: OrgOpt = None,
    phone: PhoneOpt = None,
    website: WebsiteOpt = None,
    description: DescriptionOpt = None,
    theme: ThemeOpt = None,
    core_area: AreaOpt = None,
    skill: SkillOpt = None,
    public: Annotated[bool, typer.Option("--public", help="List in the public directory.")] = False,
    networks_at_once: AtOnceOpt = None,
    paused_until: PausedOpt = None,
    consent: Annotated[
        bool, typer.Option("--consent", help="The person consents to the profile being stored.")
    ] = False,
    staff: Annotated[
        bool, typer.Option("--staff", help="Entered by staff: active at once, no confirmation.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sign up an ambassador. Without --staff a confirmation mail is sent first; with it,
    staff enter the person, active at once."""
    with reporting(as_json):
        fields: dict[str, Any] = dict(
            name=name,
            email=email,
            kind=kind,
            organisation=organisation,
            phone=phone,
            website=website,
            description=description,
            themes=theme or [],
            core_areas=core_area or [],
            skills=skill or [],
            public=public,
            networks_at_once=networks_at_once,
            paused_until=paused_until,
            consent=consent,
        )
        if staff:
            result = calls.call(Endpoints.REGISTER, build(Register, **fields))
        else:
            received = calls.call(Endpoints.SIGN_UP, build(SignUp, **fields))
    if not staff:
        # Every address is answered alike; `samskab ambassadors list --status pending`
        # shows staff who is waiting for their confirmation.
        show(received, as_json, lambda _: typer.echo(RECEIVED.format(email=email)))
        return

    def human(r: SignUpResult) -> None:
        # Staff's entry is active at once (the unit that registers also activates).
        a = r.ambassador
        number = a.certificate.number if a.certificate else "not yet issued"
        typer.echo(f"{a.id} active: {_who(a)} (certificate {number})")

    show(result, as_json, human)


@app.command()
def confirm(token: str, as_json: JsonOpt = False) -> None:
    """Confirm a self sign-up with the token from the confirmation mail."""
    with reporting(as_json):
        result = calls.call(Endpoints.CONFIRM, build(Confirm, token=token))
    show(result, as_json, lambda a: typer.echo(f"{a.id} active: {_who(a)}"))


@app.command("list")
def list_(
    status: Annotated[Status | None, typer.Option("--status")] = None,
    kind: Annotated[Kind | None, typer.Option("--kind")] = None,
    theme: Annotated[int | None, typer.Option("--theme")] = None,
    skill: Annotated[str | None, typer.Option("--skill")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE.csv",
            help="Write every ambassador matching the filters to a spreadsheet file.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List ambassadors, optionally filtered."""
    with reporting(as_json):
        query = build(
            ListAmbassadors,
            status=status,
            kind=kind,
            theme=theme,
            skill=skill.strip().casefold() if skill else None,
            limit=limit,
            offset=offset,
        )
        if csv_file is not None:
            exported = _export(query, csv_file)
            show(
                exported,
                as_json,
                lambda e: typer.echo(f"wrote {e['rows']} ambassadors to {e['file']}"),
            )
            return
        result = calls.call(Endpoints.LIST, query)

    def human(page: AmbassadorPage) -> None:
        table(
            [(a.id, a.status, a.kind, _who(a), a.email) for a in page.items],
            ["ID", "STATUS", "KIND", "NAME", "EMAIL"],
        )
        typer.echo(f"{len(page.items)} of {page.total}")

    show(result, as_json, human)


CSV_HEADER = (
    "id", "status", "kind", "name", "organisation", "email", "phone", "website", "themes",
    "core_areas", "skills", "public", "signed_up_at", "activated_at",
)  # fmt: skip


def _export(query: ListAmbassadors, file: Path) -> dict[str, Any]:
    """Every ambassador the filters match (page after page), into ``file``."""

    rows = (
        (
            a.id, a.status, a.kind, a.name, a.organisation, a.email, a.phone, a.website,
            a.themes, [c.value for c in a.core_areas], a.skills, a.public, a.signed_up_at,
            a.activated_at,
        )
        for a in calls.every_item(Endpoints.LIST, query, PAGE_MAX)
    )  # fmt: skip
    return {"file": str(file), "rows": spreadsheet.write(file, CSV_HEADER, rows)}


@app.command("show")
def show_(
    ambassador_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOpt = False
) -> None:
    """Show one ambassador."""
    with reporting(as_json):
        result = calls.call(Endpoints.SHOW, build(ShowAmbassador, ambassador_id=ambassador_id))
    show(result, as_json, _show_ambassador)


@app.command()
def update(
    ambassador_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    kind: Annotated[Kind | None, typer.Option("--kind")] = None,
    organisation: OrgOpt = None,
    phone: PhoneOpt = None,
    website: WebsiteOpt = None,
    description: DescriptionOpt = None,
    theme: ThemeOpt = None,
    core_area: AreaOpt = None,
    skill: SkillOpt = None,
    public: Annotated[
        bool | None, typer.Option("--public/--private", help="Listed in the directory or not.")
    ] = None,
    networks_at_once: AtOnceOpt = None,
    paused_until: PausedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change profile fields; only the options given change."""
    changes: dict[str, Any] = {
        "name": name,
        "email": email,
        "kind": kind,
        "organisation": organisation,
        "phone": phone,
        "website": website,
        "description": description,
        "themes": theme,
        "core_areas": core_area,
        "skills": skill,
        "public": public,
    }
    given = {k: v for k, v in changes.items() if v is not None}
    if networks_at_once is not None:
        given["networks_at_once"] = None if networks_at_once == NO_LIMIT else networks_at_once
    if paused_until is not None:
        lifted = paused_until.strip().casefold() in NO_PAUSE
        given["paused_until"] = None if lifted else paused_until
    with reporting(as_json):
        if not given:
            fail("nothing to update: give at least one option", as_json)
        cleared = [k for k in ("networks_at_once", "paused_until") if k in given]
        command = build(UpdateProfile, cleared, ambassador_id=ambassador_id, **given)
        result = calls.call(Endpoints.UPDATE, command)
    show(result, as_json, lambda a: typer.echo(f"{a.id} updated: {_who(a)}"))


@app.command()
def withdraw(
    ambassador_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The ambassador leaves the network; history is kept, the certificate revoked."""
    with reporting(as_json):
        command = build(Withdraw, ambassador_id=ambassador_id, reason=reason)
        result = calls.call(Endpoints.WITHDRAW, command)
    show(result, as_json, lambda a: typer.echo(f"{a.id} withdrawn"))


@app.command()
def erase(
    ambassador_id: Annotated[str, typer.Argument(metavar="ID")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Erase every personal field of an ambassador (cannot be undone)."""
    with reporting(as_json):
        if not yes:
            fail("erasure cannot be undone: add --yes to confirm", as_json)
        result = calls.call(Endpoints.ERASE, build(Erase, ambassador_id=ambassador_id))
    show(result, as_json, lambda a: typer.echo(f"{a.id} erased"))


@app.command()
def certificate(
    ambassador_id: Annotated[str, typer.Argument(metavar="ID")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the PDF.")],
    as_json: JsonOpt = False,
) -> None:
    """Write the ambassador's certificate (PDF)."""

    def fetch() -> dict[str, Any]:
        command = build(GetCertificate, ambassador_id=ambassador_id)
        location = calls.call(Endpoints.CERTIFICATE, command)
        data = calls.with_client(lambda client: _read_object(client, location))
        digest = "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        if location.digest and digest != location.digest:
            raise ServiceError(ErrorCode.INTERNAL, "the certificate in the store is damaged")
        out.write_bytes(data)
        return {**location.model_dump(mode="json"), "path": str(out)}

    with reporting(as_json):
        result = calls.run(fetch)
    show(result, as_json, lambda r: typer.echo(f"certificate {r['number']} written to {r['path']}"))


async def _read_object(client: ServiceClient, location: CertificateLocation) -> bytes:
    """The certificate PDF, from the bucket the service put it in."""
    bucket = await client.nc.jetstream().object_store(location.bucket)
    found = await bucket.get(location.object_name)
    return bytes(found.data or b"")


@app.command()
def verify(code: str, as_json: JsonOpt = False) -> None:
    """Tell whether a certificate is genuine and still valid."""
    with reporting(as_json):
        result = calls.call(Endpoints.VERIFY, build(VerifyCertificate, code=code))

    def human(r: VerifyResult) -> None:
        if not r.genuine:
            typer.echo(f"{r.code}: no certificate has this code")
            return
        who = ", ".join(x for x in (r.holder, r.organisation) if x)
        state = "genuine and valid" if r.valid else "genuine but no longer valid"
        typer.echo(
            f"{r.code}: {state}: {r.number}{' - ' + who if who else ''}, issued {r.issued_on}"
        )

    show(result, as_json, human)
    if not result.valid:
        raise typer.Exit(1)


@app.command()
def directory(as_json: JsonOpt = False) -> None:
    """The public directory of ambassadors, as the website shows it."""
    with reporting(as_json):
        result = calls.call(Endpoints.DIRECTORY, GetDirectory())

    def human(d: Directory) -> None:
        for e in d.entries:
            typer.echo(e.display_name)
            if e.description:
                typer.echo(f"  {e.description}")
            if e.website:
                typer.echo(f"  {e.website}")
            if e.themes:
                typer.echo(f"  themes: {', '.join(str(t) for t in e.themes)}")
        typer.echo(f"{len(d.entries)} listed")

    show(result, as_json, human)


@jobs.shows(Endpoints.IMPORT, "importing ambassadors")
def _imported(r: ImportResult) -> None:
    typer.echo(
        f"imported {r.imported}, already there {r.skipped_existing}, bad rows {len(r.errors)}"
    )
    for e in r.errors:
        detail = "; ".join(f"{d['field']}: {d['message']}" for d in e.details)
        typer.echo(f"  line {e.row}: {e.message}{' (' + detail + ')' if detail else ''}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="UTF-8 CSV with a header row.")],
    as_json: JsonOpt = False,
    no_wait: jobs.NoWaitOpt = False,
) -> None:
    """Import ambassadors from a CSV file as staff sign-ups; bad rows are reported.

    Runs as a job with a progress bar; importing the same file again imports nobody twice."""
    with reporting(as_json):
        if not file.is_file():
            fail(f"{file}: no such file", as_json)
        raw = file.read_bytes()
        if len(raw) > IMPORT_CSV_MAX_BYTES:
            fail(f"{file}: larger than {IMPORT_CSV_MAX_BYTES // 1024} KiB; split it", as_json)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            fail(f"{file}: not UTF-8 text (save the CSV as UTF-8)", as_json)
        command = build(ImportCsv, csv_text=text, filename=file.name)
        result = jobs.run(Endpoints.IMPORT, command, as_json=as_json, wait=not no_wait)
    if result is None:
        return
    show(result, as_json, _imported)
    if result.errors:
        raise typer.Exit(1)
