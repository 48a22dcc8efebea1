"""`samskab events ...`: meetings, invitations, answers, attendance, minutes, the calendar.

Times are typed and shown as wall-clock time in Copenhagen; the service keeps them in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import calls, jobs
from cli.output import build, fail, fields, plain, read_text_file, reporting, show, table
from contracts.ambassadors import CoreArea
from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.events import (
    COPENHAGEN,
    MINUTES_MAX,
    Answer,
    AnswerInvitation,
    AttendanceResult,
    Audience,
    CancelMeeting,
    CloseMeeting,
    Endpoints,
    GetCalendar,
    InviteeView,
    ListMeetings,
    MeetingDetail,
    MeetingKind,
    MeetingPage,
    MeetingView,
    Participation,
    PlanYear,
    PlanYearResult,
    RecordAttendance,
    RescheduleMeeting,
    Rsvp,
    RsvpResult,
    ScheduleMeeting,
    ShowMeeting,
)

app = typer.Typer(
    help="Meetings: schedule, invite, answers, attendance, minutes, the calendar.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
MeetingArg = Annotated[str, typer.Argument(metavar="ID", help="The meeting's id.")]
StartsOpt = Annotated[
    str,
    typer.Option("--starts", metavar="DATETIME", help="Start, Copenhagen time: 2027-03-04T17:00."),
]
EndsOpt = Annotated[
    str,
    typer.Option("--ends", metavar="DATETIME", help="End, Copenhagen time: 2027-03-04T19:00."),
]
PlaceOpt = Annotated[str | None, typer.Option("--place", help="Address or room.")]
OnlineOpt = Annotated[
    str | None, typer.Option("--online", metavar="URL", help="Link to join online.")
]
YesOpt = Annotated[bool, typer.Option("--yes", help="Attending.")]
NoOpt = Annotated[bool, typer.Option("--no", help="Not attending.")]
MaybeOpt = Annotated[bool, typer.Option("--maybe", help="Perhaps.")]


# ---------------------------------------------------------------- how a meeting reads


def _local(value: Any) -> datetime:
    """A time from a reply (UTC) as wall-clock time in Copenhagen."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(COPENHAGEN)


def _at(value: Any) -> str | None:
    return None if value is None else f"{_local(value):%Y-%m-%d %H:%M}"


def _when(m: MeetingView) -> str:
    """``2027-03-04 17:00–19:00``, or both dates when it runs past midnight."""
    starts, ends = _local(m.starts_at), _local(m.ends_at)
    if starts.date() == ends.date():
        return f"{starts:%Y-%m-%d %H:%M}–{ends:%H:%M}"
    return f"{starts:%Y-%m-%d %H:%M} – {ends:%Y-%m-%d %H:%M}"


def _line(m: MeetingView) -> str:
    return f"{m.id} {m.state}: {m.title}, {_when(m)}"


def _seats(m: MeetingView) -> str:
    attending = m.counts.attending
    return f"{attending}/{m.capacity}" if m.capacity else str(attending)


def _audience(a: Audience) -> str:
    parts = []
    if a.themes:
        parts.append("themes " + ", ".join(str(t) for t in a.themes))
    if a.core_areas:
        parts.append("core areas " + ", ".join(plain(c) for c in a.core_areas))
    if a.network_id:
        parts.append(f"network {a.network_id}")
    ids = a.ambassador_ids
    if ids:
        parts.append(
            "ambassadors " + ", ".join(ids) if len(ids) <= 5 else f"{len(ids)} ambassadors by id"
        )
    return "; ".join(parts) or "every active ambassador"


def _counts(m: MeetingView) -> str:
    c = m.counts
    seats = f" of {m.capacity}" if m.capacity else ""
    return (
        f"{c.invited} invited: {c.attending}{seats} attending, "
        f"{c.waitlisted} waitlisted, {c.maybe} maybe, "
        f"{c.declined} declined, {c.no_answer} no answer; "
        f"{c.attended} attended"
    )


def _show_meeting(m: MeetingView) -> None:
    state = plain(m.state) + (" (invitations still being sent)" if m.inviting else "")
    cancelled = None
    if m.cancelled_at:
        reason = f" ({m.cancel_reason})" if m.cancel_reason else ""
        cancelled = f"{_at(m.cancelled_at)}{reason}"
    fields(
        [
            ("id", m.id),
            ("title", m.title),
            ("kind", m.kind),
            ("state", state),
            ("when", _when(m)),
            ("place", m.place),
            ("online", m.online_url),
            ("capacity", m.capacity),
            ("public", "yes" if m.public else "no"),
            ("audience", _audience(m.audience)),
            ("answers", _counts(m)),
            ("description", m.description),
            ("scheduled", _at(m.created_at)),
            ("cancelled", cancelled),
            ("held", _at(m.held_at)),
            ("outcomes", m.outcomes),
        ]
    )


def _participation(i: InviteeView) -> str:
    if i.participation == Participation.WAITLISTED and i.waitlist_position:
        return f"waitlisted #{i.waitlist_position}"
    return plain(i.participation)


def _show_detail(d: MeetingDetail) -> None:
    _show_meeting(d.meeting)
    typer.echo("")
    table(
        [
            (
                i.ambassador_id,
                i.name,
                i.organisation,
                _participation(i),
                "yes" if i.attended else "",
            )
            for i in d.invitees
        ],
        ["AMBASSADOR", "NAME", "ORGANISATION", "PARTICIPATION", "ATTENDED"],
    )
    typer.echo(f"{len(d.invitees)} invitees")
    typer.echo("")
    if not d.waitlist:
        typer.echo("Waitlist: empty")
    else:
        typer.echo("Waitlist:")
        for place, w in enumerate(d.waitlist, start=1):
            who = ", ".join(x for x in (w.name, w.organisation) if x)
            typer.echo(f"  {w.waitlist_position or place}. {w.ambassador_id}  {who}")
    if d.minutes:
        typer.echo("")
        typer.echo("Minutes:")
        typer.echo(d.minutes)


# ---------------------------------------------------------------- scheduling


@app.command()
def schedule(
    kind: Annotated[MeetingKind, typer.Option("--kind", help="Kind of meeting.")],
    title: Annotated[str, typer.Option("--title", help="Title, as invitations show it.")],
    starts: StartsOpt,
    ends: EndsOpt,
    place: PlaceOpt = None,
    online: OnlineOpt = None,
    capacity: Annotated[
        int | None, typer.Option("--capacity", help="Seats; later yeses go on a waitlist.")
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Show it in the public calendar.")
    ] = False,
    description: Annotated[str | None, typer.Option("--description")] = None,
    theme: Annotated[
        list[int] | None, typer.Option("--theme", help="Invite ambassadors of theme 1-12; repeat.")
    ] = None,
    core_area: Annotated[
        list[CoreArea] | None,
        typer.Option("--core-area", help="Invite ambassadors of a core area; repeat."),
    ] = None,
    network: Annotated[
        str | None, typer.Option("--network", metavar="ID", help="Invite a network's members.")
    ] = None,
    invite: Annotated[
        list[str] | None,
        typer.Option("--invite", metavar="AMBASSADOR_ID", help="Invite this ambassador; repeat."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Schedule a meeting and invite its audience (every active ambassador if none given)."""
    audience = {
        "themes": theme or [],
        "core_areas": core_area or [],
        "network_id": network,
        "ambassador_ids": invite or [],
    }
    with reporting(as_json):
        command = build(
            ScheduleMeeting,
            kind=kind,
            title=title,
            description=description,
            starts=starts,
            ends=ends,
            place=place,
            online_url=online,
            capacity=capacity,
            public=public,
            audience={k: v for k, v in audience.items() if v} or None,
        )
        result = calls.call(Endpoints.SCHEDULE, command)
    show(
        result,
        as_json,
        lambda m: typer.echo(f"{_line(m)}; invitations are being sent to the audience"),
    )


@app.command()
def reschedule(
    meeting_id: MeetingArg,
    starts: StartsOpt,
    ends: EndsOpt,
    place: Annotated[
        str | None, typer.Option("--place", help="New place (default: where it was).")
    ] = None,
    online: OnlineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a meeting; invitees get the updated invitation."""
    with reporting(as_json):
        command = build(
            RescheduleMeeting,
            meeting_id=meeting_id,
            starts=starts,
            ends=ends,
            place=place,
            online_url=online,
        )
        result = calls.call(Endpoints.RESCHEDULE, command)
    show(
        result,
        as_json,
        lambda m: typer.echo(f"{m.id} {m.state}: {m.title}, moved to {_when(m)}"),
    )


@app.command()
def cancel(
    meeting_id: MeetingArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Told to invitees.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a meeting; invitees are told."""
    with reporting(as_json):
        command = build(CancelMeeting, meeting_id=meeting_id, reason=reason)
        result = calls.call(Endpoints.CANCEL, command)
    show(result, as_json, lambda m: typer.echo(_line(m)))


@app.command("plan-year")
def plan_year(
    year: Annotated[int, typer.Argument(metavar="YEAR")],
    ambassador_meeting: Annotated[
        list[str],
        typer.Option(
            "--ambassador-meeting",
            metavar="DATE",
            help="Day (YYYY-MM-DD) of an ambassador meeting; give two, one each half-year.",
        ),
    ],
    assembly: Annotated[
        str,
        typer.Option("--assembly", metavar="DATE", help="Day (YYYY-MM-DD) of the annual assembly."),
    ],
    place: PlaceOpt = None,
    meeting_time: Annotated[
        str,
        typer.Option(
            "--meeting-time", metavar="HH:MM-HH:MM", help="When the ambassador meetings run."
        ),
    ] = "17:00-19:00",
    assembly_time: Annotated[
        str,
        typer.Option("--assembly-time", metavar="HH:MM-HH:MM", help="When the assembly runs."),
    ] = "16:00-20:00",
    as_json: JsonOpt = False,
    no_wait: jobs.NoWaitOpt = False,
) -> None:
    """Schedule the year's two ambassador meetings and the annual assembly, for everyone."""
    with reporting(as_json):
        meeting_starts, meeting_ends = _span("--meeting-time", meeting_time)
        assembly_starts, assembly_ends = _span("--assembly-time", assembly_time)
        command = build(
            PlanYear,
            year=year,
            ambassador_meetings=ambassador_meeting,
            assembly=assembly,
            place=place,
            ambassador_meeting_starts=meeting_starts,
            ambassador_meeting_ends=meeting_ends,
            assembly_starts=assembly_starts,
            assembly_ends=assembly_ends,
        )
        result = jobs.run(Endpoints.PLAN_YEAR, command, as_json=as_json, wait=not no_wait)
    if result is not None:
        show(result, as_json, _planned)


@jobs.shows(Endpoints.PLAN_YEAR, "planning the year")
def _planned(r: PlanYearResult) -> None:
    for m in r.meetings:
        typer.echo(_line(m))
    typer.echo("every active ambassador is invited")


# ---------------------------------------------------------------- reading


def _span(option: str, value: str) -> tuple[str, str]:
    """``17:00-19:00`` -> the two times, as the contract takes them (it checks them)."""
    starts, dash, ends = value.partition("-")
    if not dash or not starts.strip() or not ends.strip():
        message = f"a time span such as 17:00-19:00, not {value!r}"
        raise ServiceError(
            ErrorCode.VALIDATION_FAILED,
            f"{option}: {message}",
            [FieldError(field=option.lstrip("-"), message=message)],
        )
    return starts.strip(), ends.strip()


@app.command("list")
def list_(
    upcoming: Annotated[
        bool, typer.Option("--upcoming", help="Only meetings still to come, soonest first.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 200,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List meetings, newest first (or upcoming ones, soonest first)."""
    with reporting(as_json):
        query = build(ListMeetings, upcoming=upcoming, limit=limit, offset=offset)
        result = calls.call(Endpoints.LIST, query)

    def human(page: MeetingPage) -> None:
        table(
            [(m.id, _at(m.starts_at), m.kind, m.title, m.state, _seats(m)) for m in page.items],
            ["ID", "STARTS", "KIND", "TITLE", "STATE", "ATTENDING"],
        )
        typer.echo(f"{len(page.items)} of {page.total}")

    show(result, as_json, human)


@app.command("show")
def show_(meeting_id: MeetingArg, as_json: JsonOpt = False) -> None:
    """Show a meeting, its invitees with their answers, and the waitlist in order."""
    with reporting(as_json):
        result = calls.call(Endpoints.SHOW, build(ShowMeeting, meeting_id=meeting_id))
    show(result, as_json, _show_detail)


# ---------------------------------------------------------------- answers


def _chosen(yes: bool, no: bool, maybe: bool, as_json: bool) -> Answer:
    given = [a for a, flag in ((Answer.YES, yes), (Answer.NO, no), (Answer.MAYBE, maybe)) if flag]
    if len(given) != 1:
        fail("give exactly one of --yes, --no or --maybe", as_json)
    return given[0]


def _rsvp_line(r: RsvpResult) -> None:
    line = f"{r.meeting_id}: {r.ambassador_id} {r.participation}"
    if r.waitlist_position:
        line += f" (waitlist position {r.waitlist_position})"
    if r.promoted:
        line += f"; got a seat from the waitlist: {', '.join(r.promoted)}"
    typer.echo(line)


@app.command()
def rsvp(
    meeting_id: Annotated[str, typer.Argument(metavar="MEETING", help="The meeting's id.")],
    ambassador_id: Annotated[
        str, typer.Argument(metavar="AMBASSADOR", help="The ambassador's id.")
    ],
    yes: YesOpt = False,
    no: NoOpt = False,
    maybe: MaybeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Record an ambassador's answer to an invitation."""
    with reporting(as_json):
        answer_ = _chosen(yes, no, maybe, as_json)
        command = build(Rsvp, meeting_id=meeting_id, ambassador_id=ambassador_id, answer=answer_)
        result = calls.call(Endpoints.RSVP, command)
    show(result, as_json, _rsvp_line)


@app.command()
def answer(
    token: Annotated[
        str, typer.Argument(metavar="TOKEN", help="The last part of the invitation's RSVP link.")
    ],
    yes: YesOpt = False,
    no: NoOpt = False,
    maybe: MaybeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Answer an invitation with the token from its mail."""
    with reporting(as_json):
        answer_ = _chosen(yes, no, maybe, as_json)
        result = calls.call(Endpoints.ANSWER, build(AnswerInvitation, token=token, answer=answer_))
    show(result, as_json, _rsvp_line)


# ---------------------------------------------------------------- after the meeting


@app.command()
def attendance(
    meeting_id: Annotated[str, typer.Argument(metavar="MEETING", help="The meeting's id.")],
    attended: Annotated[
        list[str],
        typer.Option("--attended", metavar="ID", help="An ambassador who came; repeat."),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Record who came to a meeting."""
    with reporting(as_json):
        command = build(RecordAttendance, meeting_id=meeting_id, attended=attended)
        result = calls.call(Endpoints.ATTENDANCE, command)

    def human(r: AttendanceResult) -> None:
        line = f"{r.meeting_id}: {r.attended} attended"
        if r.uninvited:
            line += f"; not invited but recorded too: {', '.join(r.uninvited)}"
        typer.echo(line)

    show(result, as_json, human)


@app.command()
def close(
    meeting_id: Annotated[str, typer.Argument(metavar="MEETING", help="The meeting's id.")],
    minutes: Annotated[
        Path, typer.Option("--minutes", metavar="FILE", help="The minutes: a UTF-8 text file.")
    ],
    outcome: Annotated[
        list[str] | None, typer.Option("--outcome", help="One outcome, one line; repeat.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Close a meeting that took place, with its minutes and outcomes."""
    with reporting(as_json):
        text = read_text_file(
            minutes,
            as_json,
            what="the minutes",
            empty="the minutes need some text",
            max_chars=MINUTES_MAX,
        )
        command = build(CloseMeeting, meeting_id=meeting_id, minutes=text, outcomes=outcome or [])
        result = calls.call(Endpoints.CLOSE, command)

    def human(m: MeetingView) -> None:
        typer.echo(f"{_line(m)}; {m.counts.attended} attended")

    show(result, as_json, human)


@app.command()
def calendar(
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE.ics", help="Where to write the calendar.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Write the public calendar (every public meeting) as one iCalendar file."""
    with reporting(as_json):
        reply = calls.call(Endpoints.CALENDAR, GetCalendar())
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            # Bytes, so the CRLF line ends iCalendar asks for stay as they are.
            out.write_bytes(reply.ics.encode("utf-8"))
        except OSError as exc:
            fail(f"{out}: cannot be written ({exc.strerror or exc})", as_json)
    result = {"meetings": reply.meetings, "path": str(out)}
    show(result, as_json, lambda r: typer.echo(f"{r['meetings']} meetings written to {r['path']}"))
