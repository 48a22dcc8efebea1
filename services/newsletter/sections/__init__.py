"""Digest sections: one section = one query over this service's own read model + one
template block (``mail/templates/sections/<key>.html.j2`` and ``.txt.j2``).

A new section is a module here with an object that satisfies :class:`Section`, added to
:data:`REGISTRY` below, and its two templates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from services.newsletter.domain import IssueSection
from services.newsletter.sections import (
    coming_up,
    new_ambassadors,
    new_networks,
    recently_held,
    results,
    stories,
)
from services.runtime.unit_of_work import Scope


class Section(Protocol):
    @property
    def key(self) -> str:
        """Names the section's template block."""
        ...

    @property
    def title(self) -> str:
        """The heading readers see (Danish)."""
        ...

    async def query(self, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The section's entries for the period [since, until): plain, public data only."""
        ...


class SectionRegistry:
    """The sections an issue is assembled from, in the order they appear in it."""

    def __init__(self, sections: Sequence[Section] = ()) -> None:
        self._sections: dict[str, Section] = {}
        for section in sections:
            self.register(section)

    def register(self, section: Section) -> Section:
        if section.key in self._sections:
            raise ValueError(f"a section with key {section.key!r} is registered already")
        self._sections[section.key] = section
        return section

    def __iter__(self) -> Iterator[Section]:
        return iter(self._sections.values())

    def keys(self) -> list[str]:
        return list(self._sections)

    async def gather(self, scope: Scope, since: datetime, until: datetime) -> list[IssueSection]:
        return [
            IssueSection(
                key=section.key,
                title=section.title,
                entries=tuple(await section.query(scope, since, until)),
            )
            for section in self
        ]


REGISTRY = SectionRegistry(
    [
        new_ambassadors.SECTION,
        coming_up.SECTION,
        recently_held.SECTION,
        new_networks.SECTION,
        results.SECTION,
        stories.SECTION,
    ]
)
