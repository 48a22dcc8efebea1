"""The read model of ambassadors every consuming service keeps (services/runtime/
known_ambassadors.py): the pure rules of ``apply``, and the model's questions and guard on a
database in memory."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest

from contracts.ambassadors import (
    Activated,
    CertificateRef,
    CoreArea,
    Erased,
    Kind,
    ProfileUpdated,
    SignedUp,
    Source,
    Status,
    Withdrawn,
)
from contracts.events import MeetingInfo, MeetingKind, MeetingScheduled
from services.runtime.known_ambassadors import (
    COLLECTION,
    AmbassadorEvent,
    KnownAmbassador,
    KnownAmbassadors,
    Standing,
    apply,
)
from services.runtime.mongo import DatabaseT
from services.runtime.testing import MemoryDatabase
from services.runtime.unit_of_work import UnitOfWork

T0 = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
PERSONAL = (
    "name",
    "email",
    "kind",
    "organisation",
    "themes",
    "core_areas",
    "skills",
    "networks_at_once",
    "paused_until",
)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fields(**changes: Any) -> dict[str, Any]:
    return {
        "ambassador_id": "a1",
        "name": "Anna Hansen",
        "email": "anna@example.org",
        "kind": Kind.ASSOCIATION,
        "organisation": "Foreningen X",
        "public": True,
        "themes": [3, 1],
        "core_areas": [CoreArea.HOUSING],
        "skills": ["madlavning"],
        **changes,
    }


def activated(minute: int = 0, **changes: Any) -> Activated:
    certificate = CertificateRef(
        number="FRC-2027-000001", verification_code="ABCD-EFGH", bucket="c", object_name="o"
    )
    return Activated(**fields(**changes), certificate=certificate, occurred_at=at(minute))


def updated(minute: int, status: Status = Status.ACTIVE, **changes: Any) -> ProfileUpdated:
    return ProfileUpdated(
        **fields(**changes),
        changed=list(changes) or ["name"],
        status=status,
        occurred_at=at(minute),
    )


def withdrawn(minute: int) -> Withdrawn:
    return Withdrawn(ambassador_id="a1", reason="Flytter", occurred_at=at(minute))


def erased(minute: int) -> Erased:
    return Erased(ambassador_id="a1", occurred_at=at(minute))


def after(*events: AmbassadorEvent) -> KnownAmbassador | None:
    """What is known after applying ``events`` in order (an event that changes nothing
    leaves what was known)."""
    known: KnownAmbassador | None = None
    for event in events:
        known = apply(known, event) or known
    return known


def has_no_personal_fields(known: KnownAmbassador) -> bool:
    blank = KnownAmbassador(id=known.id)
    return all(getattr(known, f) == getattr(blank, f) for f in PERSONAL)


# ---------------------------------------------------------------- apply


def test_an_activation_makes_them_known_with_what_services_need() -> None:
    known = apply(None, activated(0))
    assert known is not None and known.active
    assert (known.id, known.name, known.email) == ("a1", "Anna Hansen", "anna@example.org")
    assert (known.kind, known.organisation, known.public) == (
        Kind.ASSOCIATION,
        "Foreningen X",
        True,
    )
    assert known.themes == (3, 1) and known.core_areas == (CoreArea.HOUSING,)
    assert known.skills == ("madlavning",)
    assert known.activated_at == known.as_of == T0
    # The public sees an organisation by its name, never by its contact person's.
    assert known.display_name == "Foreningen X"
    citizen = apply(None, activated(0, kind=Kind.CITIZEN, organisation=None))
    assert citizen is not None and citizen.display_name == "Anna Hansen"


def test_a_profile_update_changes_the_fields_but_not_when_they_joined() -> None:
    known = after(activated(0), updated(5, name="Anna Ny", email="ny@example.org", themes=[4]))
    assert known is not None and known.active
    assert (known.name, known.email, known.themes) == ("Anna Ny", "ny@example.org", (4,))
    assert known.activated_at == T0 and known.as_of == at(5)


def test_availability_for_networks_is_known_and_follows_each_update() -> None:
    known = after(activated(0, networks_at_once=2, paused_until=date(2027, 2, 1)))
    assert known is not None
    assert (known.networks_at_once, known.paused_until) == (2, date(2027, 2, 1))
    lifted = after(
        activated(0, networks_at_once=2, paused_until=date(2027, 2, 1)),
        updated(5, networks_at_once=None, paused_until=None),
    )
    assert lifted is not None and (lifted.networks_at_once, lifted.paused_until) == (None, None)


def test_a_pending_ambassadors_profile_update_creates_nothing() -> None:
    assert apply(None, updated(5, status=Status.PENDING, name="Anna H.")) is None


def test_withdrawal_keeps_no_personal_fields() -> None:
    for leaving in (withdrawn(5), updated(5, status=Status.WITHDRAWN)):
        known = after(activated(0), leaving)
        assert known is not None and known.standing == Standing.WITHDRAWN and not known.active
        assert has_no_personal_fields(known) and known.as_of == at(5)
        assert known.activated_at is None


def test_a_profile_update_does_not_bring_a_withdrawn_ambassador_back() -> None:
    gone = after(activated(0), withdrawn(5))
    assert apply(gone, updated(10, name="Anna Igen")) is None


def test_a_rejoin_makes_them_active_again_from_the_new_activation() -> None:
    back = after(activated(0), withdrawn(5), activated(10, name="Anna Igen"))
    assert back is not None and back.active and back.name == "Anna Igen"
    assert back.activated_at == at(10)


@pytest.mark.parametrize(
    "late",
    [activated(0), updated(3, name="Gammelt navn"), withdrawn(3)],
    ids=["activated", "profile_updated", "withdrawn"],
)
def test_an_event_older_than_what_is_known_changes_nothing(late: AmbassadorEvent) -> None:
    """A redelivery after a nack, or a dead letter replayed: older than the last applied."""
    known = after(activated(0), updated(5, name="Anna Ny"))
    assert known is not None
    assert apply(known, late.model_copy(update={"occurred_at": at(4)})) is None


def test_an_event_is_compared_at_the_milliseconds_the_database_keeps() -> None:
    event = activated(0).model_copy(update={"occurred_at": T0.replace(microsecond=123_456)})
    known = apply(None, event)
    assert known is not None and known.as_of == T0.replace(microsecond=123_000)
    # The same event again is not older than itself.
    assert apply(known, event) is not None


@pytest.mark.parametrize(
    "later",
    [activated(20), updated(20), withdrawn(20), erased(20)],
    ids=["activated", "profile_updated", "withdrawn", "erased"],
)
def test_erased_is_final(later: AmbassadorEvent) -> None:
    tombstone = after(activated(0), erased(5))
    assert tombstone == KnownAmbassador(id="a1", standing=Standing.ERASED, as_of=at(5))
    assert has_no_personal_fields(tombstone)
    assert apply(tombstone, later) is None


def test_someone_seen_first_on_another_stream_is_known_once_activated() -> None:
    """An invitation (events' stream) may come before the activation: the guard keeps
    their id only, which the activation then fills in."""
    seen = KnownAmbassador(id="a1", standing=Standing.SEEN)
    assert not seen.active and has_no_personal_fields(seen)
    known = apply(seen, activated(0))
    assert known is not None and known.active and known.name == "Anna Hansen"
    assert apply(seen, updated(5, status=Status.PENDING)) is None


def test_someone_never_seen_is_erased_all_the_same() -> None:
    tombstone = apply(None, erased(5))
    assert tombstone is not None and tombstone.standing == Standing.ERASED


def test_an_erasure_stamped_earlier_than_the_last_event_still_erases() -> None:
    """Another replica's clock may be behind: erasure is final whatever its time says."""
    known = after(activated(0), updated(5, name="Anna Ny"))
    tombstone = apply(known, erased(4))
    assert tombstone is not None and tombstone.standing == Standing.ERASED
    assert has_no_personal_fields(tombstone)
    # Its time does not go back: what happened meanwhile is still older than it.
    assert tombstone.as_of == at(5)


# ---------------------------------------------------------------- the model on a database


def unit(db: MemoryDatabase) -> UnitOfWork:
    return UnitOfWork(cast(DatabaseT, db), None, now=at(60))


async def test_the_model_stores_what_apply_says_and_answers_questions() -> None:
    db = MemoryDatabase()
    model = KnownAmbassadors()
    uow = unit(db)
    await model.ensure_indexes(uow)
    await model.update(uow, activated(0, ambassador_id="a1"))
    await model.update(uow, activated(1, ambassador_id="a2", public=False))
    await model.update(uow, activated(2, ambassador_id="a3"))
    await model.update(uow, withdrawn(3).model_copy(update={"ambassador_id": "a3"}))
    await model.update(uow, updated(4, ambassador_id="a1", name="Anna Ny"))
    first = await model.get(uow, "a1")
    assert first is not None and first.name == "Anna Ny" and first.activated_at == T0
    assert await model.active(uow, "a3") is None and await model.get(uow, "a3") is not None
    assert set(await model.active_by_id(uow, ["a1", "a2", "a3", "nobody"])) == {"a1", "a2"}
    assert [a.id for a in await model.active_after(uow, None, 1)] == ["a1"]
    assert [a.id for a in await model.active_after(uow, "a1", 10)] == ["a2"]
    public = await model.public_activated(uow, T0, at(5))
    assert [a.id for a in public] == ["a1"]
    assert await model.public_activated(uow, at(1), at(5)) == []


async def test_the_guard_ignores_what_names_an_erased_ambassador_and_only_that() -> None:
    db = MemoryDatabase()
    model = KnownAmbassadors()
    uow = unit(db)
    await model.update(uow, activated(0))
    await model.update(uow, erased(5))
    [entry] = db.documents(COLLECTION)
    assert entry == {"_id": "a1", "standing": "erased", "as_of": at(5)}
    assert await model.is_erased(uow, "a1") and not await model.is_erased(uow, "a2")
    late = SignedUp(
        ambassador_id="a1",
        name="Anna Hansen",
        email="anna@example.org",
        kind=Kind.CITIZEN,
        source=Source.SELF,
        consent_version="v",
    )
    assert await model.guard(uow, late) == "about an erased ambassador"
    assert await model.guard(uow, late.model_copy(update={"ambassador_id": "a2"})) is None
    # Who the guard has seen it keeps by id, and nothing else.
    assert await model.active(uow, "a2") is None
    for entry in db.documents(COLLECTION):
        assert set(entry) <= {"_id", "standing", "as_of", "seen_at"}
    about_no_one = MeetingScheduled(
        meeting_id="m-1",
        meeting=MeetingInfo(
            meeting_id="m-1",
            kind=MeetingKind.THEME_DAY,
            title="Temadag",
            starts_at=at(100),
            ends_at=at(200),
        ),
    )
    assert await model.guard(uow, about_no_one) is None


async def test_entries_of_older_releases_are_taken_over_once() -> None:
    db = MemoryDatabase()
    await db[COLLECTION].insert_one({"_id": "a1", "name": "Anna Hansen", "public": True})
    await db.erased_ambassadors.insert_one({"_id": "a2"})
    model = KnownAmbassadors()
    uow = unit(db)
    await model.ensure_indexes(uow)
    old = await model.get(uow, "a1")
    assert old is not None and old.active and old.name == "Anna Hansen"
    assert await model.is_erased(uow, "a2")
    assert db.documents("erased_ambassadors") == []
