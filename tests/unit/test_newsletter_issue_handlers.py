"""The newsletter's items and issues (add, list and remove items; draft, preview, test-send,
send and archive issues; the fan-out), each run by the kit the way the runtime runs it, on a
database and Object Store buckets in memory."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
from PIL import Image

from contracts import newsletter as contract
from contracts.ambassadors import (
    Activated,
    CertificateRef,
    Erased,
    Kind,
    Withdrawn,
    certificate_object_name,
)
from contracts.errors import ErrorCode
from contracts.events import MeetingInfo, MeetingKind, MeetingScheduled
from contracts.jobs import JobState, ShowJob
from contracts.networks import NetworkClosed, NetworkFormed, NetworkInfo, NetworkKind, Outcome
from contracts.newsletter import (
    ARCHIVE_BUCKET,
    IMAGES_BUCKET,
    UPLOADS_BUCKET,
    AddItem,
    ConfirmSubscription,
    DraftIssue,
    Endpoints,
    GetArchive,
    IssueSent,
    IssueState,
    ListItems,
    PreviewIssue,
    RemoveItem,
    SendIssue,
    Subscribe,
    Unsubscribe,
)
from services.newsletter import delivery, domain, fanout
from services.newsletter.app import build
from services.newsletter.context import Context
from services.newsletter.delivery import MailRecord
from services.newsletter.outgoing import Outgoing
from services.runtime import testing
from services.runtime.testing import ServiceHarness
from tests.support.polling import eventually
from tests.unit.newsletter_support import (
    NOW,
    PUBLIC_URL,
    Service,
    body,
    parsed,
    settings,
    subscribe,
)


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    yield await ServiceHarness.start(build, settings(), clock=testing.TestClock(NOW))


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


async def upload(h: ServiceHarness, name: str, data: bytes) -> None:
    """What the CLI does before it adds an item with an image."""
    await (await h.buckets.object_store(UPLOADS_BUCKET)).put(name, data)


def objects(h: ServiceHarness, bucket: str) -> list[str]:
    found = h.buckets.buckets.get(bucket)
    return sorted(found.objects) if found is not None else []


def item(**changes: Any) -> AddItem:
    return AddItem.model_validate({"title": "Ny café", "body": "Kom forbi til kaffe.", **changes})


def activated(
    ambassador_id: str = "a1", *, name: str = "Anna Hansen", public: bool = True, **changes: Any
) -> Activated:
    fields: dict[str, Any] = {
        "ambassador_id": ambassador_id,
        "name": name,
        "email": f"{ambassador_id}@example.org",
        "kind": Kind.CITIZEN,
        "public": public,
        "themes": [3],
        "certificate": CertificateRef(
            number="FRC-2027-000001",
            verification_code="ABCD-EFGH",
            bucket="certificates",
            object_name=certificate_object_name(ambassador_id, "FRC-2027-000001"),
        ),
        "occurred_at": NOW - timedelta(days=1),
        **changes,
    }
    return Activated(**fields)


async def drafted(h: ServiceHarness, **request: Any) -> str:
    return (await h.call(Endpoints.DRAFT, DraftIssue.model_validate(request))).id


async def confirmed_subscriber(h: ServiceHarness, ctx: Context, address: str) -> str:
    result = await subscribe(h, Subscribe(email=address))
    [mail] = [m for m in h.db.documents("mails") if m["subscriber_id"] == result.id]
    token = ctx.links.resolve(mail["context"])["token"]
    await h.call(Endpoints.CONFIRM, ConfirmSubscription(token=token))
    return result.id


async def job_finished(h: ServiceHarness, job_id: str) -> bool:
    return any(j["_id"] == job_id and j["state"] != "running" for j in h.db.documents("jobs"))


# ---------------------------------------------------------------- items


async def test_an_item_with_an_image_keeps_a_clean_copy_and_the_upload_is_gone(
    service: Service,
) -> None:
    h, _ = service
    await upload(h, "upload-1.png", png(64, 48))
    added = await h.call(Endpoints.ITEM_ADD, item(image_object="upload-1.png"))
    assert added.title == "Ny café" and added.used_in_issue is None
    assert added.image is not None
    assert (added.image.bucket, added.image.width, added.image.height) == (IMAGES_BUCKET, 64, 48)
    assert added.image.content_type.startswith("image/")
    assert objects(h, UPLOADS_BUCKET) == []
    assert objects(h, IMAGES_BUCKET) == [added.image.object_name]
    assert added.image.object_name.startswith(added.id)
    [stored] = h.db.documents("items")
    assert stored["_id"] == added.id and stored["image"]["object_name"] == added.image.object_name
    [record] = h.audit_trail()
    assert (record["command"], record["targets"], record["outcome"]) == (
        "newsletter.cmd.item.add",
        [added.id],
        "ok",
    )


async def test_an_item_names_an_active_ambassador_only_if_they_are_listed_publicly(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(
        activated("a1", name="Anna Hansen", public=True),
        activated(
            "a2", name="Bo Berg", public=True, kind=Kind.ASSOCIATION, organisation="Foreningen X"
        ),
        activated("a3", name="Carl Dam", public=False),
    )
    named = [
        (await h.call(Endpoints.ITEM_ADD, item(ambassador_id=a))).ambassador_name
        for a in ("a1", "a2", "a3")
    ]
    assert named == ["Anna Hansen", "Foreningen X", None]


async def test_an_item_about_someone_who_is_no_active_ambassador_is_refused_before_the_upload(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(activated("a2"), Withdrawn(ambassador_id="a2", occurred_at=NOW))
    await upload(h, "upload-1.png", png())
    for nobody in ("a9", "a2"):  # never known; withdrawn
        error = await h.fails(
            Endpoints.ITEM_ADD, item(ambassador_id=nobody, image_object="upload-1.png")
        )
        assert error.code == ErrorCode.NOT_FOUND
        assert [d.field for d in error.error.details] == ["ambassador_id"]
    # A typo costs no upload.
    assert objects(h, UPLOADS_BUCKET) == ["upload-1.png"]
    assert h.db.documents("items") == [] and objects(h, IMAGES_BUCKET) == []
    assert [(r["targets"], r["outcome"]) for r in h.audit_trail()] == [([], "not_found")] * 2


@pytest.mark.parametrize(
    ("uploaded", "message"),
    [(b"GIF89a this is no image at all", "cannot be used"), (None, "no such upload")],
    ids=["not an image", "no upload"],
)
async def test_an_upload_that_cannot_be_used_is_refused_and_leaves_nothing_behind(
    service: Service, uploaded: bytes | None, message: str
) -> None:
    h, _ = service
    if uploaded is not None:
        await upload(h, "upload-1.png", uploaded)
    error = await h.fails(Endpoints.ITEM_ADD, item(image_object="upload-1.png"))
    assert error.code == ErrorCode.VALIDATION_FAILED and message in error.error.message
    assert [d.field for d in error.error.details] == ["image_object"]
    assert objects(h, UPLOADS_BUCKET) == [] and objects(h, IMAGES_BUCKET) == []
    assert h.db.documents("items") == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"title": "Ny café", "body": "Tekst", "link": "javascript:alert(1)"}, "link"),
        ({"title": "   ", "body": "Tekst"}, "title"),
        ({"title": "Ny café", "body": "b" * 5001}, "body"),
    ],
)
async def test_a_bad_item_is_refused_with_the_field_and_changes_nothing(
    service: Service, request_: dict[str, str], field: str
) -> None:
    h, _ = service
    error = await h.fails(Endpoints.ITEM_ADD, request_)
    assert error.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in error.error.details] == [field]
    assert h.db.documents("items") == []


async def test_items_are_listed_oldest_first_and_the_unused_ones_apart(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, _ = service
    first = await h.call(Endpoints.ITEM_ADD, item(title="Første"))
    h.clock.travel(timedelta(minutes=1))
    await drafted(h)
    await h.call(Endpoints.SEND, SendIssue(issue_id=h.db.documents("issues")[0]["_id"]))
    h.clock.travel(timedelta(minutes=1))
    second = await h.call(Endpoints.ITEM_ADD, item(title="Anden"))
    every = await h.call(Endpoints.ITEM_LIST, ListItems())
    assert every.total == 2 and [i.id for i in every.items] == [first.id, second.id]
    assert every.items[0].used_in_issue is not None
    unused = await h.call(Endpoints.ITEM_LIST, ListItems(unused=True))
    assert unused.total == 1 and [i.id for i in unused.items] == [second.id]
    paged = await h.call(Endpoints.ITEM_LIST, ListItems(limit=1, offset=1))
    assert [i.id for i in paged.items] == [second.id]


async def test_removing_an_item_deletes_its_image_but_a_sent_item_stays(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, _ = service
    await upload(h, "upload-1.png", png())
    added = await h.call(Endpoints.ITEM_ADD, item(image_object="upload-1.png"))
    removed = await h.call(Endpoints.ITEM_REMOVE, RemoveItem(item_id=added.id))
    assert removed.id == added.id
    assert h.db.documents("items") == [] and objects(h, IMAGES_BUCKET) == []
    missing = await h.fails(Endpoints.ITEM_REMOVE, RemoveItem(item_id=added.id))
    assert missing.code == ErrorCode.NOT_FOUND
    sent = await h.call(Endpoints.ITEM_ADD, item(title="Sendt"))
    await h.call(Endpoints.SEND, SendIssue(issue_id=await drafted(h)))
    stays = await h.fails(Endpoints.ITEM_REMOVE, RemoveItem(item_id=sent.id))
    assert stays.code == ErrorCode.INVALID_STATE
    assert [d["_id"] for d in h.db.documents("items")] == [sent.id]
    removals = [r for r in h.audit_trail() if r["command"] == "newsletter.cmd.item.remove"]
    assert [(r["targets"], r["outcome"]) for r in removals] == [
        ([added.id], "ok"),
        ([added.id], "not_found"),
        ([sent.id], "invalid_state"),
    ]


# ---------------------------------------------------------------- drafts and previews


async def test_a_draft_gathers_the_unused_items_and_the_sections_since_a_date(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(
        activated("a1", public=True),
        activated("a2", name="Skjult", public=False),
        MeetingScheduled(
            meeting_id="m-1",
            meeting=MeetingInfo(
                meeting_id="m-1",
                kind=MeetingKind.THEME_DAY,
                title="Temadag om ensomhed",
                starts_at=NOW + timedelta(days=30),
                ends_at=NOW + timedelta(days=30, hours=3),
                public=True,
            ),
        ),
    )
    await h.call(Endpoints.ITEM_ADD, item())
    summary = await h.call(Endpoints.DRAFT, DraftIssue(since=date(2027, 1, 1), intro="Hej alle"))
    assert summary.state == IssueState.DRAFT and summary.number == 1
    assert summary.title == "Nyhedsbrev, januar 2027" and summary.items == 1
    assert summary.sections == {
        "new_ambassadors": 1,
        "coming_up": 1,
        "recently_held": 0,
        "new_networks": 0,
        "results": 0,
        "stories": 0,
    }
    assert summary.since == domain.start_of_day(date(2027, 1, 1)) and summary.until == NOW
    [stored] = h.db.documents("issues")
    assert stored["_id"] == summary.id and stored["intro"] == "Hej alle"
    # Ambassadors who joined before the period are not new in it.
    later = await h.call(Endpoints.DRAFT, DraftIssue(since=date(2027, 1, 15), title="Kort"))
    assert later.sections["new_ambassadors"] == 0 and later.title == "Kort"


async def test_a_draft_with_nothing_to_tell_or_a_period_in_the_future_stores_nothing(
    service: Service,
) -> None:
    h, _ = service
    empty = await h.fails(Endpoints.DRAFT, DraftIssue())
    assert empty.code == ErrorCode.INVALID_STATE
    await h.call(Endpoints.ITEM_ADD, item())
    backwards = await h.fails(Endpoints.DRAFT, DraftIssue(since=date(2027, 2, 1)))
    assert backwards.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in backwards.error.details] == ["since"]
    assert h.db.documents("issues") == []
    outcomes = [(r["command"], r["outcome"]) for r in h.audit_trail()]
    assert outcomes == [
        ("newsletter.cmd.draft", "invalid_state"),
        ("newsletter.cmd.item.add", "ok"),
        ("newsletter.cmd.draft", "validation_failed"),
    ]


async def test_the_preview_is_the_public_web_version(service: Service) -> None:
    h, _ = service
    await h.deliver(activated("a1", public=True))
    await upload(h, "upload-1.png", png())
    added = await h.call(Endpoints.ITEM_ADD, item(image_object="upload-1.png", ambassador_id="a1"))
    issue_id = await drafted(h)
    shown = await h.call(Endpoints.PREVIEW, PreviewIssue(issue_id=issue_id))
    assert shown.id == issue_id and shown.state == IssueState.DRAFT
    assert shown.subject == "Nyhedsbrev, januar 2027"
    assert "Ny café" in shown.html and "Ny café" in shown.text
    assert "Anna Hansen" in shown.html  # listed publicly
    assert added.image is not None
    assert [i.path for i in shown.images] == [f"images/{added.image.object_name}"]
    assert "/newsletter/unsubscribe/" not in shown.html + shown.text
    missing = await h.fails(Endpoints.PREVIEW, PreviewIssue(issue_id="nope"))
    assert missing.code == ErrorCode.NOT_FOUND
    assert h.audit_trail()[-1]["command"] == "newsletter.cmd.draft"  # a query: not audited


async def test_the_preview_of_a_draft_whose_item_was_removed_says_it_is_out_of_date(
    service: Service,
) -> None:
    h, _ = service
    await upload(h, "upload-1.png", png())
    added = await h.call(Endpoints.ITEM_ADD, item(image_object="upload-1.png"))
    issue_id = await drafted(h)
    await h.call(Endpoints.ITEM_REMOVE, RemoveItem(item_id=added.id))
    error = await h.fails(Endpoints.PREVIEW, PreviewIssue(issue_id=issue_id))
    assert error.code == ErrorCode.INVALID_STATE


async def test_a_test_send_queues_one_copy_for_that_address_without_an_unsubscribe_link(
    service: Service,
) -> None:
    h, ctx = service
    await h.call(Endpoints.ITEM_ADD, item())
    issue_id = await drafted(h)
    first = await h.call(
        Endpoints.TEST_SEND, contract.TestSend(issue_id=issue_id, to="Redaktion@Example.org")
    )
    second = await h.call(
        Endpoints.TEST_SEND, contract.TestSend(issue_id=issue_id, to="redaktion@example.org")
    )
    # The domain is case-insensitive, the local part is the mailbox's own business.
    assert first.to == "Redaktion@example.org" and first.mail_id != second.mail_id
    test_mails = [m for m in h.db.documents("mails") if m["kind"] == "test_issue"]
    assert sorted(m["_id"] for m in test_mails) == sorted([first.mail_id, second.mail_id])
    for mail in test_mails:
        # Not one of the issue's recipients.
        assert mail["issue_id"] is None and mail["context"] == {"issue_id": issue_id}
    [second_mail] = [m for m in test_mails if m["_id"] == second.mail_id]
    materialized = await Outgoing(ctx).materialize(MailRecord.from_document(second_mail))
    assert materialized is not None and materialized.recipients == ["redaktion@example.org"]
    message = parsed(materialized.message)
    assert "Ny café" in body(message, "html") and message["List-Unsubscribe"] is None
    [issue] = h.db.documents("issues")
    assert issue["state"] == IssueState.DRAFT
    missing = await h.fails(
        Endpoints.TEST_SEND, contract.TestSend(issue_id="nope", to="r@example.org")
    )
    assert missing.code == ErrorCode.NOT_FOUND
    assert [
        r["targets"] for r in h.audit_trail() if r["command"] == "newsletter.cmd.test_send"
    ] == [
        [issue_id],
        [issue_id],
        ["nope"],
    ]


# ---------------------------------------------------------------- sending


async def test_sending_numbers_the_issue_and_answers_once_every_confirmed_subscriber_has_it(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, ctx = service
    await h.deliver(activated("a1"))  # an ambassador: subscribed
    direct = await confirmed_subscriber(h, ctx, "laeser@example.org")
    await subscribe(h, Subscribe(email="venter@example.org"))  # pending
    gone = await confirmed_subscriber(h, ctx, "gone@example.org")
    await h.call(Endpoints.UNSUBSCRIBE, Unsubscribe(token=ctx.links.unsubscribe_token(gone)))
    added = await h.call(Endpoints.ITEM_ADD, item())
    issue_id = await drafted(h)
    # The service's fan-out loop (the harness starts no background work): send wakes it,
    # and the send's job is done once it has queued the issue for everyone.
    assert ctx.fanout is not None
    ctx.fanout.start()
    try:
        job = await h.call(Endpoints.SEND, SendIssue(issue_id=issue_id))
        assert (job.state, job.done, job.total, job.unit) == (JobState.RUNNING, 0, 2, "subscribers")
        await eventually(lambda: job_finished(h, job.id), "the send's job", timeout=2)
    finally:
        await ctx.fanout.stop()
    sent = await h.report(Endpoints.SEND, job)
    assert (sent.id, sent.state, sent.number, sent.sent_at) == (issue_id, IssueState.SENT, 1, NOW)
    shown = await h.call(Endpoints.JOB, ShowJob(job_id=job.id))
    assert (shown.state, shown.done, shown.total) == (JobState.DONE, 2, 2)
    assert sent.recipients == 2
    [announced] = h.emitted_of(IssueSent)
    assert (announced.issue_id, announced.number, announced.recipients) == (issue_id, 1, 2)
    assert announced.archive_object == "issue-0001.html"
    assert objects(h, ARCHIVE_BUCKET) == ["issue-0001.html"]
    [stored_item] = h.db.documents("items")
    assert stored_item["_id"] == added.id and stored_item["used_in_issue"] == issue_id
    # The issue's mails are queued as bulk batches, to confirmed subscribers only.
    queued = [m for b in h.db.documents("mail_batches") for m in b["mails"]]
    ambassador = next(s["_id"] for s in h.db.documents("subscribers") if s["ambassador_id"])
    assert sorted(m["subscriber_id"] for m in queued) == sorted([ambassador, direct])
    assert sorted(m["to_address"] for m in queued) == ["a1@example.org", "laeser@example.org"]
    [record] = [r for r in h.audit_trail() if r["command"] == "newsletter.cmd.send"]
    assert (record["targets"], record["outcome"]) == ([issue_id], "ok")


async def test_send_answers_still_sending_and_a_second_send_starts_nothing_new(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, ctx = service
    await confirmed_subscriber(h, ctx, "laeser@example.org")
    await h.call(Endpoints.ITEM_ADD, item())
    issue_id = await drafted(h)
    first = await h.call(Endpoints.SEND, SendIssue(issue_id=issue_id))
    assert first.state == JobState.RUNNING and first.done == 0
    [sending] = h.db.documents("issues")
    assert sending["state"] == IssueState.SENDING and sending["number"] == 1
    again = await h.call(Endpoints.SEND, SendIssue(issue_id=issue_id))
    assert again.id == first.id and again.state == JobState.RUNNING
    done = await fanout.fanout(ctx, issue_id)
    assert done is not None and done.state == IssueState.SENT and done.recipients == 1
    reported = await h.report(Endpoints.SEND, first)
    assert reported.state == IssueState.SENT and reported.recipients == 1
    # Resumed after a crash: nothing is queued or announced twice.
    assert await fanout.fanout(ctx, issue_id) == done
    assert len(h.emitted_of(IssueSent)) == 1
    assert sum(len(b["mails"]) for b in h.db.documents("mail_batches")) == 1
    sent_already = await h.fails(Endpoints.SEND, SendIssue(issue_id=issue_id))
    assert sent_already.code == ErrorCode.INVALID_STATE
    missing = await h.fails(Endpoints.SEND, SendIssue(issue_id="nope"))
    assert missing.code == ErrorCode.NOT_FOUND


async def test_a_draft_that_went_out_of_date_cannot_be_sent_and_takes_no_number(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, _ = service
    added = await h.call(Endpoints.ITEM_ADD, item())
    first, second = await drafted(h), await drafted(h)
    await h.call(Endpoints.SEND, SendIssue(issue_id=first))
    stale = await h.fails(Endpoints.SEND, SendIssue(issue_id=second))
    assert stale.code == ErrorCode.INVALID_STATE and "out of date" in stale.error.message
    another = await h.call(Endpoints.ITEM_ADD, item(title="Endnu en"))
    third = await drafted(h)
    await h.call(Endpoints.ITEM_REMOVE, RemoveItem(item_id=another.id))
    removed = await h.fails(Endpoints.SEND, SendIssue(issue_id=third))
    assert removed.code == ErrorCode.INVALID_STATE
    states = {d["_id"]: (d["state"], d["number"]) for d in h.db.documents("issues")}
    assert states[second][0] == states[third][0] == IssueState.DRAFT
    [counter] = h.db.documents("counters")
    assert counter["value"] == 1  # only the issue that went out has a number
    assert added.id in {i["_id"] for i in h.db.documents("items")}


async def test_an_issue_mail_carries_the_subscribers_own_unsubscribe_link(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, ctx = service
    subscriber_id = await confirmed_subscriber(h, ctx, "laeser@example.org")
    await h.call(Endpoints.ITEM_ADD, item())
    issue_id = await drafted(h)
    await h.call(Endpoints.SEND, SendIssue(issue_id=issue_id))
    await fanout.fanout(ctx, issue_id)
    [queued] = [m for b in h.db.documents("mail_batches") for m in b["mails"]]
    record = delivery.new_mail(
        kind="issue",
        dedupe_key=queued["dedupe_key"],
        to_address=queued["to_address"],
        subscriber_id=subscriber_id,
        issue_id=issue_id,
        message_id_domain=settings().mail_message_id_domain,
        now=NOW,
    )
    mail = await Outgoing(ctx).materialize(record)
    assert mail is not None
    message = parsed(mail.message)
    assert message["Message-ID"] == queued["message_id"]
    url = domain.unsubscribe_url(PUBLIC_URL, ctx.links.unsubscribe_token(subscriber_id))
    assert f"<{url}>" in message["List-Unsubscribe"] and url in body(message, "html")
    assert "Ny café" in body(message, "html")


# ---------------------------------------------------------------- the archive


async def test_the_archive_lists_sent_issues_and_shows_one_of_them(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, ctx = service
    await h.call(Endpoints.ITEM_ADD, item())
    draft_only = await drafted(h)
    nothing = await h.call(Endpoints.ARCHIVE, GetArchive())
    assert nothing.issues == [] and nothing.issue is None
    await h.call(Endpoints.SEND, SendIssue(issue_id=draft_only))
    await fanout.fanout(ctx, draft_only)
    archive = await h.call(Endpoints.ARCHIVE, GetArchive())
    assert [(e.number, e.archive_object, e.sent_at) for e in archive.issues] == [
        (1, "issue-0001.html", NOW)
    ]
    one = await h.call(Endpoints.ARCHIVE, GetArchive(number=1))
    assert one.issue is not None and one.issue.state == IssueState.SENT
    assert "Ny café" in one.issue.html
    missing = await h.fails(Endpoints.ARCHIVE, GetArchive(number=9))
    assert missing.code == ErrorCode.NOT_FOUND


async def test_erasure_takes_the_ambassador_out_of_items_issues_and_the_archived_web_version(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, ctx = service
    await h.deliver(activated("a1", name="Anna Hansen"), activated("a2", name="Bo Berg"))
    await h.call(Endpoints.ITEM_ADD, item(ambassador_id="a1"))
    issue_id = await drafted(h)
    await h.call(Endpoints.SEND, SendIssue(issue_id=issue_id))
    await fanout.fanout(ctx, issue_id)
    archived = h.buckets.buckets[ARCHIVE_BUCKET].objects["issue-0001.html"].decode()
    assert "Anna Hansen" in archived and "Bo Berg" in archived
    forgotten: list[str] = []
    ctx.forget_issues = lambda: forgotten.append("issues")
    await h.deliver(Erased(ambassador_id="a1", occurred_at=NOW))
    [stored_item] = h.db.documents("items")
    assert stored_item["ambassador_id"] == "a1" and stored_item["ambassador_name"] is None
    [issue] = h.db.documents("issues")
    assert "Anna Hansen" not in repr(issue) and "Bo Berg" in repr(issue)
    assert issue["archive_stale"] is True
    assert forgotten == ["issues"]  # the delivery side drops its rendered copy
    # The fan-out loop rewrites the stored web version.
    await fanout.step(ctx)
    archived = h.buckets.buckets[ARCHIVE_BUCKET].objects["issue-0001.html"].decode()
    assert "Anna Hansen" not in archived and "Bo Berg" in archived
    assert "archive_stale" not in h.db.documents("issues")[0]


async def test_a_command_without_an_actor_is_refused_and_changes_nothing(
    service: Service,
) -> None:
    h, _ = service
    await upload(h, "upload-1.png", png())
    refused = await h.fails(Endpoints.ITEM_ADD, item(image_object="upload-1.png"), actor=None)
    assert refused.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in refused.error.details] == ["Samskab-Actor"]
    assert objects(h, UPLOADS_BUCKET) == ["upload-1.png"] and h.db.documents("items") == []
    assert (
        await h.fails(Endpoints.DRAFT, DraftIssue(), actor=None)
    ).code == ErrorCode.VALIDATION_FAILED
    assert h.db.documents("issues") == [] and h.audit_trail() == []


async def test_new_networks_and_their_results_have_sections_of_their_own(service: Service) -> None:
    h, _ = service
    info = NetworkInfo(
        network_id="n-1", kind=NetworkKind.ACTION, title="Vinterværested",
        challenge_title="Et varmt sted om vinteren",
    )  # fmt: skip
    standing = NetworkInfo(network_id="n-2", kind=NetworkKind.STAFF, title="Akutteam")
    yesterday = NOW - timedelta(days=1)
    await h.deliver(
        NetworkFormed(network_id="n-1", network=info, invited=6, occurred_at=yesterday),
        NetworkFormed(network_id="n-2", network=standing, invited=30, occurred_at=yesterday),
        NetworkClosed(
            network_id="n-1", network=info, outcome=Outcome.INITIATIVE,
            summary="Værestedet holder åbent hver aften i januar og februar.",
            initiative_title="Varmestuen", closed_on=NOW.date(),
            organisations=["Kirkens Korshær", "Fredericia Kommune"], occurred_at=yesterday,
        ),
    )  # fmt: skip
    await h.call(Endpoints.ITEM_ADD, item())
    summary = await h.call(Endpoints.DRAFT, DraftIssue(since=date(2027, 1, 1), intro="Hej"))
    # A standing network is no new action network.
    assert summary.sections["new_networks"] == 1 and summary.sections["results"] == 1
    shown = await h.call(Endpoints.PREVIEW, PreviewIssue(issue_id=summary.id))
    for part in (shown.html, shown.text):
        assert "Nye handlingsnetværk" in part and "Vinterværested" in part
        assert "Resultater" in part and "Varmestuen" in part and "Nyt initiativ" in part
        assert "Kirkens Korshær" in part and "Akutteam" not in part
