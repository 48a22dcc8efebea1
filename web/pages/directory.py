"""The public directory: ambassadors who chose to be listed, filtered by theme, core area
and kind, searched by name, 50 to a page. Only what they chose to show: name or
organisation, description, website, themes and core areas."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from contracts.ambassadors import (
    CORE_AREA_LABELS,
    KIND_LABELS,
    THEME_LABELS,
    CoreArea,
    DirectoryEntry,
    GetDirectory,
    Kind,
)
from contracts.ambassadors import Endpoints as Ambassadors
from contracts.text import clean_line
from web.gateway import ask
from web.site import site_of

router = APIRouter()

PAGE_SIZE = 50
T = TypeVar("T")


@dataclass(frozen=True)
class Filters:
    theme: int | None = None
    core_area: CoreArea | None = None
    kind: Kind | None = None
    search: str = ""

    def keeps(self, entry: DirectoryEntry) -> bool:
        if self.theme is not None and self.theme not in entry.themes:
            return False
        if self.core_area is not None and self.core_area not in entry.core_areas:
            return False
        if self.kind is not None and entry.kind != self.kind:
            return False
        wanted = self.search.casefold()
        names = (entry.display_name, entry.organisation or "")
        return not wanted or any(wanted in name.casefold() for name in names)

    def query(self, page: int | None = None) -> str:
        """The page's query string with these filters (and ``page``)."""
        params: dict[str, str | int] = {}
        if self.theme is not None:
            params["tema"] = self.theme
        if self.core_area is not None:
            params["kerneomraade"] = self.core_area.value
        if self.kind is not None:
            params["type"] = self.kind.value
        if self.search:
            params["q"] = self.search
        if page is not None and page > 1:
            params["side"] = page
        return urlencode(params)


def listed(entries: list[DirectoryEntry], filters: Filters) -> list[DirectoryEntry]:
    """Those the filters keep, in alphabetical order of their public name."""
    kept = [entry for entry in entries if filters.keeps(entry)]
    return sorted(kept, key=lambda e: (e.display_name.casefold(), e.id))


Choice = Annotated[str, Query(max_length=40)]


def _chosen(value: str, parse: Callable[[str], T]) -> T | None:
    """A filter as the form sends it: empty means "all"; anything else must parse."""
    if not value:
        return None
    try:
        return parse(value)
    except ValueError:
        raise HTTPException(400) from None


def _theme(value: str) -> int:
    number = int(value)
    if number not in THEME_LABELS:
        raise ValueError(value)
    return number


@router.get("/ambassadoerer")
async def directory(
    request: Request,
    tema: Choice = "",
    kerneomraade: Choice = "",
    kind: Annotated[str, Query(alias="type", max_length=40)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    side: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    site = site_of(request)
    filters = Filters(
        _chosen(tema, _theme), _chosen(kerneomraade, CoreArea), _chosen(kind, Kind), clean_line(q)
    )
    found = await ask(site.services, Ambassadors.DIRECTORY, GetDirectory())
    entries = listed(found.entries, filters)
    pages = max(1, math.ceil(len(entries) / PAGE_SIZE))
    page = min(side, pages)
    shown = entries[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return site.pages.render(
        request,
        "directory.html.j2",
        public=True,
        title="Ambassadører",
        entries=shown,
        total=len(entries),
        filters=filters,
        page=page,
        pages=pages,
        themes=THEME_LABELS,
        core_areas=CORE_AREA_LABELS,
        kinds=KIND_LABELS,
    )
