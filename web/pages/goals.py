"""The strategy's goals, in public: active ambassadors against the target (150) and the
citizens' share against theirs (20 %), month by month, as charts and as a table with the
same numbers (``samskab goals`` shows them too). Counts only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from contracts.ambassadors import Endpoints as Ambassadors
from contracts.ambassadors import GetGoals
from web.charts import line_chart
from web.gateway import ask
from web.pages.calendar import MONTHS
from web.site import site_of

router = APIRouter()


def month_name(month: str) -> str:
    """``2026-11`` as ``november 2026``."""
    year, number = month.split("-")
    return f"{MONTHS[int(number) - 1]} {year}"


@router.get("/maal")
async def goals(request: Request) -> Response:
    site = site_of(request)
    found = await ask(site.services, Ambassadors.GOALS, GetGoals())
    months = [month_name(m.month) for m in found.months]
    shares = [m.citizens / m.active if m.active else 0.0 for m in found.months]
    return site.pages.render(
        request,
        "goals.html.j2",
        public=True,
        title="Mål",
        goals=found,
        months=list(zip(months, found.months, shares, strict=True)),
        active_chart=line_chart(months, [m.active for m in found.months], target=found.target),
        share_chart=line_chart(months, shares, target=found.citizen_share_target, percent=True),
    )
