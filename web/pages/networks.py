"""The network's action networks in public: those at work now (what they work on, the
organisations taking part) and what came of those that closed (the initiative, the work
handed over). No person is named: organisations only, of members listed publicly."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from contracts.networks import KIND_LABELS, GetPublicNetworks
from contracts.networks import Endpoints as Networks
from web.gateway import ask
from web.pages.calendar import danish_date
from web.site import site_of

router = APIRouter()

OUTCOME_LABELS = {"initiative": "Nyt initiativ", "handed_over": "Arbejdet er givet videre"}


@router.get("/netvaerk")
async def networks_page(request: Request) -> Response:
    site = site_of(request)
    found = await ask(site.services, Networks.PUBLIC, GetPublicNetworks())
    return site.pages.render(
        request,
        "networks.html.j2",
        public=True,
        title="Handlingsnetværk",
        networks=found,
        kinds=KIND_LABELS,
        outcomes=OUTCOME_LABELS,
        date=danish_date,
    )
