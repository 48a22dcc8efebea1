"""The strategy's goals, in public: active ambassadors against the target (150), the
citizens' share against theirs (20 %), and the initiatives started in the goal period
against theirs, month by month, as charts and as tables with the same numbers (``samskab
goals`` shows them too). Counts only. Without the networks service the initiatives say
so in their place; the rest of the page works."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from contracts.ambassadors import Endpoints as Ambassadors
from contracts.ambassadors import GetGoals
from contracts.networks import Endpoints as Networks
from contracts.networks import GetInitiatives, Initiatives
from web.charts import line_chart
from web.gateway import Caller, Unavailable, ask
from web.pages.calendar import MONTHS, danish_date
from web.site import site_of

router = APIRouter()


def month_name(month: str) -> str:
    """``2026-11`` as ``november 2026``."""
    year, number = month.split("-")
    return f"{MONTHS[int(number) - 1]} {year}"


async def _initiatives(services: Caller) -> tuple[Initiatives | None, str | None]:
    try:
        return await ask(services, Networks.INITIATIVES, GetInitiatives()), None
    except Unavailable as exc:
        return None, exc.message


@router.get("/maal")
async def goals(request: Request) -> Response:
    site = site_of(request)
    found, (started, started_down) = await asyncio.gather(
        ask(site.services, Ambassadors.GOALS, GetGoals()), _initiatives(site.services)
    )
    initiative_months = [month_name(m.month) for m in started.months] if started else []
    months = [month_name(m.month) for m in found.months]
    shares = [m.citizens / m.active if m.active else 0.0 for m in found.months]
    return site.pages.render(
        request,
        "goals.html.j2",
        public=started is not None,
        title="Mål",
        goals=found,
        months=list(zip(months, found.months, shares, strict=True)),
        active_chart=line_chart(months, [m.active for m in found.months], target=found.target),
        share_chart=line_chart(months, shares, target=found.citizen_share_target, percent=True),
        date=danish_date,
        initiatives=started,
        initiatives_down=started_down,
        initiative_months=list(zip(initiative_months, started.months, strict=True))
        if started
        else [],
        initiatives_chart=line_chart(
            initiative_months, [m.total for m in started.months], target=started.target
        )
        if started and started.months
        else None,
    )
