"""The events service's commands, queries, background rounds and reactions, each run by the
kit the way the runtime runs it (endpoint adapter, unit of work, inbox, guards, audit), on a
database in memory. The housekeeping loop does not run here: a test runs its steps itself
(``send_invitations``, ``housekeeping.step``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from icalendar import Calendar

from contracts.ambassadors import (
    Activated,
    CertificateRef,
    CoreArea,
    Erased,
    Kind,
    ProfileUpdated,
    Status,
    Withdrawn,
)
from contracts.errors import ErrorCode
from contracts.events import (
    Answer,
    AnswerInvitation,
    CancelMeeting,
    CloseMeeting,
    Endpoints,
    GetCalendar,
    InvitationCancelled,
    InvitationUpdated,
    Invited,
    ListMeetings,
    MeetingCancelled,
    MeetingDetail,
    MeetingHeld,
    MeetingKind,
    MeetingRescheduled,
    MeetingScheduled,
    MeetingState,
    MeetingView,
    Participation,
    PlanYear,
    PlanYearResult,
    Promoted,
    RecordAttendance,
    ReminderDue,
    RescheduleMeeting,
    Rsvp,
    RsvpResult,
    ScheduleMeeting,
    ShowMeeting,
    Waitlisted,
)
from contracts.jobs import JobState, ShowJob
from contracts.networks import (
    MemberJoined,
    MemberLeft,
    NetworkClosed,
    NetworkFormed,
    NetworkInfo,
    NetworkKind,
)
from services.events import housekeeping, store
from services.events.app import build
from services.events.context import Context
from services.events.settings import EventsSettings
from services.runtime import tokens
from services.runtime.testing import ServiceHarness
from services.runtime.unit_of_work import Applied

SECRET = "events-handler-tests-0123456789abcdef0123"
OTHER_SECRET = "another-events-secret-0123456789abcdef01"
REMINDER_HOURS = 48
UID_DOMAIN = "samskab.test"

Service = tuple[ServiceHarness, Context]


def settings() -> EventsSettings:
    return EventsSettings(
        _env_file=None,
        events_token_secret=SECRET,
        # Small rounds, so that even a handful of ambassadors takes several.
        events_fanout_batch=2,
        events_reminder_hours=REMINDER_HOURS,
        mail_message_id_domain=UID_DOMAIN,
    )


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    yield await ServiceHarness.start(build, settings())


# ---------------------------------------------------------------- the ambassadors service's news


def activated(
    h: ServiceHarness,
    ambassador_id: str,
    *,
    themes: Sequence[int] = (),
    core_areas: Sequence[CoreArea] = (),
    organisation: str | None = None,
) -> Activated:
    return Activated(
        ambassador_id=ambassador_id,
        name=f"Ambassadør {ambassador_id.title()}",
        email=f"{ambassador_id}@example.org",
        kind=Kind.ASSOCIATION if organisation else Kind.CITIZEN,
        organisation=organisation,
        public=organisation is not None,
        themes=list(themes),
        core_areas=list(core_areas),
        certificate=CertificateRef(
            number=f"FA-2027-{ambassador_id}",
            verification_code="K7Q2-M9XA",
            bucket="certificates",
            object_name=f"{ambassador_id}.pdf",
        ),
        occurred_at=h.clock.now(),
    )


def profile_updated(
    h: ServiceHarness, ambassador_id: str, *, themes: Sequence[int]
) -> ProfileUpdated:
    return ProfileUpdated(
        ambassador_id=ambassador_id,
        name=f"Ambassadør {ambassador_id.title()}",
        email=f"{ambassador_id}@example.org",
        kind=Kind.CITIZEN,
        public=False,
        themes=list(themes),
        changed=["themes"],
        status=Status.ACTIVE,
        occurred_at=h.clock.now(),
    )


async def activate(h: ServiceHarness, *ambassador_ids: str, **profile: Any) -> None:
    for ambassador_id in ambassador_ids:
        assert await h.deliver(activated(h, ambassador_id, **profile)) == [Applied.APPLIED]


async def withdraw(h: ServiceHarness, ambassador_id: str) -> Applied:
    [applied] = await h.deliver(
        Withdrawn(ambassador_id=ambassador_id, reason="Flytter", occurred_at=h.clock.now())
    )
    return applied


async def erase(h: ServiceHarness, ambassador_id: str) -> Erased:
    event = Erased(ambassador_id=ambassador_id, occurred_at=h.clock.now())
    assert await h.deliver(event) == [Applied.APPLIED]
    return event


# ---------------------------------------------------------------- meetings and answers


def meeting(h: ServiceHarness, *, in_days: float = 10, **fields: Any) -> ScheduleMeeting:
    starts = h.clock.now() + timedelta(days=in_days)
    values: dict[str, Any] = {
        "kind": MeetingKind.WORKSHOP,
        "title": "Flere ind i fællesskaber",
        "starts": starts,
        "ends": starts + timedelta(hours=2),
        "place": "Fredericia Bibliotek, Jernbanegade 15",
        **fields,
    }
    return ScheduleMeeting.model_validate(values)


async def schedule(h: ServiceHarness, *, in_days: float = 10, **fields: Any) -> MeetingView:
    return await h.call(Endpoints.SCHEDULE, meeting(h, in_days=in_days, **fields))


async def send_invitations(ctx: Context) -> int:
    """Run the housekeeping loop's steps until every audience is invited; how many ran."""
    for steps in range(1, 100):
        if not await housekeeping.step(ctx):
            return steps
    raise AssertionError("the invitation rounds never finished")


def invited(h: ServiceHarness, meeting_id: str) -> list[str]:
    """Whoever was sent an invitation to the meeting, in the order they were sent."""
    return [e.ambassador_id for e in h.emitted_of(Invited) if e.meeting.meeting_id == meeting_id]


async def rsvp(
    h: ServiceHarness, meeting_id: str, ambassador_id: str, answer: Answer
) -> RsvpResult:
    return await h.call(
        Endpoints.RSVP, Rsvp(meeting_id=meeting_id, ambassador_id=ambassador_id, answer=answer)
    )


def answer_token(meeting_id: str, ambassador_id: str, secret: str = SECRET) -> str:
    """The token the newsletter service signs into the invitation mail's answer links."""
    return tokens.Signer(secret, tokens.ANSWER).sign(meeting_id, ambassador_id)


async def answer_by_mail(
    h: ServiceHarness, meeting_id: str, ambassador_id: str, answer: Answer
) -> RsvpResult:
    token = answer_token(meeting_id, ambassador_id)
    return await h.call(
        Endpoints.ANSWER, AnswerInvitation(token=token, answer=answer), actor="public"
    )


async def show(h: ServiceHarness, meeting_id: str) -> MeetingDetail:
    return await h.call(Endpoints.SHOW, ShowMeeting(meeting_id=meeting_id))


async def standing(h: ServiceHarness, meeting_id: str) -> dict[str, Participation]:
    """Where each invitee of the meeting stands."""
    detail = await show(h, meeting_id)
    return {i.ambassador_id: i.participation for i in detail.invitees}


def invitations_of(h: ServiceHarness, ambassador_id: str) -> list[dict[str, Any]]:
    return [d for d in h.db.documents("invitations") if d["ambassador_id"] == ambassador_id]


# ================================================================ scheduling and invitations


async def test_a_meeting_for_everyone_invites_every_active_ambassador_once_in_rounds(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna", "bo", "carla", "dorte", "erik")
    view = await schedule(h)
    assert view.state == MeetingState.SCHEDULED and view.inviting
    [scheduled] = h.emitted_of(MeetingScheduled)
    assert scheduled.meeting_id == view.id
    assert invited(h, view.id) == []  # the audience is invited in rounds, in the background

    assert await housekeeping.step(ctx)  # the first round: two of five
    assert invited(h, view.id) == ["anna", "bo"]
    await send_invitations(ctx)
    await send_invitations(ctx)  # nothing is left to do: nobody is invited twice

    assert invited(h, view.id) == ["anna", "bo", "carla", "dorte", "erik"]
    for invitation in h.emitted_of(Invited):
        assert invitation.answerable
        assert invitation.email == f"{invitation.ambassador_id}@example.org"
        assert "METHOD:REQUEST" in invitation.ics
    [listed] = (await h.call(Endpoints.LIST, ListMeetings())).items
    assert not listed.inviting
    assert (listed.counts.invited, listed.counts.no_answer) == (5, 5)


async def test_a_withdrawn_ambassador_is_not_invited(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", "bo", "carla", "dorte")
    await withdraw(h, "bo")
    view = await schedule(h)
    await housekeeping.step(ctx)  # the first round: anna and carla
    assert await withdraw(h, "dorte") == Applied.APPLIED  # before her round came
    await send_invitations(ctx)
    assert invited(h, view.id) == ["anna", "carla"]


async def test_named_invitees_are_the_only_ones_invited(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", "bo", "carla", "dorte", "erik")
    view = await schedule(h, audience={"ambassador_ids": ["erik", "bo", "erik"]})
    await send_invitations(ctx)
    assert sorted(invited(h, view.id)) == ["bo", "erik"]


async def test_an_audience_by_theme_or_core_area_invites_whoever_has_one_of_them(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna", themes=[3, 7])
    await activate(h, "bo", core_areas=[CoreArea.HOUSING])
    await activate(h, "carla", themes=[7], core_areas=[CoreArea.HEALTH])
    await activate(h, "dorte")
    by_theme = await schedule(h, audience={"themes": [3]})
    by_area = await schedule(h, audience={"core_areas": ["housing"]})
    either = await schedule(h, audience={"themes": [3], "core_areas": ["housing"]})
    await send_invitations(ctx)
    assert invited(h, by_theme.id) == ["anna"]
    assert invited(h, by_area.id) == ["bo"]
    assert invited(h, either.id) == ["anna", "bo"]


async def test_unknown_named_invitees_are_refused_by_name_and_nothing_is_stored(
    service: Service,
) -> None:
    h, _ = service
    await activate(h, "anna", "bo")
    await withdraw(h, "bo")
    error = await h.fails(
        Endpoints.SCHEDULE, meeting(h, audience={"ambassador_ids": ["anna", "bo", "ghost"]})
    )
    assert error.code == ErrorCode.VALIDATION_FAILED
    [detail] = error.error.details
    assert detail.field == "audience.ambassador_ids"
    assert "bo" in detail.message and "ghost" in detail.message and "anna" not in detail.message
    assert h.db.documents("meetings") == []
    assert h.emitted_of(MeetingScheduled) == []


async def test_a_meeting_in_the_past_is_refused(service: Service) -> None:
    h, _ = service
    error = await h.fails(Endpoints.SCHEDULE, meeting(h, in_days=-1))
    assert error.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in error.error.details] == ["starts"]
    assert h.db.documents("meetings") == [] and h.emitted == []


async def test_a_network_audience_waits_for_the_networks_service(service: Service) -> None:
    h, _ = service
    error = await h.fails(Endpoints.SCHEDULE, meeting(h, audience={"network_id": "net-bolig"}))
    assert error.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in error.error.details] == ["audience.network_id"]
    assert h.db.documents("meetings") == []


def network(network_id: str = "net-bolig") -> NetworkInfo:
    return NetworkInfo(network_id=network_id, kind=NetworkKind.ACTION, title="Boliggruppen")


async def test_a_network_meeting_reaches_exactly_its_members_and_those_who_join_later(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna", "bo", "carla", "dan")
    await h.deliver(
        NetworkFormed(network_id="net-bolig", network=network(), invited=3),
        *(
            MemberJoined(network_id="net-bolig", ambassador_id=who, network=network())
            for who in ("anna", "carla")
        ),
    )
    view = await schedule(h, audience={"network_id": "net-bolig"}, kind=MeetingKind.NETWORK_MEETING)
    await send_invitations(ctx)
    assert sorted(invited(h, view.id)) == ["anna", "carla"]
    # Joining later: invited at once; leaving: no longer in the audience.
    await h.deliver(
        MemberJoined(network_id="net-bolig", ambassador_id="dan", network=network()),
        MemberLeft(network_id="net-bolig", ambassador_id="anna", reason="removed"),
    )
    assert sorted(invited(h, view.id)) == ["anna", "carla", "dan"]
    assert await store.network_members(h.service.reading(), "net-bolig") == {"carla", "dan"}
    # A joining from before the leaving, delivered again late, does not bring anna back.
    joined_before = MemberJoined(
        network_id="net-bolig", ambassador_id="anna", network=network(),
        occurred_at=datetime(2020, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    await h.deliver(joined_before)
    assert await store.network_members(h.service.reading(), "net-bolig") == {"carla", "dan"}
    # A closed network gets no new meetings.
    await h.deliver(NetworkClosed.model_validate({
        "network_id": "net-bolig", "network": network().model_dump(), "outcome": "no_result",
        "summary": "Slut", "closed_on": "2027-03-01",
    }))  # fmt: skip
    refused = await h.fails(Endpoints.SCHEDULE, meeting(h, audience={"network_id": "net-bolig"}))
    assert [d.field for d in refused.error.details] == ["audience.network_id"]


async def test_someone_activated_while_the_rounds_run_is_invited_once(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", "bo", "carla")
    view = await schedule(h)
    await housekeeping.step(ctx)  # anna and bo
    await activate(h, "zelda")  # invited at once by the reaction
    assert invited(h, view.id) == ["anna", "bo", "zelda"]
    await send_invitations(ctx)  # the rounds reach zelda: she is invited already
    assert invited(h, view.id) == ["anna", "bo", "zelda", "carla"]


# ================================================================ the year's plan


def year_plan(year: int = 2027) -> PlanYear:
    return PlanYear(
        year=year,
        ambassador_meetings=[date(year, 9, 16), date(year, 3, 4)],
        assembly=date(year, 11, 25),
        place="Fredericia Rådhus, Gothersgade 20",
    )


async def planned(h: ServiceHarness, ctx: Context, plan: PlanYear) -> PlanYearResult:
    """Plan the year, invite everyone (the job's work), and the job's report."""
    job = await h.call(Endpoints.PLAN_YEAR, plan)
    await send_invitations(ctx)
    return await h.report(Endpoints.PLAN_YEAR, job)


async def test_planning_a_year_schedules_two_ambassador_meetings_and_the_assembly_for_everyone(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna", "bo", "carla")
    job = await h.call(Endpoints.PLAN_YEAR, year_plan())
    assert (job.state, job.unit) == (JobState.RUNNING, "invitations")
    await send_invitations(ctx)
    plan = await h.report(Endpoints.PLAN_YEAR, job)
    shown = await h.call(Endpoints.JOB, ShowJob(job_id=job.id))
    assert (shown.state, shown.done, shown.total) == (JobState.DONE, 9, 9)
    assert [m.counts.invited for m in plan.meetings] == [3, 3, 3]
    spring, autumn, assembly = plan.meetings
    assert [m.kind for m in plan.meetings] == [
        MeetingKind.AMBASSADOR_MEETING,
        MeetingKind.AMBASSADOR_MEETING,
        MeetingKind.ANNUAL_ASSEMBLY,
    ]
    assert spring.starts_at < autumn.starts_at
    assert assembly.title == "Stormøde 2027"
    assert {e.meeting_id for e in h.emitted_of(MeetingScheduled)} == {m.id for m in plan.meetings}
    for meeting_ in plan.meetings:
        assert sorted(invited(h, meeting_.id)) == ["anna", "bo", "carla"]


async def test_a_second_plan_for_the_same_year_is_a_conflict(service: Service) -> None:
    h, ctx = service
    await h.call(Endpoints.PLAN_YEAR, year_plan())
    again = year_plan().model_copy(update={"assembly": date(2027, 12, 2)})
    error = await h.fails(Endpoints.PLAN_YEAR, again)
    assert error.code == ErrorCode.CONFLICT
    assert len(h.db.documents("meetings")) == 3
    assert len(h.emitted_of(MeetingScheduled)) == 3
    # Another year is planned as usual.
    assert len((await planned(h, ctx, year_plan(2028))).meetings) == 3


async def test_a_plan_with_a_day_already_past_names_the_plans_own_field(service: Service) -> None:
    h, _ = service
    late = year_plan().model_copy(
        update={"ambassador_meetings": [date(2027, 1, 10), date(2027, 9, 16)]}
    )
    error = await h.fails(Endpoints.PLAN_YEAR, late)
    assert error.code == ErrorCode.VALIDATION_FAILED
    assert h.db.documents("meetings") == []
    assert [d.field for d in error.error.details] == ["ambassador_meetings"]


# ================================================================ moving and cancelling


async def invited_with_answers(h: ServiceHarness, ctx: Context, **fields: Any) -> MeetingView:
    """A meeting where anna said yes, bo maybe, carla no, and dorte has not answered."""
    await activate(h, "anna", "bo", "carla", "dorte")
    view = await schedule(h, **fields)
    await send_invitations(ctx)
    await rsvp(h, view.id, "anna", Answer.YES)
    await rsvp(h, view.id, "bo", Answer.MAYBE)
    await rsvp(h, view.id, "carla", Answer.NO)
    return view


async def test_moving_a_meeting_tells_everyone_who_has_not_declined(service: Service) -> None:
    h, ctx = service
    view = await invited_with_answers(h, ctx)
    starts = view.starts_at + timedelta(days=7)
    moved = await h.call(
        Endpoints.RESCHEDULE,
        RescheduleMeeting(meeting_id=view.id, starts=starts, ends=starts + timedelta(hours=3)),
    )
    assert moved.starts_at == starts and moved.sequence == view.sequence + 1
    assert moved.place == view.place  # no new place given: it stays
    [rescheduled] = h.emitted_of(MeetingRescheduled)
    assert rescheduled.previous_starts_at == view.starts_at
    updates = h.emitted_of(InvitationUpdated)
    assert sorted(u.ambassador_id for u in updates) == ["anna", "bo", "dorte"]
    for update in updates:
        assert update.answerable and update.meeting.sequence == 1
        assert update.meeting.starts_at == starts
        assert update.previous_starts_at == view.starts_at
        assert "SEQUENCE:1" in update.ics
    # Answers stand.
    assert (await standing(h, view.id))["anna"] == Participation.ATTENDING


async def test_a_meeting_that_is_not_there_or_not_scheduled_cannot_be_moved(
    service: Service,
) -> None:
    h, _ = service
    view = await schedule(h)
    await h.call(Endpoints.CANCEL, CancelMeeting(meeting_id=view.id))
    starts = view.starts_at + timedelta(days=1)
    for meeting_id, code in ((view.id, ErrorCode.INVALID_STATE), ("nosuch", ErrorCode.NOT_FOUND)):
        error = await h.fails(
            Endpoints.RESCHEDULE,
            RescheduleMeeting(
                meeting_id=meeting_id, starts=starts, ends=starts + timedelta(hours=1)
            ),
        )
        assert error.code == code
    assert h.emitted_of(MeetingRescheduled) == []


async def test_cancelling_tells_everyone_who_has_not_declined_and_no_reminder_follows(
    service: Service,
) -> None:
    h, ctx = service
    view = await invited_with_answers(h, ctx)
    cancelled = await h.call(
        Endpoints.CANCEL, CancelMeeting(meeting_id=view.id, reason="  Lokalet er oversvømmet ")
    )
    assert cancelled.state == MeetingState.CANCELLED
    assert cancelled.cancel_reason == "Lokalet er oversvømmet"
    assert cancelled.sequence == view.sequence + 1
    [announced] = h.emitted_of(MeetingCancelled)
    assert announced.reason == "Lokalet er oversvømmet"
    told = h.emitted_of(InvitationCancelled)
    assert sorted(t.ambassador_id for t in told) == ["anna", "bo", "dorte"]
    assert all("METHOD:CANCEL" in t.ics and t.reason == announced.reason for t in told)

    h.clock.travel(to=view.starts_at - timedelta(hours=REMINDER_HOURS - 1))
    await housekeeping.step(ctx)
    assert h.emitted_of(ReminderDue) == []
    error = await h.fails(
        Endpoints.RSVP, Rsvp(meeting_id=view.id, ambassador_id="dorte", answer=Answer.YES)
    )
    assert error.code == ErrorCode.INVALID_STATE
    again = await h.fails(Endpoints.CANCEL, CancelMeeting(meeting_id=view.id))
    assert again.code == ErrorCode.INVALID_STATE


# ================================================================ answers and the waitlist


async def test_an_answer_given_by_staff_is_recorded(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna")
    view = await schedule(h)
    await send_invitations(ctx)
    result = await rsvp(h, view.id, "anna", Answer.YES)
    assert result.participation == Participation.ATTENDING and result.waitlist_position is None
    [anna] = (await show(h, view.id)).invitees
    assert anna.participation == Participation.ATTENDING and anna.answered_at == h.clock.now()
    changed = await rsvp(h, view.id, "anna", Answer.MAYBE)
    assert changed.participation == Participation.MAYBE


async def test_the_answer_link_in_the_mail_records_the_answer(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", "bo")
    view = await schedule(h)
    await send_invitations(ctx)
    result = await answer_by_mail(h, view.id, "bo", Answer.NO)
    assert (result.meeting_id, result.ambassador_id) == (view.id, "bo")
    assert result.participation == Participation.DECLINED
    assert await standing(h, view.id) == {
        "anna": Participation.INVITED,
        "bo": Participation.DECLINED,
    }


async def test_a_forged_token_or_one_signed_with_another_key_answers_nothing(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna")
    view = await schedule(h)
    await send_invitations(ctx)
    genuine = answer_token(view.id, "anna")
    forged = [
        "x" * 40,
        answer_token(view.id, "anna", secret=OTHER_SECRET),
        # The right key, but for another kind of link.
        tokens.Signer(SECRET, tokens.UNSUBSCRIBE).sign(view.id, "anna"),
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
        # Genuine, but for someone who is not invited.
        answer_token(view.id, "ghost"),
    ]
    for token in forged:
        error = await h.fails(
            Endpoints.ANSWER, AnswerInvitation(token=token, answer=Answer.YES), actor="public"
        )
        assert error.code == ErrorCode.INVALID_TOKEN, token
    assert await standing(h, view.id) == {"anna": Participation.INVITED}


async def test_an_answer_link_mailed_by_an_older_release_still_works(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna")
    view = await schedule(h)
    await send_invitations(ctx)
    # An older release mailed a random token and kept its hash on the invitation.
    legacy = "older-release-random-token-0123456789"
    digest = tokens.token_hash(legacy)
    await h.db.invitations.update_one({"ambassador_id": "anna"}, {"$set": {"token_hash": digest}})

    result = await h.call(
        Endpoints.ANSWER, AnswerInvitation(token=legacy, answer=Answer.YES), actor="public"
    )
    assert (result.meeting_id, result.participation) == (view.id, Participation.ATTENDING)


async def test_someone_not_invited_cannot_answer(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", "bo")
    view = await schedule(h, audience={"ambassador_ids": ["anna"]})
    await send_invitations(ctx)
    error = await h.fails(
        Endpoints.RSVP, Rsvp(meeting_id=view.id, ambassador_id="bo", answer=Answer.YES)
    )
    assert error.code == ErrorCode.NOT_FOUND


async def test_no_answers_are_taken_once_the_meeting_has_started(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna")
    view = await schedule(h)
    await send_invitations(ctx)
    h.clock.travel(to=view.starts_at + timedelta(minutes=5))
    error = await h.fails(
        Endpoints.ANSWER,
        AnswerInvitation(token=answer_token(view.id, "anna"), answer=Answer.YES),
        actor="public",
    )
    assert error.code == ErrorCode.INVALID_STATE


async def full_meeting(h: ServiceHarness, ctx: Context) -> MeetingView:
    """Two seats: anna and bo have them, carla and dorte wait in that order; erik has not
    answered."""
    await activate(h, "anna", "bo", "carla", "dorte", "erik")
    view = await schedule(h, capacity=2)
    await send_invitations(ctx)
    for who in ("anna", "bo", "carla"):
        await answer_by_mail(h, view.id, who, Answer.YES)
    h.clock.travel(timedelta(minutes=1))
    await answer_by_mail(h, view.id, "dorte", Answer.YES)
    return view


async def test_a_yes_to_a_full_meeting_goes_on_the_waitlist_first_come_first_served(
    service: Service,
) -> None:
    h, ctx = service
    view = await full_meeting(h, ctx)
    assert [(w.ambassador_id, w.position) for w in h.emitted_of(Waitlisted)] == [
        ("carla", 1),
        ("dorte", 2),
    ]
    assert all(w.answerable for w in h.emitted_of(Waitlisted))
    detail = await show(h, view.id)
    assert [(w.ambassador_id, w.waitlist_position) for w in detail.waitlist] == [
        ("carla", 1),
        ("dorte", 2),
    ]
    counts = detail.meeting.counts
    assert (counts.attending, counts.waitlisted, counts.no_answer) == (2, 2, 1)
    # Saying yes again keeps the place in line, and tells nobody anything new.
    again = await rsvp(h, view.id, "dorte", Answer.YES)
    assert (again.participation, again.waitlist_position) == (Participation.WAITLISTED, 2)
    assert len(h.emitted_of(Waitlisted)) == 2


async def test_a_no_frees_a_seat_and_the_first_on_the_waitlist_gets_it(service: Service) -> None:
    h, ctx = service
    view = await full_meeting(h, ctx)
    result = await answer_by_mail(h, view.id, "bo", Answer.NO)
    assert result.participation == Participation.DECLINED
    assert result.promoted == ["carla"]
    [promoted] = h.emitted_of(Promoted)
    assert promoted.ambassador_id == "carla" and "METHOD:REQUEST" in promoted.ics
    detail = await show(h, view.id)
    assert [(w.ambassador_id, w.waitlist_position) for w in detail.waitlist] == [("dorte", 1)]
    assert (await standing(h, view.id))["carla"] == Participation.ATTENDING
    assert detail.meeting.counts.attending == 2
    # A "maybe" from a seat frees it just the same.
    assert (await rsvp(h, view.id, "anna", Answer.MAYBE)).promoted == ["dorte"]
    assert [p.ambassador_id for p in h.emitted_of(Promoted)] == ["carla", "dorte"]


# ================================================================ reminders


async def test_those_with_a_seat_are_reminded_once_shortly_before_the_start(
    service: Service,
) -> None:
    h, ctx = service
    view = await full_meeting(h, ctx)
    await rsvp(h, view.id, "erik", Answer.MAYBE)
    due = view.starts_at - timedelta(hours=REMINDER_HOURS)

    h.clock.travel(to=due - timedelta(minutes=1))
    await housekeeping.step(ctx)
    assert h.emitted_of(ReminderDue) == []

    h.clock.travel(to=due + timedelta(minutes=1))
    await housekeeping.step(ctx)
    await housekeeping.step(ctx)
    reminders = h.emitted_of(ReminderDue)
    assert sorted(r.ambassador_id for r in reminders) == ["anna", "bo"]
    assert all(r.answerable and r.meeting.meeting_id == view.id for r in reminders)

    h.clock.travel(timedelta(hours=12))
    await housekeeping.step(ctx)
    assert len(h.emitted_of(ReminderDue)) == 2


async def test_a_meeting_moved_later_is_reminded_of_at_its_new_time(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna")
    view = await schedule(h, in_days=10)
    await send_invitations(ctx)
    await rsvp(h, view.id, "anna", Answer.YES)
    starts = view.starts_at + timedelta(days=10)
    await h.call(
        Endpoints.RESCHEDULE,
        RescheduleMeeting(meeting_id=view.id, starts=starts, ends=starts + timedelta(hours=2)),
    )
    h.clock.travel(to=view.starts_at - timedelta(hours=1))  # within the old time's window
    await housekeeping.step(ctx)
    assert h.emitted_of(ReminderDue) == []
    h.clock.travel(to=starts - timedelta(hours=REMINDER_HOURS - 1))
    await housekeeping.step(ctx)
    [reminder] = h.emitted_of(ReminderDue)
    assert reminder.ambassador_id == "anna" and reminder.meeting.starts_at == starts


# ================================================================ attendance and closing


async def held_meeting(h: ServiceHarness, ctx: Context) -> MeetingView:
    """A dialogue meeting for anna, bo, carla and dorte that has just started; erik (active)
    was not invited."""
    await activate(h, "anna", organisation="Røde Kors Fredericia")
    await activate(h, "bo", organisation="Kirkens Korshær")
    await activate(h, "carla", "dorte", "erik")
    view = await schedule(
        h,
        in_days=1,
        kind=MeetingKind.DIALOGUE_MEETING,
        title="Dialogmøde om bolig",
        audience={"ambassador_ids": ["anna", "bo", "carla", "dorte"]},
    )
    await send_invitations(ctx)
    h.clock.travel(to=view.starts_at + timedelta(hours=1))
    return view


async def test_attendance_and_closing_report_the_meeting_as_held(service: Service) -> None:
    h, ctx = service
    view = await held_meeting(h, ctx)
    recorded = await h.call(
        Endpoints.ATTENDANCE,
        RecordAttendance(meeting_id=view.id, attended=["anna", "bo", "carla", "erik", "anna"]),
    )
    assert (recorded.attended, recorded.uninvited) == (4, ["erik"])

    h.clock.travel(timedelta(hours=2))
    closed = await h.call(
        Endpoints.CLOSE,
        CloseMeeting(
            meeting_id=view.id,
            minutes="Vi talte om boligsociale indsatser.\n",
            outcomes=["Nyt netværk om bolig"],
        ),
    )
    assert closed.state == MeetingState.HELD and closed.held_at == h.clock.now()
    assert closed.outcomes == ["Nyt netværk om bolig"] and closed.counts.attended == 4
    [held] = h.emitted_of(MeetingHeld)
    assert held.meeting_id == view.id and held.kind == MeetingKind.DIALOGUE_MEETING
    assert held.attendee_count == 4
    assert held.attending_organisations == ["Kirkens Korshær", "Røde Kors Fredericia"]
    assert held.outcomes == ["Nyt netværk om bolig"]
    assert held.date == date(2027, 1, 16)

    detail = await show(h, view.id)
    assert detail.minutes == "Vi talte om boligsociale indsatser."
    came = {i.ambassador_id: i.attended for i in detail.invitees}
    assert came == {"anna": True, "bo": True, "carla": True, "dorte": False, "erik": True}
    again = await h.fails(Endpoints.CLOSE, CloseMeeting(meeting_id=view.id, minutes="Igen"))
    assert again.code == ErrorCode.INVALID_STATE


async def test_attendance_names_only_ambassadors(service: Service) -> None:
    h, ctx = service
    view = await held_meeting(h, ctx)
    error = await h.fails(
        Endpoints.ATTENDANCE, RecordAttendance(meeting_id=view.id, attended=["anna", "ghost"])
    )
    assert error.code == ErrorCode.VALIDATION_FAILED
    [detail] = error.error.details
    assert detail.field == "attended" and "ghost" in detail.message and "anna" not in detail.message
    assert (await show(h, view.id)).meeting.counts.attended == 0


async def test_attendance_and_closing_wait_for_the_start(service: Service) -> None:
    h, _ = service
    await activate(h, "anna")
    view = await schedule(h)
    attendance = await h.fails(
        Endpoints.ATTENDANCE, RecordAttendance(meeting_id=view.id, attended=["anna"])
    )
    closing = await h.fails(Endpoints.CLOSE, CloseMeeting(meeting_id=view.id, minutes="Tidligt"))
    assert attendance.code == closing.code == ErrorCode.INVALID_STATE
    assert h.emitted_of(MeetingHeld) == []


# ================================================================ list, show, calendar


async def test_the_list_shows_every_meeting_newest_first_or_those_to_come_soonest_first(
    service: Service,
) -> None:
    h, _ = service
    past = await schedule(h, in_days=1, title="Forbi")
    h.clock.travel(timedelta(days=2))
    soon = await schedule(h, in_days=5, title="Snart")
    later = await schedule(h, in_days=20, title="Senere")
    cancelled = await schedule(h, in_days=10, title="Aflyst")
    await h.call(Endpoints.CANCEL, CancelMeeting(meeting_id=cancelled.id))

    everything = await h.call(Endpoints.LIST, ListMeetings())
    assert everything.total == 4
    assert [m.id for m in everything.items] == [later.id, cancelled.id, soon.id, past.id]
    upcoming = await h.call(Endpoints.LIST, ListMeetings(upcoming=True))
    assert (upcoming.total, [m.id for m in upcoming.items]) == (2, [soon.id, later.id])
    page = await h.call(Endpoints.LIST, ListMeetings(limit=2, offset=1))
    assert (page.total, [m.id for m in page.items]) == (4, [cancelled.id, soon.id])


async def test_showing_a_meeting_names_its_invitees(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", organisation="Røde Kors Fredericia")
    await activate(h, "bo")
    view = await schedule(h, description="Kaffe og kage")
    await send_invitations(ctx)
    await rsvp(h, view.id, "anna", Answer.YES)
    detail = await show(h, view.id)
    assert detail.meeting.id == view.id and detail.meeting.description == "Kaffe og kage"
    assert [
        (i.ambassador_id, i.name, i.organisation, i.participation) for i in detail.invitees
    ] == [
        ("anna", "Ambassadør Anna", "Røde Kors Fredericia", Participation.ATTENDING),
        ("bo", "Ambassadør Bo", None, Participation.INVITED),
    ]
    assert detail.waitlist == [] and detail.minutes is None
    missing = await h.fails(Endpoints.SHOW, ShowMeeting(meeting_id="nosuch"))
    assert missing.code == ErrorCode.NOT_FOUND


def calendar_entries(ics: str) -> dict[str, str]:
    """The public calendar's entries: UID -> STATUS."""
    parsed = Calendar.from_ical(ics)
    return {str(e["uid"]): str(e["status"]) for e in parsed.walk("VEVENT")}


async def test_the_public_calendar_shows_public_meetings_only(service: Service) -> None:
    h, _ = service
    theme_day = await schedule(h, kind=MeetingKind.THEME_DAY, title="Temadag", public=True)
    internal = await schedule(h, title="Intern planlægning")
    called_off = await schedule(h, in_days=20, title="Aflyst temadag", public=True)
    await h.call(Endpoints.CANCEL, CancelMeeting(meeting_id=called_off.id))

    calendar = await h.call(Endpoints.CALENDAR, GetCalendar())
    assert calendar.meetings == 2
    assert calendar_entries(calendar.ics) == {
        f"meeting-{theme_day.id}@{UID_DOMAIN}": "CONFIRMED",
        f"meeting-{called_off.id}@{UID_DOMAIN}": "CANCELLED",
    }
    assert internal.id not in calendar.ics and "Intern planlægning" not in calendar.ics
    # The same meetings for the website's pages, soonest first, with their state.
    assert [(e.meeting.meeting_id, e.state) for e in calendar.entries] == [
        (theme_day.id, MeetingState.SCHEDULED),
        (called_off.id, MeetingState.CANCELLED),
    ]


# ================================================================ reactions to the ambassadors


async def test_an_activated_ambassador_is_invited_to_the_upcoming_meetings_for_them(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna")
    past = await schedule(h, in_days=1)
    h.clock.travel(timedelta(days=2))
    everyone = await schedule(h)
    their_theme = await schedule(h, audience={"themes": [3]})
    another_theme = await schedule(h, audience={"themes": [7]})
    for_anna = await schedule(h, audience={"ambassador_ids": ["anna"]})
    called_off = await schedule(h)
    await h.call(Endpoints.CANCEL, CancelMeeting(meeting_id=called_off.id))
    await send_invitations(ctx)

    joined = activated(h, "zelda", themes=[3, 11])
    assert await h.deliver(joined) == [Applied.APPLIED]
    assert "zelda" in invited(h, everyone.id) and "zelda" in invited(h, their_theme.id)
    for elsewhere in (past, another_theme, for_anna, called_off):
        assert "zelda" not in invited(h, elsewhere.id)
    # The same event again (a redelivery) is applied once.
    assert await h.deliver(joined) == [Applied.ALREADY]
    await send_invitations(ctx)
    assert len([e for e in h.emitted_of(Invited) if e.ambassador_id == "zelda"]) == 2


async def test_a_new_theme_in_a_profile_brings_invitations_to_its_meetings(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna", themes=[3])
    theme_five = await schedule(h, audience={"themes": [5]})
    await send_invitations(ctx)
    assert invited(h, theme_five.id) == []

    assert await h.deliver(profile_updated(h, "anna", themes=[3, 5])) == [Applied.APPLIED]
    assert invited(h, theme_five.id) == ["anna"]
    # A later change neither invites again nor takes the invitation back.
    assert await h.deliver(profile_updated(h, "anna", themes=[3])) == [Applied.APPLIED]
    await send_invitations(ctx)
    assert invited(h, theme_five.id) == ["anna"]
    assert (await standing(h, theme_five.id)) == {"anna": Participation.INVITED}


async def test_a_withdrawn_ambassador_leaves_upcoming_meetings_and_hands_on_the_seat(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna", "bo")
    yesterday = await schedule(h, in_days=1)
    one_seat = await schedule(h, capacity=1)
    await send_invitations(ctx)
    await rsvp(h, yesterday.id, "anna", Answer.YES)
    await rsvp(h, one_seat.id, "anna", Answer.YES)
    await rsvp(h, one_seat.id, "bo", Answer.YES)  # waitlisted
    h.clock.travel(timedelta(days=2))
    told_before = len(h.emitted)

    assert await withdraw(h, "anna") == Applied.APPLIED
    assert await standing(h, one_seat.id) == {"bo": Participation.ATTENDING}
    [promoted] = h.emitted_of(Promoted)
    assert promoted.ambassador_id == "bo" and promoted.meeting.meeting_id == one_seat.id
    # The meeting that took place keeps her answer, without her name.
    kept = {
        i.ambassador_id: (i.name, i.participation) for i in (await show(h, yesterday.id)).invitees
    }
    assert kept["anna"] == ("(no longer an ambassador)", Participation.ATTENDING)
    # She is told nothing more, and new meetings do not invite her.
    later = await schedule(h)
    await send_invitations(ctx)
    assert invited(h, later.id) == ["bo"]
    assert all(getattr(e, "ambassador_id", None) != "anna" for e in h.emitted[told_before:])


async def test_an_ambassador_who_rejoins_is_invited_again(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna")
    view = await schedule(h)
    await send_invitations(ctx)
    await withdraw(h, "anna")
    h.clock.travel(timedelta(minutes=5))
    await activate(h, "anna")
    assert invited(h, view.id) == ["anna", "anna"]
    assert await standing(h, view.id) == {"anna": Participation.INVITED}


async def test_erasure_removes_invitations_answers_and_attendance(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", "bo", "carla")
    yesterday = await schedule(h, in_days=1)
    one_seat = await schedule(h, capacity=1)
    await send_invitations(ctx)
    await rsvp(h, yesterday.id, "anna", Answer.YES)
    await rsvp(h, one_seat.id, "anna", Answer.YES)
    await rsvp(h, one_seat.id, "bo", Answer.YES)  # waitlisted
    h.clock.travel(to=yesterday.starts_at + timedelta(hours=1))
    await h.call(
        Endpoints.ATTENDANCE, RecordAttendance(meeting_id=yesterday.id, attended=["anna", "carla"])
    )
    await h.call(Endpoints.CLOSE, CloseMeeting(meeting_id=yesterday.id, minutes="Godt møde"))

    await erase(h, "anna")
    assert invitations_of(h, "anna") == []
    assert "anna" not in repr(h.db.documents("meetings"))
    assert (await show(h, yesterday.id)).meeting.counts.attended == 1
    assert await standing(h, one_seat.id) == {
        "bo": Participation.ATTENDING,
        "carla": Participation.INVITED,
    }
    assert [p.ambassador_id for p in h.emitted_of(Promoted)] == ["bo"]
    # The read model keeps a tombstone; the runtime purges her events from our stream.
    [tombstone] = [a for a in h.db.documents("ambassadors") if a["_id"] == "anna"]
    assert set(tombstone) <= {"_id", "standing", "as_of"} and tombstone["standing"] == "erased"
    assert [e["_id"] for e in h.db.documents("erasures")] == ["anna"]
    stored = repr([h.db.documents(c) for c in ("meetings", "invitations", "ambassadors")])
    assert "anna@example.org" not in stored and "Ambassadør Anna" not in stored


async def test_after_an_erasure_nothing_about_the_ambassador_is_applied(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", "bo")
    theme_five = await schedule(h, audience={"themes": [5]})
    await send_invitations(ctx)
    erased = await erase(h, "anna")
    told_before = len(h.emitted)

    h.clock.travel(timedelta(minutes=5))
    late = [
        activated(h, "anna", themes=[5]),
        profile_updated(h, "anna", themes=[5]),
        Withdrawn(ambassador_id="anna", occurred_at=h.clock.now()),
    ]
    assert await h.deliver(*late) == [Applied.IGNORED] * 3
    assert await h.deliver(erased) == [Applied.ALREADY]
    everyone = await schedule(h)
    await send_invitations(ctx)

    assert invited(h, everyone.id) == ["bo"] and invited(h, theme_five.id) == []
    assert invitations_of(h, "anna") == []
    assert all(getattr(e, "ambassador_id", None) != "anna" for e in h.emitted[told_before:])
    refused = await h.fails(Endpoints.SCHEDULE, meeting(h, audience={"ambassador_ids": ["anna"]}))
    assert refused.code == ErrorCode.VALIDATION_FAILED


async def test_a_withdrawal_older_than_the_rejoin_changes_nothing(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna", "bo")
    h.clock.travel(timedelta(minutes=1))
    # Her withdrawal failed to apply and went to the dead letters; she rejoined since.
    stale = Withdrawn(ambassador_id="anna", occurred_at=h.clock.now())
    h.clock.travel(timedelta(minutes=1))
    await activate(h, "anna")
    one_seat = await schedule(h, capacity=1)
    await send_invitations(ctx)
    await rsvp(h, one_seat.id, "anna", Answer.YES)
    await rsvp(h, one_seat.id, "bo", Answer.YES)  # waitlisted

    [replayed] = await h.deliver(stale)  # an operator replays the dead letter
    assert replayed in (Applied.APPLIED, Applied.IGNORED)
    assert await ctx.ambassadors.active(h.service.reading(), "anna") is not None
    assert await standing(h, one_seat.id) == {
        "anna": Participation.ATTENDING,
        "bo": Participation.WAITLISTED,
    }
    assert h.emitted_of(Promoted) == []


async def test_an_erasure_is_final_whatever_its_timestamp(service: Service) -> None:
    h, ctx = service
    await activate(h, "anna")
    updated = profile_updated(h, "anna", themes=[5]).model_copy(
        update={"occurred_at": h.clock.now() + timedelta(seconds=5)}
    )
    assert await h.deliver(updated) == [Applied.APPLIED]
    await erase(h, "anna")  # stamped now: five seconds "before" the update

    stored = repr(h.db.documents("ambassadors"))
    assert "anna@example.org" not in stored and "Ambassadør Anna" not in stored
    h.clock.travel(timedelta(minutes=5))
    assert await h.deliver(activated(h, "anna")) == [Applied.IGNORED]
    view = await schedule(h)
    await send_invitations(ctx)
    assert invited(h, view.id) == []


# ================================================================ who asked: the audit trail


async def test_every_command_leaves_an_audit_record_of_its_meeting_with_ids_only(
    service: Service,
) -> None:
    h, ctx = service
    await activate(h, "anna", "bo")
    staff = "staff:mette"
    first = await h.call(Endpoints.SCHEDULE, meeting(h, in_days=2), actor=staff)
    second = await h.call(Endpoints.SCHEDULE, meeting(h, in_days=10), actor=staff)
    plan = await planned(h, ctx, year_plan(2028))
    await h.call(
        Endpoints.RSVP,
        Rsvp(meeting_id=first.id, ambassador_id="anna", answer=Answer.YES),
        actor=staff,
    )
    await answer_by_mail(h, first.id, "bo", Answer.YES)
    await h.fails(
        Endpoints.ANSWER, AnswerInvitation(token="forged" * 5, answer=Answer.NO), actor="public"
    )
    starts = first.starts_at + timedelta(days=1)
    await h.call(
        Endpoints.RESCHEDULE,
        RescheduleMeeting(meeting_id=first.id, starts=starts, ends=starts + timedelta(hours=2)),
        actor=staff,
    )
    await h.call(Endpoints.CANCEL, CancelMeeting(meeting_id=second.id), actor=staff)
    await h.fails(Endpoints.CANCEL, CancelMeeting(meeting_id="nosuch"), actor=staff)
    h.clock.travel(to=starts + timedelta(hours=1))
    await h.call(
        Endpoints.ATTENDANCE,
        RecordAttendance(meeting_id=first.id, attended=["anna", "bo"]),
        actor=staff,
    )
    await h.call(Endpoints.CLOSE, CloseMeeting(meeting_id=first.id, minutes="Referat"), actor=staff)
    # Queries are not commands: not audited.
    await h.call(Endpoints.LIST, ListMeetings())
    await h.call(Endpoints.SHOW, ShowMeeting(meeting_id=first.id))
    await h.call(Endpoints.CALENDAR, GetCalendar())

    trail = h.audit_trail()
    assert [(r["actor"], r["command"], r["targets"], r["outcome"]) for r in trail] == [
        (staff, "events.cmd.schedule", [first.id], "ok"),
        (staff, "events.cmd.schedule", [second.id], "ok"),
        ("operator:tests", "events.cmd.plan_year", [m.id for m in plan.meetings], "ok"),
        (staff, "events.cmd.rsvp", [first.id], "ok"),
        ("public", "events.cmd.answer", [first.id], "ok"),
        ("public", "events.cmd.answer", [], "invalid_token"),
        (staff, "events.cmd.reschedule", [first.id], "ok"),
        (staff, "events.cmd.cancel", [second.id], "ok"),
        (staff, "events.cmd.cancel", ["nosuch"], "not_found"),
        (staff, "events.cmd.attendance", [first.id], "ok"),
        (staff, "events.cmd.close", [first.id], "ok"),
    ]
    assert all(r["service"] == "events" for r in trail)
    written = repr(trail)
    for personal in ("example.org", "Ambassadør", "anna", "forged"):
        assert personal not in written


@pytest.mark.parametrize("actor", [None, "", "mette", "admin:mette"])
async def test_a_command_without_a_valid_actor_is_refused_and_changes_nothing(
    service: Service, actor: str | None
) -> None:
    h, ctx = service
    await activate(h, "anna")
    view = await schedule(h)
    await send_invitations(ctx)
    before = {c: h.db.documents(c) for c in ("meetings", "invitations", "audit")}
    emitted = len(h.emitted)

    refused = [
        await h.fails(Endpoints.SCHEDULE, meeting(h), actor=actor),
        await h.fails(
            Endpoints.RSVP,
            Rsvp(meeting_id=view.id, ambassador_id="anna", answer=Answer.YES),
            actor=actor,
        ),
        await h.fails(Endpoints.CANCEL, CancelMeeting(meeting_id=view.id), actor=actor),
    ]
    for error in refused:
        assert error.code == ErrorCode.VALIDATION_FAILED
        assert [d.field for d in error.error.details] == ["Samskab-Actor"]
    assert {c: h.db.documents(c) for c in before} == before
    assert len(h.emitted) == emitted
    # Queries need no actor.
    assert (await h.call(Endpoints.LIST, ListMeetings(), actor=None)).total == 1
