"""`samskab networks ...`: challenges, suggested teams and the skill vocabulary."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from cli import calls
from cli.output import build, fields, reporting, show, table
from contracts.ambassadors import CoreArea, Kind
from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.networks import (
    AlertNetwork,
    AlertSummary,
    AnswerNetworkInvitation,
    Candidates,
    ChallengePage,
    ChallengeStatus,
    ChallengeView,
    CloseNetwork,
    CreateNetwork,
    DropChallenge,
    Endpoints,
    FormNetwork,
    InvitationAnswer,
    InviteMembers,
    ListCandidates,
    ListChallenges,
    ListNetworks,
    ListSkills,
    MergeSkills,
    NetworkDetail,
    NetworkKind,
    NetworkPage,
    NetworkStatus,
    Outcome,
    RaiseChallenge,
    RemoveMember,
    ShowChallenge,
    ShowNetwork,
    SkillsMerged,
    SkillVocabulary,
    StartNetwork,
    Suggest,
    Suggestion,
)

app = typer.Typer(
    help="Networks: challenges, suggested teams, the skill vocabulary.", no_args_is_help=True
)
challenge_app = typer.Typer(
    help="Challenges: raise, list, show, drop; held meetings' outcomes to take up.",
    no_args_is_help=True,
)
skills_app = typer.Typer(
    help="The skill vocabulary: list it with counts, merge two names of one skill.",
    invoke_without_command=True,
)
app.add_typer(challenge_app, name="challenge")
app.add_typer(skills_app, name="skills")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ChallengeArg = Annotated[str, typer.Argument(metavar="ID", help="The challenge's id.")]


def _show_challenge(c: ChallengeView) -> None:
    origin = c.from_meeting
    fields(
        [
            ("id", c.id),
            ("title", c.title),
            ("status", c.status),
            ("description", c.description),
            ("themes", c.themes),
            ("core areas", c.core_areas),
            ("skills", c.skills),
            ("matched as", c.skills_as_matched if c.skills_as_matched != c.skills else None),
            ("target group", c.target_group),
            (
                "from meeting",
                f"{origin.title} ({origin.date}, {origin.meeting_id}), outcome "
                f"{origin.outcome_number}: {origin.outcome}"
                if origin
                else None,
            ),
            ("raised", f"{c.raised_at.isoformat()} by {c.raised_by}"),
            ("dropped", f"{c.dropped_at.isoformat()}: {c.drop_reason}" if c.dropped_at else None),
        ]
    )


# ---------------------------------------------------------------- challenges


@challenge_app.command("raise")
def raise_(
    title: Annotated[str, typer.Option("--title", help="A short title.")],
    description: Annotated[str, typer.Option("--description", help="What the challenge is.")],
    theme: Annotated[list[int] | None, typer.Option("--theme", help="Theme 1-12; repeat.")] = None,
    core_area: Annotated[
        list[CoreArea] | None, typer.Option("--core-area", help="Core area; repeat.")
    ] = None,
    skill: Annotated[
        list[str] | None, typer.Option("--skill", help="A skill it needs; repeat.")
    ] = None,
    target_group: Annotated[
        str | None, typer.Option("--target-group", help="Who it is for.")
    ] = None,
    from_meeting: Annotated[
        str | None,
        typer.Option("--from-meeting", metavar="MEETING_ID", help="The held meeting it came from."),
    ] = None,
    outcome: Annotated[
        int | None,
        typer.Option("--outcome", metavar="N", help="Which of the meeting's outcomes (1 = first)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Raise a challenge, possibly as an outcome of a held meeting (see `candidates`)."""
    with reporting(as_json):
        command = build(
            RaiseChallenge,
            title=title,
            description=description,
            themes=theme or [],
            core_areas=core_area or [],
            skills=skill or [],
            target_group=target_group,
            from_meeting=from_meeting,
            from_outcome=outcome,
        )
        result = calls.call(Endpoints.RAISE_CHALLENGE, command)
    show(result, as_json, lambda c: typer.echo(f"{c.id} raised: {c.title}"))


@challenge_app.command("list")
def list_(
    status: Annotated[ChallengeStatus | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Challenges, newest first."""
    with reporting(as_json):
        query = build(ListChallenges, status=status, limit=limit, offset=offset)
        result = calls.call(Endpoints.LIST_CHALLENGES, query)

    def human(page: ChallengePage) -> None:
        table(
            [(c.id, c.status, c.raised_at.date(), c.title) for c in page.items],
            ["ID", "STATUS", "RAISED", "TITLE"],
        )
        typer.echo(f"{len(page.items)} of {page.total}")

    show(result, as_json, human)


@challenge_app.command("show")
def show_(challenge_id: ChallengeArg, as_json: JsonOpt = False) -> None:
    """One challenge."""
    with reporting(as_json):
        query = build(ShowChallenge, challenge_id=challenge_id)
        result = calls.call(Endpoints.SHOW_CHALLENGE, query)
    show(result, as_json, _show_challenge)


@challenge_app.command("drop")
def drop(
    challenge_id: ChallengeArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it is dropped.")],
    as_json: JsonOpt = False,
) -> None:
    """Drop an open challenge."""
    with reporting(as_json):
        command = build(DropChallenge, challenge_id=challenge_id, reason=reason)
        result = calls.call(Endpoints.DROP_CHALLENGE, command)
    show(result, as_json, lambda c: typer.echo(f"{c.id} dropped"))


@challenge_app.command("candidates")
def candidates(as_json: JsonOpt = False) -> None:
    """Outcomes of held meetings no challenge has taken up yet."""
    with reporting(as_json):
        result = calls.call(Endpoints.CANDIDATES, ListCandidates())

    def human(found: Candidates) -> None:
        table(
            [
                (
                    c.meeting.meeting_id,
                    c.meeting.date,
                    c.meeting.title,
                    c.meeting.outcome_number,
                    c.meeting.outcome,
                )
                for c in found.items
            ],
            ["MEETING", "HELD", "TITLE", "N", "OUTCOME"],
        )
        if found.items:
            typer.echo(
                "take one up: samskab networks challenge raise --from-meeting MEETING "
                "--outcome N --title ... --description ..."
            )

    show(result, as_json, human)


# ---------------------------------------------------------------- suggesting a team

_SIZE = re.compile(r"^(\d{1,2})(?:-(\d{1,2}))?$")
_MINIMUM = re.compile(r"^([a-z_]+):(\d{1,2})$")


def _size(text: str) -> tuple[int, int]:
    found = _SIZE.match(text.strip())
    if not found:
        raise ServiceError(
            ErrorCode.VALIDATION_FAILED,
            "the request is not valid",
            [FieldError(field="size", message="a size is N or MIN-MAX, e.g. 5-8")],
        )
    low = int(found.group(1))
    return low, int(found.group(2) or low)


def _minimums(option: str, texts: list[str] | None) -> dict[str, int]:
    minimums: dict[str, int] = {}
    for text in texts or []:
        found = _MINIMUM.match(text.strip().casefold())
        if not found:
            raise ServiceError(
                ErrorCode.VALIDATION_FAILED,
                "the request is not valid",
                [FieldError(field=option, message=f"{text!r}: write NAME:N, e.g. citizen:1")],
            )
        minimums[found.group(1)] = int(found.group(2))
    return minimums


def _show_suggestion(s: Suggestion) -> None:
    typer.echo(
        f"team of {len(s.members)} (size {s.size_min}-{s.size_max}) for challenge "
        f"{s.challenge_id}; required skills: {', '.join(s.required_skills) or 'none'}"
    )
    table(
        [(p.ambassador_id, p.kind, p.organisation or p.name, p.score) for p in s.members],
        ["ID", "KIND", "WHO", "SCORE"],
    )
    for pick in s.members:
        typer.echo(f"- {pick.organisation or pick.name}: {pick.reason}")
    for gap in s.gaps:
        typer.echo(f"gap: {gap}")
    for rule in s.unmet:
        typer.echo(f"cannot be met: {rule}")
    for why in s.why_not:
        typer.echo(f"why not {why.ambassador_id}: {why.reason}")
    typer.echo(
        f"{s.method}: score {s.objective}; {s.considered} could be asked, "
        f"{s.shortlisted} shortlisted"
    )


@app.command()
def suggest(
    challenge_id: ChallengeArg,
    size: Annotated[str, typer.Option("--size", metavar="MIN-MAX", help="Team size.")] = "5-8",
    require_skill: Annotated[
        list[str] | None,
        typer.Option("--require-skill", metavar="TAG", help="A skill someone must have; repeat."),
    ] = None,
    require_kind: Annotated[
        list[str] | None,
        typer.Option(
            "--require-kind",
            metavar="KIND:N",
            help="At least N of a kind, e.g. citizen:1; repeat. Kinds: "
            + ", ".join(k.value for k in Kind),
        ),
    ] = None,
    require_core_area: Annotated[
        list[str] | None,
        typer.Option(
            "--require-core-area",
            metavar="AREA:N",
            help="At least N with a core area, e.g. housing:2; repeat.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", metavar="ID", help="Leave out; repeat.")
    ] = None,
    why_not: Annotated[
        list[str] | None,
        typer.Option("--why-not", metavar="ID", help="Explain why they are not in the team."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Suggest a team for a challenge: every required skill covered, every minimum met,
    within the size, most relevant and least asked lately; each pick explained."""
    with reporting(as_json):
        low, high = _size(size)
        query = build(
            Suggest,
            challenge_id=challenge_id,
            size_min=low,
            size_max=high,
            require_skills=require_skill or [],
            require_kinds=_minimums("require_kinds", require_kind),
            require_core_areas=_minimums("require_core_areas", require_core_area),
            exclude=exclude or [],
            why_not=why_not or [],
        )
        result = calls.call(Endpoints.SUGGEST, query)
    show(result, as_json, _show_suggestion)


# ---------------------------------------------------------------- skills


@skills_app.callback()
def skills(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The skill vocabulary with how many active ambassadors have each skill."""
    if ctx.invoked_subcommand is not None:
        return
    with reporting(as_json):
        result = calls.call(Endpoints.SKILLS, ListSkills())

    def human(vocabulary: SkillVocabulary) -> None:
        table(
            [
                (e.skill, e.count, "" if e.in_vocabulary else "(free tag)", ", ".join(e.synonyms))
                for e in vocabulary.items
                if e.count or e.in_vocabulary
            ],
            ["SKILL", "AMBASSADORS", "", "ALSO READ AS"],
        )

    show(result, as_json, human)


@skills_app.command("merge")
def merge(
    from_skill: Annotated[str, typer.Argument(metavar="FROM")],
    into_skill: Annotated[str, typer.Argument(metavar="INTO")],
    as_json: JsonOpt = False,
) -> None:
    """Read FROM as INTO from now on (two names of one skill)."""
    with reporting(as_json):
        command = build(MergeSkills, from_skill=from_skill, into_skill=into_skill)
        result = calls.call(Endpoints.MERGE_SKILLS, command)

    def human(merged: SkillsMerged) -> None:
        typer.echo(
            f"{merged.from_skill} is read as {merged.into_skill}: "
            f"{merged.ambassadors} active ambassador(s) have {merged.into_skill}"
        )

    show(result, as_json, human)


# ---------------------------------------------------------------- networks

NetworkArg = Annotated[str, typer.Argument(metavar="NETWORK", help="The network's id.")]
MembersOpt = Annotated[
    list[str] | None, typer.Option("--member", metavar="ID", help="A member to invite; repeat.")
]
ReplyOpt = Annotated[
    int, typer.Option("--reply-within-days", metavar="DAYS", help="Answer deadline, in days.")
]


def _show_network(d: NetworkDetail) -> None:
    n = d.network
    c = n.counts
    fields(
        [
            ("id", n.id),
            ("title", n.title),
            ("kind", n.kind),
            ("status", n.status),
            ("challenge", n.challenge_id),
            ("lead", n.lead),
            ("ends", n.ends),
            (
                "members",
                f"{c.joined} joined, {c.invited} invited, {c.declined} declined, "
                f"{c.expired} no answer, {c.removed} removed",
            ),
            ("outcome", f"{n.outcome.value}: {n.summary}" if n.outcome else None),
            ("initiative", n.initiative_title),
        ]
    )
    table(
        [
            (m.ambassador_id, m.state, "lead" if m.lead else "", m.organisation or m.name)
            for m in d.members
        ],
        ["ID", "STATE", "", "WHO"],
    )
    for a in d.alerts:
        typer.echo(
            f"call-out {a.id} at {a.sent_at.isoformat()} to {a.sent_to}: "
            f"{len(a.can_help)} can help in time, {len(a.can_help_late)} later, "
            f"{len(a.cannot)} cannot"
        )
    for change in n.history:
        detail_text = f" ({change.detail})" if change.detail else ""
        typer.echo(f"{change.at.isoformat()}  {change.what} by {change.actor}{detail_text}")


@app.command()
def form(
    challenge_id: ChallengeArg,
    member: MembersOpt = None,
    kind: Annotated[
        NetworkKind, typer.Option("--kind", help="action or volunteer.")
    ] = NetworkKind.ACTION,
    lead: Annotated[str | None, typer.Option("--lead", metavar="ID", help="Who leads it.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Default: the challenge's.")] = None,
    ends: Annotated[
        str | None, typer.Option("--ends", metavar="DATE", help="Its end date (YYYY-MM-DD).")
    ] = None,
    reply_within_days: ReplyOpt = 7,
    size: Annotated[
        str | None,
        typer.Option("--size", metavar="MIN-MAX", help="The rules a replacement keeps."),
    ] = None,
    require_skill: Annotated[list[str] | None, typer.Option("--require-skill")] = None,
    require_kind: Annotated[list[str] | None, typer.Option("--require-kind")] = None,
    require_core_area: Annotated[list[str] | None, typer.Option("--require-core-area")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Form an action or volunteer network around a challenge: the members are invited
    by mail and answer through its links."""
    with reporting(as_json):
        low, high = _size(size) if size else (None, None)
        command = build(
            FormNetwork,
            challenge_id=challenge_id,
            kind=kind,
            members=member or [],
            lead=lead,
            title=title,
            ends=ends,
            reply_within_days=reply_within_days,
            size_min=low,
            size_max=high,
            require_skills=require_skill or [],
            require_kinds=_minimums("require_kinds", require_kind),
            require_core_areas=_minimums("require_core_areas", require_core_area),
        )
        result = calls.call(Endpoints.FORM, command)
    show(
        result,
        as_json,
        lambda d: typer.echo(f"{d.network.id} formed: {d.network.counts.invited} invited"),
    )


@app.command()
def create(
    kind: Annotated[NetworkKind, typer.Option("--kind", help="leader or staff.")],
    title: Annotated[str, typer.Option("--title")],
    member: MembersOpt = None,
    reply_within_days: ReplyOpt = 7,
    as_json: JsonOpt = False,
) -> None:
    """Create a standing leader or staff network; its members are invited."""
    with reporting(as_json):
        command = build(
            CreateNetwork,
            kind=kind,
            title=title,
            members=member or [],
            reply_within_days=reply_within_days,
        )
        result = calls.call(Endpoints.CREATE, command)
    show(
        result,
        as_json,
        lambda d: typer.echo(f"{d.network.id} created: {d.network.counts.invited} invited"),
    )


@app.command("list")
def list_networks(
    kind: Annotated[NetworkKind | None, typer.Option("--kind")] = None,
    status: Annotated[NetworkStatus | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Networks, newest first."""
    with reporting(as_json):
        query = build(ListNetworks, kind=kind, status=status, limit=limit, offset=offset)
        result = calls.call(Endpoints.LIST, query)

    def human(page: NetworkPage) -> None:
        table(
            [(n.id, n.kind, n.status, n.counts.joined, n.title) for n in page.items],
            ["ID", "KIND", "STATUS", "JOINED", "TITLE"],
        )
        typer.echo(f"{len(page.items)} of {page.total}")

    show(result, as_json, human)


@app.command("show")
def show_network(network_id: NetworkArg, as_json: JsonOpt = False) -> None:
    """One network: its members, their answers, its history."""
    with reporting(as_json):
        result = calls.call(Endpoints.SHOW, build(ShowNetwork, network_id=network_id))
    show(result, as_json, _show_network)


@app.command()
def invite(
    network_id: NetworkArg,
    ambassador_ids: Annotated[list[str], typer.Argument(metavar="ID...")],
    as_json: JsonOpt = False,
) -> None:
    """Invite more members (someone who declined may be asked again)."""
    with reporting(as_json):
        command = build(InviteMembers, network_id=network_id, ambassador_ids=ambassador_ids)
        result = calls.call(Endpoints.INVITE, command)
    show(
        result, as_json, lambda d: typer.echo(f"{d.network.id}: {d.network.counts.invited} invited")
    )


@app.command()
def remove(
    network_id: NetworkArg,
    ambassador_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
) -> None:
    """Take a member out of a network."""
    with reporting(as_json):
        command = build(RemoveMember, network_id=network_id, ambassador_id=ambassador_id)
        result = calls.call(Endpoints.REMOVE, command)
    show(result, as_json, lambda d: typer.echo(f"{ambassador_id} removed from {d.network.id}"))


@app.command()
def answer(
    token: Annotated[str, typer.Argument(metavar="TOKEN")],
    accept: Annotated[bool, typer.Option("--accept/--decline", help="The answer.")],
    as_json: JsonOpt = False,
) -> None:
    """Answer a network invitation with the token from its mail (for staff answering on
    someone's behalf: the member's own way is the page the mail links to)."""
    with reporting(as_json):
        command = build(AnswerNetworkInvitation, token=token, accept=accept)
        result = calls.call(Endpoints.ANSWER, command)

    def human(a: InvitationAnswer) -> None:
        typer.echo(f"{a.ambassador_id} in {a.network_id}: {a.state.value}")

    show(result, as_json, human)


@app.command()
def start(network_id: NetworkArg, as_json: JsonOpt = False) -> None:
    """Start a forming network (with at least one member who accepted)."""
    with reporting(as_json):
        result = calls.call(Endpoints.START, build(StartNetwork, network_id=network_id))
    show(
        result,
        as_json,
        lambda d: typer.echo(f"{d.network.id} started: {d.network.counts.joined} member(s)"),
    )


@app.command()
def close(
    network_id: NetworkArg,
    outcome: Annotated[Outcome, typer.Option("--outcome")],
    summary: Annotated[str, typer.Option("--summary", help="What came of it.")],
    initiative_title: Annotated[
        str | None, typer.Option("--initiative-title", help="What the initiative is called.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Close a network with its outcome."""
    with reporting(as_json):
        command = build(
            CloseNetwork,
            network_id=network_id,
            outcome=outcome,
            summary=summary,
            initiative_title=initiative_title,
        )
        result = calls.call(Endpoints.CLOSE, command)
    show(result, as_json, lambda d: typer.echo(f"{d.network.id} closed: {outcome.value}"))


@app.command()
def alert(
    network_id: NetworkArg,
    message: Annotated[str, typer.Option("--message", help="What help is needed, now.")],
    answer_within_hours: Annotated[
        int, typer.Option("--answer-within-hours", metavar="HOURS", help="The deadline.")
    ] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Call out a staff network ("akutteam"): every member is mailed at once and answers
    whether they can help; `networks show` lists who could, within the deadline."""
    with reporting(as_json):
        command = build(
            AlertNetwork,
            network_id=network_id,
            message=message,
            answer_within_hours=answer_within_hours,
        )
        result = calls.call(Endpoints.ALERT, command)

    def human(a: AlertSummary) -> None:
        typer.echo(f"call-out {a.id} sent to {a.sent_to}; answers by {a.answer_by.isoformat()}")

    show(result, as_json, human)
