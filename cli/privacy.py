"""`samskab privacy export` and `samskab privacy audit`: a person's data on request.

Export (GDPR articles 15 and 20) asks the ambassadors service first, to learn the person's
ambassador id from the address (or the address from the id), then every other service with
both; each answers with every record it holds on them, a part at a time. The file is one
JSON document with a section per service. It is written only when every service answered
(``--allow-missing`` writes what there is and names the ones that did not): an incomplete
export handed to a person would tell them something untrue.

Audit searches every collection, the event stream and the dead-letter stream of every
service for an address: what an erasure must leave empty.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import calls
from cli.files import replacing
from cli.operations import ask_each, chosen_services, every_service, unless_not_running
from cli.output import EXIT_ERROR, EXIT_UNAVAILABLE, emit_json, fail, reporting, table
from contracts.operations import (
    ExportPersonalData,
    FindAddress,
    PersonalRecord,
    privacy_audit,
    privacy_export,
)
from contracts.text import normalise_email
from services import registry

app = typer.Typer(help="A person's data on request: export all of it, or find their address.")

# A service reads everything it holds for these: more than a page's wait.
TIMEOUT = 60.0
FIRST = registry.AMBASSADORS.name

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _person(given: str, as_json: bool) -> tuple[str | None, str | None]:
    """(email, ambassador id) from what was given: an address has an @."""
    if "@" not in given:
        return None, given.strip()
    try:
        return normalise_email(given), None
    except ValueError as exc:
        fail(f"not an e-mail address: {exc}", as_json)


def _records(service: str, request: ExportPersonalData) -> list[PersonalRecord]:
    """Every part of ``service``'s answer."""
    records: list[PersonalRecord] = []
    part: int | None = 0
    while part is not None:
        answer = calls.call(
            privacy_export(service), request.model_copy(update={"part": part}), timeout=TIMEOUT
        )
        records += answer.records
        part = answer.next_part
    return records


def _identify(
    records: list[PersonalRecord], email: str | None, ambassador_id: str | None
) -> tuple[str | None, str | None]:
    """The address and id of the ambassador among the ambassadors service's records."""
    for found in records:
        if found.collection != "ambassadors":
            continue
        profile = found.record.get("profile")
        stored = profile.get("email") if isinstance(profile, dict) else None
        address = stored if isinstance(stored, str) else None
        if ambassador_id == found.id or (
            email is not None and address is not None and address.lower() == email.lower()
        ):
            return address or email, found.id
    return email, ambassador_id


def _gather(
    email: str | None, ambassador_id: str | None
) -> tuple[str | None, str | None, dict[str, list[PersonalRecord]], list[str]]:
    def ask() -> tuple[str | None, str | None, dict[str, list[PersonalRecord]], list[str]]:
        answers: dict[str, list[PersonalRecord]] = {}
        missing: list[str] = []
        who, which = email, ambassador_id
        for name in [FIRST, *(n for n in every_service() if n != FIRST)]:
            request = ExportPersonalData(email=who, ambassador_id=which)
            records = unless_not_running(functools.partial(_records, name, request))
            if records is None:
                missing.append(name)
                continue
            answers[name] = records
            if name == FIRST:
                who, which = _identify(records, who, which)
        return who, which, answers, missing

    return calls.run(ask)


def _by_collection(records: list[PersonalRecord]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for found in records:
        grouped.setdefault(found.collection, []).append(found.record)
    return grouped


@app.command("export")
def export(
    person: Annotated[str, typer.Argument(metavar="EMAIL|AMBASSADOR_ID")],
    out: Annotated[Path, typer.Option("--out", help="The JSON file to write.")],
    allow_missing: Annotated[
        bool,
        typer.Option("--allow-missing", help="Write the file although a service did not answer."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Everything every service holds on a person, into one JSON file (a section per
    service), and a summary of it."""
    email, ambassador_id = _person(person, as_json)
    with reporting(as_json):
        email, ambassador_id, answers, missing = _gather(email, ambassador_id)
    counts = {name: dict(Counter(r.collection for r in found)) for name, found in answers.items()}
    written = not missing or allow_missing
    if written:
        document = {
            "exported_at": datetime.now(UTC).isoformat(),
            "person": {"email": email, "ambassador_id": ambassador_id},
            "services": {name: _by_collection(found) for name, found in answers.items()},
            "not_answered": missing,
        }
        with reporting(as_json), replacing(out) as handle:
            json.dump(document, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    if as_json:
        emit_json(
            {
                "ok": written,
                "file": str(out) if written else None,
                "person": {"email": email, "ambassador_id": ambassador_id},
                "records": counts,
                "not_answered": missing,
            }
        )
    else:
        typer.echo(
            f"person: {email or '(address not known)'}, ambassador id {ambassador_id or '-'}"
        )
        rows = [(n, c, k) for n, found in counts.items() for c, k in sorted(found.items())]
        if rows:
            table(rows, ["SERVICE", "COLLECTION", "RECORDS"])
        else:
            typer.echo("no service holds anything on this person")
        total = sum(sum(found.values()) for found in counts.values())
        if missing:
            typer.echo(f"did not answer: {', '.join(missing)}", err=True)
        if written:
            typer.echo(f"{total} records written to {out}")
        else:
            typer.echo(
                "nothing written: an export must hold every service's records "
                "(--allow-missing writes it without theirs)",
                err=True,
            )
    if not written:
        raise typer.Exit(EXIT_UNAVAILABLE)


@app.command("audit")
def audit(
    email: Annotated[str, typer.Argument(metavar="EMAIL")],
    service: Annotated[
        str | None, typer.Option("--service", help="Only this service (default: every one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Where an address occurs: every collection of every service's database, every event
    stream and dead-letter stream. Exits 0 when it is found nowhere, 1 when it is found, 3
    when a service did not answer."""
    address, _ = _person(email, as_json)
    if address is None:
        fail("give an e-mail address", as_json)
    with reporting(as_json):
        answers, missing = ask_each(
            chosen_services(service), privacy_audit, FindAddress(email=address), TIMEOUT
        )
    found = {name: a.found for name, a in answers.items() if a.found}
    if as_json:
        emit_json(
            {
                "email": address,
                "found": {n: [p.model_dump(mode="json") for p in f] for n, f in found.items()},
                "searched": {n: a.searched for n, a in answers.items()},
                "not_answered": missing,
            }
        )
    else:
        if found:
            rows = [
                (name, f"{place.kind} {place.name}", place.count, ", ".join(place.ids))
                for name, places in found.items()
                for place in places
            ]
            table(rows, ["SERVICE", "WHERE", "COUNT", "IDS"])
        searched = sum(len(a.searched) for a in answers.values())
        typer.echo(
            f"{address}: found in {sum(len(p) for p in found.values())} of {searched} "
            f"places searched in {len(answers)} services"
        )
        if missing:
            typer.echo(f"did not answer: {', '.join(missing)}", err=True)
    if missing:
        raise typer.Exit(EXIT_UNAVAILABLE)
    if found:
        raise typer.Exit(EXIT_ERROR)
