"""Stories, as the newsletter service deals with them (services/newsletter/stories.py): the
mail telling an ambassador what staff decided, with their own stories link; the mail to the
project leaders when publishing needs them; the digest section "Historier fra netværket"
with a story's picture inline; and every ambassador's own link in the welcome mail and in
their copy of each digest."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta
from urllib.parse import unquote

import pytest

from contracts.ambassadors import Erased
from contracts.newsletter import DraftIssue, Endpoints
from contracts.social import (
    Decision,
    NoticeKind,
    SocialNotice,
    StoryKind,
    StoryPicture,
    StoryPublished,
    StoryReviewed,
    StorySource,
    StoryUnpublished,
)
from services.newsletter import issues, store, stories
from services.newsletter.app import build
from services.newsletter.mail.rendering import render_mail
from services.runtime import tokens
from services.runtime.testing import ServiceHarness
from tests.support.pictures import photo
from tests.unit.newsletter_support import (
    NOW,
    PUBLIC_URL,
    SOCIAL_SECRET,
    Service,
    mails_of,
    settings,
)
from tests.unit.test_newsletter_issue_handlers import activated
from tests.unit.test_newsletter_network_mails import flat

SIGNER = tokens.Signer(SOCIAL_SECRET, tokens.STORY_LINK)
PREFIX = f"{PUBLIC_URL}/historier/egne/"


@pytest.fixture
async def service() -> Service:
    h, ctx = await ServiceHarness.start(build, settings())
    h.clock.travel(to=NOW)
    return h, ctx


def own_link(text: str) -> str:
    [url] = [w for w in text.split() if w.startswith(PREFIX)]
    return url


def reviewed(decision: Decision, comment: str | None = None) -> StoryReviewed:
    return StoryReviewed(
        story_id="s1",
        ambassador_id="amb-1",
        decision=decision,
        kind=StoryKind.NEW_PERSON,
        title="Nye frivillige",
        comment=comment,
    )


def published(story_id: str = "s1", *, at: datetime = NOW, **fields: object) -> StoryPublished:
    values: dict[str, object] = {
        "story_id": story_id,
        "kind": StoryKind.NEW_PERSON,
        "source": StorySource.AMBASSADOR,
        "title": "Nye frivillige",
        "text": "Vi har fået to nye frivillige i lektiecaféen.",
        "pictures": [
            StoryPicture(
                name=f"{story_id}-abc.jpg", digest="d" * 64, alt="To frivillige", width=800,
                height=600, size=1234,
            )
        ],
        "post_id": "104_1",
        "post_url": "https://www.facebook.com/104_1",
        "published_at": at,
        "credit": "Lektiecaféen",
        "ambassador_id": "amb-1",
        **fields,
    }  # fmt: skip
    return StoryPublished.model_validate(values)


async def test_a_request_for_changes_is_mailed_with_the_comment_and_their_own_link(
    service: Service,
) -> None:
    h, ctx = service
    await h.deliver(activated("amb-1"))
    event = reviewed(Decision.CHANGES_REQUESTED, "Skriv gerne, hvornår caféen er åben.")
    await h.deliver(event, event)
    [mail] = mails_of(h, stories.REVIEWED)
    assert mail["to_address"] == "amb-1@example.org"
    assert "historier/egne" not in str(mail)  # no link, no token at rest
    rendered = render_mail(stories.REVIEWED, ctx.links.resolve(mail["context"]))
    assert rendered.subject == "Et par ønsker til din historie: Nye frivillige"
    for part in (rendered.text, rendered.html):
        assert "Skriv gerne, hvornår caféen er åben." in flat(part)
    url = own_link(rendered.text)
    assert SIGNER.parts(unquote(url.removeprefix(PREFIX)), 1) == ["amb-1"]
    assert "Ret din historie" in rendered.html


async def test_an_approval_is_mailed_and_nothing_goes_to_someone_withdrawn_or_erased(
    service: Service,
) -> None:
    h, ctx = service
    await h.deliver(activated("amb-1"), reviewed(Decision.APPROVED))
    [mail] = mails_of(h, stories.REVIEWED)
    rendered = render_mail(stories.REVIEWED, ctx.links.resolve(mail["context"]))
    assert rendered.subject == "Din historie er godkendt: Nye frivillige"
    await h.deliver(Erased(ambassador_id="amb-1"))
    await h.deliver(reviewed(Decision.REJECTED, "Ligner en reklame."))
    assert len(mails_of(h, stories.REVIEWED)) == 1


async def test_staff_are_told_when_publishing_is_paused_and_when_a_post_is_unconfirmed(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(
        SocialNotice(kind=NoticeKind.PUBLISHING_PAUSED, detail="Facebook error 190/463: expired"),
        SocialNotice(kind=NoticeKind.UNCONFIRMED, story_ids=["s9"], detail="timeout"),
    )
    paused, unconfirmed = mails_of(h, stories.NOTICE)
    assert paused["to_address"] == "ambassadoer@fredericia.example"
    first = render_mail(stories.NOTICE, paused["context"])
    assert first.subject == "Facebook: udgivelsen er sat på pause"
    assert "SAMSKAB_FACEBOOK_PAGE_TOKEN" in first.text and "190/463" in first.html
    second = render_mail(stories.NOTICE, unconfirmed["context"])
    assert "samskab social confirm-published ID" in flat(second.text)
    assert "historie s9" in second.html


async def test_the_welcome_mail_carries_the_ambassadors_own_stories_link(
    service: Service,
) -> None:
    h, ctx = service
    await h.deliver(activated("amb-1"))
    [mail] = mails_of(h, "welcome")
    rendered = render_mail("welcome", ctx.links.resolve(mail["context"]))
    url = own_link(rendered.text)
    assert SIGNER.parts(unquote(url.removeprefix(PREFIX)), 1) == ["amb-1"]
    assert f'href="{url}"' in rendered.html


async def test_published_stories_fill_the_digest_section_with_their_picture(
    service: Service,
) -> None:
    h, ctx = service
    await h.deliver(
        published("s1", at=NOW - timedelta(days=3)),
        published("s2", at=NOW - timedelta(days=2), title="Sommerlejr", credit=None),
        published("s3", at=NOW - timedelta(days=1), source=StorySource.NEWSLETTER),
        published("s4", at=NOW - timedelta(hours=5)),
    )
    await h.deliver(StoryUnpublished(story_id="s4"))
    bucket = await h.buckets.object_store("social-pictures")
    for name in ("s1-abc.jpg", "s2-abc.jpg"):
        await bucket.put(name, photo(80, 60))
    draft = await h.call(
        Endpoints.DRAFT,
        DraftIssue(title="Januar", since=(NOW - timedelta(days=10)).date()),
    )
    assert draft.sections["stories"] == 2
    issue = await store.load_issue(h.service.reading(), draft.id)
    assert issue is not None
    bundle = await issues.render(ctx, issue)
    html = bundle.rendered.html
    assert "Historier fra netværket" in html and "Sommerlejr" in html
    assert "Fortalt af Lektiecaféen" in html
    assert 'src="cid:picture-s1-abc@' in html and 'alt="To frivillige"' in html
    assert 'src="images/s1-abc.jpg"' in bundle.rendered.archive.html
    message = bundle.prepared.message_for(
        to_address="anna@example.org",
        to_name="Anna",
        message_id="<m1@samskab.example>",
        unsubscribe_url=f"{PUBLIC_URL}/newsletter/unsubscribe/x",
        unsubscribe_mailto=None,
        stories_url=f"{PREFIX}tok",
    )
    assert b"Content-ID: <picture-s1-abc@" in message
    # An erased ambassador's stories are shown in no later issue.
    await h.deliver(Erased(ambassador_id="amb-1"))
    gone = await store.stories_published(h.service.reading(), NOW - timedelta(days=10), NOW)
    assert gone == []
    nothing = await h.fails(
        Endpoints.DRAFT, DraftIssue(title="Februar", since=(NOW - timedelta(days=10)).date())
    )
    assert "nothing to tell" in nothing.error.message


async def test_an_ambassadors_copy_of_the_digest_carries_their_own_stories_link(
    service: Service,
) -> None:
    h, ctx = service
    await h.deliver(activated("amb-1"))
    subscriber = await store.subscriber_of_ambassador(h.service.reading(), "amb-1")
    assert subscriber is not None
    draft = await h.call(Endpoints.DRAFT, DraftIssue(title="Januar"))
    issue = await store.load_issue(h.service.reading(), draft.id)
    assert issue is not None
    bundle = await issues.render(ctx, issue)
    own = ctx.links.stories_url("amb-1")
    mine = bundle.prepared.message_for(
        to_address="anna@example.org",
        to_name="Anna",
        message_id="<m2@samskab.example>",
        unsubscribe_url=f"{PUBLIC_URL}/newsletter/unsubscribe/x",
        unsubscribe_mailto=None,
        stories_url=own,
    )
    theirs = bundle.prepared.message_for(
        to_address="bo@example.org",
        to_name="Bo",
        message_id="<m3@samskab.example>",
        unsubscribe_url=f"{PUBLIC_URL}/newsletter/unsubscribe/y",
        unsubscribe_mailto=None,
    )

    def body(raw: bytes) -> str:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    assert own in body(mine) and own not in body(theirs)
    assert f"{PUBLIC_URL}/historier" in body(theirs).split()
