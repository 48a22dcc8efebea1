"""What the newsletter's modules share: its settings, the runtime's handles, the read model
of ambassadors, the signer of the mails' links, and the signals between the parts that
queue mail and the parts that send it (delivery and the issue fan-out)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.newsletter.links import Links
from services.newsletter.sections import REGISTRY, SectionRegistry
from services.newsletter.settings import NewsletterSettings
from services.runtime.background import Loop
from services.runtime.known_ambassadors import KnownAmbassadors
from services.runtime.service import Service


@dataclass
class Context:
    service: Service
    settings: NewsletterSettings
    ambassadors: KnownAmbassadors
    links: Links
    sections: SectionRegistry = REGISTRY
    # Set by the parts that run them (see app.py).
    fanout: Loop | None = None
    delivery_notify: Callable[[], None] | None = None
    # What the delivery side caches and must drop when a subscriber or issue changes
    # under it (an unsubscribe, an erasure): see outgoing.py.
    forget_subscriber: Callable[[str], None] = lambda _subscriber_id: None
    forget_issues: Callable[[], None] = lambda: None

    def notify_delivery(self) -> None:
        """Mail was committed: the delivery worker looks at once, not at its next poll."""
        if self.delivery_notify is not None:
            self.delivery_notify()

    def wake_fanout(self) -> None:
        if self.fanout is not None:
            self.fanout.wake()
