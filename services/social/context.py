"""What the social service's handlers share: the runtime's handles, its settings, the
ambassadors it knows, the pictures bucket and the Graph API client."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.runtime.background import Loop
from services.runtime.known_ambassadors import KnownAmbassadors
from services.runtime.service import Service
from services.social.graph import GraphClient
from services.social.links import StoryLinks
from services.social.pictures import Pictures
from services.social.settings import SocialSettings


@dataclass
class Context:
    service: Service
    settings: SocialSettings
    # The runtime's read model of ambassadors (service.follow_ambassadors()).
    ambassadors: KnownAmbassadors
    pictures: Pictures
    links: StoryLinks
    # Made when the service starts, closed when it stops.
    graph_client: GraphClient | None = field(default=None)
    # The publisher's loop (woken when a story is scheduled or publishing resumes).
    publishing: Loop | None = field(default=None)

    @property
    def graph(self) -> GraphClient:
        if self.graph_client is None:
            raise RuntimeError("the service has not started")
        return self.graph_client

    def new_graph_client(self) -> GraphClient:
        s = self.settings
        return GraphClient(
            base_url=s.facebook_graph_url,
            version=s.facebook_graph_version,
            page_id=s.facebook_page_id.get_secret_value(),
            token=s.facebook_page_token.get_secret_value(),
            timeout_seconds=s.facebook_timeout_seconds,
        )
