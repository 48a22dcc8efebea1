"""The one read model of ambassadors every consuming service keeps (events, newsletter, and
networks and social later): who is active, with name, address, kind, themes, core areas and
skills, fed by the ambassadors service's activated, profile updated, withdrawn and erased.

Kept in the consuming service's own database (collection ``ambassadors``), written in the
same unit of work as the service's own reaction to the event (which runs after it, and sees
the new state). It keeps **tombstones**: an erased ambassador leaves an entry with the id
and nothing else, and every later event about them (a redelivery after a nack, a dead letter
replayed by an operator, an invitation on another stream that arrives late) is ignored by
the runtime before any reaction runs (:meth:`KnownAmbassadors.guard`).

A withdrawn ambassador keeps an entry without personal fields too, so that an activation
older than the withdrawal (a redelivery) cannot bring them back; a later one (a rejoin) does.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pymongo import ASCENDING, ReturnDocument

from contracts.ambassadors import Activated, CoreArea, Erased, Kind, ProfileUpdated, Withdrawn
from contracts.ambassadors import Status as AmbassadorStatus
from contracts.envelope import Event
from services.runtime import erasure
from services.runtime.mongo import find_in, update_in
from services.runtime.unit_of_work import Scope, UnitOfWork

COLLECTION = "ambassadors"
# Every field of an entry that says something about the person.
_PERSONAL = {
    field: ""
    for field in (
        "name",
        "email",
        "kind",
        "organisation",
        "public",
        "themes",
        "core_areas",
        "skills",
        "networks_at_once",
        "paused_until",
        "activated_at",
    )
}


class Standing(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    ERASED = "erased"
    # Known only by id: an event about them (an invitation, on another stream) came before
    # the ambassadors service's own. The entry is what the guard writes (see guard).
    SEEN = "seen"


class KnownAmbassador(BaseModel):
    """What a service knows of an ambassador."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    standing: Standing = Standing.ACTIVE
    name: str = ""
    email: str | None = None
    kind: Kind | None = None
    organisation: str | None = None
    public: bool = False
    themes: tuple[int, ...] = ()
    core_areas: tuple[CoreArea, ...] = ()
    skills: tuple[str, ...] = ()
    # Their availability for networks: at most this many at once (None: no limit of their
    # own), and not before the day after ``paused_until``.
    networks_at_once: int | None = None
    paused_until: date | None = None
    activated_at: datetime | None = None
    # When the last event applied here happened: an older one changes nothing.
    as_of: datetime | None = None

    @property
    def active(self) -> bool:
        return self.standing == Standing.ACTIVE

    @property
    def display_name(self) -> str:
        """How the public sees them: the organisation, or their own name."""
        return self.organisation or self.name


AmbassadorEvent = Activated | ProfileUpdated | Withdrawn | Erased
EVENTS: tuple[type[Event], ...] = (Activated, ProfileUpdated, Withdrawn, Erased)


def _ms(value: datetime) -> datetime:
    # MongoDB keeps milliseconds: compare what was stored with what it would store.
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def apply(known: KnownAmbassador | None, event: AmbassadorEvent) -> KnownAmbassador | None:
    """The entry after ``event`` (pure); None when the event changes nothing (it is older
    than what is known, or about someone erased, or a profile of someone not active)."""
    at = _ms(event.occurred_at)
    if known is not None and known.standing == Standing.SEEN:
        known = None
    if known is not None and known.standing == Standing.ERASED:
        return None
    if isinstance(event, Erased):
        # Final, whatever its time says (the clocks of two replicas may differ).
        latest = max(at, known.as_of) if known is not None and known.as_of is not None else at
        return KnownAmbassador(id=event.ambassador_id, standing=Standing.ERASED, as_of=latest)
    if known is not None and known.as_of is not None and at < known.as_of:
        return None
    if isinstance(event, Withdrawn) or (
        isinstance(event, ProfileUpdated) and event.status != AmbassadorStatus.ACTIVE
    ):
        if known is None and isinstance(event, ProfileUpdated):
            return None  # a pending sign-up's profile: nothing to know yet
        return KnownAmbassador(id=event.ambassador_id, standing=Standing.WITHDRAWN, as_of=at)
    if isinstance(event, ProfileUpdated) and known is not None and not known.active:
        return None  # a profile change does not bring a withdrawn ambassador back
    activated_at = at if isinstance(event, Activated) or known is None else known.activated_at
    return KnownAmbassador(
        id=event.ambassador_id,
        standing=Standing.ACTIVE,
        name=event.name,
        email=event.email,
        kind=event.kind,
        organisation=event.organisation,
        public=event.public,
        themes=tuple(event.themes),
        core_areas=tuple(event.core_areas),
        skills=tuple(event.skills),
        networks_at_once=event.networks_at_once,
        paused_until=event.paused_until,
        activated_at=activated_at,
        as_of=at,
    )


def _document(known: KnownAmbassador) -> dict[str, Any]:
    if not known.active:
        # A tombstone, or a withdrawal: the id, the standing and when; nothing about them.
        return {"_id": known.id, "standing": known.standing.value, "as_of": known.as_of}
    doc = known.model_dump(mode="python", exclude={"id"}, exclude_none=True)
    doc["_id"] = known.id
    doc["standing"] = known.standing.value
    for field in ("themes", "core_areas", "skills"):
        if field in doc:
            doc[field] = [v.value if isinstance(v, CoreArea) else v for v in doc[field]]
    if known.kind is not None:
        doc["kind"] = known.kind.value
    if known.paused_until is not None:
        doc["paused_until"] = known.paused_until.isoformat()  # BSON has no plain date
    return doc


def _known(doc: dict[str, Any]) -> KnownAmbassador:
    # Entries of older releases kept only some of the fields (events: no kind; the
    # newsletter: no address), which the next profile update fills in.
    return KnownAmbassador.model_validate({**doc, "id": doc["_id"]})


class KnownAmbassadors:
    """The read model of one service: its collection, its updates, its questions."""

    async def ensure_indexes(self, scope: Scope) -> None:
        ambassadors = scope.db[COLLECTION]
        await ambassadors.create_index([("standing", ASCENDING), ("_id", ASCENDING)])
        await ambassadors.create_index(
            [("standing", ASCENDING), ("public", ASCENDING), ("activated_at", ASCENDING)]
        )
        await _migrate(scope)

    # ------------------------------------------------------------------ updating

    async def update(self, uow: UnitOfWork, event: AmbassadorEvent) -> None:
        """Apply one of the ambassadors service's events (the runtime's reaction, run before
        the service's own)."""
        known = await self.get(uow, event.ambassador_id)
        changed = apply(known, event)
        if changed is not None:
            await uow.db[COLLECTION].replace_one(
                {"_id": changed.id}, _document(changed), upsert=True, session=uow.session
            )

    async def took(self, scope: Scope, event: AmbassadorEvent) -> bool:
        """Whether the read model took ``event`` (it runs before the service's reactions):
        False for one older than what is known, about someone erased, or a profile of a
        pending sign-up. A reaction that would act on a stale fact asks this (or whether
        the ambassador is active now) first: an older address must not overwrite a newer."""
        known = await self.get(scope, event.ambassador_id)
        return known is not None and known.as_of == _ms(event.occurred_at)

    async def guard(self, uow: UnitOfWork, event: Event) -> str | None:
        """Why ``event`` must not be applied: it names an ambassador who was erased.

        The check writes to the person's entry (creating one if none), in the event's unit
        of work: an erasure applied at the same moment (from another stream, by another
        replica) writes the same document, so one of the two transactions conflicts and
        runs again, and sees the other. A read alone would let both commit: an invitation
        mailed to someone erased in the same instant.
        """
        if event.person_field is None:
            return None
        person = getattr(event, event.person_field, None)
        if not person:
            return None
        entry = await uow.db[COLLECTION].find_one_and_update(
            {"_id": str(person)},
            {"$set": {"seen_at": uow.now}, "$setOnInsert": {"standing": Standing.SEEN.value}},
            upsert=True,
            projection={"standing": 1},
            return_document=ReturnDocument.AFTER,
            session=uow.session,
        )
        if entry is not None and entry.get("standing") == Standing.ERASED.value:
            return "about an erased ambassador"
        return None

    async def hold(self, uow: UnitOfWork, ids: Iterable[str]) -> set[str]:
        """Write the entries of ``ids``, in the caller's unit of work, because what it
        stores about them (an invitation) rests on their standing as it read it; returns
        those still active (all, unless one was withdrawn or erased since it read them).

        An erasure or withdrawal applied meanwhile writes the same entries, so one of the
        two transactions conflicts and runs again, and sees the other. A read alone lets
        both commit (write skew): the erasure finds no invitation to delete, and the one
        stored a moment later is kept for someone erased.
        """
        wanted = list(dict.fromkeys(ids))
        held = await update_in(
            uow.db[COLLECTION],
            wanted,
            {"standing": Standing.ACTIVE.value},
            {"$set": {"relied_on_at": uow.now}},
            session=uow.session,
        )
        if held == len(wanted):
            return set(wanted)
        return set(await self.active_by_id(uow, wanted))

    # ------------------------------------------------------------------ asking

    async def get(self, scope: Scope, ambassador_id: str) -> KnownAmbassador | None:
        """Whatever is known (active, withdrawn or a tombstone), or None."""
        doc = await scope.db[COLLECTION].find_one({"_id": ambassador_id}, session=scope.session)
        return _known(doc) if doc else None

    async def active(self, scope: Scope, ambassador_id: str) -> KnownAmbassador | None:
        found = await self.get(scope, ambassador_id)
        return found if found is not None and found.active else None

    async def active_by_id(self, scope: Scope, ids: Iterable[str]) -> dict[str, KnownAmbassador]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        docs = await find_in(scope.db[COLLECTION], wanted, session=scope.session)
        found = [_known(doc) for doc in docs]
        return {a.id: a for a in found if a.active}

    async def active_after(
        self, scope: Scope, after: str | None, limit: int
    ) -> list[KnownAmbassador]:
        """Active ambassadors in id order after ``after``: one round of a fan-out."""
        query: dict[str, Any] = {"standing": Standing.ACTIVE.value}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = (
            scope.db[COLLECTION]
            .find(query, session=scope.session)
            .sort("_id", ASCENDING)
            .limit(limit)
        )
        return [_known(doc) async for doc in cursor]

    async def public_activated(
        self, scope: Scope, since: datetime, until: datetime
    ) -> list[KnownAmbassador]:
        """Active ambassadors listed publicly who joined in [since, until), in that order."""
        cursor = (
            scope.db[COLLECTION]
            .find(
                {
                    "standing": Standing.ACTIVE.value,
                    "public": True,
                    "activated_at": {"$gte": since, "$lt": until},
                },
                session=scope.session,
            )
            .sort("activated_at", ASCENDING)
        )
        return [_known(doc) async for doc in cursor]

    async def is_erased(self, scope: Scope, ambassador_id: str) -> bool:
        doc = await scope.db[COLLECTION].find_one(
            {"_id": ambassador_id}, {"standing": 1}, session=scope.session
        )
        return doc is not None and doc.get("standing") == Standing.ERASED.value


async def _migrate(scope: Scope) -> None:
    """Entries of older releases: all of them were active ambassadors (they had no
    standing), and the ids of erased ambassadors were kept apart (the newsletter's
    ``erased_ambassadors``), which become tombstones here. Once."""
    db = scope.db
    await db[COLLECTION].update_many(
        {"standing": {"$exists": False}}, {"$set": {"standing": Standing.ACTIVE.value}}
    )
    async for doc in db.erased_ambassadors.find({}):
        await db[COLLECTION].replace_one(
            {"_id": doc["_id"]},
            {"_id": doc["_id"], "standing": Standing.ERASED.value},
            upsert=True,
        )
        await db.erased_ambassadors.delete_one({"_id": doc["_id"]})
    # The events service's erasures still to be purged from its stream: erased people too.
    async for doc in db[erasure.COLLECTION].find({}, {"_id": 1}):
        await db[COLLECTION].update_one(
            {"_id": doc["_id"]},
            {"$set": {"standing": Standing.ERASED.value}, "$unset": _PERSONAL},
            upsert=True,
        )
