"""The newsletter service: subscribers, news items, issues, and every mail the network
sends. Run with ``python -m services.newsletter``."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.ambassadors import Activated, Erased, ProfileUpdated, SignedUp, Withdrawn
from contracts.envelope import Event
from contracts.events import (
    InvitationCancelled,
    InvitationUpdated,
    Invited,
    MeetingCancelled,
    MeetingHeld,
    MeetingRescheduled,
    MeetingScheduled,
    Promoted,
    ReminderDue,
    Waitlisted,
)
from contracts.newsletter import (
    ARCHIVE_BUCKET,
    EVENTS,
    IMAGES_BUCKET,
    SERVICE,
    AddItem,
    Archive,
    ConfirmSubscription,
    DraftIssue,
    GetArchive,
    IssueRendering,
    IssueSummary,
    ItemPage,
    ItemView,
    ListItems,
    ListSubscribers,
    PreviewIssue,
    RemoveItem,
    SendIssue,
    Subjects,
    Subscribe,
    SubscribeResult,
    SubscriberPage,
    SubscriberView,
    TestSend,
    TestSendResult,
    Unsubscribe,
)
from services.newsletter import delivery, handlers, meetings, store
from services.runtime.clock import Clock
from services.runtime.mongo import Session
from services.runtime.service import Service
from services.runtime.settings import get_settings

settings = get_settings()
service = Service(
    SERVICE, produces=EVENTS, buckets=[IMAGES_BUCKET, ARCHIVE_BUCKET], settings=settings
)
ctx = handlers.Context(service, clock=Clock(settings.clock_file))
app = service.app


@service.on_startup
async def prepare() -> None:
    await store.ensure_indexes(service.db)
    await delivery.ensure_mail_indexes(service.db)
    await delivery.ensure_batch_indexes(service.db)
    await handlers.ensure_uploads_bucket(ctx)


@service.background
async def deliver() -> None:
    await handlers.delivery_worker(ctx)


@service.background
async def fan_out() -> None:
    await handlers.fanout_worker(ctx)


# ---------------------------------------------------------------- reactions


@service.on_event(SignedUp)
async def signed_up(event: SignedUp, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_signed_up(ctx, event, session)


@service.on_event(Activated)
async def activated(event: Activated, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_activated(ctx, event, session)


@service.on_event(ProfileUpdated)
async def profile_updated(event: ProfileUpdated, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_profile_updated(ctx, event, session)


@service.on_event(Withdrawn)
async def withdrawn(event: Withdrawn, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_withdrawn(ctx, event, session)


@service.on_event(Erased)
async def erased(event: Erased, session: Session) -> Sequence[Event]:
    return await handlers.ambassador_erased(ctx, event, session)


# ---------------------------------------------------------------- reactions to meetings
# One mail per invitee event (see meetings.py); the meeting events feed the digest.


@service.on_event(Invited)
async def invited(event: Invited, session: Session) -> Sequence[Event]:
    return await meetings.invitee_event(ctx, event, session)


@service.on_event(InvitationUpdated)
async def invitation_updated(event: InvitationUpdated, session: Session) -> Sequence[Event]:
    return await meetings.invitee_event(ctx, event, session)


@service.on_event(InvitationCancelled)
async def invitation_cancelled(event: InvitationCancelled, session: Session) -> Sequence[Event]:
    return await meetings.invitee_event(ctx, event, session)


@service.on_event(Waitlisted)
async def waitlisted(event: Waitlisted, session: Session) -> Sequence[Event]:
    return await meetings.invitee_event(ctx, event, session)


@service.on_event(Promoted)
async def promoted(event: Promoted, session: Session) -> Sequence[Event]:
    return await meetings.invitee_event(ctx, event, session)


@service.on_event(ReminderDue)
async def reminder_due(event: ReminderDue, session: Session) -> Sequence[Event]:
    return await meetings.invitee_event(ctx, event, session)


@service.on_event(MeetingScheduled)
async def meeting_scheduled(event: MeetingScheduled, session: Session) -> Sequence[Event]:
    return await meetings.meeting_scheduled(ctx, event, session)


@service.on_event(MeetingRescheduled)
async def meeting_rescheduled(event: MeetingRescheduled, session: Session) -> Sequence[Event]:
    return await meetings.meeting_rescheduled(ctx, event, session)


@service.on_event(MeetingCancelled)
async def meeting_cancelled(event: MeetingCancelled, session: Session) -> Sequence[Event]:
    return await meetings.meeting_cancelled(ctx, event, session)


@service.on_event(MeetingHeld)
async def meeting_held(event: MeetingHeld, session: Session) -> Sequence[Event]:
    return await meetings.meeting_held(ctx, event, session)


# ---------------------------------------------------------------- subscribers


@service.endpoint(Subjects.SUBSCRIBE, Subscribe)
async def subscribe(cmd: Subscribe) -> SubscribeResult:
    """Subscribe an address; it counts once the link in the confirmation mail is used."""
    return await handlers.subscribe(ctx, cmd)


@service.endpoint(Subjects.CONFIRM, ConfirmSubscription)
async def confirm(cmd: ConfirmSubscription) -> SubscriberView:
    """Confirm a subscription with the token from the confirmation mail."""
    return await handlers.confirm(ctx, cmd)


@service.endpoint(Subjects.UNSUBSCRIBE, Unsubscribe)
async def unsubscribe(cmd: Unsubscribe) -> SubscriberView:
    """End a subscription with the token every mail carries; final, and idempotent."""
    return await handlers.unsubscribe(ctx, cmd)


@service.endpoint(Subjects.SUBSCRIBERS, ListSubscribers)
async def subscribers(query: ListSubscribers) -> SubscriberPage:
    """Subscribers, optionally by status."""
    return await handlers.list_subscribers(ctx, query)


# ---------------------------------------------------------------- news items


@service.endpoint(Subjects.ITEM_ADD, AddItem)
async def item_add(cmd: AddItem) -> ItemView:
    """Add a news item for the next issue (the image is taken from the uploads bucket)."""
    return await handlers.add_item(ctx, cmd)


@service.endpoint(Subjects.ITEM_LIST, ListItems)
async def item_list(query: ListItems) -> ItemPage:
    """News items, oldest first."""
    return await handlers.list_items(ctx, query)


@service.endpoint(Subjects.ITEM_REMOVE, RemoveItem)
async def item_remove(cmd: RemoveItem) -> ItemView:
    """Remove a news item that was not sent in an issue."""
    return await handlers.remove_item(ctx, cmd)


# ---------------------------------------------------------------- issues


@service.endpoint(Subjects.DRAFT, DraftIssue)
async def draft(cmd: DraftIssue) -> IssueSummary:
    """Assemble an issue from the unused items and the sections since a date."""
    return await handlers.draft(ctx, cmd)


@service.endpoint(Subjects.PREVIEW, PreviewIssue)
async def preview(query: PreviewIssue) -> IssueRendering:
    """An issue's web version (HTML and text), as the archive will show it."""
    return await handlers.preview(ctx, query)


@service.endpoint(Subjects.TEST_SEND, TestSend)
async def test_send(cmd: TestSend) -> TestSendResult:
    """Mail one copy of an issue to an address (no unsubscribe link: not a subscriber)."""
    return await handlers.test_send(ctx, cmd)


@service.endpoint(Subjects.SEND, SendIssue)
async def send(cmd: SendIssue) -> IssueSummary:
    """Send an issue to every confirmed subscriber; resumes after a crash."""
    return await handlers.send(ctx, cmd)


@service.endpoint(Subjects.ARCHIVE, GetArchive)
async def archive(query: GetArchive) -> Archive:
    """Sent issues, and one issue's public web version when a number is given."""
    return await handlers.archive(ctx, query)
