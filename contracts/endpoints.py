"""Commands and queries, each declared once: its subject, its request and its reply model.

A service registers a handler against the declaration (``Service.command`` / ``.query``);
callers use the same declaration with the typed client (``ServiceClient.call``), so a
subject, a request shape and a reply shape cannot drift apart between the two sides.

Every command also carries who asked (the actor) in the ``Samskab-Actor`` header: the CLI
sends the operator, the web gateway the signed-in staff member or ``public``, a service
``service:<name>``. The service keeps an audit record of each command under that actor.

An endpoint is ``public`` when anyone may use it (a self sign-up, a link in a mail, the
directory); every other one is a staff power, on a subject of its own, which only the
operators' NATS user may publish (the web gateway's user will be allowed the public ones
only). A staff power is never a flag in a public request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

ACTOR_HEADER = "Samskab-Actor"
# "public", or a kind and a name: "operator:anna", "staff:jens@fredericia.dk", "service:events".
ACTOR_PATTERN = re.compile(r"^(public|(operator|staff|service):[A-Za-z0-9._@+-]{1,64})$")
ACTOR_KINDS = ("operator", "staff", "service")
ACTOR_MAX = 80


def valid_actor(actor: str | None) -> bool:
    return actor is not None and ACTOR_PATTERN.fullmatch(actor) is not None


def actor_for(kind: str, name: str) -> str:
    """An actor from a kind and a free-form name (an OS user, a login): characters the
    pattern does not allow become ``_``, so any name gives a valid actor."""
    if kind not in ACTOR_KINDS:
        raise ValueError(f"actor kind must be one of {', '.join(ACTOR_KINDS)}")
    cleaned = re.sub(r"[^A-Za-z0-9._@+-]", "_", name.strip())[:64] or "unknown"
    return f"{kind}:{cleaned}"


@dataclass(frozen=True)
class Endpoint(Generic[Req, Rep]):
    """One command (``<service>.cmd.<name>``) or query (``<service>.query.<name>``, and
    ``<service>.health``, which every service answers)."""

    subject: str
    request: type[Req]
    reply: type[Rep]
    description: str = ""
    public: bool = False

    def __post_init__(self) -> None:
        parts = self.subject.split(".")
        if parts[1:] != ["health"] and (len(parts) < 3 or parts[1] not in ("cmd", "query")):
            raise ValueError(f"{self.subject}: not <service>.cmd.<name> or <service>.query.<name>")

    @property
    def service(self) -> str:
        return self.subject.split(".", 1)[0]

    @property
    def name(self) -> str:
        """``sign_up`` for ``ambassadors.cmd.sign_up``."""
        return self.subject.split(".", 2)[-1]

    @property
    def changes_state(self) -> bool:
        """Commands change state: they need an actor and leave an audit record."""
        return self.subject.split(".")[1] == "cmd"


def command(
    subject: str,
    request: type[Req],
    reply: type[Rep],
    description: str = "",
    *,
    public: bool = False,
) -> Endpoint[Req, Rep]:
    endpoint = Endpoint(subject, request, reply, description, public)
    if not endpoint.changes_state:
        raise ValueError(f"{subject} is not a command subject")
    return endpoint


def query(
    subject: str,
    request: type[Req],
    reply: type[Rep],
    description: str = "",
    *,
    public: bool = False,
) -> Endpoint[Req, Rep]:
    endpoint = Endpoint(subject, request, reply, description, public)
    if endpoint.changes_state:
        raise ValueError(f"{subject} is not a query subject")
    return endpoint


class Endpoints:
    """Base of a service's namespace of declarations (``contracts.<service>.Endpoints``)."""

    @classmethod
    def all(cls) -> Iterator[Endpoint[BaseModel, BaseModel]]:
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, Endpoint):
                    yield value
