"""The initiatives goal (pure): how many initiatives were started in the goal period, month
by month. An initiative is an action or volunteer network started, or a dialogue meeting,
theme day or workshop held (the strategy's "started action networks, dialogue meetings,
theme days etc.")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from contracts.events import MeetingKind
from contracts.networks import FORMED_KINDS, InitiativeMonth, Initiatives, NetworkKind

COUNTED_MEETINGS = (MeetingKind.DIALOGUE_MEETING, MeetingKind.THEME_DAY, MeetingKind.WORKSHOP)


def _months(first: date, last: date) -> list[str]:
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def initiatives(
    started: Iterable[tuple[date, NetworkKind]],
    held: Iterable[tuple[date, MeetingKind]],
    *,
    start: date,
    end: date,
    target: int,
    today: date,
) -> Initiatives:
    """Counted when their day is within [start, end]; the months run from the period's
    first to its last, or to this month while it lasts."""
    networks = [(d, k.value) for d, k in started if k in FORMED_KINDS and start <= d <= end]
    meetings = [(d, k.value) for d, k in held if k in COUNTED_MEETINGS and start <= d <= end]
    by_kind: dict[str, int] = {}
    for _, kind in (*networks, *meetings):
        by_kind[kind] = by_kind.get(kind, 0) + 1
    months: list[InitiativeMonth] = []
    total = 0
    for month in _months(start, min(end, max(today, start))):
        in_networks = sum(1 for d, _ in networks if d.strftime("%Y-%m") == month)
        in_meetings = sum(1 for d, _ in meetings if d.strftime("%Y-%m") == month)
        total += in_networks + in_meetings
        months.append(
            InitiativeMonth(month=month, networks=in_networks, meetings=in_meetings, total=total)
        )
    started_count = len(networks) + len(meetings)
    return Initiatives(
        period_start=start,
        period_end=end,
        target=target,
        started=started_count,
        progress=started_count / target,
        networks=len(networks),
        meetings=len(meetings),
        by_kind=dict(sorted(by_kind.items())),
        months=months,
    )
