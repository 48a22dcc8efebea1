"""The newsletter's pure rules: tokens, the life of a subscriber, assembly, sections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts.errors import ErrorCode, ServiceError
from contracts.newsletter import IssueState, SubscriberSource, SubscriberStatus
from services.newsletter import domain
from services.newsletter.domain import IssueSection, Item, Subscriber, Unsubscriber
from services.newsletter.mail.rendering import render_issue, section_keys
from services.newsletter.sections import REGISTRY, SectionRegistry
from services.runtime import tokens
from services.runtime.unit_of_work import Scope

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=72)
SECRET = "newsletter-domain-tests-0123456789abcdef"


def direct(email: str = "læser@example.org") -> Subscriber:
    return domain.subscribe(None, email=email, name="Læser", now=NOW, token_ttl=TTL).subscriber


def confirmation_token(subscriber: Subscriber) -> str:
    """The token the confirmation mail carries (signed when the mail is put together)."""
    assert subscriber.confirmation_nonce is not None and subscriber.token_expires_at is not None
    signer = tokens.Signer(SECRET, tokens.SUBSCRIPTION_CONFIRMATION)
    return signer.sign(
        subscriber.id, subscriber.confirmation_nonce, tokens.expiry(subscriber.token_expires_at)
    )


def test_a_direct_subscription_waits_for_its_confirmation() -> None:
    subscriber = direct()
    assert subscriber.status == SubscriberStatus.PENDING
    assert subscriber.source == SubscriberSource.DIRECT
    # Only the nonce is kept; the (signed) token is what the mail carries, stored nowhere.
    token = confirmation_token(subscriber)
    assert subscriber.confirmation_nonce and subscriber.token_expires_at == NOW + TTL
    assert subscriber.token_hash is None
    assert token not in subscriber.model_dump_json()
    # No unsubscribe token either: the link is signed from the subscriber's id.
    unsubscribe = tokens.Signer(SECRET, tokens.UNSUBSCRIBE).sign(subscriber.id)
    assert unsubscribe != token
    assert "unsubscribe_token" not in subscriber.model_dump()
    assert subscriber.unsubscribe_token_hash is None
    assert unsubscribe not in subscriber.model_dump_json()
    assert not domain.may_receive("issue", subscriber)
    assert domain.may_receive("subscribe_confirmation", subscriber)


def test_the_token_confirms_until_it_expires() -> None:
    subscriber = direct()
    nonce = subscriber.confirmation_nonce
    assert nonce is not None
    confirmed = domain.check_confirmation(subscriber, nonce, NOW + TTL - timedelta(seconds=1))
    assert confirmed.status == SubscriberStatus.CONFIRMED
    assert confirmed.confirmation_nonce is None and confirmed.token_expires_at is None
    assert confirmed.confirmed_nonce == nonce
    with pytest.raises(ServiceError) as expired:
        domain.check_confirmation(subscriber, nonce, NOW + TTL + timedelta(seconds=1))
    assert expired.value.code == ErrorCode.TOKEN_EXPIRED


def test_a_second_click_is_already_confirmed_and_an_unknown_token_invalid() -> None:
    subscriber = direct()
    nonce = subscriber.confirmation_nonce
    assert nonce is not None
    confirmed = domain.check_confirmation(subscriber, nonce, NOW)
    with pytest.raises(ServiceError) as again:
        domain.check_confirmation(confirmed, nonce, NOW)
    assert again.value.code == ErrorCode.INVALID_STATE
    with pytest.raises(ServiceError) as again_old_style:
        domain.confirm(None, NOW, confirmed=confirmed)
    assert again_old_style.value.code == ErrorCode.INVALID_STATE
    with pytest.raises(ServiceError) as unknown_nonce:
        domain.check_confirmation(subscriber, "another-nonce", NOW)
    assert unknown_nonce.value.code == ErrorCode.INVALID_TOKEN
    with pytest.raises(ServiceError) as unknown_subscriber:
        domain.check_confirmation(None, nonce, NOW)
    assert unknown_subscriber.value.code == ErrorCode.INVALID_TOKEN
    with pytest.raises(ServiceError) as unknown:
        domain.confirm(None, NOW)
    assert unknown.value.code == ErrorCode.INVALID_TOKEN


def test_subscribing_again_reissues_the_token() -> None:
    subscriber = direct()
    token = confirmation_token(subscriber)
    again = domain.subscribe(
        subscriber, email=subscriber.address or "", name=None, now=NOW, token_ttl=TTL
    )
    assert again.token_reissued
    assert again.subscriber.id == subscriber.id
    assert again.subscriber.confirmation_nonce not in (None, subscriber.confirmation_nonce)
    assert confirmation_token(again.subscriber) != token
    assert subscriber.confirmation_nonce is not None
    with pytest.raises(ServiceError) as old:
        # The old link's nonce is no longer stored anywhere.
        domain.check_confirmation(again.subscriber, subscriber.confirmation_nonce, NOW)
    assert old.value.code == ErrorCode.INVALID_TOKEN
    # A subscribed address is not an error (that would tell a stranger it is known): its
    # owner is told, and nothing else changes.
    confirmed = domain.confirm(again.subscriber, NOW)
    told = domain.subscribe(
        confirmed, email="laeser@example.org", name="Fremmed", now=NOW, token_ttl=TTL
    )
    assert told.already_subscribed and told.mail
    assert told.subscriber.model_copy(update={"confirmations_asked": ()}) == (
        confirmed.model_copy(update={"confirmations_asked": ()})
    )


def test_unsubscribe_is_final_against_later_events() -> None:
    subscriber = domain.ambassador_activated(
        None, ambassador_id="a1", email="amb@example.org", name="Amb", now=NOW
    ).subscriber
    gone, changed = domain.unsubscribe(subscriber, NOW, by=Unsubscriber.SELF)
    assert changed and gone.status == SubscriberStatus.UNSUBSCRIBED and gone.opted_out
    # Idempotent.
    assert domain.unsubscribe(gone, NOW, by=Unsubscriber.SELF) == (gone, False)
    # A later activation (rejoining) or profile change does not resubscribe.
    again = domain.ambassador_activated(
        gone, ambassador_id="a1", email="amb@example.org", name="Amb", now=NOW
    )
    assert not again.subscribed and again.subscriber.status == SubscriberStatus.UNSUBSCRIBED
    updated = domain.update_contact(gone, email="ny@example.org", name="Ny")
    assert updated.status == SubscriberStatus.UNSUBSCRIBED and updated.address == "ny@example.org"
    assert not domain.may_receive("issue", updated)
    # Mail about what the person did still goes (the goodbye after a withdrawal).
    assert domain.may_receive("goodbye", updated)


def test_a_withdrawal_ends_the_subscription_but_a_rejoin_starts_it_again() -> None:
    subscriber = domain.ambassador_activated(
        None, ambassador_id="a1", email="amb@example.org", name="Amb", now=NOW
    ).subscriber
    withdrawn, _ = domain.unsubscribe(subscriber, NOW, by=Unsubscriber.WITHDRAWN)
    assert withdrawn.status == SubscriberStatus.UNSUBSCRIBED and not withdrawn.opted_out
    rejoined = domain.ambassador_activated(
        withdrawn, ambassador_id="a1", email="amb@example.org", name="Amb", now=NOW
    )
    assert rejoined.subscribed and rejoined.subscriber.status == SubscriberStatus.CONFIRMED
    # The person's own unsubscribe after a withdrawal makes it final.
    own, changed = domain.unsubscribe(withdrawn, NOW, by=Unsubscriber.SELF)
    assert changed and own.opted_out


def test_an_address_that_opted_out_stays_out_when_another_record_takes_it() -> None:
    ambassador = domain.ambassador_activated(
        None, ambassador_id="a1", email="old@example.org", name="Amb", now=NOW
    ).subscriber
    other, _ = domain.unsubscribe(direct("new@example.org"), NOW, by=Unsubscriber.SELF)
    merged = domain.update_contact(
        domain.absorb(ambassador, other), email="new@example.org", name="Amb"
    )
    assert merged.opted_out and merged.address_key == "new@example.org"


def test_erasure_keeps_nothing_personal() -> None:
    subscriber = domain.ambassador_activated(
        None, ambassador_id="a1", email="amb@example.org", name="Amb Hansen", now=NOW
    ).subscriber
    erased = domain.erase(subscriber, NOW)
    dumped = erased.model_dump_json()
    assert "amb@example.org" not in dumped and "Hansen" not in dumped
    assert erased.status == SubscriberStatus.ERASED
    assert not any(domain.may_receive(k, erased) for k in ("issue", "welcome", "goodbye"))


def test_hard_bounces_make_a_subscriber_bouncing_at_the_limit() -> None:
    subscriber = domain.confirm(direct(), NOW)
    once = domain.hard_bounce(subscriber, 2)
    assert once.status == SubscriberStatus.CONFIRMED and once.hard_bounces == 1
    twice = domain.hard_bounce(once, 2)
    assert twice.status == SubscriberStatus.BOUNCING
    assert not domain.may_receive("issue", twice)
    assert not domain.may_receive("welcome", twice)
    assert domain.may_receive("subscribe_confirmation", twice)


# ---------------------------------------------------------------- items and issues


def item(title: str, minutes: int, **extra: Any) -> Item:
    return domain.new_item(
        item_id=f"item-{title}",
        title=title,
        body="Første afsnit.\n\n\n\nAndet afsnit.",
        link=extra.get("link"),
        image=None,
        ambassador_id=extra.get("ambassador_id"),
        ambassador_name=extra.get("ambassador_name"),
        now=NOW + timedelta(minutes=minutes),
    )


def test_an_item_is_normalised_and_its_link_checked() -> None:
    made = item("  Ny   café  ", 0, link="fredericia.dk/cafe")
    assert made.title == "Ny café"
    assert made.body == "Første afsnit.\n\nAndet afsnit."
    assert made.link == "https://fredericia.dk/cafe"
    with pytest.raises(ServiceError) as bad:
        item("x", 0, link="javascript:alert(1)")
    assert [d.field for d in bad.value.error.details] == ["link"]


def assemble(items: list[Item], sections: list[IssueSection], **kw: Any) -> domain.Issue:
    return domain.assemble_issue(
        issue_id="i1",
        number=kw.get("number", 1),
        title=kw.get("title"),
        intro=None,
        since=kw.get("since", NOW - timedelta(days=90)),
        until=NOW + timedelta(hours=1),
        items=items,
        sections=sections,
        now=NOW,
    )


def test_assembly_takes_unused_items_oldest_first_and_the_sections() -> None:
    used = item("brugt", 0).model_copy(update={"used_in_issue": "old"})
    section = IssueSection(key="new_ambassadors", title="Nye", entries=({"display_name": "X"},))
    issue = assemble([item("b", 5), used, item("a", 1)], [section])
    assert [i.title for i in issue.items] == ["a", "b"]
    assert issue.state == IssueState.DRAFT
    assert issue.section_counts == {"new_ambassadors": 1}
    assert issue.title == "Nyhedsbrev, marts 2026"


def test_assembly_refuses_an_empty_issue_and_a_period_that_ends_before_it_starts() -> None:
    empty = IssueSection(key="new_ambassadors", title="Nye")
    with pytest.raises(ServiceError) as nothing:
        assemble([], [empty])
    assert nothing.value.code == ErrorCode.INVALID_STATE
    with pytest.raises(ServiceError) as backwards:
        assemble([item("a", 0)], [], since=NOW + timedelta(days=1))
    assert backwards.value.code == ErrorCode.VALIDATION_FAILED


def test_sending_needs_every_item_still_unused() -> None:
    a, b = item("a", 0), item("b", 1)
    issue = assemble([a, b], [])
    sending = domain.start_sending(issue, {a.id: a, b.id: b}, 7, NOW)
    assert sending.state == IssueState.SENDING and sending.number == 7
    with pytest.raises(ServiceError):
        domain.start_sending(sending, {a.id: a, b.id: b}, 8, NOW)
    taken = b.model_copy(update={"used_in_issue": "other"})
    with pytest.raises(ServiceError) as stale:
        domain.start_sending(issue, {a.id: a, b.id: taken}, 7, NOW)
    assert "out of date" in stale.value.error.message
    with pytest.raises(ServiceError):
        domain.start_sending(issue, {a.id: a, b.id: None}, 7, NOW)
    sent = domain.mark_sent(sending, recipients=3, now=NOW)
    assert sent.archive_object == "issue-0007.html" and sent.recipients == 3


def test_an_erased_ambassador_is_scrubbed_from_a_stored_issue() -> None:
    named = item("fra amb", 0, ambassador_id="a1", ambassador_name="Anna Hansen")
    section = IssueSection(
        key="new_ambassadors",
        title="Nye",
        entries=(
            {"ambassador_id": "a1", "display_name": "Anna Hansen"},
            {"ambassador_id": "a2", "display_name": "Foreningen X"},
        ),
    )
    issue = domain.mark_sent(
        domain.start_sending(assemble([named], [section]), {named.id: named}, 1, NOW),
        recipients=1,
        now=NOW,
    )
    scrubbed = domain.scrub_ambassador(issue, "a1")
    assert scrubbed is not None and scrubbed.archive_stale
    assert "Anna Hansen" not in scrubbed.model_dump_json()
    assert "Foreningen X" in scrubbed.model_dump_json()
    assert domain.scrub_ambassador(scrubbed, "a1") is None


def test_the_issue_context_renders_without_personal_data_in_the_archive() -> None:
    section = IssueSection(
        key="new_ambassadors",
        title="Nye ambassadører",
        entries=({"ambassador_id": "a2", "display_name": "Foreningen X", "themes": ["Forebyg"]},),
    )
    issue = assemble([item("Nyt <script>alert(1)</script>", 0)], [section])
    rendered = render_issue(domain.issue_context(issue, message_id_domain="test.example"))
    assert "Foreningen X" in rendered.archive.html
    assert "<script>" not in rendered.archive.html
    assert rendered.marker not in rendered.archive.html


def test_a_draft_date_means_midnight_in_copenhagen() -> None:
    assert domain.start_of_day(date(2026, 7, 1)) == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    assert domain.default_since(None, NOW, 90) == NOW - timedelta(days=90)
    assert domain.default_since(NOW - timedelta(days=3), NOW, 90) == NOW - timedelta(days=3)


# ---------------------------------------------------------------- sections


def test_every_registered_section_has_its_template_block() -> None:
    keys = REGISTRY.keys()
    assert "new_ambassadors" in keys
    assert len(keys) == len(set(keys))
    assert set(keys) <= section_keys()


class FakeSection:
    def __init__(self, key: str, entries: list[dict[str, Any]]) -> None:
        self.key = key
        self.title = key.title()
        self._entries = entries
        self.asked: list[tuple[datetime, datetime]] = []

    async def query(self, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
        self.asked.append((since, until))
        return self._entries


async def test_the_registry_gathers_each_section_for_the_period_in_order() -> None:
    first, second = FakeSection("first", [{"n": 1}]), FakeSection("second", [])
    registry = SectionRegistry([first, second])
    with pytest.raises(ValueError, match="registered already"):
        registry.register(FakeSection("first", []))
    gathered = await registry.gather(None, NOW - timedelta(days=1), NOW)  # type: ignore[arg-type]
    assert [(s.key, len(s.entries)) for s in gathered] == [("first", 1), ("second", 0)]
    assert first.asked == [(NOW - timedelta(days=1), NOW)]


def test_an_address_that_needs_smtputf8_is_refused_at_the_door() -> None:
    with pytest.raises(ServiceError) as refused:
        domain.normalised_email("læser@example.org")
    assert [d.field for d in refused.value.error.details] == ["email"]
    assert domain.normalised_email("laeser@Fredericia.DK") == "laeser@fredericia.dk"
