"""`samskab events ...` against a fake service: what each command sends, and what it prints.

``cli.calls.call`` is the one seam: every command sends its request through it. The fake
records the subject and the request as it would go on the wire, and answers with the reply
model it was given (through its wire form, as the typed client would).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner, Result

from cli import calls
from cli.main import app
from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from contracts.events import (
    Audience,
    Calendar,
    CloseMeeting,
    Counts,
    Endpoints,
    InviteeView,
    MeetingDetail,
    MeetingKind,
    MeetingPage,
    MeetingState,
    MeetingView,
    Participation,
    PlanYearResult,
    RsvpResult,
)
from contracts.jobs import JobEndpoint, JobState, JobView

WINTER_START = datetime(2027, 3, 4, 16, 0, tzinfo=UTC)  # 17:00 in Copenhagen (CET)
WINTER_END = datetime(2027, 3, 4, 18, 0, tzinfo=UTC)


def finished_job(endpoint: JobEndpoint[Any, Any], report: BaseModel) -> JobView:
    """The job of ``endpoint`` as the service shows it once done with ``report``."""
    at = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
    return JobView(
        id="events-0123456789ab",
        command=endpoint.subject,
        state=JobState.DONE,
        started_at=at,
        updated_at=at,
        finished_at=at,
        report=report.model_dump(mode="json"),
    )


class FakeService:
    """Stands in for `calls.call`: remembers what was sent, answers what it was told."""

    def __init__(self) -> None:
        # (subject, request as it goes on the wire: the fields that were set, as JSON)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.replies: dict[str, dict[str, Any] | Exception] = {}

    def answer(self, endpoint: Endpoint[Any, Any], reply: BaseModel | Exception) -> None:
        if isinstance(endpoint, JobEndpoint) and isinstance(reply, endpoint.report):
            reply = finished_job(endpoint, reply)
        if isinstance(reply, BaseModel):
            assert isinstance(reply, endpoint.reply), (endpoint.subject, type(reply))
        self.replies[endpoint.subject] = (
            reply if isinstance(reply, Exception) else reply.model_dump(mode="json")
        )

    def call(
        self, endpoint: Endpoint[Any, Any], request: BaseModel, *, timeout: float | None = None
    ) -> Any:
        assert isinstance(request, endpoint.request), (endpoint.subject, type(request))
        self.sent.append((endpoint.subject, request.model_dump(mode="json", exclude_unset=True)))
        reply = self.replies[endpoint.subject]
        if isinstance(reply, Exception):
            raise reply
        return endpoint.reply.model_validate(reply)

    def only_request(self) -> tuple[str, dict[str, Any]]:
        """The single request sent, its payload as it would go on the wire."""
        assert len(self.sent) == 1, self.sent
        return self.sent[0]


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeService]:
    fake = FakeService()
    monkeypatch.setattr(calls, "call", fake.call)
    yield fake


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["events", *args])


def meeting(**changes: Any) -> MeetingView:
    values: dict[str, Any] = {
        "id": "m1",
        "kind": MeetingKind.THEME_DAY,
        "title": "Temadag om bolig",
        "starts_at": WINTER_START,
        "ends_at": WINTER_END,
        "place": "Rådhuset",
        "capacity": 30,
        "public": True,
        "audience": Audience(themes=[3]),
        "state": MeetingState.SCHEDULED,
        "sequence": 0,
        "created_at": datetime(2027, 1, 10, 9, 0, tzinfo=UTC),
        "counts": Counts(invited=40, attending=12, waitlisted=0),
    }
    return MeetingView(**(values | changes))


def invitee(
    ambassador_id: str, name: str, participation: Participation, **more: Any
) -> InviteeView:
    return InviteeView(ambassador_id=ambassador_id, name=name, participation=participation, **more)


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


SCHEDULE = (
    "schedule",
    "--kind",
    "theme_day",
    "--title",
    "Temadag om bolig",
    "--starts",
    "2027-03-04T17:00",
    "--ends",
    "2027-03-04T19:00",
)


# ---------------------------------------------------------------- schedule


def test_schedule_sends_every_option_and_the_audience(service: FakeService) -> None:
    service.answer(Endpoints.SCHEDULE, meeting())

    result = run(
        *SCHEDULE,
        "--place",
        "Rådhuset",
        "--online",
        "https://meet.example.dk/temadag",
        "--capacity",
        "30",
        "--public",
        "--description",
        "Om at finde en bolig.",
        "--theme",
        "3",
        "--theme",
        "7",
        "--core-area",
        "housing",
        "--network",
        "n1",
        "--invite",
        "a1",
        "--invite",
        "a2",
    )

    assert result.exit_code == 0, result.output
    assert service.only_request() == (
        Endpoints.SCHEDULE.subject,
        {
            "kind": "theme_day",
            "title": "Temadag om bolig",
            "description": "Om at finde en bolig.",
            "starts": "2027-03-04T17:00:00",
            "ends": "2027-03-04T19:00:00",
            "place": "Rådhuset",
            "online_url": "https://meet.example.dk/temadag",
            "capacity": 30,
            "public": True,
            "audience": {
                "themes": [3, 7],
                "core_areas": ["housing"],
                "network_id": "n1",
                "ambassador_ids": ["a1", "a2"],
            },
        },
    )
    assert result.stdout.strip() == (
        "m1 scheduled: Temadag om bolig, 2027-03-04 17:00–19:00; "
        "invitations are being sent to the audience"
    )


def test_schedule_without_an_audience_leaves_it_to_the_service(service: FakeService) -> None:
    service.answer(Endpoints.SCHEDULE, meeting())

    assert run(*SCHEDULE).exit_code == 0
    _, payload = service.only_request()
    assert "audience" not in payload
    assert payload["public"] is False


def test_invalid_capacity_is_a_validation_error_and_nothing_is_sent(
    service: FakeService,
) -> None:
    result = run(*SCHEDULE, "--capacity", "0")

    assert "capacity" in one_line_error(result)
    assert service.sent == []


def test_a_time_that_does_not_exist_in_copenhagen_is_refused(service: FakeService) -> None:
    # Summer time starts 2027-03-28 at 02:00: the clocks skip to 03:00.
    result = run(
        "schedule",
        "--kind",
        "workshop",
        "--title",
        "Nat",
        "--starts",
        "2027-03-28T02:30",
        "--ends",
        "2027-03-28T04:00",
        "--json",
    )

    assert result.exit_code != 0
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "validation_failed"
    assert [d["field"] for d in error["details"]] == ["starts"]
    assert service.sent == []


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize("flags", [[], ["--yes", "--no"], ["--yes", "--no", "--maybe"]])
def test_rsvp_needs_exactly_one_answer(service: FakeService, flags: list[str]) -> None:
    result = run("rsvp", "m1", "a1", *flags)

    assert one_line_error(result) == "error: give exactly one of --yes, --no or --maybe"
    assert service.sent == []


def test_rsvp_sends_the_answer_and_shows_the_waitlist_place(service: FakeService) -> None:
    service.answer(
        Endpoints.RSVP,
        RsvpResult(
            meeting_id="m1",
            ambassador_id="a1",
            participation=Participation.WAITLISTED,
            waitlist_position=2,
        ),
    )

    result = run("rsvp", "m1", "a1", "--yes")

    assert result.exit_code == 0, result.output
    assert service.only_request() == (
        Endpoints.RSVP.subject,
        {"meeting_id": "m1", "ambassador_id": "a1", "answer": "yes"},
    )
    assert result.stdout.strip() == "m1: a1 waitlisted (waitlist position 2)"


def test_answer_by_token_shows_who_got_the_freed_seat(service: FakeService) -> None:
    service.answer(
        Endpoints.ANSWER,
        RsvpResult(
            meeting_id="m1",
            ambassador_id="a1",
            participation=Participation.DECLINED,
            promoted=["a7"],
        ),
    )

    result = run("answer", "tok-0123456789", "--no")

    assert result.exit_code == 0, result.output
    assert service.only_request() == (
        Endpoints.ANSWER.subject,
        {"token": "tok-0123456789", "answer": "no"},
    )
    assert "a1 declined" in result.stdout
    assert "a7" in result.stdout


# ---------------------------------------------------------------- close with minutes


def test_close_sends_the_minutes_file_and_outcomes(service: FakeService, tmp_path: Path) -> None:
    minutes = tmp_path / "referat.txt"
    minutes.write_text("Referat\n\nVi talte om boliger på Østerbro.\n", encoding="utf-8")
    service.answer(
        Endpoints.CLOSE,
        meeting(state=MeetingState.HELD, counts=Counts(attending=12, attended=11)),
    )

    result = run("close", "m1", "--minutes", str(minutes), "--outcome", "Nyt boligsamarbejde")

    assert result.exit_code == 0, result.output
    subject, payload = service.only_request()
    assert subject == Endpoints.CLOSE.subject
    sent = CloseMeeting.model_validate(payload)
    assert "Vi talte om boliger på Østerbro." in sent.minutes
    assert sent.outcomes == ["Nyt boligsamarbejde"]
    assert result.stdout.strip() == "m1 held: Temadag om bolig, 2027-03-04 17:00–19:00; 11 attended"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        (b"Referat: m\xf8de\n", "not UTF-8"),  # Latin-1, not UTF-8
        (b"  \n\n", "empty"),
    ],
    ids=["missing", "not-utf8", "empty"],
)
def test_close_refuses_a_bad_minutes_file_before_sending(
    service: FakeService, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    minutes = tmp_path / "referat.txt"
    if content is not None:
        minutes.write_bytes(content)

    result = run("close", "m1", "--minutes", str(minutes))

    assert expected in one_line_error(result)
    assert service.sent == []


def test_close_error_is_structured_under_json(service: FakeService, tmp_path: Path) -> None:
    result = run("close", "m1", "--minutes", str(tmp_path / "none.txt"), "--json")

    assert result.exit_code != 0
    assert json.loads(result.stdout)["error"]["code"] == "validation_failed"
    assert service.sent == []


# ---------------------------------------------------------------- calendar


def test_calendar_writes_the_file_and_counts_the_meetings(
    service: FakeService, tmp_path: Path
) -> None:
    ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
    service.answer(Endpoints.CALENDAR, Calendar(ics=ics, meetings=2))
    out = tmp_path / "site" / "kalender" / "samskab.ics"

    result = run("calendar", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert service.sent == [(Endpoints.CALENDAR.subject, service.sent[0][1])]
    assert out.read_bytes() == ics.encode()  # CRLF kept
    assert result.stdout.strip() == f"2 meetings written to {out}"


# ---------------------------------------------------------------- reading


def test_list_shows_local_times_and_seats(service: FakeService) -> None:
    summer = meeting(
        id="m2",
        kind=MeetingKind.AMBASSADOR_MEETING,
        title="Ambassadørmøde",
        starts_at=datetime(2027, 9, 2, 15, 0, tzinfo=UTC),  # 17:00 in summer time
        ends_at=datetime(2027, 9, 2, 17, 0, tzinfo=UTC),
        capacity=None,
        counts=Counts(attending=4),
    )
    service.answer(Endpoints.LIST, MeetingPage(total=2, items=[meeting(), summer]))

    result = run("list", "--upcoming")

    assert result.exit_code == 0, result.output
    assert service.only_request() == (
        Endpoints.LIST.subject,
        {"upcoming": True, "limit": 200, "offset": 0},
    )
    rows = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert rows[2] == "m1 2027-03-04 17:00 theme_day Temadag om bolig scheduled 12/30"
    assert rows[3] == "m2 2027-09-02 17:00 ambassador_meeting Ambassadørmøde scheduled 4"
    assert rows[-1] == "2 of 2"


def test_show_lists_invitees_then_the_waitlist_in_order(service: FakeService) -> None:
    second = invitee("a3", "Bo Berg", Participation.WAITLISTED, waitlist_position=2)
    first = invitee("a2", "Ane Ask", Participation.WAITLISTED, waitlist_position=1)
    attending = invitee(
        "a1", "Carl Cox", Participation.ATTENDING, organisation="Kirkens Korshær", attended=True
    )
    service.answer(
        Endpoints.SHOW,
        MeetingDetail(
            meeting=meeting(), invitees=[attending, second, first], waitlist=[first, second]
        ),
    )

    result = run("show", "m1")

    assert result.exit_code == 0, result.output
    assert service.only_request() == (Endpoints.SHOW.subject, {"meeting_id": "m1"})
    out = result.stdout
    assert "2027-03-04 17:00–19:00" in out
    assert "themes 3" in out
    invitee_row = next(line for line in out.splitlines() if line.startswith("a1 "))
    assert invitee_row.split()[-2:] == ["attending", "yes"]
    assert "Kirkens Korshær" in invitee_row
    waitlist = out.split("Waitlist:")[1].strip().splitlines()
    assert [line.split()[:2] for line in waitlist] == [["1.", "a2"], ["2.", "a3"]]


def test_plan_year_sends_the_three_dates(service: FakeService) -> None:
    service.answer(
        Endpoints.PLAN_YEAR,
        PlanYearResult(
            meetings=[
                meeting(id="m1", title="Ambassadørmøde (forår)"),
                meeting(id="m2", title="Ambassadørmøde (efterår)"),
                meeting(id="m3", title="Stormøde"),
            ]
        ),
    )

    result = run(
        "plan-year",
        "2027",
        "--ambassador-meeting",
        "2027-03-04",
        "--ambassador-meeting",
        "2027-09-02",
        "--assembly",
        "2027-11-18",
        "--place",
        "Rådhuset",
        "--meeting-time",
        "16:30-18:30",
    )

    assert result.exit_code == 0, result.output
    assert service.only_request() == (
        Endpoints.PLAN_YEAR.subject,
        {
            "year": 2027,
            "ambassador_meetings": ["2027-03-04", "2027-09-02"],
            "assembly": "2027-11-18",
            "ambassador_meeting_starts": "16:30:00",
            "ambassador_meeting_ends": "18:30:00",
            "assembly_starts": "16:00:00",
            "assembly_ends": "20:00:00",
            "place": "Rådhuset",
        },
    )
    assert [line.split()[0] for line in result.stdout.splitlines()[:3]] == ["m1", "m2", "m3"]


def test_plan_year_refuses_a_time_that_is_no_span_without_a_request(
    service: FakeService,
) -> None:
    result = run(
        "plan-year",
        "2027",
        "--ambassador-meeting",
        "2027-03-04",
        "--ambassador-meeting",
        "2027-09-02",
        "--assembly",
        "2027-11-18",
        "--meeting-time",
        "17:00",
    )

    assert result.exit_code != 0
    assert "--meeting-time" in result.output
    assert service.sent == []


# ---------------------------------------------------------------- --json and errors


@pytest.mark.parametrize(
    ("args", "endpoint", "reply"),
    [
        (SCHEDULE, Endpoints.SCHEDULE, meeting()),
        (("list",), Endpoints.LIST, MeetingPage(total=1, items=[meeting()])),
        (
            ("show", "m1"),
            Endpoints.SHOW,
            MeetingDetail(meeting=meeting(), invitees=[], waitlist=[]),
        ),
        (("cancel", "m1"), Endpoints.CANCEL, meeting(state=MeetingState.CANCELLED)),
    ],
    ids=["schedule", "list", "show", "cancel"],
)
def test_json_output_is_the_reply(
    service: FakeService, args: tuple[str, ...], endpoint: Endpoint[Any, Any], reply: BaseModel
) -> None:
    service.answer(endpoint, reply)

    result = run(*args, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == reply.model_dump(mode="json")
    assert service.sent[0][0] == endpoint.subject


def test_a_service_error_is_one_line(service: FakeService) -> None:
    service.answer(Endpoints.CANCEL, ServiceError(ErrorCode.NOT_FOUND, "no such meeting"))

    result = run("cancel", "m404", "--reason", "Aflyst")

    assert one_line_error(result) == "error: no such meeting"
    assert service.only_request() == (
        Endpoints.CANCEL.subject,
        {"meeting_id": "m404", "reason": "Aflyst"},
    )
