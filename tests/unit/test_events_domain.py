"""The pure rules of meetings: scheduling, the year's plan, audiences, answers, the waitlist,
reminders (also across daylight-saving changes), attendance and closing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.ambassadors import CoreArea
from contracts.errors import DomainValidationError, ErrorCode, ServiceError
from contracts.events import (
    COPENHAGEN,
    Answer,
    Audience,
    MeetingKind,
    MeetingState,
    Participation,
    PlanYear,
    ScheduleMeeting,
    as_utc,
)
from services.events import domain
from services.events.domain import Invitation, Meeting
from services.runtime.known_ambassadors import KnownAmbassador

NOW = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
REMIND = timedelta(hours=48)
# 17.00 in Copenhagen, winter time (UTC+1).
STARTS = datetime(2027, 3, 4, 16, 0, tzinfo=UTC)
ENDS = STARTS + timedelta(hours=2)
# Moments relative to the meeting in the factories below.
BEFORE_START = STARTS - timedelta(hours=1)
AFTER_START = STARTS + timedelta(minutes=30)


# ---------------------------------------------------------------- factories


def command(**overrides: Any) -> ScheduleMeeting:
    values: dict[str, Any] = {
        "kind": MeetingKind.THEME_DAY,
        "title": "Temadag om bolig",
        "starts": datetime(2027, 3, 4, 17, 0),
        "ends": datetime(2027, 3, 4, 19, 0),
    }
    values.update(overrides)
    return ScheduleMeeting.model_validate(values)


def scheduled(cmd: ScheduleMeeting | None = None, **options: Any) -> Meeting:
    values: dict[str, Any] = {"now": NOW, "remind_before": REMIND}
    values.update(options)
    return domain.schedule(cmd or command(), **values)


def meeting(**overrides: Any) -> Meeting:
    values: dict[str, Any] = {
        "id": "m-1",
        "kind": MeetingKind.AMBASSADOR_MEETING,
        "title": "Ambassadørmøde",
        "starts_at": STARTS,
        "ends_at": ENDS,
        "created_at": NOW,
        "reminder_due_at": STARTS - REMIND,
        "reminder_pending": True,
    }
    values.update(overrides)
    return Meeting(**values)


def invitation(ambassador_id: str = "a-1", **overrides: Any) -> Invitation:
    values: dict[str, Any] = {
        "meeting_id": "m-1",
        "ambassador_id": ambassador_id,
        "invited_at": NOW,
    }
    values.update(overrides)
    return Invitation(**values)


def waiting(ambassador_id: str, at: datetime) -> Invitation:
    return invitation(ambassador_id, participation=Participation.WAITLISTED, waitlisted_at=at)


def ambassador(**overrides: Any) -> KnownAmbassador:
    values: dict[str, Any] = {
        "id": "a-1",
        "name": "Åse Hansen",
        "email": "aase@example.org",
        "themes": (3, 7),
        "core_areas": (CoreArea.HOUSING,),
    }
    values.update(overrides)
    return KnownAmbassador(**values)


def plan(**overrides: Any) -> PlanYear:
    values: dict[str, Any] = {
        "year": 2027,
        "ambassador_meetings": [date(2027, 9, 15), date(2027, 3, 10)],
        "assembly": date(2027, 11, 20),
        "place": "Rådhuset",
    }
    values.update(overrides)
    return PlanYear.model_validate(values)


def copenhagen(value: datetime) -> datetime:
    """The wall-clock time in Copenhagen, naive, as staff would read it."""
    return value.astimezone(COPENHAGEN).replace(tzinfo=None)


def fields_of(error: DomainValidationError) -> list[str]:
    return [d.field for d in error.error.details]


def location_of(error: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(e["loc"]) for e in error.errors()]


# ---------------------------------------------------------------- schedule


def test_a_naive_winter_time_is_copenhagen_wall_clock_stored_in_utc() -> None:
    m = scheduled(command(starts=datetime(2027, 3, 4, 17, 0), ends=datetime(2027, 3, 4, 19, 0)))
    assert m.starts_at == datetime(2027, 3, 4, 16, 0, tzinfo=UTC)
    assert m.ends_at == datetime(2027, 3, 4, 18, 0, tzinfo=UTC)
    assert m.starts_at.utcoffset() == timedelta(0)


def test_a_naive_summer_time_is_copenhagen_wall_clock_stored_in_utc() -> None:
    m = scheduled(command(starts=datetime(2027, 6, 10, 17, 0), ends=datetime(2027, 6, 10, 19, 0)))
    assert m.starts_at == datetime(2027, 6, 10, 15, 0, tzinfo=UTC)
    assert m.ends_at == datetime(2027, 6, 10, 17, 0, tzinfo=UTC)


def test_a_new_meeting_is_scheduled_with_what_the_command_gives() -> None:
    m = scheduled(
        command(description="   ", place="Rådhuset", capacity=12, public=True),
        meeting_id="m-42",
        plan_key="2027:annual_assembly",
    )
    assert m.id == "m-42"
    assert m.state == MeetingState.SCHEDULED
    assert m.sequence == 0
    assert m.created_at == NOW
    assert m.description is None
    assert (m.place, m.capacity, m.public) == ("Rådhuset", 12, True)
    assert m.plan_key == "2027:annual_assembly"
    assert m.inviting
    assert m.attending_count == 0


def test_a_start_in_the_past_is_refused_on_starts() -> None:
    with pytest.raises(DomainValidationError) as refused:
        scheduled(command(starts=datetime(2027, 1, 10, 17, 0), ends=datetime(2027, 1, 10, 19, 0)))
    assert refused.value.code == ErrorCode.VALIDATION_FAILED
    assert fields_of(refused.value) == ["starts"]


def test_unknown_named_invitees_are_refused_and_named() -> None:
    cmd = command(audience={"ambassador_ids": ["a-1", "a-7", "a-9"]})
    with pytest.raises(DomainValidationError) as refused:
        scheduled(cmd, unknown_invitees=["a-7", "a-9"])
    assert fields_of(refused.value) == ["audience.ambassador_ids"]
    message = refused.value.error.details[0].message
    assert "a-7" in message and "a-9" in message


def test_a_network_audience_is_refused_for_a_network_not_known_to_be_open() -> None:
    cmd = command(audience={"network_id": "n-1"})
    with pytest.raises(DomainValidationError) as refused:
        scheduled(cmd, unknown_network=True)
    assert fields_of(refused.value) == ["audience.network_id"]
    assert scheduled(cmd).audience.network_id == "n-1"


def test_every_problem_is_reported_at_once() -> None:
    cmd = command(
        starts=datetime(2027, 1, 10, 17, 0),
        ends=datetime(2027, 1, 10, 19, 0),
        audience={"network_id": "n-1", "ambassador_ids": ["a-7"]},
    )
    with pytest.raises(DomainValidationError) as refused:
        scheduled(cmd, unknown_invitees=["a-7"], unknown_network=True)
    assert fields_of(refused.value) == ["starts", "audience.ambassador_ids", "audience.network_id"]


def test_the_reminder_is_due_48_hours_before_the_start() -> None:
    m = scheduled()
    assert m.reminder_due_at == m.starts_at - REMIND
    assert m.reminder_pending


def test_a_meeting_less_than_48_hours_ahead_has_no_pending_reminder() -> None:
    # The invitation itself is the reminder.
    m = scheduled(now=STARTS - timedelta(hours=47))
    assert m.reminder_due_at == STARTS - REMIND
    assert not m.reminder_pending


# ---------------------------------------------------------------- the contract's validation


def test_a_meeting_ending_before_it_starts_is_refused_at_ends() -> None:
    with pytest.raises(ValidationError) as refused:
        command(starts=datetime(2027, 3, 4, 17, 0), ends=datetime(2027, 3, 4, 16, 0))
    assert location_of(refused.value) == [("ends",)]


def test_a_meeting_ending_as_it_starts_is_refused_at_ends() -> None:
    with pytest.raises(ValidationError) as refused:
        command(starts=datetime(2027, 3, 4, 17, 0), ends=datetime(2027, 3, 4, 17, 0))
    assert location_of(refused.value) == [("ends",)]


def test_a_wall_clock_time_in_the_skipped_hour_is_refused_at_starts() -> None:
    with pytest.raises(ValidationError) as refused:
        command(starts=datetime(2027, 3, 28, 2, 30), ends=datetime(2027, 3, 28, 4, 0))
    assert location_of(refused.value) == [("starts",)]
    assert "does not exist" in refused.value.errors()[0]["msg"]


def test_the_repeated_hour_in_october_means_the_first_summer_time_instant() -> None:
    assert as_utc(datetime(2027, 10, 31, 2, 30)) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    m = scheduled(command(starts=datetime(2027, 10, 31, 2, 30), ends=datetime(2027, 10, 31, 4, 0)))
    assert m.starts_at == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


def test_a_capacity_of_zero_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        command(capacity=0)
    assert location_of(refused.value) == [("capacity",)]


# ---------------------------------------------------------------- reminders


def test_a_reminder_across_the_march_change_is_48_real_hours_ahead() -> None:
    # Monday after summer time starts: 17.00 summer time is 15.00 UTC.
    m = scheduled(command(starts=datetime(2027, 3, 29, 17, 0), ends=datetime(2027, 3, 29, 19, 0)))
    assert m.starts_at == datetime(2027, 3, 29, 15, 0, tzinfo=UTC)
    assert m.reminder_due_at == datetime(2027, 3, 27, 15, 0, tzinfo=UTC)
    assert m.starts_at - m.reminder_due_at == timedelta(hours=48)
    # The Saturday before is still winter time: 16.00 on the clock.
    assert copenhagen(m.reminder_due_at) == datetime(2027, 3, 27, 16, 0)


def test_a_reminder_across_the_october_change_is_48_real_hours_ahead() -> None:
    # Monday after summer time ends: 17.00 winter time is 16.00 UTC.
    m = scheduled(command(starts=datetime(2027, 11, 1, 17, 0), ends=datetime(2027, 11, 1, 19, 0)))
    assert m.starts_at == datetime(2027, 11, 1, 16, 0, tzinfo=UTC)
    assert m.reminder_due_at == datetime(2027, 10, 30, 16, 0, tzinfo=UTC)
    assert m.starts_at - m.reminder_due_at == timedelta(hours=48)
    # The Saturday before is still summer time: 18.00 on the clock.
    assert copenhagen(m.reminder_due_at) == datetime(2027, 10, 30, 18, 0)


def invitees() -> list[Invitation]:
    return [
        invitation("a-1", participation=Participation.ATTENDING),
        invitation("a-2", participation=Participation.INVITED),
        waiting("a-3", NOW),
        invitation("a-4", participation=Participation.MAYBE),
        invitation("a-5", participation=Participation.DECLINED),
        invitation("a-6", participation=Participation.ATTENDING),
    ]


def test_nobody_is_reminded_before_the_reminder_is_due() -> None:
    m = meeting()
    assert domain.reminder_recipients(m, invitees(), STARTS - REMIND - timedelta(seconds=1)) == []


def test_once_due_only_those_attending_are_reminded() -> None:
    m = meeting()
    for now in (STARTS - REMIND, BEFORE_START):
        reminded = domain.reminder_recipients(m, invitees(), now)
        assert [i.ambassador_id for i in reminded] == ["a-1", "a-6"]


def test_nobody_is_reminded_of_a_cancelled_meeting() -> None:
    m = meeting(state=MeetingState.CANCELLED)
    assert domain.reminder_recipients(m, invitees(), BEFORE_START) == []


def test_nobody_is_reminded_twice() -> None:
    m = domain.reminded(meeting())
    assert not m.reminder_pending
    assert domain.reminder_recipients(m, invitees(), BEFORE_START) == []


def test_nobody_is_reminded_once_the_meeting_has_started() -> None:
    m = meeting()
    assert domain.reminder_recipients(m, invitees(), STARTS) == []
    assert domain.reminder_recipients(m, invitees(), AFTER_START) == []


def test_rescheduling_recomputes_the_reminder_and_arms_it_again() -> None:
    already_reminded = domain.reminded(meeting())
    now = BEFORE_START
    moved = domain.reschedule(
        already_reminded,
        starts=datetime(2027, 3, 11, 17, 0),
        ends=datetime(2027, 3, 11, 19, 0),
        place=None,
        online_url=None,
        now=now,
        remind_before=REMIND,
    )
    assert moved.starts_at == datetime(2027, 3, 11, 16, 0, tzinfo=UTC)
    assert moved.reminder_due_at == moved.starts_at - REMIND
    assert moved.reminder_pending


def test_rescheduled_to_within_48_hours_the_reminder_is_not_pending() -> None:
    moved = domain.reschedule(
        meeting(),
        starts=datetime(2027, 3, 5, 17, 0),
        ends=datetime(2027, 3, 5, 19, 0),
        place=None,
        online_url=None,
        now=BEFORE_START,
        remind_before=REMIND,
    )
    assert moved.reminder_due_at == moved.starts_at - REMIND
    assert not moved.reminder_pending


# ---------------------------------------------------------------- answers


def test_a_yes_with_seats_free_takes_a_seat() -> None:
    m, i = domain.answer(meeting(capacity=2), invitation(), Answer.YES, NOW)
    assert i.participation == Participation.ATTENDING
    assert i.answered_at == NOW
    assert i.waitlisted_at is None
    assert m.attending_count == 1


def test_a_yes_to_a_full_meeting_goes_on_the_waitlist() -> None:
    full = meeting(capacity=2, attending_count=2)
    m, i = domain.answer(full, invitation(), Answer.YES, NOW)
    assert i.participation == Participation.WAITLISTED
    assert i.waitlisted_at == NOW
    assert m.attending_count == 2


def test_a_repeated_yes_keeps_the_seat() -> None:
    m = meeting(capacity=2, attending_count=1)
    seated = invitation(participation=Participation.ATTENDING, answered_at=NOW)
    later = NOW + timedelta(hours=1)
    again_m, again_i = domain.answer(m, seated, Answer.YES, later)
    assert again_m.attending_count == 1
    assert again_i == seated


def test_a_repeated_yes_keeps_the_place_in_line() -> None:
    m = meeting(capacity=1, attending_count=1)
    in_line = waiting("a-1", NOW)
    again_m, again_i = domain.answer(m, in_line, Answer.YES, NOW + timedelta(hours=1))
    assert again_m == m
    assert again_i.waitlisted_at == NOW


@pytest.mark.parametrize(
    ("given", "becomes"),
    [(Answer.NO, Participation.DECLINED), (Answer.MAYBE, Participation.MAYBE)],
)
def test_no_or_maybe_from_a_seat_frees_it(given: Answer, becomes: Participation) -> None:
    m = meeting(capacity=2, attending_count=2)
    seated = invitation(participation=Participation.ATTENDING)
    after_m, after_i = domain.answer(m, seated, given, NOW)
    assert after_i.participation == becomes
    assert after_m.attending_count == 1


@pytest.mark.parametrize("given", [Answer.NO, Answer.MAYBE])
def test_no_or_maybe_from_the_waitlist_leaves_the_line(given: Answer) -> None:
    m = meeting(capacity=1, attending_count=1)
    after_m, after_i = domain.answer(m, waiting("a-1", NOW), given, NOW)
    assert after_i.waitlisted_at is None
    assert after_m.attending_count == 1


def test_a_yes_after_a_maybe_takes_a_seat() -> None:
    m, i = domain.answer(
        meeting(capacity=3, attending_count=1),
        invitation(participation=Participation.MAYBE),
        Answer.YES,
        NOW,
    )
    assert i.participation == Participation.ATTENDING
    assert m.attending_count == 2


@pytest.mark.parametrize("state", [MeetingState.CANCELLED, MeetingState.HELD])
def test_a_meeting_no_longer_scheduled_takes_no_answers(state: MeetingState) -> None:
    with pytest.raises(ServiceError) as refused:
        domain.answer(meeting(state=state), invitation(), Answer.YES, NOW)
    assert refused.value.code == ErrorCode.INVALID_STATE


@pytest.mark.parametrize("now", [STARTS, AFTER_START])
def test_a_meeting_that_has_started_takes_no_answers(now: datetime) -> None:
    with pytest.raises(ServiceError) as refused:
        domain.answer(meeting(), invitation(), Answer.NO, now)
    assert refused.value.code == ErrorCode.INVALID_STATE


def test_a_meeting_without_capacity_never_waitlists() -> None:
    m = meeting(capacity=None, attending_count=5000)
    after_m, i = domain.answer(m, invitation(), Answer.YES, NOW)
    assert i.participation == Participation.ATTENDING
    assert after_m.attending_count == 5001


# ---------------------------------------------------------------- the waitlist


def test_the_waitlist_is_first_come_first_served() -> None:
    first, second, third = NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)
    everyone = [
        waiting("a-3", third),
        invitation("a-9", participation=Participation.ATTENDING),
        waiting("a-2", second),
        invitation("a-8", participation=Participation.DECLINED),
        waiting("a-1", first),
    ]
    assert [i.ambassador_id for i in domain.waitlist_order(everyone)] == ["a-1", "a-2", "a-3"]


def test_the_waitlist_breaks_ties_by_ambassador_id() -> None:
    everyone = [waiting("a-2", NOW), waiting("a-10", NOW), waiting("a-1", NOW)]
    assert [i.ambassador_id for i in domain.waitlist_order(everyone)] == ["a-1", "a-10", "a-2"]


def test_promotion_gives_the_free_seats_to_the_first_in_line() -> None:
    m = meeting(capacity=5, attending_count=3)
    line = [waiting("a-1", NOW), waiting("a-2", NOW), waiting("a-3", NOW)]
    counted, promoted = domain.promote(m, line, NOW)
    assert [i.ambassador_id for i in promoted] == ["a-1", "a-2"]
    assert all(i.participation == Participation.ATTENDING for i in promoted)
    assert all(i.waitlisted_at is None for i in promoted)
    assert counted.attending_count == 5


def test_promotion_with_no_free_seat_changes_nothing() -> None:
    m = meeting(capacity=2, attending_count=2)
    assert domain.promote(m, [waiting("a-1", NOW)], NOW) == (m, [])


def test_free_seats_are_capacity_less_those_attending() -> None:
    assert domain.free_seats(meeting(capacity=4, attending_count=1)) == 3
    assert domain.free_seats(meeting(capacity=4, attending_count=6)) == 0


def test_a_meeting_without_capacity_has_no_free_seats_to_hand_on() -> None:
    assert domain.free_seats(meeting(capacity=None)) == 0


# ---------------------------------------------------------------- leave


def test_a_seat_holder_leaving_frees_the_seat() -> None:
    m = meeting(capacity=3, attending_count=3)
    after = domain.leave(m, invitation(participation=Participation.ATTENDING))
    assert after.attending_count == 2


@pytest.mark.parametrize(
    "participation",
    [
        Participation.WAITLISTED,
        Participation.DECLINED,
        Participation.MAYBE,
        Participation.INVITED,
    ],
)
def test_someone_without_a_seat_leaving_changes_nothing(participation: Participation) -> None:
    m = meeting(capacity=3, attending_count=3)
    assert domain.leave(m, invitation(participation=participation)) == m


# ---------------------------------------------------------------- plan_year


def test_the_year_plan_is_two_ambassador_meetings_and_the_assembly() -> None:
    plans = domain.plan_year(plan())
    assert [key for key, _ in plans] == [
        "2027:ambassador_meeting:1",
        "2027:ambassador_meeting:2",
        "2027:annual_assembly",
    ]
    spring, autumn, assembly = (cmd for _, cmd in plans)
    assert spring.title == "Ambassadørmøde, forår 2027"
    assert autumn.title == "Ambassadørmøde, efterår 2027"
    assert assembly.title == "Stormøde 2027"
    assert [c.kind for c in (spring, autumn, assembly)] == [
        MeetingKind.AMBASSADOR_MEETING,
        MeetingKind.AMBASSADOR_MEETING,
        MeetingKind.ANNUAL_ASSEMBLY,
    ]
    # Spring comes first, whatever order the dates were given in.
    assert (spring.starts, spring.ends) == (datetime(2027, 3, 10, 17), datetime(2027, 3, 10, 19))
    assert (autumn.starts, autumn.ends) == (datetime(2027, 9, 15, 17), datetime(2027, 9, 15, 19))
    assert (assembly.starts, assembly.ends) == (
        datetime(2027, 11, 20, 16),
        datetime(2027, 11, 20, 20),
    )
    for cmd in (spring, autumn, assembly):
        assert cmd.place == "Rådhuset"
        assert cmd.audience.everyone
        assert cmd.description == domain.PLAN_DESCRIPTIONS[cmd.kind]


def test_the_year_plan_schedules_in_copenhagen_time() -> None:
    spring = domain.plan_year(plan())[0][1]
    m = domain.schedule(spring, now=NOW, remind_before=REMIND, plan_key="2027:ambassador_meeting:1")
    assert m.starts_at == datetime(2027, 3, 10, 16, 0, tzinfo=UTC)
    assert m.plan_key == "2027:ambassador_meeting:1"


@pytest.mark.parametrize(
    "days",
    [
        [date(2027, 2, 1), date(2027, 6, 30)],
        [date(2027, 7, 1), date(2027, 12, 1)],
    ],
)
def test_both_ambassador_meetings_in_one_half_year_are_refused(days: list[date]) -> None:
    with pytest.raises(DomainValidationError) as refused:
        domain.plan_year(plan(ambassador_meetings=days))
    assert fields_of(refused.value) == ["ambassador_meetings"]


def test_a_date_outside_the_year_is_refused() -> None:
    with pytest.raises(DomainValidationError) as refused:
        domain.plan_year(plan(assembly=date(2028, 1, 20)))
    assert fields_of(refused.value) == ["dates"]
    assert "2028-01-20" in refused.value.error.details[0].message


def test_an_end_time_before_the_start_time_is_refused() -> None:
    with pytest.raises(DomainValidationError) as refused:
        domain.plan_year(
            plan(
                ambassador_meeting_starts=time(17, 0),
                ambassador_meeting_ends=time(16, 0),
                assembly_starts=time(16, 0),
                assembly_ends=time(16, 0),
            )
        )
    assert fields_of(refused.value) == ["ambassador_meeting_ends", "assembly_ends"]


# ---------------------------------------------------------------- audience


def test_an_empty_audience_is_everyone() -> None:
    assert domain.in_audience(Audience(), ambassador())


def test_a_named_ambassador_is_in_the_audience() -> None:
    assert domain.in_audience(Audience(ambassador_ids=["a-9", "a-1"]), ambassador(id="a-1"))


def test_an_ambassador_with_one_of_the_themes_is_in_the_audience() -> None:
    assert domain.in_audience(Audience(themes=[7, 11]), ambassador(themes=(3, 7)))


def test_an_ambassador_with_one_of_the_core_areas_is_in_the_audience() -> None:
    audience = Audience(core_areas=[CoreArea.HEALTH, CoreArea.HOUSING])
    assert domain.in_audience(audience, ambassador(core_areas=(CoreArea.HOUSING,)))


def test_an_ambassador_matching_nothing_is_not_in_the_audience() -> None:
    audience = Audience(
        themes=[1, 2],
        core_areas=[CoreArea.EMPLOYMENT],
        ambassador_ids=["a-9"],
        network_id="n-1",
    )
    assert not domain.in_audience(audience, ambassador())
    # A network alone is not everyone: its members are.
    assert not domain.in_audience(Audience(network_id="n-1"), ambassador())
    assert domain.in_audience(Audience(network_id="n-1"), ambassador(), {ambassador().id})


# ---------------------------------------------------------------- cancel and reschedule


def test_cancelling_tells_everyone_and_stops_the_reminder() -> None:
    m = meeting(sequence=2)
    cancelled = domain.cancel(m, reason="  Sygdom  ", now=NOW)
    assert cancelled.state == MeetingState.CANCELLED
    assert cancelled.sequence == 3
    assert cancelled.cancelled_at == NOW
    assert cancelled.cancel_reason == "Sygdom"
    assert not cancelled.reminder_pending
    assert not cancelled.inviting


@pytest.mark.parametrize("state", [MeetingState.CANCELLED, MeetingState.HELD])
def test_a_held_or_cancelled_meeting_cannot_be_cancelled(state: MeetingState) -> None:
    with pytest.raises(ServiceError) as refused:
        domain.cancel(meeting(state=state), reason=None, now=NOW)
    assert refused.value.code == ErrorCode.INVALID_STATE


def test_a_meeting_that_is_over_cannot_be_cancelled() -> None:
    with pytest.raises(ServiceError) as refused:
        domain.cancel(meeting(), reason=None, now=ENDS)
    assert refused.value.code == ErrorCode.INVALID_STATE


def test_rescheduling_counts_up_the_sequence_and_keeps_the_place() -> None:
    m = meeting(place="Rådhuset", online_url="https://meet.example/a", sequence=1)
    moved = domain.reschedule(
        m,
        starts=datetime(2027, 3, 11, 17, 0),
        ends=datetime(2027, 3, 11, 19, 0),
        place=None,
        online_url=None,
        now=NOW,
        remind_before=REMIND,
    )
    assert moved.sequence == 2
    assert (moved.starts_at, moved.ends_at) == (
        datetime(2027, 3, 11, 16, 0, tzinfo=UTC),
        datetime(2027, 3, 11, 18, 0, tzinfo=UTC),
    )
    assert moved.place == "Rådhuset"
    assert moved.online_url == "https://meet.example/a"


def test_rescheduling_to_a_new_place_moves_it_there() -> None:
    m = meeting(place="Rådhuset", online_url="https://meet.example/a")
    moved = domain.reschedule(
        m,
        starts=datetime(2027, 3, 11, 17, 0),
        ends=datetime(2027, 3, 11, 19, 0),
        place="Biblioteket",
        online_url="https://meet.example/b",
        now=NOW,
        remind_before=REMIND,
    )
    assert (moved.place, moved.online_url) == ("Biblioteket", "https://meet.example/b")


@pytest.mark.parametrize("now", [STARTS, AFTER_START])
def test_a_meeting_that_has_started_cannot_be_moved(now: datetime) -> None:
    with pytest.raises(ServiceError) as refused:
        domain.reschedule(
            meeting(),
            starts=datetime(2027, 3, 11, 17, 0),
            ends=datetime(2027, 3, 11, 19, 0),
            place=None,
            online_url=None,
            now=now,
            remind_before=REMIND,
        )
    assert refused.value.code == ErrorCode.INVALID_STATE


@pytest.mark.parametrize("state", [MeetingState.CANCELLED, MeetingState.HELD])
def test_a_cancelled_or_held_meeting_cannot_be_moved(state: MeetingState) -> None:
    with pytest.raises(ServiceError) as refused:
        domain.reschedule(
            meeting(state=state),
            starts=datetime(2027, 3, 11, 17, 0),
            ends=datetime(2027, 3, 11, 19, 0),
            place=None,
            online_url=None,
            now=NOW,
            remind_before=REMIND,
        )
    assert refused.value.code == ErrorCode.INVALID_STATE


def test_a_meeting_cannot_be_moved_into_the_past() -> None:
    with pytest.raises(DomainValidationError) as refused:
        domain.reschedule(
            meeting(),
            starts=datetime(2027, 1, 10, 17, 0),
            ends=datetime(2027, 1, 10, 19, 0),
            place=None,
            online_url=None,
            now=NOW,
            remind_before=REMIND,
        )
    assert fields_of(refused.value) == ["starts"]


# ---------------------------------------------------------------- attendance and close


def test_attendance_cannot_be_recorded_before_the_start() -> None:
    with pytest.raises(ServiceError) as refused:
        domain.record_attendance(meeting(), ["a-1"], BEFORE_START)
    assert refused.value.code == ErrorCode.INVALID_STATE


def test_attendance_is_recorded_once_per_person_in_the_order_given() -> None:
    m = domain.record_attendance(meeting(), ["a-2", "a-1", "a-2", "a-3", "a-1"], AFTER_START)
    assert m.attended == ("a-2", "a-1", "a-3")


def test_recording_attendance_again_corrects_it() -> None:
    first = domain.record_attendance(meeting(), ["a-1", "a-2"], AFTER_START)
    again = domain.record_attendance(first, ["a-3"], AFTER_START)
    assert again.attended == ("a-3",)


def test_attendance_of_a_cancelled_meeting_is_refused() -> None:
    with pytest.raises(ServiceError) as refused:
        domain.record_attendance(meeting(state=MeetingState.CANCELLED), ["a-1"], AFTER_START)
    assert refused.value.code == ErrorCode.INVALID_STATE


def test_a_meeting_cannot_be_closed_before_it_starts() -> None:
    with pytest.raises(ServiceError) as refused:
        domain.close(meeting(), minutes="Referat", outcomes=[], organisations=[], now=BEFORE_START)
    assert refused.value.code == ErrorCode.INVALID_STATE


def test_closing_marks_the_meeting_held_with_minutes_and_organisations() -> None:
    now = ENDS + timedelta(hours=1)
    held = domain.close(
        meeting(),
        minutes="\n  Vi talte om boliger.  \n",
        outcomes=["Ny arbejdsgruppe", "Temadag i maj"],
        organisations=["Kommune B", None, "a-forening", "Kommune B", "", "Boligselskab"],
        now=now,
    )
    assert held.state == MeetingState.HELD
    assert held.held_at == now
    assert held.minutes == "Vi talte om boliger."
    assert held.outcomes == ("Ny arbejdsgruppe", "Temadag i maj")
    assert held.attending_organisations == ("a-forening", "Boligselskab", "Kommune B")
    assert not held.reminder_pending
    assert not held.inviting


@pytest.mark.parametrize("state", [MeetingState.CANCELLED, MeetingState.HELD])
def test_a_cancelled_or_held_meeting_cannot_be_closed(state: MeetingState) -> None:
    with pytest.raises(ServiceError) as refused:
        domain.close(
            meeting(state=state), minutes="Referat", outcomes=[], organisations=[], now=AFTER_START
        )
    assert refused.value.code == ErrorCode.INVALID_STATE


def test_a_meeting_is_held_on_its_date_in_copenhagen() -> None:
    # 00.30 on 11 June in Copenhagen is still 10 June in UTC.
    late = meeting(
        starts_at=datetime(2027, 6, 10, 22, 30, tzinfo=UTC),
        ends_at=datetime(2027, 6, 11, 0, 30, tzinfo=UTC),
    )
    assert domain.held_on(late) == date(2027, 6, 11)
    assert domain.held_on(meeting()) == date(2027, 3, 4)


def test_forgetting_an_attendee_removes_them() -> None:
    m = meeting(state=MeetingState.HELD, attended=("a-1", "a-2", "a-3"))
    assert domain.forget_attendee(m, "a-2").attended == ("a-1", "a-3")


def test_forgetting_someone_who_did_not_attend_changes_nothing() -> None:
    m = meeting(attended=("a-1",))
    assert domain.forget_attendee(m, "a-9") is m


def test_a_planned_time_skipped_by_summer_time_is_reported_at_the_plans_own_field() -> None:
    skipped = plan(assembly=date(2027, 3, 28), assembly_starts="02:30", assembly_ends="04:00")

    with pytest.raises(DomainValidationError) as raised:
        domain.plan_year(skipped)

    assert [d.field for d in raised.value.error.details] == ["assembly_starts"]
    assert "does not exist in Copenhagen" in raised.value.error.message
