"""How subscribers, items and issues are shown in replies."""

from __future__ import annotations

from contracts.newsletter import ImageView, IssueSummary, ItemView, SubscriberView
from services.newsletter.domain import Issue, Item, Subscriber


def subscriber_view(s: Subscriber) -> SubscriberView:
    return SubscriberView(
        id=s.id,
        status=s.status,
        source=s.source,
        email=s.address,
        name=s.name,
        ambassador_id=s.ambassador_id,
        hard_bounces=s.hard_bounces,
        created_at=s.created_at,
        confirmed_at=s.confirmed_at,
        unsubscribed_at=s.unsubscribed_at,
    )


def item_view(item: Item) -> ItemView:
    image = item.image
    return ItemView(
        id=item.id,
        title=item.title,
        body=item.body,
        link=item.link,
        image=ImageView(**image.model_dump()) if image else None,
        ambassador_id=item.ambassador_id,
        ambassador_name=item.ambassador_name,
        created_at=item.created_at,
        used_in_issue=item.used_in_issue,
    )


def issue_summary(issue: Issue) -> IssueSummary:
    return IssueSummary(
        id=issue.id,
        number=issue.number,
        state=issue.state,
        title=issue.title,
        since=issue.since,
        until=issue.until,
        items=len(issue.items),
        sections=issue.section_counts,
        created_at=issue.created_at,
        sent_at=issue.sent_at,
        recipients=issue.recipients,
    )
