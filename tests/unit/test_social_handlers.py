"""The social service's handlers in memory, publishing to the Graph API stand-in's real app
in this process: stories sent, checked against the guide, reviewed, scheduled and
published exactly once, whatever Facebook answers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.ambassadors import Activated, CertificateRef, Erased, Kind
from contracts.errors import ErrorCode
from contracts.events import MeetingCancelled, MeetingInfo, MeetingKind, MeetingScheduled
from contracts.social import (
    PICTURES_BUCKET,
    UPLOADS_BUCKET,
    ApproveStory,
    CheckStory,
    CheckToken,
    ConfirmPublished,
    Decision,
    Endpoints,
    GetOwnPicture,
    GetOwnStories,
    GetPicture,
    GetPublicStories,
    GetReviewQueue,
    ListUnconfirmed,
    NoticeKind,
    RejectStory,
    RequestChanges,
    RetryStory,
    ReviseOwnStory,
    ScheduleStory,
    ShowStory,
    SocialNotice,
    StoryKind,
    StoryPublished,
    StoryReviewed,
    StoryStatus,
    StoryUnpublished,
    SubmitOwnStory,
    SubmitStory,
    UnpublishStory,
    UnscheduleStory,
)
from services.runtime.testing import ServiceHarness
from services.social import store
from services.social.app import build
from services.social.context import Context
from services.social.publisher import Publisher
from services.social.settings import SocialSettings
from stack.facebook import Fault, StandIn, read_posts
from tests.support.graph import PAGE_ID, TOKEN, client_of, stand_in
from tests.support.pictures import GPS_IFD, opened, photo

SECRET = "social-handler-tests-0123456789abcdef"
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)

Harness = tuple[ServiceHarness, Context, StandIn]


@pytest.fixture
async def social(tmp_path: Path) -> AsyncIterator[Harness]:
    h, ctx = await ServiceHarness.start(
        build,
        SocialSettings(
            _env_file=None,
            social_token_secret=SECRET,
            facebook_page_id=PAGE_ID,
            facebook_page_token=TOKEN,
            public_url="https://samskab.example",
            social_lookup_margin_seconds=0,
        ),
    )
    h.clock.travel(to=NOW)
    page = stand_in(tmp_path / "facebook", h.clock)
    assert ctx.graph_client is not None
    await ctx.graph_client.aclose()
    ctx.graph_client = client_of(page)
    await h.deliver(ambassador("a1"), ambassador("a2", public=False))
    yield h, ctx, page
    await ctx.graph.aclose()


def ambassador(ambassador_id: str, *, public: bool = True) -> Activated:
    return Activated(
        ambassador_id=ambassador_id,
        name=f"Kontakt {ambassador_id}",
        email=f"{ambassador_id}@example.org",
        kind=Kind.ASSOCIATION,
        organisation=f"Forening {ambassador_id}",
        public=public,
        certificate=CertificateRef(
            number="FRC-2027-000001", verification_code="ABCD-EFGH", bucket="c", object_name="o"
        ),
    )


async def upload(h: ServiceHarness, data: bytes, name: str) -> str:
    bucket = await h.buckets.object_store(UPLOADS_BUCKET)
    await bucket.put(name, data)
    return name


def story(**fields: Any) -> dict[str, Any]:
    return {
        "ambassador_id": "a1",
        "kind": "theme_work",
        "title": "Lektiecafé i Korskærparken",
        "text": "Hver tirsdag hjælper vores frivillige børn med lektierne.",
        **fields,
    }


async def submitted(h: ServiceHarness, **fields: Any) -> str:
    receipt = await h.call(Endpoints.SUBMIT, SubmitStory.model_validate(story(**fields)))
    return receipt.story_id


async def approved_and_scheduled(h: ServiceHarness, **fields: Any) -> str:
    story_id = await submitted(h, **fields)
    await h.call(Endpoints.APPROVE, ApproveStory(story_id=story_id))
    await h.call(Endpoints.SCHEDULE, ScheduleStory(story_id=story_id))
    return story_id


async def status(h: ServiceHarness, story_id: str) -> StoryStatus:
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=story_id))
    return detail.story.status


async def publish_all(ctx: Context) -> None:
    publisher = Publisher(ctx)
    while await publisher.step():
        pass


def posts(page: StandIn) -> list[dict[str, Any]]:
    return read_posts(page.dir)


# ---------------------------------------------------------------- the guide


async def test_a_new_person_without_a_picture_is_refused_with_the_guides_words(
    social: Harness,
) -> None:
    h, _, _ = social
    refused = await h.fails(Endpoints.SUBMIT, SubmitStory.model_validate(story(kind="new_person")))
    assert refused.code == ErrorCode.VALIDATION_FAILED
    assert [(d.field, d.message) for d in refused.error.details] == [
        ("pictures", "Husk altid et billede.")
    ]
    assert h.db.documents("stories") == []


async def test_a_picture_needs_its_alt_text_and_the_consent_of_those_shown(
    social: Harness,
) -> None:
    h, _, _ = social
    name = await upload(h, photo(), "upload-1.jpg")
    refused = await h.fails(
        Endpoints.SUBMIT,
        SubmitStory.model_validate(story(pictures=[{"upload": name}])),
    )
    assert {d.field for d in refused.error.details} == {"pictures.1.alt", "people_consent"}
    # Refused before anything was processed: the upload waits for the corrected form.
    uploads = await h.buckets.object_store(UPLOADS_BUCKET)
    assert name in uploads.objects


async def test_errors_and_hints_come_back_from_the_check_without_storing(
    social: Harness,
) -> None:
    h, _, _ = social
    checked = await h.call(
        Endpoints.CHECK,
        CheckStory.model_validate(
            {
                "kind": "upcoming_event",
                "text": "x" * 1200,
                "event_date": "2027-02-01",
                "link": "javascript:alert(1)",
            }
        ),
    )
    assert {(hint.code, hint.severity) for hint in checked.hints} == {
        ("event_in_the_past", "error"),
        ("link_invalid", "error"),
        ("text_long", "hint"),
    }
    assert not checked.sendable
    closed = await h.call(
        Endpoints.CHECK,
        CheckStory.model_validate(
            {
                "kind": "upcoming_event",
                "text": "Julefrokost",
                "event_date": "2027-12-10",
                "event_public": False,
            }
        ),
    )
    assert [hint.code for hint in closed.hints] == ["closed_event"] and closed.sendable


async def test_a_story_too_long_to_read_well_is_sent_with_the_hint_and_one_too_long_is_refused(
    social: Harness,
) -> None:
    h, _, _ = social
    receipt = await h.call(Endpoints.SUBMIT, SubmitStory.model_validate(story(text="ord " * 300)))
    assert [hint.code for hint in receipt.hints] == ["text_long"]
    too_long = await h.fails(Endpoints.SUBMIT, story(text="x" * 5001))
    assert too_long.code == ErrorCode.VALIDATION_FAILED


# ---------------------------------------------------------------- pictures


async def test_pictures_are_cleaned_of_every_metadata_block_and_fitted(social: Harness) -> None:
    h, _, _ = social
    name = await upload(h, photo(4000, 3000), "upload-gps.jpg")
    receipt = await h.call(
        Endpoints.SUBMIT,
        SubmitStory.model_validate(
            story(pictures=[{"upload": name, "alt": "Børn ved et bord"}], people_consent=True)
        ),
    )
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=receipt.story_id))
    [picture] = detail.versions[0].pictures
    assert (picture.width, picture.height) == (2048, 1536)
    kept = (await h.buckets.object_store(PICTURES_BUCKET)).objects[picture.name]
    image = opened(kept)
    assert image.format == "JPEG" and not image.getexif().get_ifd(GPS_IFD)
    assert b"SpyCam" not in kept and b"taken at home" not in kept and len(kept) < 4_000_000
    # The upload is gone: only the cleaned copy is kept.
    assert (await h.buckets.object_store(UPLOADS_BUCKET)).objects == {}


async def test_a_decompression_bomb_is_refused_and_leaves_nothing(social: Harness) -> None:
    from tests.unit.test_images import decompression_bomb

    h, _, _ = social
    name = await upload(h, decompression_bomb(50_000, 50_000), "upload-bomb.png")
    refused = await h.fails(
        Endpoints.SUBMIT,
        SubmitStory.model_validate(
            story(pictures=[{"upload": name, "alt": "Et billede"}], people_consent=True)
        ),
    )
    assert refused.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in refused.error.details] == ["pictures.1"]
    assert h.db.documents("stories") == []
    assert (await h.buckets.object_store(PICTURES_BUCKET)).objects == {}


# ---------------------------------------------------------------- review


async def test_staff_send_a_story_back_the_ambassador_revises_it_and_staff_approve_an_edit(
    social: Harness,
) -> None:
    h, ctx, _ = social
    token = ctx.links.token("a1")
    receipt = await h.call(
        Endpoints.SUBMIT_OWN,
        SubmitOwnStory.model_validate({**story(), "token": token}),
        actor="public",
    )
    queue = await h.call(Endpoints.REVIEW, GetReviewQueue())
    assert [s.id for s in queue.items] == [receipt.story_id]
    await h.call(
        Endpoints.REQUEST_CHANGES,
        RequestChanges(story_id=receipt.story_id, comment="Skriv gerne, hvornår caféen er åben."),
    )
    [asked] = h.emitted_of(StoryReviewed)
    assert asked.decision == Decision.CHANGES_REQUESTED and asked.ambassador_id == "a1"
    assert "hvornår" in (asked.comment or "")
    own = await h.call(Endpoints.OWN, GetOwnStories(token=token), actor=None)
    assert own.items[0].status == StoryStatus.CHANGES_REQUESTED and own.items[0].revisable
    revised = await h.call(
        Endpoints.REVISE_OWN,
        ReviseOwnStory.model_validate(
            {
                **story(text="Hver tirsdag kl. 15-17 hjælper vi børn med lektierne."),
                "token": token,
                "story_id": receipt.story_id,
            }
        ),
        actor="public",
    )
    assert revised.version == 2 and revised.status == StoryStatus.IN_REVIEW
    detail = await h.call(
        Endpoints.APPROVE,
        ApproveStory(story_id=receipt.story_id, text="Hver tirsdag kl. 15-17: lektiecafé."),
    )
    assert detail.story.status == StoryStatus.APPROVED
    assert [(v.number, v.staff_edit, v.by) for v in detail.versions] == [
        (1, False, "public"),
        (2, False, "public"),
        (3, True, "operator:tests"),
    ]
    assert detail.message == "Lektiecafé i Korskærparken\n\nHver tirsdag kl. 15-17: lektiecafé."
    assert [c.what for c in detail.history] == [
        "submitted",
        "changes requested",
        "revised",
        "approved",
    ]
    assert [e.decision for e in h.emitted_of(StoryReviewed)][-1] == Decision.APPROVED


async def test_another_ambassadors_link_cannot_touch_a_story(social: Harness) -> None:
    h, ctx, _ = social
    story_id = await submitted(h)
    stranger = await h.fails(
        Endpoints.REVISE_OWN,
        ReviseOwnStory.model_validate(
            {**story(), "token": ctx.links.token("a2"), "story_id": story_id}
        ),
        actor="public",
    )
    assert stranger.code == ErrorCode.NOT_FOUND
    forged = await h.fails(Endpoints.OWN, GetOwnStories(token="a1.forged-signature"), actor=None)
    assert forged.code == ErrorCode.INVALID_TOKEN


async def test_the_pictures_of_ones_own_story_are_seen_by_its_link_only(
    social: Harness,
) -> None:
    h, ctx, _ = social
    token = ctx.links.token("a1")
    name = await upload(h, photo(), "upload-own.jpg")
    content = story(pictures=[{"upload": name, "alt": "Børn ved et bord"}], people_consent=True)
    await h.call(
        Endpoints.SUBMIT_OWN,
        SubmitOwnStory.model_validate({**content, "token": token}),
        actor="public",
    )
    own = await h.call(Endpoints.OWN, GetOwnStories(token=token), actor=None)
    [picture] = own.items[0].pictures
    piece = await h.call(
        Endpoints.OWN_PICTURE, GetOwnPicture(token=token, name=picture.name), actor=None
    )
    assert piece.size == picture.size and piece.offset == 0
    assert hashlib.sha256(piece.data).hexdigest() == picture.digest
    # Another ambassador's link, a forged one, and the public before it is published.
    stranger = await h.fails(
        Endpoints.OWN_PICTURE,
        GetOwnPicture(token=ctx.links.token("a2"), name=picture.name),
        actor=None,
    )
    assert stranger.code == ErrorCode.NOT_FOUND
    forged = await h.fails(
        Endpoints.OWN_PICTURE,
        GetOwnPicture(token="a1.forged-signature", name=picture.name),
        actor=None,
    )
    assert forged.code == ErrorCode.INVALID_TOKEN
    public = await h.fails(Endpoints.PUBLIC_PICTURE, GetPicture(name=picture.name), actor=None)
    assert public.code == ErrorCode.NOT_FOUND


async def test_an_approved_story_cannot_be_revised_and_a_rejected_one_is_closed(
    social: Harness,
) -> None:
    h, ctx, _ = social
    story_id = await submitted(h)
    await h.call(Endpoints.APPROVE, ApproveStory(story_id=story_id))
    late = await h.fails(
        Endpoints.REVISE_OWN,
        ReviseOwnStory.model_validate(
            {**story(), "token": ctx.links.token("a1"), "story_id": story_id}
        ),
        actor="public",
    )
    assert late.code == ErrorCode.INVALID_STATE
    await h.call(Endpoints.REJECT, RejectStory(story_id=story_id, reason="Ligner en reklame."))
    assert await status(h, story_id) == StoryStatus.REJECTED
    again = await h.fails(Endpoints.APPROVE, ApproveStory(story_id=story_id))
    assert again.code == ErrorCode.INVALID_STATE


# ---------------------------------------------------------------- publishing


async def test_a_scheduled_story_goes_out_once_at_its_time_with_its_pictures(
    social: Harness,
) -> None:
    h, ctx, page = social
    names = [await upload(h, photo(color=(i * 60, 90, 30)), f"up-{i}.jpg") for i in range(2)]
    story_id = await submitted(
        h,
        pictures=[{"upload": n, "alt": f"Billede {i}"} for i, n in enumerate(names)],
        people_consent=True,
        link="https://forening-a1.example/lektiecafe",
    )
    await h.call(Endpoints.APPROVE, ApproveStory(story_id=story_id))
    await h.call(Endpoints.SCHEDULE, ScheduleStory(story_id=story_id, at=NOW + timedelta(hours=2)))
    await publish_all(ctx)
    assert posts(page) == [] and await status(h, story_id) == StoryStatus.SCHEDULED
    h.clock.travel(timedelta(hours=2))
    await publish_all(ctx)
    await publish_all(ctx)
    [post] = posts(page)
    assert post["message"].startswith("Lektiecafé i Korskærparken\n\n")
    assert post["link"] == "https://forening-a1.example/lektiecafe"
    assert [p["alt_text"] for p in post["pictures"]] == ["Billede 0", "Billede 1"]
    for picture in post["pictures"]:
        assert not opened((page.dir / picture["file"]).read_bytes()).getexif()
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=story_id))
    assert detail.story.status == StoryStatus.PUBLISHED and detail.story.post_id == post["id"]
    [published] = h.emitted_of(StoryPublished)
    assert published.post_id == post["id"] and published.credit == "Forening a1"
    assert [p.alt for p in published.pictures] == ["Billede 0", "Billede 1"]
    public = await h.call(Endpoints.PUBLIC_STORIES, GetPublicStories(), actor=None)
    assert [s.id for s in public.items] == [story_id]


async def test_unscheduling_cancels_the_publish(social: Harness) -> None:
    h, ctx, page = social
    story_id = await submitted(h)
    await h.call(Endpoints.APPROVE, ApproveStory(story_id=story_id))
    await h.call(
        Endpoints.SCHEDULE, ScheduleStory(story_id=story_id, at=NOW + timedelta(minutes=5))
    )
    await h.call(Endpoints.UNSCHEDULE, UnscheduleStory(story_id=story_id))
    h.clock.travel(timedelta(hours=1))
    await publish_all(ctx)
    assert posts(page) == [] and await status(h, story_id) == StoryStatus.APPROVED


async def test_a_time_out_after_the_post_was_made_adopts_it_instead_of_posting_again(
    social: Harness,
) -> None:
    h, ctx, page = social
    page.faults = [page_fault(on="feed", action="timeout_after_create", delay=5)]
    story_id = await approved_and_scheduled(h)
    await publish_all(ctx)
    [post] = posts(page)
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=story_id))
    assert detail.story.status == StoryStatus.PUBLISHED and detail.story.post_id == post["id"]
    assert detail.attempts[-1].outcome == "adopted"
    assert len(h.emitted_of(StoryPublished)) == 1


async def test_facebooks_duplicate_refusal_adopts_the_first_post(social: Harness) -> None:
    h, ctx, page = social
    story_id = await approved_and_scheduled(h)
    # The post went out but the answer was lost, and the look-up missed it once: the next
    # feed call is refused as a duplicate, and the first post is adopted.
    page.faults = [
        page_fault(on="feed", action="timeout_after_create", delay=5, times=1),
        page_fault(on="published_posts", action="error", code=2, status=500, times=1),
    ]
    await publish_all(ctx)
    assert await status(h, story_id) == StoryStatus.UNCONFIRMED
    await h.call(Endpoints.RETRY, RetryStory(story_id=story_id))
    page.faults = [page_fault(on="published_posts", action="error", code=2, status=500, times=1)]
    await publish_all(ctx)
    [post] = posts(page)
    assert await status(h, story_id) == StoryStatus.UNCONFIRMED
    page.faults = []
    await h.call(Endpoints.RETRY, RetryStory(story_id=story_id))
    await publish_all(ctx)
    assert posts(page) == [post]
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=story_id))
    assert detail.story.status == StoryStatus.PUBLISHED and detail.story.post_id == post["id"]


async def test_an_unknown_outcome_that_cannot_be_looked_up_is_left_to_staff(
    social: Harness,
) -> None:
    h, ctx, page = social
    page.faults = [
        page_fault(on="feed", action="http_500"),
        page_fault(on="published_posts", action="timeout", delay=5),
    ]
    story_id = await approved_and_scheduled(h)
    await publish_all(ctx)
    assert await status(h, story_id) == StoryStatus.UNCONFIRMED
    parked = await h.call(Endpoints.UNCONFIRMED, ListUnconfirmed())
    assert [s.id for s in parked.items] == [story_id]
    assert "looking the post up failed too" in (parked.items[0].comment or "")
    [notice] = h.emitted_of(SocialNotice)
    assert notice.kind == NoticeKind.UNCONFIRMED and notice.story_ids == [story_id]
    # Staff looked at the Page and found it there after all.
    confirmed = await h.call(
        Endpoints.CONFIRM_PUBLISHED, ConfirmPublished(story_id=story_id, post_id=f"{PAGE_ID}_42")
    )
    assert confirmed.story.status == StoryStatus.PUBLISHED
    assert len(h.emitted_of(StoryPublished)) == 1


async def test_a_post_not_made_is_tried_again_and_never_twice(social: Harness) -> None:
    h, ctx, page = social
    page.faults = [page_fault(on="feed", action="http_500", times=1)]
    story_id = await approved_and_scheduled(h)
    await publish_all(ctx)
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=story_id))
    assert detail.story.status == StoryStatus.SCHEDULED and posts(page) == []
    h.clock.travel(timedelta(minutes=5))
    await publish_all(ctx)
    assert len(posts(page)) == 1 and await status(h, story_id) == StoryStatus.PUBLISHED


async def test_a_rate_limit_puts_the_publish_off_as_long_as_meta_says(social: Harness) -> None:
    h, ctx, page = social
    page.faults = [
        page_fault(
            on="feed",
            action="error",
            code=32,
            regain_minutes=20,
            times=1,
            message="(#32) Page request limit reached",
        )
    ]
    story_id = await approved_and_scheduled(h)
    await publish_all(ctx)
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=story_id))
    assert detail.story.status == StoryStatus.SCHEDULED
    assert "(#32)" in (detail.history[-1].detail or "")
    page.regain_minutes = 0
    h.clock.travel(timedelta(minutes=19))
    await publish_all(ctx)
    assert posts(page) == []
    h.clock.travel(timedelta(minutes=2))
    await publish_all(ctx)
    assert len(posts(page)) == 1


async def test_an_expired_token_pauses_publishing_until_the_token_works_again(
    social: Harness,
) -> None:
    h, ctx, page = social
    page.token_expired = True
    story_id = await approved_and_scheduled(h)
    await publish_all(ctx)
    assert await status(h, story_id) == StoryStatus.SCHEDULED
    state = await h.call(Endpoints.PUBLISHING, {})
    assert state.state == "paused" and "190" in (state.reason or "")
    [paused] = h.emitted_of(SocialNotice)
    assert paused.kind == NoticeKind.PUBLISHING_PAUSED
    # Nothing is tried while paused, and the staff are told once.
    h.clock.travel(timedelta(hours=1))
    await publish_all(ctx)
    assert len(h.emitted_of(SocialNotice)) == 1
    page.token_expired = False
    checked = await h.call(Endpoints.CHECK_TOKEN, CheckToken())
    assert checked.state == "ok"
    assert h.emitted_of(SocialNotice)[-1].kind == NoticeKind.PUBLISHING_RESUMED
    await publish_all(ctx)
    assert len(posts(page)) == 1 and await status(h, story_id) == StoryStatus.PUBLISHED


async def test_a_story_facebook_refuses_for_good_fails_with_metas_message(social: Harness) -> None:
    h, ctx, page = social
    page.faults = [
        page_fault(on="feed", action="error", code=100, message="(#100) Invalid parameter")
    ]
    story_id = await approved_and_scheduled(h)
    await publish_all(ctx)
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=story_id))
    assert detail.story.status == StoryStatus.FAILED
    assert "Facebook error 100" in (detail.story.comment or "")
    assert detail.attempts[-1].fbtrace_id
    assert h.emitted_of(SocialNotice)[-1].kind == NoticeKind.FAILED


async def test_a_publisher_that_died_during_the_feed_call_is_taken_over_with_a_look_up(
    social: Harness,
) -> None:
    h, ctx, page = social
    story_id = await approved_and_scheduled(h)
    publisher = Publisher(ctx)
    # The publisher claims the story and makes the feed call, then dies before it records
    # the post (the unit of work that would have is never run).
    original = publisher._published

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("killed")

    publisher._published = dies  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        await publisher.step()
    publisher._published = original  # type: ignore[method-assign]
    assert len(posts(page)) == 1 and await status(h, story_id) == StoryStatus.PUBLISHING
    # Within its lease nobody touches it; after it, the look-up finds the post.
    await publish_all(ctx)
    assert await status(h, story_id) == StoryStatus.PUBLISHING
    h.clock.travel(ctx.settings.publish_lease + timedelta(seconds=1))
    await publish_all(ctx)
    assert len(posts(page)) == 1
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=story_id))
    assert detail.story.status == StoryStatus.PUBLISHED
    assert [a.outcome for a in detail.attempts] == ["abandoned", "adopted"]


async def test_a_published_story_can_be_unpublished_from_the_page(social: Harness) -> None:
    h, ctx, page = social
    story_id = await approved_and_scheduled(h)
    await publish_all(ctx)
    gone = await h.call(Endpoints.UNPUBLISH, UnpublishStory(story_id=story_id))
    assert gone.story.status == StoryStatus.UNPUBLISHED
    assert posts(page) == [] and len(read_posts(page.dir, include_deleted=True)) == 1
    assert len(h.emitted_of(StoryUnpublished)) == 1
    public = await h.call(Endpoints.PUBLIC_STORIES, GetPublicStories(), actor=None)
    assert public.items == []


# ---------------------------------------------------------------- other sources


def meeting(public: bool = True) -> MeetingInfo:
    return MeetingInfo(
        meeting_id="m1",
        kind=MeetingKind.THEME_DAY,
        title="Temadag om ensomhed",
        starts_at=datetime(2027, 4, 8, 15, 0, tzinfo=UTC),
        ends_at=datetime(2027, 4, 8, 18, 0, tzinfo=UTC),
        place="Fredericia Bibliotek",
        public=public,
    )


async def test_a_public_meeting_suggests_a_post_once_and_its_cancellation_withdraws_it(
    social: Harness,
) -> None:
    h, _, _ = social
    scheduled = MeetingScheduled(meeting_id="m1", meeting=meeting())
    await h.deliver(scheduled, scheduled.model_copy(update={"event_id": scheduled.event_id}))
    await h.deliver(MeetingScheduled(meeting_id="m2", meeting=meeting(public=False)))
    queue = await h.call(Endpoints.REVIEW, GetReviewQueue())
    [suggested] = queue.items
    assert suggested.source == "meeting" and suggested.kind == StoryKind.UPCOMING_EVENT
    assert suggested.comment == "Er der kommende arrangementer? Fortæl om det!"
    detail = await h.call(Endpoints.SHOW, ShowStory(story_id=suggested.id))
    assert "8. april 2027 kl. 17.00 på Fredericia Bibliotek" in detail.versions[0].text
    assert detail.versions[0].link == "https://samskab.example/kalender/m1"
    await h.deliver(MeetingCancelled(meeting_id="m1", meeting=meeting()))
    assert await status(h, suggested.id) == StoryStatus.REJECTED


# ---------------------------------------------------------------- privacy


async def test_an_erased_ambassadors_stories_are_anonymised_and_their_posts_listed(
    social: Harness,
) -> None:
    h, ctx, _ = social
    name = await upload(h, photo(), "up-x.jpg")
    pending = await submitted(
        h, pictures=[{"upload": name, "alt": "Et billede"}], people_consent=True
    )
    out = await approved_and_scheduled(h, text="Om vores sommerlejr.")
    await publish_all(ctx)
    await h.deliver(Erased(ambassador_id="a1"))
    withdrawn = await h.call(Endpoints.SHOW, ShowStory(story_id=pending))
    assert withdrawn.story.status == StoryStatus.WITHDRAWN
    assert withdrawn.story.ambassador_id is None and "Korskærparken" not in json.dumps(
        withdrawn.model_dump(mode="json")
    )
    assert (await h.buckets.object_store(PICTURES_BUCKET)).objects == {}
    on_page = await h.call(Endpoints.SHOW, ShowStory(story_id=out))
    assert on_page.story.status == StoryStatus.PUBLISHED and on_page.story.ambassador_id is None
    notice = h.emitted_of(SocialNotice)[-1]
    assert notice.kind == NoticeKind.ERASED_PUBLISHED and notice.story_ids == [out]
    assert "a1@example.org" not in json.dumps(h.db.documents("stories"), default=str)
    assert await store.of_ambassador(h.service.reading(), "a1") == []


def page_fault(**fields: Any) -> Fault:
    return Fault.model_validate(fields)
