"""The newsletter's reactions to the ambassadors and events services' events, each applied
through the kit's consumer path (inbox, guards, the runtime's read model of ambassadors),
on a database in memory: the mails they queue, the subscriber, the read models, erasure,
and the tombstones that keep anything about an erased person from coming back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.ambassadors import (
    Activated,
    CertificateRef,
    Erased,
    Kind,
    ProfileUpdated,
    SignedUp,
    SignedUpAgain,
    Source,
    Status,
    Withdrawn,
    certificate_object_name,
)
from contracts.envelope import Event
from contracts.events import (
    InvitationCancelled,
    InvitationUpdated,
    Invited,
    InviteeEvent,
    MeetingCancelled,
    MeetingHeld,
    MeetingInfo,
    MeetingKind,
    MeetingRescheduled,
    MeetingScheduled,
    Promoted,
    ReminderDue,
    Waitlisted,
)
from contracts.newsletter import (
    Endpoints,
    Subscribe,
    Subscribed,
    SubscriberSource,
    SubscriberStatus,
    Unsubscribe,
    Unsubscribed,
)
from services.newsletter import domain, mailing, meetings
from services.newsletter.app import build
from services.newsletter.delivery import MailRecord, NotReady
from services.newsletter.links import CONTEXT_KEY
from services.newsletter.outgoing import Outgoing
from services.runtime import testing, tokens
from services.runtime.testing import ServiceHarness
from services.runtime.unit_of_work import Applied
from tests.unit.newsletter_support import (
    AMBASSADORS_SECRET,
    EVENTS_SECRET,
    NOW,
    PUBLIC_URL,
    Service,
    body,
    mails_of,
    parsed,
    settings,
    subscribe,
)

ANNA = "anna@example.org"


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    yield await ServiceHarness.start(build, settings(), clock=testing.TestClock(NOW))


def minutes(n: int) -> datetime:
    """When an event happened, relative to the test's clock (events come in that order)."""
    return NOW + timedelta(minutes=n)


# ---------------------------------------------------------------- the ambassadors' events


def signed_up(at: int = -10, **changes: Any) -> SignedUp:
    fields: dict[str, Any] = {
        "ambassador_id": "a1",
        "name": "Anna Hansen",
        "email": ANNA,
        "kind": Kind.CITIZEN,
        "source": Source.SELF,
        "confirmation_nonce": "nonce-1",
        "token_expires_at": NOW + timedelta(hours=72),
        "consent_version": "2026-11",
        "occurred_at": minutes(at),
        **changes,
    }
    return SignedUp(**fields)


def profile(**changes: Any) -> dict[str, Any]:
    return {
        "ambassador_id": "a1",
        "name": "Anna Hansen",
        "email": ANNA,
        "kind": Kind.CITIZEN,
        "public": True,
        "themes": [3],
        **changes,
    }


def activated(at: int = -5, **changes: Any) -> Activated:
    certificate = CertificateRef(
        number="FRC-2027-000001",
        verification_code="ABCD-EFGH",
        bucket="certificates",
        object_name=certificate_object_name("a1", "FRC-2027-000001"),
    )
    return Activated(**profile(**changes), certificate=certificate, occurred_at=minutes(at))


def profile_updated(at: int, changed: list[str], **changes: Any) -> ProfileUpdated:
    fields = profile(**changes)
    status = fields.pop("status", Status.ACTIVE)
    return ProfileUpdated(**fields, changed=changed, status=status, occurred_at=minutes(at))


def withdrawn(at: int = 0) -> Withdrawn:
    return Withdrawn(ambassador_id="a1", reason="Flytter", occurred_at=minutes(at))


def erased(at: int = 5) -> Erased:
    return Erased(ambassador_id="a1", occurred_at=minutes(at))


def the_subscriber(h: ServiceHarness) -> dict[str, Any]:
    [subscriber] = h.db.documents("subscribers")
    return subscriber


def known(h: ServiceHarness) -> dict[str, Any]:
    """The runtime's read model entry of ambassador a1."""
    [entry] = h.db.documents("ambassadors")
    assert entry["_id"] == "a1"
    return entry


# What an entry about someone not active may hold: their id, and when and how they were
# last heard of; nothing about them.
NOT_PERSONAL = {"_id", "standing", "as_of", "seen_at"}


def known_by_id_only(h: ServiceHarness) -> bool:
    """Nothing but ids in the read model: no one is known as an ambassador."""
    return all(
        set(entry) <= NOT_PERSONAL and entry["standing"] != "active"
        for entry in h.db.documents("ambassadors")
    )


async def test_a_self_sign_up_queues_the_confirmation_with_a_reference_to_the_ambassadors_link(
    service: Service,
) -> None:
    h, ctx = service
    event = signed_up()
    assert await h.deliver(event) == [Applied.APPLIED]
    [mail] = mails_of(h)
    assert mail["kind"] == "confirmation" and mail["to_address"] == ANNA
    assert mail["ambassador_id"] == "a1" and mail["subscriber_id"] is None
    expires = tokens.expiry(NOW + timedelta(hours=72))
    assert mail["context"][CONTEXT_KEY] == {
        "purpose": tokens.AMBASSADOR_CONFIRMATION,
        "parts": ["a1", "nonce-1", expires],
    }
    assert "token" not in mail["context"]
    # Signed when the mail is put together, with the secret the ambassadors service checks.
    resolved = ctx.links.resolve(mail["context"])
    checker = tokens.Signer(AMBASSADORS_SECRET, tokens.AMBASSADOR_CONFIRMATION)
    assert checker.parts(resolved["token"], 3) == ["a1", "nonce-1", expires]
    assert resolved["confirm_url"] == domain.ambassador_confirm_url(PUBLIC_URL, resolved["token"])
    # Pending: no subscriber yet, nothing in the read model, no event.
    assert h.db.documents("subscribers") == [] and known_by_id_only(h)
    assert h.emitted == []
    # Delivered again (a redelivery): the inbox knows it.
    assert await h.deliver(event) == [Applied.ALREADY]
    assert len(mails_of(h)) == 1


async def test_a_staff_sign_up_needs_no_confirmation_mail(service: Service) -> None:
    h, _ = service
    staff = signed_up(source=Source.STAFF, confirmation_nonce=None, token_expires_at=None)
    assert await h.deliver(staff) == [Applied.APPLIED]
    assert mails_of(h) == []


async def test_the_confirmation_goes_out_with_the_ambassadors_link_and_no_list_unsubscribe(
    service: Service,
) -> None:
    h, ctx = service
    await h.deliver(signed_up())
    [record] = [MailRecord.from_document(m) for m in mails_of(h)]
    mail = await Outgoing(ctx).materialize(record)
    assert mail is not None and mail.recipients == [ANNA]
    message = parsed(mail.message)
    token = ctx.links.resolve(record.context)["token"]
    assert domain.ambassador_confirm_url(PUBLIC_URL, token) in body(message, "plain")
    assert body(message, "plain").count(token) == 1, "the token only in its link"
    # Not a subscriber's mail: nothing to unsubscribe from.
    assert message["List-Unsubscribe"] is None


async def test_the_confirmation_never_repeats_the_name_typed_with_the_address(
    service: Service,
) -> None:
    """Anyone may type anyone's address, and any name: until it is confirmed, the mail
    names nobody."""
    h, ctx = service
    await h.deliver(signed_up(name="Du Er Hacket"))
    [record] = [MailRecord.from_document(m) for m in mails_of(h)]
    mail = await Outgoing(ctx).materialize(record)
    assert mail is not None
    message = parsed(mail.message)
    assert str(message["To"]) == ANNA
    for part in ("plain", "html"):
        text = body(message, part)
        assert "Hacket" not in text and "Hej" in text


async def test_activation_subscribes_welcomes_with_the_certificate_and_fills_the_read_model(
    service: Service,
) -> None:
    h, ctx = service
    event = activated()
    assert await h.deliver(event) == [Applied.APPLIED]
    subscriber = the_subscriber(h)
    assert subscriber["status"] == SubscriberStatus.CONFIRMED
    assert subscriber["source"] == SubscriberSource.AMBASSADOR
    assert (subscriber["ambassador_id"], subscriber["address"]) == ("a1", ANNA)
    [welcome] = mails_of(h)
    assert welcome["kind"] == "welcome" and welcome["subscriber_id"] == subscriber["_id"]
    assert welcome["context"]["receives_newsletter"] is True
    assert welcome["context"]["verify_url"] == f"{PUBLIC_URL}/verify/ABCD-EFGH"
    [attachment] = welcome["attachments"]
    assert (attachment["bucket"], attachment["object_name"]) == (
        "certificates",
        "FRC-2027-000001-a1.pdf",
    )
    [subscribed] = h.emitted
    assert isinstance(subscribed, Subscribed)
    assert subscribed.subscriber_id == subscriber["_id"]
    assert subscribed.causation_id == event.event_id
    entry = known(h)
    assert (entry["standing"], entry["name"], entry["email"]) == ("active", "Anna Hansen", ANNA)
    assert entry["activated_at"] == minutes(-5) and entry["public"] is True
    # The welcome waits for its PDF, then goes out with it attached.
    record = MailRecord.from_document(welcome)
    outgoing = Outgoing(ctx)
    with pytest.raises(NotReady):
        await outgoing.materialize(record)
    bucket = await h.buckets.object_store("certificates")
    await bucket.put("FRC-2027-000001-a1.pdf", b"%PDF-1.7 test")
    mail = await outgoing.materialize(record)
    assert mail is not None
    [pdf] = list(parsed(mail.message).iter_attachments())
    assert pdf.get_filename() == "ambassadoerbevis-FRC-2027-000001.pdf"
    assert pdf.get_content() == b"%PDF-1.7 test"


async def test_activation_takes_over_a_pending_subscription_of_the_same_address(
    service: Service,
) -> None:
    h, _ = service
    direct = await subscribe(h, Subscribe(email=ANNA))
    await h.deliver(activated())
    subscriber = the_subscriber(h)
    assert subscriber["_id"] == direct.id and subscriber["ambassador_id"] == "a1"
    assert subscriber["status"] == SubscriberStatus.CONFIRMED
    assert subscriber["confirmation_nonce"] is None
    assert [e.subscriber_id for e in h.emitted_of(Subscribed)] == [direct.id]


async def test_someone_who_unsubscribed_stays_unsubscribed_when_they_become_an_ambassador(
    service: Service,
) -> None:
    h, ctx = service
    direct = await subscribe(h, Subscribe(email=ANNA))
    await h.call(Endpoints.UNSUBSCRIBE, Unsubscribe(token=ctx.links.unsubscribe_token(direct.id)))
    await h.deliver(activated())
    subscriber = the_subscriber(h)
    assert subscriber["status"] == SubscriberStatus.UNSUBSCRIBED
    assert subscriber["ambassador_id"] == "a1"
    [welcome] = mails_of(h, "welcome")
    # The welcome must not promise the newsletter.
    assert welcome["context"]["receives_newsletter"] is False
    assert h.emitted_of(Subscribed) == []


async def test_a_profile_update_changes_the_address_and_name_but_never_resubscribes(
    service: Service,
) -> None:
    h, ctx = service
    await h.deliver(activated())
    subscriber_id = the_subscriber(h)["_id"]
    await h.call(
        Endpoints.UNSUBSCRIBE, Unsubscribe(token=ctx.links.unsubscribe_token(subscriber_id))
    )
    moved = profile_updated(0, ["email", "name"], name="Anna Ny", email="ny@example.org")
    assert await h.deliver(moved) == [Applied.APPLIED]
    subscriber = the_subscriber(h)
    assert (subscriber["address"], subscriber["name"]) == ("ny@example.org", "Anna Ny")
    assert subscriber["address_key"] == "ny@example.org"
    assert subscriber["status"] == SubscriberStatus.UNSUBSCRIBED
    entry = known(h)
    assert (entry["name"], entry["email"]) == ("Anna Ny", "ny@example.org")
    assert entry["activated_at"] == minutes(-5)  # still when they joined
    assert mails_of(h, "welcome") and len(mails_of(h)) == 1  # no mail for a profile change


async def test_taking_over_an_address_that_opted_out_keeps_the_opt_out(service: Service) -> None:
    h, ctx = service
    await h.deliver(activated())
    other = await subscribe(h, Subscribe(email="ny@example.org"))
    await h.call(Endpoints.UNSUBSCRIBE, Unsubscribe(token=ctx.links.unsubscribe_token(other.id)))
    await h.deliver(profile_updated(0, ["email"], email="ny@example.org"))
    subscriber = the_subscriber(h)  # one address, one subscriber
    assert subscriber["ambassador_id"] == "a1" and subscriber["address"] == "ny@example.org"
    assert subscriber["status"] == SubscriberStatus.UNSUBSCRIBED
    assert subscriber["unsubscribed_by"] == domain.Unsubscriber.SELF


async def test_a_pending_ambassadors_profile_update_creates_nothing(service: Service) -> None:
    h, _ = service
    await h.deliver(signed_up())
    pending = profile_updated(-8, ["name"], name="Anna H.", status=Status.PENDING)
    assert await h.deliver(pending) == [Applied.APPLIED]
    assert known_by_id_only(h) and h.db.documents("subscribers") == []


async def test_withdrawal_unsubscribes_says_goodbye_and_keeps_no_personal_fields(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(activated())
    subscriber_id = the_subscriber(h)["_id"]
    assert await h.deliver(withdrawn()) == [Applied.APPLIED]
    subscriber = the_subscriber(h)
    assert subscriber["status"] == SubscriberStatus.UNSUBSCRIBED
    assert subscriber["unsubscribed_by"] == domain.Unsubscriber.WITHDRAWN
    [goodbye] = mails_of(h, "goodbye")
    assert goodbye["to_address"] == ANNA and goodbye["subscriber_id"] == subscriber_id
    assert [e.subscriber_id for e in h.emitted_of(Unsubscribed)] == [subscriber_id]
    entry = known(h)
    assert entry["standing"] == "withdrawn"
    assert not entry.get("name") and "email" not in entry and "kind" not in entry


def replayed(event: Event) -> Event:
    """The same fact again under another id (replayed from the dead letters): the inbox
    does not know it, only its time says it is old."""
    return event.model_copy(update={"event_id": uuid.uuid4()})


async def test_a_rejoin_subscribes_again_but_late_old_events_change_nothing(
    service: Service,
) -> None:
    h, _ = service
    first, gone = activated(at=-5), withdrawn(at=0)
    await h.deliver(first, gone)
    assert await h.deliver(replayed(first)) == [Applied.APPLIED]
    assert known(h)["standing"] == "withdrawn"
    assert the_subscriber(h)["status"] == SubscriberStatus.UNSUBSCRIBED
    assert len(mails_of(h, "welcome")) == 1  # no second welcome for an old activation
    rejoin = activated(at=10)
    assert await h.deliver(rejoin) == [Applied.APPLIED]
    assert known(h)["standing"] == "active" and known(h)["activated_at"] == minutes(10)
    assert the_subscriber(h)["status"] == SubscriberStatus.CONFIRMED
    assert len(h.emitted_of(Subscribed)) == 2
    # The old withdrawal again: they are active, and stay subscribed, without a goodbye.
    assert await h.deliver(replayed(gone)) == [Applied.APPLIED]
    assert known(h)["standing"] == "active"
    assert the_subscriber(h)["status"] == SubscriberStatus.CONFIRMED
    assert len(mails_of(h, "goodbye")) == 1


async def test_an_older_profile_update_does_not_overwrite_a_newer_address(
    service: Service,
) -> None:
    h, _ = service
    old = profile_updated(0, ["email"], email="gammel@example.org")
    await h.deliver(activated(), old, profile_updated(5, ["email"], email="ny@example.org"))
    assert await h.deliver(replayed(old)) == [Applied.APPLIED]
    assert the_subscriber(h)["address"] == "ny@example.org"
    assert known(h)["email"] == "ny@example.org"


async def test_erasure_forgets_every_address_and_name(service: Service) -> None:
    h, _ = service
    # Signed up (a confirmation went to the address), subscribed directly with the same
    # address, then activated: two subscriptions, several mails, all about Anna.
    direct = await subscribe(h, Subscribe(email=ANNA, name="Anna"))
    await h.deliver(signed_up(), activated(), withdrawn())
    assert {m["kind"] for m in mails_of(h)} == {
        "subscribe_confirmation",
        "confirmation",
        "welcome",
        "goodbye",
    }
    assert await h.deliver(erased()) == [Applied.APPLIED]
    [subscriber] = h.db.documents("subscribers")
    assert subscriber["_id"] == direct.id and subscriber["status"] == SubscriberStatus.ERASED
    assert subscriber["address"] is None and subscriber["name"] is None
    for mail in mails_of(h):
        assert mail["to_address"] is None and mail["to_name"] is None
        assert mail["context"] == {} and mail["attachments"] == []
        assert mail["state"] == "cancelled"
    tombstone = known(h)
    assert tombstone["standing"] == "erased" and tombstone["as_of"] == minutes(5)
    assert set(tombstone) <= NOT_PERSONAL
    # The runtime's part: the person's events leave the stream once published.
    [erasure] = h.db.documents("erasures")
    assert erasure["_id"] == "a1"
    stored = repr(h.db.snapshot())
    for personal in (ANNA, "Anna", "Hansen"):
        assert personal not in stored


@pytest.mark.parametrize(
    "later",
    [
        activated(at=20),
        profile_updated(20, ["name"], name="Anna Igen"),
        signed_up(at=20, confirmation_nonce="nonce-2"),
        withdrawn(at=20),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_nothing_about_an_erased_ambassador_is_applied_afterwards(
    service: Service, later: Event
) -> None:
    h, _ = service
    await h.deliver(activated(), erased())
    before = {name: h.db.documents(name) for name in ("mails", "subscribers")}
    emitted = len(h.emitted)
    assert await h.deliver(later) == [Applied.IGNORED]
    assert {name: h.db.documents(name) for name in before} == before
    assert len(h.emitted) == emitted
    tombstone = known(h)
    assert tombstone["standing"] == "erased" and tombstone["as_of"] == minutes(5)
    assert set(tombstone) <= NOT_PERSONAL
    # Ignored once is ignored for good: the inbox has it.
    assert await h.deliver(later) == [Applied.ALREADY]


async def test_an_erasure_stamped_before_the_last_event_still_forgets_and_blocks(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(activated(at=-5), profile_updated(6, ["name"], name="Anna Ny"))
    assert await h.deliver(erased(at=5)) == [Applied.APPLIED]
    stored = repr(h.db.snapshot())
    assert ANNA not in stored and "Anna Ny" not in stored
    assert await h.deliver(invitee_events(answerable=True)[0]) == [Applied.IGNORED]


async def test_an_erasure_delivered_again_is_applied_once(service: Service) -> None:
    h, _ = service
    event = erased()
    await h.deliver(activated())
    assert await h.deliver(event, event) == [Applied.APPLIED, Applied.ALREADY]
    assert len(h.emitted_of(Unsubscribed)) == 1


async def test_reactions_are_not_commands_and_leave_no_audit_record(service: Service) -> None:
    h, _ = service
    await h.deliver(signed_up(), activated(), withdrawn(), erased())
    assert h.audit_trail() == []


# ---------------------------------------------------------------- the events service's events

STARTS = datetime(2027, 3, 4, 16, 0, tzinfo=UTC)
ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"


def meeting(**changes: Any) -> MeetingInfo:
    fields: dict[str, Any] = {
        "meeting_id": "m-1",
        "kind": MeetingKind.AMBASSADOR_MEETING,
        "title": "Ambassadørmøde, forår 2027",
        "starts_at": STARTS,
        "ends_at": STARTS + timedelta(hours=2),
        "place": "Fredericia Rådhus",
        "public": True,
        **changes,
    }
    return MeetingInfo(**fields)


def invitee_events(answerable: bool) -> list[InviteeEvent]:
    common: dict[str, Any] = {
        "ambassador_id": "a1",
        "email": ANNA,
        "name": "Anna Hansen",
        "meeting": meeting(),
        "answerable": answerable,
    }
    earlier = {"previous_starts_at": STARTS, "previous_ends_at": STARTS + timedelta(hours=1)}
    return [
        Invited(**common, ics=ICS),
        InvitationUpdated(**common, ics=ICS, **earlier),
        InvitationCancelled(**common, ics=ICS, reason="For få tilmeldte"),
        Waitlisted(**common, position=2),
        Promoted(**common, ics=ICS),
        ReminderDue(**common),
    ]


def answer_token() -> str:
    """The answer token the events service verifies for invitee a1 of meeting m-1."""
    return tokens.Signer(EVENTS_SECRET, tokens.ANSWER).sign("m-1", "a1")


async def an_active_ambassador(h: ServiceHarness) -> None:
    """Anna (a1) is an active ambassador this service knows: only such are mailed an
    invitation. Her welcome mail and subscription are left out of what tests look at."""
    await h.deliver(activated())
    await h.db["mails"].delete_many({})
    h.emitted.clear()


@pytest.mark.parametrize("event", invitee_events(answerable=True), ids=lambda e: type(e).__name__)
async def test_each_invitee_event_queues_one_mail_with_an_answer_link_where_one_is_asked(
    service: Service, event: InviteeEvent
) -> None:
    h, ctx = service
    await an_active_ambassador(h)
    subscribers = h.db.documents("subscribers")
    assert await h.deliver(event, event) == [Applied.APPLIED, Applied.ALREADY]
    [mail] = mails_of(h)
    kind = meetings.MAIL_KINDS[type(event)]
    assert mail["kind"] == kind and mail["dedupe_key"] == f"{kind}:{event.event_id}"
    assert (mail["to_address"], mail["ambassador_id"], mail["subscriber_id"]) == (ANNA, "a1", None)
    asked = not isinstance(event, InvitationCancelled)
    if asked:
        assert mail["context"][CONTEXT_KEY] == {"purpose": tokens.ANSWER, "parts": ["m-1", "a1"]}
        rsvp = ctx.links.resolve(mail["context"])["rsvp"]
        assert rsvp["token"] == answer_token()
        assert rsvp["yes"] == domain.rsvp_url(PUBLIC_URL, answer_token(), "yes")
    else:
        assert CONTEXT_KEY not in mail["context"]
    assert answer_token() not in repr(mail)
    assert h.db.documents("subscribers") == subscribers and h.emitted == []


@pytest.mark.parametrize("event", invitee_events(answerable=False), ids=lambda e: type(e).__name__)
async def test_an_invitee_event_that_asks_no_answer_carries_no_answer_link(
    service: Service, event: InviteeEvent
) -> None:
    h, ctx = service
    await an_active_ambassador(h)
    await h.deliver(event)
    [mail] = mails_of(h)
    assert CONTEXT_KEY not in mail["context"]
    assert ctx.links.resolve(mail["context"])["rsvp"] is None


async def test_the_invitation_goes_out_with_working_answer_links_and_the_ics(
    service: Service,
) -> None:
    h, ctx = service
    await an_active_ambassador(h)
    await h.deliver(invitee_events(answerable=True)[0])
    [record] = [MailRecord.from_document(m) for m in mails_of(h)]
    mail = await Outgoing(ctx).materialize(record)
    assert mail is not None
    message = parsed(mail.message)
    text = body(message, "plain")
    for answer in ("yes", "maybe", "no"):
        assert domain.rsvp_url(PUBLIC_URL, answer_token(), answer) in text
    [ics] = list(message.iter_attachments())
    assert ics.get_filename() == "invitation.ics" and ics.get_param("method") == "REQUEST"
    assert message["List-Unsubscribe"] is None  # not a newsletter


@pytest.mark.parametrize("event", invitee_events(answerable=True), ids=lambda e: type(e).__name__)
async def test_an_invitee_event_about_an_erased_ambassador_mails_nobody(
    service: Service, event: InviteeEvent
) -> None:
    """The EVENTS and AMBASSADORS streams are not ordered with each other: an invitation may
    arrive after the erasure."""
    h, _ = service
    await h.deliver(activated(), erased())
    assert await h.deliver(event) == [Applied.IGNORED]
    assert [m["kind"] for m in mails_of(h)] == ["welcome"]  # the one from before, scrubbed


async def test_an_invitation_goes_to_the_address_this_service_knows(service: Service) -> None:
    h, _ = service
    await an_active_ambassador(h)
    elsewhere = Invited(**{**invitee_events(True)[0].model_dump(), "email": "x@evil.example"})
    await h.deliver(elsewhere)
    [mail] = mails_of(h)
    assert (mail["to_address"], mail["context"]["name"]) == (ANNA, "Anna Hansen")


async def test_an_invitation_to_someone_not_known_here_yet_is_delivered_again_later(
    service: Service,
) -> None:
    """Another stream: the invitation may come before the activation. The event fails (and
    JetStream delivers it again after a back-off) instead of mailing an address nobody here
    vouches for."""
    h, _ = service
    invited = invitee_events(answerable=True)[0]
    with pytest.raises(mailing.InviteeNotKnownYet):
        await h.deliver(invited)
    assert mails_of(h) == []
    await an_active_ambassador(h)
    assert await h.deliver(invited) == [Applied.APPLIED]
    assert [m["to_address"] for m in mails_of(h)] == [ANNA]


async def test_an_invitation_to_a_withdrawn_ambassador_mails_nobody(service: Service) -> None:
    h, _ = service
    await h.deliver(activated(), withdrawn())
    await h.db["mails"].delete_many({})
    assert await h.deliver(invitee_events(answerable=True)[0]) == [Applied.APPLIED]
    assert mails_of(h) == []


async def test_a_sign_up_with_an_active_ambassadors_address_tells_them_at_the_known_one(
    service: Service,
) -> None:
    h, ctx = service
    await an_active_ambassador(h)
    await h.deliver(SignedUpAgain(ambassador_id="a1", occurred_at=minutes(1)))
    [mail] = mails_of(h)
    assert (mail["kind"], mail["to_address"]) == ("already_ambassador", ANNA)
    made = await Outgoing(ctx).materialize(MailRecord.from_document(mail))
    assert made is not None
    assert "Du er allerede ambassadør" in str(parsed(made.message)["Subject"])
    # About someone not (or no longer) active: nothing.
    await h.deliver(SignedUpAgain(ambassador_id="a9", occurred_at=minutes(2)))
    assert len(mails_of(h)) == 1


async def test_an_activation_naming_someone_elses_certificate_welcomes_nobody(
    service: Service,
) -> None:
    h, _ = service
    theirs = CertificateRef(
        number="FRC-2027-000009",
        verification_code="WXYZ-2345",
        bucket="certificates",
        object_name=certificate_object_name("a9", "FRC-2027-000009"),
    )
    await h.deliver(Activated(**profile(), certificate=theirs, occurred_at=minutes(-5)))
    assert mails_of(h) == [] and h.db.documents("subscribers") == []


async def test_no_token_is_stored_anywhere(service: Service) -> None:
    h, ctx = service
    await h.deliver(signed_up(), activated(), *invitee_events(answerable=True))
    minted: list[str] = []
    for mail in mails_of(h):
        resolved = ctx.links.resolve(mail["context"])
        minted += [resolved["token"]] if "token" in resolved else []
        minted += [resolved["rsvp"]["token"]] if resolved.get("rsvp") else []
    minted += [ctx.links.unsubscribe_token(s["_id"]) for s in h.db.documents("subscribers")]
    assert len(set(minted)) == 3  # the confirmation, the answer links, the unsubscribe link
    stored = repr(h.db.snapshot())
    assert [t for t in minted if t in stored] == []


# ---------------------------------------------------------------- the meetings read model


async def test_the_meeting_events_feed_the_meetings_read_model(service: Service) -> None:
    h, _ = service
    scheduled = MeetingScheduled(meeting_id="m-1", meeting=meeting())
    later = timedelta(days=7)
    moved = MeetingRescheduled(
        meeting_id="m-1",
        meeting=meeting(sequence=1, starts_at=STARTS + later, ends_at=STARTS + later),
        previous_starts_at=STARTS,
        previous_ends_at=STARTS + timedelta(hours=2),
    )
    await h.deliver(scheduled, moved)
    [doc] = h.db.documents("meetings")
    assert (doc["state"], doc["sequence"], doc["starts_at"]) == ("scheduled", 1, STARTS + later)
    # The scheduling again, late, under another id: older than what is stored.
    late = MeetingScheduled(meeting_id="m-1", meeting=meeting())
    assert await h.deliver(late) == [Applied.APPLIED]
    assert h.db.documents("meetings") == [doc]
    cancelled = MeetingCancelled(
        meeting_id="m-1", meeting=meeting(sequence=1), reason="Sygdom", occurred_at=minutes(1)
    )
    await h.deliver(cancelled)
    [doc] = h.db.documents("meetings")
    assert doc["state"] == "cancelled" and doc["cancelled_at"] == minutes(1)


async def test_a_held_meeting_is_kept_with_what_came_of_it_and_no_one_named(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(MeetingScheduled(meeting_id="m-1", meeting=meeting()))
    held = MeetingHeld(
        meeting_id="m-1",
        kind=MeetingKind.AMBASSADOR_MEETING,
        title="Ambassadørmøde, forår 2027",
        date=STARTS.date(),
        starts_at=STARTS,
        held_at=STARTS + timedelta(hours=2),
        public=True,
        attendee_count=23,
        attending_organisations=["Røde Kors", "Røde Kors", "Kirkens Korshær"],
        outcomes=["Et nyt handlingsnetværk"],
    )
    assert await h.deliver(held) == [Applied.APPLIED]
    [doc] = h.db.documents("meetings")
    assert doc["state"] == "held" and doc["attendee_count"] == 23
    assert doc["attending_organisations"] == ["Røde Kors", "Kirkens Korshær"]
    assert doc["place"] == "Fredericia Rådhus"  # from the scheduling
    # A meeting event names no invitee, and neither does the read model.
    assert mails_of(h) == [] and ANNA not in repr(doc)
