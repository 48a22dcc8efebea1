"""The services of samskab, listed once.

Everything that names the services is checked against this list by
``tests/unit/test_registry.py``: the embedded stack launches the built ones, ``samskab
health``, ``audit`` and ``dead-letters`` ask every built one, docker-compose has a container per
built service, the NATS accounts have a user per service, MongoDB a user per built one,
and each built service has its settings class and its ``create_app`` factory.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    # Built services run (``python -m services.<name>``); planned ones are named so that
    # health, NATS accounts and the CLI already know them.
    built: bool
    # Object Store buckets the service owns, and those of others it may read.
    buckets: tuple[str, ...] = ()
    reads_buckets: tuple[str, ...] = ()

    @property
    def stream(self) -> str:
        """The JetStream stream of its events, ``<name>.v1.>``."""
        return self.name.upper()

    @property
    def database(self) -> str:
        """Its own MongoDB database (SAMSKAB_MONGO_DATABASE overrides it for one service)."""
        return f"samskab_{self.name}"

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    @property
    def settings_class(self) -> str:
        """``module:Class`` of its settings (a built service's own options on the base)."""
        return f"services.{self.name}.settings:{self.name.capitalize()}Settings"

    @property
    def app_factory(self) -> str:
        """``module:function`` of its ``create_app(settings)``."""
        return f"services.{self.name}.app:create_app"


AMBASSADORS = ServiceEntry("ambassadors", built=True, buckets=("certificates",))
NETWORKS = ServiceEntry("networks", built=True)
EVENTS = ServiceEntry("events", built=True)
NEWSLETTER = ServiceEntry(
    "newsletter",
    built=True,
    buckets=("newsletter-images", "newsletter-uploads", "newsletter-archive"),
    # The welcome mail carries the ambassador's certificate; the digest shows the pictures
    # of published stories.
    reads_buckets=("certificates", "social-pictures"),
)
SOCIAL = ServiceEntry(
    "social",
    built=True,
    buckets=("social-pictures", "social-uploads"),
)

SERVICES: tuple[ServiceEntry, ...] = (AMBASSADORS, NETWORKS, EVENTS, NEWSLETTER, SOCIAL)

# What the operators' CLI may do with buckets: read certificates and the images beside a
# preview or archive (a news item's, and the published stories' pictures a digest shows),
# and upload a news item's image or a story's pictures for the owning service to take.
CLI_READS_BUCKETS = ("certificates", "newsletter-images", "social-pictures")
CLI_WRITES_BUCKETS = ("newsletter-uploads", "social-uploads")
# The website puts what an ambassador sends with a story (their pictures) into the social
# service's uploads bucket, which takes it from there; it reads no bucket.
WEB_WRITES_BUCKETS = ("social-uploads",)
BY_NAME = {entry.name: entry for entry in SERVICES}

# Entry points that run beside the services but own no data: the public website
# (``python -m web``), with a NATS user of its own and a container, no database.
WEB = "web"
GATEWAYS: tuple[str, ...] = (WEB,)


def names() -> list[str]:
    return [entry.name for entry in SERVICES]


def built() -> list[str]:
    """The services that run, in the order the stack starts them."""
    return [entry.name for entry in SERVICES if entry.built]


def entry(name: str) -> ServiceEntry:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no service {name!r}; one of {', '.join(names())}") from None
