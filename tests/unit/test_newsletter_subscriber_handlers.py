"""The newsletter's subscriber commands (subscribe, confirm, unsubscribe, the list), each run
by the kit the way the runtime runs it (endpoint adapter, unit of work, audit), on a
database in memory; and the confirmation mail as the delivery worker puts it together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode
from contracts.newsletter import (
    ConfirmSubscription,
    Endpoints,
    ListSubscribers,
    Subscribe,
    Subscribed,
    SubscriberSource,
    SubscriberStatus,
    SubscriptionReceived,
    Unsubscribe,
    Unsubscribed,
)
from services.newsletter import domain
from services.newsletter.app import build
from services.newsletter.context import Context
from services.newsletter.delivery import MailRecord
from services.newsletter.links import CONTEXT_KEY
from services.newsletter.outgoing import Outgoing
from services.runtime import tokens
from services.runtime.testing import ServiceHarness
from tests.unit.newsletter_support import (
    AMBASSADORS_SECRET,
    PUBLIC_URL,
    Service,
    body,
    mails_of,
    parsed,
    settings,
    subscribe,
)


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    yield await ServiceHarness.start(build, settings())


def laeser(**changes: str) -> Subscribe:
    return Subscribe.model_validate({"email": "laeser@example.org", "name": "Læser", **changes})


def confirmation_token(ctx: Context, mail: dict[str, Any]) -> str:
    """The token the confirmation mail carries once it is put together."""
    token = ctx.links.resolve(mail["context"])["token"]
    assert isinstance(token, str)
    return token


async def subscribed(h: ServiceHarness, ctx: Context) -> str:
    """A confirmed direct subscriber; their id."""
    result = await subscribe(h, laeser())
    [mail] = mails_of(h, "subscribe_confirmation")
    await h.call(Endpoints.CONFIRM, ConfirmSubscription(token=confirmation_token(ctx, mail)))
    return result.id


def every_stored_document(h: ServiceHarness) -> str:
    return repr(h.db.snapshot())


# ---------------------------------------------------------------- subscribe and confirm


async def test_subscribing_queues_a_confirmation_mail_that_names_its_link_but_holds_no_token(
    service: Service,
) -> None:
    h, ctx = service
    told: list[str] = []
    ctx.delivery_notify = lambda: told.append("mail")
    result = await subscribe(h, laeser())
    # The delivery worker is told once the unit committed, not at its next poll.
    assert told == ["mail"]
    assert result.status == SubscriberStatus.PENDING
    assert result.source == SubscriberSource.DIRECT
    [subscriber] = h.db.documents("subscribers")
    assert subscriber["_id"] == result.id and subscriber["confirmation_nonce"]
    [mail] = h.db.documents("mails")
    assert mail["kind"] == "subscribe_confirmation" and mail["state"] == "queued"
    assert mail["to_address"] == "laeser@example.org"
    assert mail["subscriber_id"] == subscriber["_id"]
    expires = tokens.expiry(subscriber["token_expires_at"])
    assert mail["context"][CONTEXT_KEY] == {
        "purpose": tokens.SUBSCRIPTION_CONFIRMATION,
        "parts": [subscriber["_id"], subscriber["confirmation_nonce"], expires],
    }
    assert "token" not in mail["context"] and "confirm_url" not in mail["context"]
    # The subscription counts only once confirmed.
    assert h.emitted == []


async def test_the_mailed_link_confirms_once_and_then_says_already_confirmed(
    service: Service,
) -> None:
    h, ctx = service
    created = await subscribe(h, laeser())
    token = confirmation_token(ctx, mails_of(h, "subscribe_confirmation")[0])
    confirmed = await h.call(Endpoints.CONFIRM, ConfirmSubscription(token=token))
    assert confirmed.id == created.id and confirmed.status == SubscriberStatus.CONFIRMED
    assert confirmed.confirmed_at == h.clock.now()
    [event] = h.emitted
    assert isinstance(event, Subscribed)
    assert (event.subscriber_id, event.source) == (created.id, SubscriberSource.DIRECT)
    again = await h.fails(Endpoints.CONFIRM, ConfirmSubscription(token=token))
    assert again.code == ErrorCode.INVALID_STATE
    assert len(h.emitted) == 1


async def test_subscribing_again_sends_a_fresh_link_and_the_old_one_stops_working(
    service: Service,
) -> None:
    h, ctx = service
    first = await subscribe(h, laeser())
    second = await subscribe(h, laeser(name="Læser Igen"))
    assert second.id == first.id
    # Anyone may type the address: the name given first stays.
    assert second.name == "Læser"
    old_mail, new_mail = mails_of(h, "subscribe_confirmation")
    old, new = confirmation_token(ctx, old_mail), confirmation_token(ctx, new_mail)
    assert old != new
    refused = await h.fails(Endpoints.CONFIRM, ConfirmSubscription(token=old))
    assert refused.code == ErrorCode.INVALID_TOKEN
    confirmed = await h.call(Endpoints.CONFIRM, ConfirmSubscription(token=new))
    assert confirmed.status == SubscriberStatus.CONFIRMED
    # A confirmed address is subscribed already: the same answer as ever (no error that
    # would tell a stranger it is known), a word to its owner, and nothing else changes.
    answer = await h.call(Endpoints.SUBSCRIBE, laeser(name="Fremmed"), actor="public")
    assert answer == SubscriptionReceived()
    [told] = mails_of(h, "already_subscribed")
    assert told["to_address"] == "laeser@example.org" and told["context"]["name"] == "Læser"
    [subscriber] = h.db.documents("subscribers")
    assert (subscriber["status"], subscriber["name"]) == ("confirmed", "Læser")


async def test_an_expired_link_is_refused_and_the_subscriber_stays_pending(
    service: Service,
) -> None:
    h, ctx = service
    await subscribe(h, laeser())
    token = confirmation_token(ctx, mails_of(h, "subscribe_confirmation")[0])
    h.clock.travel(timedelta(hours=settings().newsletter_token_ttl_hours, seconds=1))
    expired = await h.fails(Endpoints.CONFIRM, ConfirmSubscription(token=token))
    assert expired.code == ErrorCode.TOKEN_EXPIRED
    [subscriber] = h.db.documents("subscribers")
    assert subscriber["status"] == SubscriberStatus.PENDING and h.emitted == []


async def test_a_forged_or_foreign_token_confirms_nobody(service: Service) -> None:
    h, ctx = service
    result = await subscribe(h, laeser())
    [subscriber] = h.db.documents("subscribers")
    parts = (result.id, subscriber["confirmation_nonce"], 2_000_000_000)
    forged = tokens.Signer("another-secret-0123456789abcdef0123", tokens.SUBSCRIPTION_CONFIRMATION)
    # The ambassadors service's confirmation, or our own unsubscribe link: other purposes.
    foreign = tokens.Signer(AMBASSADORS_SECRET, tokens.AMBASSADOR_CONFIRMATION)
    for token in (
        forged.sign(*parts),
        foreign.sign(*parts),
        ctx.links.unsubscribe_token(result.id),
        "x" * 40,
    ):
        refused = await h.fails(Endpoints.CONFIRM, ConfirmSubscription(token=token))
        assert refused.code == ErrorCode.INVALID_TOKEN
    assert h.db.documents("subscribers") == [subscriber] and h.emitted == []


# ---------------------------------------------------------------- unsubscribe


async def test_unsubscribing_with_the_signed_link_is_final_and_idempotent(
    service: Service,
) -> None:
    h, ctx = service
    subscriber_id = await subscribed(h, ctx)
    forgotten: list[str] = []
    ctx.forget_subscriber = forgotten.append
    token = ctx.links.unsubscribe_token(subscriber_id)
    gone = await h.call(Endpoints.UNSUBSCRIBE, Unsubscribe(token=token))
    assert gone.id == subscriber_id and gone.status == SubscriberStatus.UNSUBSCRIBED
    assert gone.unsubscribed_at == h.clock.now()
    assert [e.subscriber_id for e in h.emitted_of(Unsubscribed)] == [subscriber_id]
    # A mail already claimed for sending is told, once the unsubscribe committed.
    assert forgotten == [subscriber_id]
    again = await h.call(Endpoints.UNSUBSCRIBE, Unsubscribe(token=token))
    assert again.status == SubscriberStatus.UNSUBSCRIBED
    assert len(h.emitted_of(Unsubscribed)) == 1
    # The person's own word: subscribing needs a new confirmation before anything is sent.
    [doc] = h.db.documents("subscribers")
    assert doc["unsubscribed_by"] == domain.Unsubscriber.SELF


async def test_a_forged_unsubscribe_link_unsubscribes_nobody(service: Service) -> None:
    h, ctx = service
    subscriber_id = await subscribed(h, ctx)
    before = h.db.documents("subscribers")
    other_key = tokens.Signer("another-secret-0123456789abcdef0123", tokens.UNSUBSCRIBE)
    # Our own confirmation link is signed with the same secret, for another purpose.
    confirmation = ctx.links.signer(tokens.SUBSCRIPTION_CONFIRMATION).sign(subscriber_id)
    for token in (
        other_key.sign(subscriber_id),
        confirmation,
        ctx.links.unsubscribe_token("nobody"),
        "y" * 40,
    ):
        refused = await h.fails(Endpoints.UNSUBSCRIBE, Unsubscribe(token=token))
        assert refused.code == ErrorCode.INVALID_TOKEN
    assert h.db.documents("subscribers") == before
    assert h.emitted_of(Unsubscribed) == []


async def test_links_mailed_by_an_older_release_still_work_and_are_kept_only_as_hashes(
    service: Service,
) -> None:
    h, _ = service
    confirm_token, unsubscribe_token = "legacy-confirm-token-0123456789", "legacy-unsub-0123456789"
    await h.db.subscribers.insert_one(
        {
            "_id": "legacy",
            "status": "pending",
            "source": "direct",
            "address": "gammel@example.org",
            "address_key": "gammel@example.org",
            "token_hash": tokens.token_hash(confirm_token),
            "token_expires_at": h.clock.now() + timedelta(hours=1),
            # What an older release kept as it was; the next start hashes it.
            "unsubscribe_token": unsubscribe_token,
            "created_at": h.clock.now(),
        }
    )
    for hook in h.service.startup_hooks:
        await hook()
    assert unsubscribe_token not in every_stored_document(h)
    confirmed = await h.call(Endpoints.CONFIRM, ConfirmSubscription(token=confirm_token))
    assert confirmed.id == "legacy" and confirmed.status == SubscriberStatus.CONFIRMED
    gone = await h.call(Endpoints.UNSUBSCRIBE, Unsubscribe(token=unsubscribe_token))
    assert gone.status == SubscriberStatus.UNSUBSCRIBED


# ---------------------------------------------------------------- the list


async def test_subscribers_are_listed_by_status_and_paged(service: Service) -> None:
    h, ctx = service
    confirmed_id = await subscribed(h, ctx)
    h.clock.travel(timedelta(minutes=1))
    await subscribe(h, laeser(email="anden@example.org", name="Anden"))
    h.clock.travel(timedelta(minutes=1))
    await subscribe(h, laeser(email="tredje@example.org", name="Tredje"))
    everyone = await h.call(Endpoints.SUBSCRIBERS, ListSubscribers())
    assert everyone.total == 3
    assert [s.email for s in everyone.items] == [
        "laeser@example.org",
        "anden@example.org",
        "tredje@example.org",
    ]
    confirmed = await h.call(
        Endpoints.SUBSCRIBERS, ListSubscribers(status=SubscriberStatus.CONFIRMED)
    )
    assert confirmed.total == 1 and [s.id for s in confirmed.items] == [confirmed_id]
    page = await h.call(
        Endpoints.SUBSCRIBERS, ListSubscribers(status=SubscriberStatus.PENDING, limit=1, offset=1)
    )
    assert page.total == 2 and [s.email for s in page.items] == ["tredje@example.org"]


# ---------------------------------------------------------------- audit, actor, bad input


async def test_every_command_leaves_an_audit_record_with_ids_only(service: Service) -> None:
    h, ctx = service
    created = await subscribe(h, laeser(), actor="public")
    token = confirmation_token(ctx, mails_of(h, "subscribe_confirmation")[0])
    await h.call(Endpoints.CONFIRM, ConfirmSubscription(token=token), actor="public")
    await h.fails(Endpoints.UNSUBSCRIBE, Unsubscribe(token="z" * 40), actor="public")
    await h.call(
        Endpoints.UNSUBSCRIBE,
        Unsubscribe(token=ctx.links.unsubscribe_token(created.id)),
        actor="staff:jens",
    )
    await h.call(Endpoints.SUBSCRIBERS, ListSubscribers())  # a query: not audited
    trail = h.audit_trail()
    assert [(r["actor"], r["command"], r["targets"], r["outcome"]) for r in trail] == [
        ("public", "newsletter.cmd.subscribe", [created.id], "ok"),
        ("public", "newsletter.cmd.confirm", [created.id], "ok"),
        ("public", "newsletter.cmd.unsubscribe", [], "invalid_token"),
        ("staff:jens", "newsletter.cmd.unsubscribe", [created.id], "ok"),
    ]
    assert all(r["service"] == "newsletter" for r in trail)
    for personal in ("laeser", "Læser", token):
        assert personal not in repr(trail)


async def test_a_command_without_an_actor_is_refused_and_changes_nothing(
    service: Service,
) -> None:
    h, _ = service
    for actor in (None, "somebody"):
        error = await h.fails(Endpoints.SUBSCRIBE, laeser(), actor=actor)
        assert error.code == ErrorCode.VALIDATION_FAILED
        assert [d.field for d in error.error.details] == ["Samskab-Actor"]
    assert h.db.documents("subscribers") == [] and h.db.documents("mails") == []
    assert h.emitted == [] and h.audit_trail() == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "laeser@example.org", "name": "n" * 201}, "name"),
        # Needs SMTPUTF8 all the way: refused at the door, not at every delivery attempt.
        ({"email": "læser@example.org"}, "email"),
    ],
)
async def test_bad_input_is_refused_with_the_field_and_changes_nothing(
    service: Service, request_: dict[str, str], field: str
) -> None:
    h, _ = service
    error = await h.fails(Endpoints.SUBSCRIBE, request_)
    assert error.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in error.error.details] == [field]
    assert h.db.documents("subscribers") == [] and h.db.documents("mails") == []
    assert h.emitted == []


async def test_a_token_too_short_to_be_one_is_refused(service: Service) -> None:
    h, _ = service
    endpoints: list[Endpoint[Any, Any]] = [Endpoints.CONFIRM, Endpoints.UNSUBSCRIBE]
    for endpoint in endpoints:
        error = await h.fails(endpoint, {"token": "short"})
        assert error.code == ErrorCode.VALIDATION_FAILED
        assert [d.field for d in error.error.details] == ["token"]


# ---------------------------------------------------------------- the mail that goes out


async def test_the_confirmation_goes_out_with_a_working_signed_link_and_list_unsubscribe(
    service: Service,
) -> None:
    h, ctx = service
    created = await subscribe(h, laeser())
    [record] = [MailRecord.from_document(m) for m in h.db.documents("mails")]
    mail = await Outgoing(ctx).materialize(record)
    assert mail is not None and mail.recipients == ["laeser@example.org"]
    message = parsed(mail.message)
    assert message["Message-ID"] == record.message_id
    token = confirmation_token(ctx, h.db.documents("mails")[0])
    confirm_url = domain.confirm_url(PUBLIC_URL, token)
    assert confirm_url in body(message, "plain")
    assert f'href="{confirm_url}"' in body(message, "html")
    assert body(message, "plain").count(token) == 1, "the token only in its link"
    # A subscriber's mail: RFC 8058 one-click unsubscribe, with the signed link.
    unsubscribe = ctx.links.unsubscribe_token(created.id)
    list_unsubscribe = message["List-Unsubscribe"]
    assert f"<{domain.unsubscribe_url(PUBLIC_URL, unsubscribe)}>" in list_unsubscribe
    assert "mailto:afmeld@fredericia.example?subject=unsubscribe%20" in list_unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The links work: the one in the mail confirms, the one in the header unsubscribes.
    confirmed = await h.call(Endpoints.CONFIRM, ConfirmSubscription(token=token))
    assert confirmed.status == SubscriberStatus.CONFIRMED
    gone = await h.call(Endpoints.UNSUBSCRIBE, Unsubscribe(token=unsubscribe))
    assert gone.status == SubscriberStatus.UNSUBSCRIBED


async def test_no_token_is_stored_anywhere(service: Service) -> None:
    h, ctx = service
    subscriber_id = await subscribed(h, ctx)
    await subscribe(h, laeser(email="anden@example.org"))
    await h.call(
        Endpoints.UNSUBSCRIBE, Unsubscribe(token=ctx.links.unsubscribe_token(subscriber_id))
    )
    minted = [confirmation_token(ctx, m) for m in h.db.documents("mails")]
    minted += [ctx.links.unsubscribe_token(s["_id"]) for s in h.db.documents("subscribers")]
    assert len(minted) == 4
    stored = every_stored_document(h)
    assert [t for t in minted if t in stored] == []


async def test_hard_bounces_in_a_row_make_the_address_bouncing_and_a_delivery_resets_them(
    service: Service,
) -> None:
    h, ctx = service
    subscriber_id = await subscribed(h, ctx)
    [record] = [MailRecord.from_document(m) for m in h.db.documents("mails")]
    assert record.subscriber_id == subscriber_id
    outgoing = Outgoing(ctx)
    limit = settings().mail_hard_bounce_limit

    def bounces() -> tuple[int, SubscriberStatus]:
        [doc] = h.db.documents("subscribers")
        return doc["hard_bounces"], doc["status"]

    await outgoing.on_hard_bounce([record])
    await outgoing.on_hard_bounce([record])
    assert bounces() == (2, SubscriberStatus.CONFIRMED)
    # Delivered after all: only a mail materialized while the counter was up resets it.
    assert await outgoing.materialize(record) is not None
    await outgoing.on_delivered([record])
    assert bounces() == (0, SubscriberStatus.CONFIRMED)
    for _ in range(limit):
        await outgoing.on_hard_bounce([record])
    assert bounces() == (limit, SubscriberStatus.BOUNCING)
    # A bouncing address gets nothing but the confirmation that fixes it.
    issue_mail = record.model_copy(update={"kind": "issue", "issue_id": "i1"})
    assert await outgoing.materialize(issue_mail) is None


async def test_ten_subscriptions_of_one_address_send_at_most_the_days_confirmations(
    service: Service,
) -> None:
    h, ctx = service
    for n in range(10):
        await subscribe(h, laeser(name=f"Fremmed {n}"))
    confirmations = [m for m in mails_of(h) if m["kind"] == "subscribe_confirmation"]
    assert len(confirmations) == ctx.settings.newsletter_confirmation_mails_per_day == 3
    assert all(m["to_name"] is None and m["context"]["name"] is None for m in confirmations)
    [subscriber] = h.db.documents("subscribers")
    assert subscriber["name"] == "Fremmed 0"
