"""The events service as a real process on real NATS and SecantusDB, fed by the real
ambassadors service: scheduling, invitations, answers, the waitlist, reminders with a clock
the test moves, cancellation, withdrawal and erasure, closing with minutes."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from pymongo import AsyncMongoClient

from contracts.ambassadors import Endpoints as AmbassadorEndpoints
from contracts.errors import ServiceError
from contracts.events import Endpoints
from services.runtime.tokens import token_hash
from stack.mongo import MongoServer
from tests.integration.ambassadors_harness import eventually
from tests.integration.events_harness import (
    Document,
    Events,
    EventsFactory,
    days_from_now,
    local_iso,
)
from tests.support import jobs

pytest_plugins = ["tests.integration.ambassadors_fixtures", "tests.integration.events_fixtures"]
pytestmark = pytest.mark.integration


async def error_of(events: Events, subject: str, payload: dict[str, object]) -> ServiceError:
    with pytest.raises(ServiceError) as raised:
        await events.request(subject, payload)
    return raised.value


async def test_capacity_waitlist_promotion_and_reminders(events: Events) -> None:
    a, b, c = [await events.active_ambassador(name=n) for n in ("Anne", "Bo", "Carl")]
    starts = days_from_now(6)
    meeting = await events.schedule(
        capacity=2,
        starts=local_iso(starts),
        ends=local_iso(starts + timedelta(hours=2)),
        audience={"ambassador_ids": [a, b, c]},
    )
    meeting_id = meeting["id"]
    assert meeting["state"] == "scheduled"

    invited = await events.wait_for(meeting_id, "invited", count=3)
    assert sorted(e.data["ambassador_id"] for e in invited) == sorted([a, b, c])
    assert len({e.msg_id for e in invited}) == 3
    ics = icalendar.Calendar.from_ical(invited[0].data["ics"])
    assert str(ics["METHOD"]) == "REQUEST"
    (vevent,) = ics.walk("VEVENT")
    assert vevent.decoded("DTSTART") == starts
    assert vevent.decoded("SEQUENCE") == 0

    assert (await events.rsvp(meeting_id, a, "yes"))["participation"] == "attending"
    assert (await events.rsvp(meeting_id, b, "yes"))["participation"] == "attending"
    third = await events.rsvp(meeting_id, c, "yes")
    assert third["participation"] == "waitlisted"
    assert third["waitlist_position"] == 1
    (waitlisted,) = await events.wait_for(meeting_id, "waitlisted")
    assert waitlisted.data["ambassador_id"] == c

    shown = await events.show(meeting_id)
    assert [w["ambassador_id"] for w in shown["waitlist"]] == [c]
    assert shown["meeting"]["counts"]["attending"] == 2

    cancelled = await events.rsvp(meeting_id, b, "no")
    assert cancelled["promoted"] == [c]
    (promoted,) = await events.wait_for(meeting_id, "promoted")
    assert promoted.data["ambassador_id"] == c
    shown = await events.show(meeting_id)
    answers = {i["ambassador_id"]: i["participation"] for i in shown["invitees"]}
    assert answers == {a: "attending", b: "declined", c: "attending"}
    assert shown["waitlist"] == []

    # Not yet: 49 hours before, nobody is reminded.
    events.travel(starts - timedelta(hours=49))
    assert await events.bus(meeting_id, "reminder_due") == []
    events.travel(starts - timedelta(hours=47, minutes=59))
    reminders = await events.wait_for(meeting_id, "reminder_due", count=2)
    assert sorted(r.data["ambassador_id"] for r in reminders) == sorted([a, c])
    # Once: later rounds send no more.
    events.travel(starts - timedelta(hours=30))
    await events.wait_for(meeting_id, "reminder_due", count=2)
    assert len(await events.bus(meeting_id, "reminder_due")) == 2

    early = await error_of(
        events, Endpoints.CLOSE.subject, {"meeting_id": meeting_id, "minutes": "Referat"}
    )
    assert early.code == "invalid_state"
    events.travel(starts + timedelta(hours=2, minutes=5))
    recorded = await events.request(
        Endpoints.ATTENDANCE.subject, {"meeting_id": meeting_id, "attended": [a, c]}
    )
    assert recorded["attended"] == 2
    held = await events.request(
        Endpoints.CLOSE.subject,
        {"meeting_id": meeting_id, "minutes": "Vi talte om ensomhed.", "outcomes": ["Nyt netværk"]},
    )
    assert held["state"] == "held"
    (fact,) = await events.wait_for(meeting_id, "meeting_held")
    assert fact.data["attendee_count"] == 2
    assert fact.data["outcomes"] == ["Nyt netværk"]
    assert fact.data["kind"] == "ambassador_meeting"
    assert "email" not in fact.data and "ambassador_id" not in fact.data


async def test_bad_commands_get_structured_errors_and_change_nothing(events: Events) -> None:
    a = await events.active_ambassador()
    past = await error_of(
        events,
        Endpoints.SCHEDULE.subject,
        {
            "kind": "workshop",
            "title": "For sent",
            "starts": local_iso(days_from_now(-1)),
            "ends": local_iso(days_from_now(-1) + timedelta(hours=1)),
        },
    )
    assert past.code == "validation_failed"
    assert [d.field for d in past.error.details] == ["starts"]

    backwards = await error_of(
        events,
        Endpoints.SCHEDULE.subject,
        {
            "kind": "workshop",
            "title": "Baglæns",
            "starts": local_iso(days_from_now(3)),
            "ends": local_iso(days_from_now(3) - timedelta(hours=1)),
            "capacity": 0,
        },
    )
    assert backwards.code == "validation_failed"
    assert {d.field for d in backwards.error.details} == {"ends", "capacity"}

    unknown = await error_of(
        events,
        Endpoints.SCHEDULE.subject,
        {
            "kind": "workshop",
            "title": "Ukendte",
            "starts": local_iso(days_from_now(3)),
            "ends": local_iso(days_from_now(3) + timedelta(hours=1)),
            "audience": {"ambassador_ids": [a, "nobody-here"]},
        },
    )
    assert unknown.code == "validation_failed"
    assert "nobody-here" in unknown.error.message
    assert await events.db.meetings.count_documents({}) == 0

    meeting = await events.schedule(audience={"ambassador_ids": [a]})
    stranger = await error_of(
        events,
        Endpoints.RSVP.subject,
        {"meeting_id": meeting["id"], "ambassador_id": "nobody-here", "answer": "yes"},
    )
    assert stranger.code == "not_found"
    bad_token = await error_of(
        events, Endpoints.ANSWER.subject, {"token": "x" * 40, "answer": "yes"}
    )
    assert bad_token.code == "invalid_token"


async def test_answer_by_token_from_the_invitation(events: Events) -> None:
    a = await events.active_ambassador()
    meeting = await events.schedule(audience={"ambassador_ids": [a]})
    (invited,) = await events.wait_for(meeting["id"], "invited")
    # The mail asks for an answer; the newsletter service signs its links: no token travels
    # on the stream.
    assert invited.data["answerable"] is True
    assert "rsvp_token" not in invited.data
    token = events.answer_token(meeting["id"], a)
    answered = await events.request(Endpoints.ANSWER.subject, {"token": token, "answer": "maybe"})
    assert answered["participation"] == "maybe"
    assert answered["ambassador_id"] == a
    # Genuine, but for someone who is not invited.
    stranger = events.answer_token(meeting["id"], "nobody-here")
    rejected = await error_of(
        events, Endpoints.ANSWER.subject, {"token": stranger, "answer": "yes"}
    )
    assert rejected.code == "invalid_token"


async def test_an_answer_link_shows_its_meeting_answer_and_waitlist_place(events: Events) -> None:
    first, second = await events.active_ambassador(), await events.active_ambassador()
    meeting = await events.schedule(audience={"ambassador_ids": [first, second]}, capacity=1)
    await events.wait_for(meeting["id"], "invited", count=2)
    token = events.answer_token(meeting["id"], second)
    shown = await events.request(Endpoints.INVITATION.subject, {"token": token})
    assert shown["meeting"]["meeting_id"] == meeting["id"]
    assert shown["meeting"]["title"] == meeting["title"]
    assert (shown["participation"], shown["seats_left"], shown["state"]) == (
        "invited",
        1,
        "scheduled",
    )
    assert shown["waitlist_position"] is None
    # Looking is not answering.
    assert (await events.show(meeting["id"]))["meeting"]["counts"]["no_answer"] == 2

    await events.request(
        Endpoints.RSVP.subject,
        {"meeting_id": meeting["id"], "ambassador_id": first, "answer": "yes"},
    )
    await events.request(Endpoints.ANSWER.subject, {"token": token, "answer": "yes"})
    shown = await events.request(Endpoints.INVITATION.subject, {"token": token})
    assert (shown["participation"], shown["waitlist_position"], shown["seats_left"]) == (
        "waitlisted",
        1,
        0,
    )
    # Nobody's name or answer but the link holder's own.
    assert set(shown) == {"meeting", "state", "participation", "waitlist_position", "seats_left"}
    stranger = events.answer_token(meeting["id"], "nobody-here")
    refused = await error_of(events, Endpoints.INVITATION.subject, {"token": stranger})
    assert refused.code == "invalid_token"


async def test_everyone_is_invited_in_rounds_and_newcomers_join(events: Events) -> None:
    # The fan-out runs in rounds of 7 (fixture): 16 ambassadors need three.
    ids = [await events.active_ambassador() for _ in range(16)]
    meeting = await events.schedule(kind="annual_assembly", title="Stormøde")
    meeting_id = meeting["id"]
    invited = await events.wait_for(meeting_id, "invited", count=len(ids))
    assert set(ids) <= {e.data["ambassador_id"] for e in invited}
    newcomer = await events.active_ambassador(name="Ny Ambassadør")
    await eventually(
        lambda: _invited(events, meeting_id, newcomer), timeout=30.0, what="newcomer invited"
    )
    everyone = await events.bus(meeting_id, "invited")
    per_person = [e.data["ambassador_id"] for e in everyone]
    assert len(per_person) == len(set(per_person)), "someone was invited twice"


async def _invited(events: Events, meeting_id: str, ambassador_id: str) -> bool | None:
    found = [
        e
        for e in await events.bus(meeting_id, "invited")
        if e.data["ambassador_id"] == ambassador_id
    ]
    return True if found else None


async def test_reschedule_sends_updates_and_moves_the_reminder(events: Events) -> None:
    a, b = await events.active_ambassador(), await events.active_ambassador()
    starts = days_from_now(5)
    meeting = await events.schedule(
        starts=local_iso(starts),
        ends=local_iso(starts + timedelta(hours=2)),
        audience={"ambassador_ids": [a, b]},
    )
    meeting_id = meeting["id"]
    await events.wait_for(meeting_id, "invited", count=2)
    await events.rsvp(meeting_id, a, "yes")
    await events.rsvp(meeting_id, b, "no")
    later = starts + timedelta(days=7)
    moved = await events.request(
        Endpoints.RESCHEDULE.subject,
        {
            "meeting_id": meeting_id,
            "starts": local_iso(later),
            "ends": local_iso(later + timedelta(hours=2)),
        },
    )
    assert moved["sequence"] == 1
    (update,) = await events.wait_for(meeting_id, "invitation_updated")
    assert update.data["ambassador_id"] == a  # b declined: not told
    (vevent,) = icalendar.Calendar.from_ical(update.data["ics"]).walk("VEVENT")
    assert vevent.decoded("SEQUENCE") == 1
    assert vevent.decoded("DTSTART") == later
    invited = next(
        e for e in await events.bus(meeting_id, "invited") if e.data["ambassador_id"] == a
    )
    first = icalendar.Calendar.from_ical(invited.data["ics"]).walk("VEVENT")[0]
    assert str(first["UID"]) == str(vevent["UID"])

    # The old reminder time passes without a reminder; the new one brings it.
    events.travel(starts - timedelta(hours=47))
    events.travel(later - timedelta(hours=49))
    assert await events.bus(meeting_id, "reminder_due") == []
    events.travel(later - timedelta(hours=47))
    (reminder,) = await events.wait_for(meeting_id, "reminder_due")
    assert reminder.data["meeting"]["sequence"] == 1


async def test_cancel_tells_all_but_those_who_declined_and_no_reminder_follows(
    events: Events,
) -> None:
    a, b, c = [await events.active_ambassador() for _ in range(3)]
    starts = days_from_now(4)
    meeting = await events.schedule(
        starts=local_iso(starts),
        ends=local_iso(starts + timedelta(hours=2)),
        audience={"ambassador_ids": [a, b, c]},
    )
    meeting_id = meeting["id"]
    await events.wait_for(meeting_id, "invited", count=3)
    await events.rsvp(meeting_id, a, "yes")
    await events.rsvp(meeting_id, b, "no")
    cancelled = await events.request(
        Endpoints.CANCEL.subject, {"meeting_id": meeting_id, "reason": "Sygdom"}
    )
    assert cancelled["state"] == "cancelled"
    told = await events.wait_for(meeting_id, "invitation_cancelled", count=2)
    assert sorted(t.data["ambassador_id"] for t in told) == sorted([a, c])
    ics = icalendar.Calendar.from_ical(told[0].data["ics"])
    assert str(ics["METHOD"]) == "CANCEL"
    events.travel(starts - timedelta(hours=24))
    await events.wait_for(meeting_id, "meeting_cancelled")
    late = await error_of(
        events,
        Endpoints.RSVP.subject,
        {"meeting_id": meeting_id, "ambassador_id": c, "answer": "yes"},
    )
    assert late.code == "invalid_state"
    assert await events.bus(meeting_id, "reminder_due") == []


async def test_withdrawn_loses_the_seat_and_erased_leaves_no_trace(events: Events) -> None:
    email = "slet.mig.{}@example.org".format(datetime.now(UTC).strftime("%H%M%S%f"))
    a = await events.active_ambassador(email=email)
    b = await events.active_ambassador()
    meeting = await events.schedule(capacity=1, audience={"ambassador_ids": [a, b]})
    meeting_id = meeting["id"]
    await events.wait_for(meeting_id, "invited", count=2)
    await events.rsvp(meeting_id, a, "yes")
    assert (await events.rsvp(meeting_id, b, "yes"))["participation"] == "waitlisted"

    await events.request(AmbassadorEndpoints.WITHDRAW.subject, {"ambassador_id": a})
    (promoted,) = await events.wait_for(meeting_id, "promoted")
    assert promoted.data["ambassador_id"] == b
    shown = await events.show(meeting_id)
    assert [i["ambassador_id"] for i in shown["invitees"]] == [b]

    await events.request(AmbassadorEndpoints.ERASE.subject, {"ambassador_id": a})
    await events.knows(a, standing="erased")

    async def no_trace() -> bool | None:
        for collection in ("ambassadors", "invitations", "meetings", "outbox"):
            async for doc in events.db[collection].find({}):
                if email in str(doc):
                    return None
                if a in str(doc.get("_id")) and not _tombstone(collection, doc):
                    return None
        return True

    await eventually(no_trace, timeout=30.0, what="no trace of the erased ambassador")

    async def purged() -> bool | None:
        events._read.clear()
        events._next_seq = events.first_seq
        about_a = [e for e in await events.bus() if e.data.get("ambassador_id") == a]
        return True if not about_a else None

    await eventually(purged, timeout=30.0, what="the erased ambassador's events purged")


def _tombstone(collection: str, doc: dict[str, object]) -> bool:
    """What the read model keeps of an erased ambassador: the id, and no value besides its
    standing and time (so that nothing about them is applied afterwards)."""
    rest = {k: v for k, v in doc.items() if k not in ("_id", "standing", "as_of")}
    return (
        collection == "ambassadors" and doc.get("standing") == "erased" and not any(rest.values())
    )


async def test_plan_year_schedules_the_fixed_meetings_once(events: Events) -> None:
    year = datetime.now(UTC).year + 1
    payload = {
        "year": year,
        "ambassador_meetings": [f"{year}-03-04", f"{year}-09-16"],
        "assembly": f"{year}-11-12",
    }
    planned = await jobs.report(events.request, Endpoints.PLAN_YEAR, payload)
    kinds = [m["kind"] for m in planned["meetings"]]
    assert kinds == ["ambassador_meeting", "ambassador_meeting", "annual_assembly"]
    again = await error_of(events, Endpoints.PLAN_YEAR.subject, payload)
    assert again.code == "conflict"
    next_year = year + 1
    same_half = await error_of(
        events,
        Endpoints.PLAN_YEAR.subject,
        {
            "year": next_year,
            "ambassador_meetings": [f"{next_year}-03-04", f"{next_year}-04-04"],
            "assembly": f"{next_year}-11-12",
        },
    )
    assert same_half.code == "validation_failed"

    calendar = await events.request(Endpoints.CALENDAR.subject, {})
    assert calendar["meetings"] == 0  # none of them is public
    public = await events.schedule(kind="theme_day", title="Om ensomhed", public=True)
    calendar = await events.request(Endpoints.CALENDAR.subject, {})
    parsed = icalendar.Calendar.from_ical(calendar["ics"])
    assert [str(e["SUMMARY"]) for e in parsed.walk("VEVENT")] == ["Temadag: Om ensomhed"]
    assert public["public"] is True


async def test_a_new_theme_brings_the_invitation_to_that_theme_day(events: Events) -> None:
    a = await events.active_ambassador(themes=[1])
    meeting = await events.schedule(
        kind="theme_day", title="Om fællesskaber", audience={"themes": [5]}
    )
    meeting_id = meeting["id"]
    await events.request(AmbassadorEndpoints.UPDATE.subject, {"ambassador_id": a, "themes": [1, 5]})
    (invited,) = await events.wait_for(meeting_id, "invited")
    assert invited.data["ambassador_id"] == a


async def test_answer_links_of_an_older_release_still_work(
    start_events: EventsFactory, mongo_server: MongoServer
) -> None:
    """An older release stored each invitation's answer token as it is (unique index
    ``token_1``) and kept its own list of ambassadors (no standing): after the upgrade only
    the token's hash is stored, the links already mailed still answer, and the ambassadors
    it knew are known."""
    database = f"ev_{uuid.uuid4().hex[:8]}"
    meeting_id = uuid.uuid4().hex
    starts = days_from_now(8)
    tokens = {who: secrets.token_urlsafe(32) for who in ("amb-old-1", "amb-old-2")}
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_server.url, tz_aware=True)
    try:
        db = mongo[database]
        await db.meetings.insert_one(
            {
                "_id": meeting_id,
                "kind": "ambassador_meeting",
                "title": "Ambassadørmøde fra før",
                "starts_at": starts,
                "ends_at": starts + timedelta(hours=2),
                "state": "scheduled",
                "audience": {"ambassador_ids": list(tokens)},
                "created_at": datetime.now(UTC),
                "attending_count": 0,
                "invite_cursor": None,
                "reminder_due_at": starts - timedelta(hours=48),
                "reminder_pending": True,
            }
        )
        await db.invitations.create_index("token", unique=True)
        await db.invitations.insert_many(
            [
                {
                    "_id": f"{meeting_id}:{who}",
                    "meeting_id": meeting_id,
                    "ambassador_id": who,
                    "token": token,
                    "participation": "invited",
                    "invited_at": datetime.now(UTC),
                    "answered_at": None,
                    "waitlisted_at": None,
                }
                for who, token in tokens.items()
            ]
        )
        await db.ambassadors.insert_many(
            [
                {
                    "_id": who,
                    "name": f"Gammel {who}",
                    "email": f"{who}@example.org",
                    "organisation": None,
                    "themes": [],
                    "core_areas": [],
                }
                for who in tokens
            ]
        )
    finally:
        await mongo.close()

    events = await start_events(database=database)
    stored = await events.db.invitations.find({"meeting_id": meeting_id}).to_list()
    assert {doc["ambassador_id"]: doc.get("token_hash") for doc in stored} == {
        who: token_hash(token) for who, token in tokens.items()
    }
    assert all("token" not in doc for doc in stored)
    assert "token_1" not in await events.db.invitations.index_information()

    answer = {"token": tokens["amb-old-1"], "answer": "yes"}
    answered = await events.request(Endpoints.ANSWER.subject, answer)
    assert answered["participation"] == "attending"
    assert answered["ambassador_id"] == "amb-old-1"
    # Answering kept the hash: the link changes the answer again.
    answer = {"token": tokens["amb-old-1"], "answer": "no"}
    again = await events.request(Endpoints.ANSWER.subject, answer)
    assert again["participation"] == "declined"
    shown = await events.show(meeting_id)
    names = {i["ambassador_id"]: i["name"] for i in shown["invitees"]}
    assert names == {who: f"Gammel {who}" for who in tokens}
