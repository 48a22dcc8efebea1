"""Goals against the configured targets, the CSV import and the demo import, against the
real ambassadors service process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib.resources import files

import pytest

from contracts.ambassadors import Endpoints
from services.ambassadors.importing import parse_ambassador_csv
from tests.integration.ambassadors_harness import (
    AmbassadorsFactory,
    unique_email,
)
from tests.support import jobs

pytest_plugins = ["tests.integration.ambassadors_fixtures"]
pytestmark = pytest.mark.integration


async def test_goals_count_active_ambassadors_by_kind_against_the_configured_target(
    start_ambassadors: AmbassadorsFactory,
) -> None:
    ambassadors = await start_ambassadors({"SAMSKAB_GOAL_AMBASSADORS": "5"})
    for fields in (
        {"kind": "citizen", "themes": [1, 4]},
        {"kind": "citizen", "themes": [4]},
        {"kind": "volunteer"},
        {"kind": "association", "organisation": "Kirkens Korshær", "core_areas": ["housing"]},
        {"kind": "company", "organisation": "Lokal Virksomhed ApS"},
    ):
        await ambassadors.sign_up(staff=True, **fields)
    await ambassadors.sign_up(kind="citizen")  # pending: not yet an ambassador
    leaving = (await ambassadors.sign_up(kind="citizen", staff=True))["ambassador"]["id"]
    await ambassadors.request(Endpoints.WITHDRAW.subject, {"ambassador_id": leaving})

    goals = await ambassadors.request(Endpoints.GOALS.subject, {})

    assert goals["active"] == 5
    assert goals["target"] == 5
    assert goals["progress"] == 1.0
    assert goals["citizens"] == 2
    assert goals["citizen_share"] == 0.4
    assert goals["citizen_share_target"] == 0.2
    assert goals["by_kind"] == {
        "citizen": 2,
        "volunteer": 1,
        "association": 1,
        "organisation": 0,
        "company": 1,
        "politician": 0,
        "municipal_unit": 0,
        "other": 0,
    }
    assert (goals["by_theme"]["1"], goals["by_theme"]["4"], goals["by_theme"]["12"]) == (1, 2, 0)
    assert goals["by_core_area"] == {"housing": 1, "employment": 0, "health": 0}
    assert (goals["pending"], goals["withdrawn"], goals["erased"]) == (1, 1, 0)
    latest = goals["months"][-1]
    assert latest["month"] == datetime.now(UTC).strftime("%Y-%m")
    assert (latest["active"], latest["citizens"]) == (5, 2)
    assert sum(m["activated"] for m in goals["months"]) == 6
    assert sum(m["left"] for m in goals["months"]) == 1


async def test_an_import_takes_the_good_rows_reports_the_bad_and_skips_the_known(
    start_ambassadors: AmbassadorsFactory,
) -> None:
    ambassadors = await start_ambassadors()
    known = unique_email("kendt")
    existing = (await ambassadors.sign_up(email=known, staff=True))["ambassador"]["id"]
    bad_name = f"Forkert Række {uuid.uuid4().hex[:6]}"
    shouted = known.split("@")[0].upper() + "@" + known.split("@")[1]
    csv_text = (
        "name,email,kind,organisation,description,themes,core_areas,public\n"
        f"Kontakt,{unique_email('a')},association,Fredericia Idrætsråd,,3;5,housing,ja\n"
        f'Testborger,{unique_email("b")},citizen,,"To linjer\nbeskrivelse",7,,nej\n'
        f"{bad_name},ikke-en-adresse,citizen,,,,,\n"
        f"Kendt igen,{shouted},citizen,,,,,\n"
    )

    result = await jobs.report(
        ambassadors.request, Endpoints.IMPORT, {"csv_text": csv_text, "filename": "liste.csv"}
    )

    assert result["imported"] == 2
    assert result["skipped_existing"] == 1
    [error] = result["errors"]
    assert error["row"] == 5  # the header is line 1 and row 3's description spans two lines
    assert [d["field"] for d in error["details"]] == ["email"]
    imported = result["ambassador_ids"]
    assert len(imported) == 2 and existing not in imported

    page = await ambassadors.request(Endpoints.LIST.subject, {})
    assert page["total"] == 3
    by_id = {a["id"]: a for a in page["items"]}
    assert {by_id[i]["source"] for i in imported} == {"import"}
    assert {by_id[i]["status"] for i in imported} == {"active"}
    assert by_id[existing]["name"] != "Kendt igen"  # the known address was left alone
    assert by_id[imported[0]]["themes"] == [3, 5] and by_id[imported[0]]["public"] is True
    assert by_id[imported[1]]["description"] == "To linjer\nbeskrivelse"

    signed = await ambassadors.wait_for_events(imported, "signed_up", count=2)
    assert {e.data["source"] for e in signed} == {"import"}
    await ambassadors.wait_for_events(imported, "activated", count=2)
    for collection in ("ambassadors", "outbox"):
        async for doc in ambassadors.db[collection].find({}):
            assert bad_name not in str(doc) and "ikke-en-adresse" not in str(doc)


DEMO_ROWS = len(
    parse_ambassador_csv(
        files("services.ambassadors").joinpath("demo/ambassadors-2022.csv").read_text("utf-8")
    )[0]
)


async def test_the_demo_list_is_imported_once_into_an_empty_database(
    start_ambassadors: AmbassadorsFactory,
) -> None:
    assert DEMO_ROWS >= 80
    first = await start_ambassadors({"SAMSKAB_DEMO_IMPORT": "true"})

    page = await first.request(Endpoints.LIST.subject, {"limit": 1000})
    assert page["total"] == DEMO_ROWS
    assert {a["source"] for a in page["items"]} == {"import"}
    assert {a["status"] for a in page["items"]} == {"active"}
    ids = [a["id"] for a in page["items"]]
    await first.wait_for_events(ids, "activated", count=DEMO_ROWS, timeout=30)
    await first.outbox_drained()
    first.processes[0].stop()

    again = await start_ambassadors({"SAMSKAB_DEMO_IMPORT": "true"}, database=first.database)

    assert (await again.request(Endpoints.LIST.subject, {"limit": 1}))["total"] == DEMO_ROWS
    await again.outbox_drained()
    assert await again.events(name="signed_up") == []
    assert await again.events(name="activated") == []
    # The first run's certificates go on rendering in the new process; no new sign-up.
    assert await again.db.ambassadors.count_documents({}) == DEMO_ROWS
