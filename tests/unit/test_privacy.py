"""A person's data on request: what a service exports and finds, and the CLI over it.

The services' side runs on in-memory databases (services/runtime/testing.py); the CLI's
``calls.call`` is answered by those same functions, one database per service, so the paging,
the ambassador id learnt from the ambassadors service and the file are what a real run does.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli import calls
from cli.main import app
from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from contracts.operations import (
    EXPORT_PART_BYTES,
    ExportPersonalData,
    FindAddress,
    privacy_audit,
    privacy_export,
)
from services import registry
from services.runtime import address_search, personal_data
from services.runtime.testing import MemoryDatabase

EMAIL = "anna.hansen@example.org"
AMBASSADOR = "amb-anna"
AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def export(db: MemoryDatabase, **person: Any) -> Any:
    request = ExportPersonalData(**person)
    return asyncio.run(personal_data.export(db, "svc", request))  # type: ignore[arg-type]


def test_every_record_naming_the_person_is_exported_with_its_secrets_left_out() -> None:
    db = MemoryDatabase()
    db.add(
        "ambassadors",
        {"_id": AMBASSADOR, "email": EMAIL, "name": "Anna Hansen", "signed_up_at": AT},
    )
    db.add("mails", {"_id": "m1", "to": "Anna.Hansen@Example.org", "unsubscribe_token_hash": "abc"})
    db.add("memberships", {"_id": "n1", "ambassador_id": AMBASSADOR, "state": "invited"})
    db.add("memberships", {"_id": "n2", "ambassador_id": "someone-else"})
    db.add("stories", {"_id": "s1", "text": f"Skriv til {EMAIL} for at være med"})

    found = export(db, email=EMAIL, ambassador_id=AMBASSADOR)

    assert [(r.collection, r.id) for r in found.records] == [
        ("ambassadors", AMBASSADOR),
        ("mails", "m1"),
        ("memberships", "n1"),
        ("stories", "s1"),
    ]
    assert found.records[0].record["signed_up_at"] == AT.isoformat()
    assert found.records[1].record["unsubscribe_token_hash"] == personal_data.NOT_EXPORTED
    assert found.next_part is None


def test_only_the_persons_own_published_events_are_exported() -> None:
    db = MemoryDatabase()
    db.add(
        "outbox_published",
        {
            "_id": "batch",
            "published_at": AT,
            "events": [
                {"id": "e1", "subject": "ambassadors.v1.signed_up", "key": AMBASSADOR},
                {"id": "e2", "subject": "ambassadors.v1.signed_up", "key": "someone-else"},
            ],
        },
    )
    [record] = export(db, ambassador_id=AMBASSADOR).records
    assert [e["id"] for e in record.record["events"]] == ["e1"]


def test_a_large_export_comes_in_parts_that_together_hold_every_record_once() -> None:
    db = MemoryDatabase()
    text = "x" * 50_000
    for i in range(40):  # 2 MB: five parts or so
        db.add("mails", {"_id": f"m{i:02d}", "ambassador_id": AMBASSADOR, "body": text})
    seen: list[str] = []
    part: int | None = 0
    parts = 0
    while part is not None:
        found = export(db, ambassador_id=AMBASSADOR, part=part)
        size = len(json.dumps([r.model_dump(mode="json") for r in found.records]))
        assert size <= EXPORT_PART_BYTES
        seen += [r.id for r in found.records]
        part, parts = found.next_part, parts + 1
    assert seen == [f"m{i:02d}" for i in range(40)]
    assert parts >= 4


def test_the_address_is_found_wherever_it_is_stored_in_any_case() -> None:
    db = MemoryDatabase()
    db.add("subscribers", {"_id": "s1", "email": EMAIL.upper()})
    db.add("dead_letters", {"_id": "d1", "payload": f'{{"email": "{EMAIL}"}}'.encode()})
    db.add("ambassadors", {"_id": "other", "email": "other@example.org"})
    found = asyncio.run(address_search.search(db, None, [], "svc", EMAIL))  # type: ignore[arg-type]
    assert [(p.name, p.ids) for p in found.found] == [
        ("dead_letters", ["d1"]),
        ("subscribers", ["s1"]),
    ]
    assert "collection ambassadors" in found.searched


# ---------------------------------------------------------------- the CLI


class Services:
    """Every built service as an in-memory database answering the two privacy commands."""

    def __init__(self) -> None:
        self.dbs = {name: MemoryDatabase(name) for name in registry.built()}
        self.down: set[str] = set()
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def call(
        self, endpoint: Endpoint[Any, Any], request: Any, *, timeout: float | None = None
    ) -> Any:
        service = endpoint.subject.split(".", 1)[0]
        self.asked.append((endpoint.subject, request.model_dump(exclude_unset=True)))
        if service in self.down:
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE, f"the {service} service is not running"
            )
        db: Any = self.dbs[service]
        if endpoint == privacy_export(service):
            return asyncio.run(personal_data.export(db, service, request))
        if endpoint == privacy_audit(service):
            assert isinstance(request, FindAddress)
            return asyncio.run(address_search.search(db, None, [], service, request.email))
        raise AssertionError(endpoint.subject)


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    fake = Services()
    fake.dbs["ambassadors"].add(
        "ambassadors",
        {"_id": AMBASSADOR, "profile": {"email": EMAIL, "name": "Anna Hansen"}, "status": "active"},
    )
    fake.dbs["newsletter"].add("subscribers", {"_id": "sub1", "email": EMAIL})
    fake.dbs["newsletter"].add("mails", {"_id": "m1", "ambassador_id": AMBASSADOR})
    fake.dbs["networks"].add("memberships", {"_id": "n1", "ambassador_id": AMBASSADOR})
    monkeypatch.setattr(calls, "call", fake.call)
    yield fake


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_export_by_address_learns_the_id_and_writes_a_section_per_service(
    services: Services, tmp_path: Path
) -> None:
    out = tmp_path / "anna.json"
    result = run("privacy", "export", EMAIL, "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["person"] == {"email": EMAIL, "ambassador_id": AMBASSADOR}
    assert set(document["services"]) == set(registry.built())
    sections = document["services"]
    assert [r["_id"] for r in sections["ambassadors"]["ambassadors"]] == [AMBASSADOR]
    assert set(sections["newsletter"]) == {"subscribers", "mails"}
    assert [r["_id"] for r in sections["networks"]["memberships"]] == ["n1"]
    assert sections["events"] == {}
    # The other services were asked with both: the mail record names only her id.
    asked = dict(services.asked)
    assert asked["newsletter.cmd.privacy.export"] == {
        "email": EMAIL,
        "ambassador_id": AMBASSADOR,
        "part": 0,
    }
    assert "4 records written to" in result.output
    assert re.search(r"^newsletter +mails +1$", result.output, re.MULTILINE), result.output


def test_export_by_id_learns_the_address(services: Services, tmp_path: Path) -> None:
    out = tmp_path / "anna.json"
    result = run("privacy", "export", AMBASSADOR, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["person"] == {"email": EMAIL, "ambassador_id": AMBASSADOR}
    assert summary["records"]["newsletter"] == {"mails": 1, "subscribers": 1}


def test_an_export_with_a_service_missing_is_not_written_unless_asked_for(
    services: Services, tmp_path: Path
) -> None:
    services.down.add("events")
    out = tmp_path / "anna.json"
    refused = run("privacy", "export", EMAIL, "--out", str(out))
    assert refused.exit_code == 3
    assert "did not answer: events" in refused.output
    assert not out.exists()

    partial = run("privacy", "export", EMAIL, "--out", str(out), "--allow-missing")
    assert partial.exit_code == 0, partial.output
    document = json.loads(out.read_text())
    assert document["not_answered"] == ["events"]
    assert "events" not in document["services"]


def test_export_refuses_what_is_not_an_address_before_asking_anyone(
    services: Services, tmp_path: Path
) -> None:
    result = run("privacy", "export", "anna@", "--out", str(tmp_path / "x.json"))
    assert result.exit_code == 1
    assert "not an e-mail address" in result.output
    assert services.asked == []


def test_audit_exits_1_where_the_address_is_found_and_0_where_it_is_not(services: Services) -> None:
    found = run("privacy", "audit", EMAIL)
    assert found.exit_code == 1, found.output
    table = found.output
    assert re.search(r"^newsletter +collection subscribers +1 +sub1$", table, re.MULTILINE), table
    assert re.search(
        rf"^ambassadors +collection ambassadors +1 +{AMBASSADOR}$", table, re.MULTILINE
    )
    assert "found in 2 of 4 places searched in 5 services" in table

    nowhere = run("privacy", "audit", "nobody@example.org", "--json")
    assert nowhere.exit_code == 0, nowhere.output
    answer = json.loads(nowhere.output)
    assert answer["found"] == {}
    assert set(answer["searched"]) == set(registry.built())


def test_audit_exits_3_when_a_service_does_not_answer(services: Services) -> None:
    services.down.add("social")
    result = run("privacy", "audit", "nobody@example.org")
    assert result.exit_code == 3
    assert "did not answer: social" in result.output


@pytest.mark.parametrize(
    ("text", "names_her"),
    [
        (EMAIL, True),
        (f"Skriv til {EMAIL.upper()}.", True),
        (f"<{EMAIL}>", True),
        (f"h{EMAIL}", False),
        (f"{EMAIL}.uk", False),
        (f"x.{EMAIL}", False),
    ],
)
def test_the_address_counts_only_as_a_whole_address(text: str, names_her: bool) -> None:
    pattern = personal_data.address_pattern(EMAIL)
    assert personal_data.names({"text": text}, None, pattern) is names_her
    bytes_pattern = personal_data.address_bytes_pattern(EMAIL)
    assert (bytes_pattern.search(text.encode()) is not None) is names_her


def test_an_export_that_cannot_be_written_says_so_in_one_line(
    services: Services, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = run("privacy", "export", EMAIL, "--out", str(blocked / "anna.json"))
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "cannot be written" in result.output
    assert "Traceback" not in result.output
