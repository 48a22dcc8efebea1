"""What a handler gets from the runtime: one unit of work per command, event or job.

A handler reads: load, call the domain, save, emit::

    async def withdraw(ctx: Context, uow: UnitOfWork, cmd: Withdraw) -> AmbassadorView:
        current = await store.load(uow, cmd.ambassador_id)
        withdrawn = domain.withdraw(current, now=uow.now, reason=cmd.reason)
        await store.save(uow, withdrawn)
        uow.emit(Withdrawn(ambassador_id=withdrawn.id))
        return view(withdrawn)

The runtime (``services.runtime.transactions``) opens the MongoDB transaction, runs the
handler, writes what it emitted to the outbox, the inbox record (for an event) and the
audit record (for a command), commits, and reruns the whole unit on a transient error. So
no handler writes transaction code, counts retries or builds ``(result, events)`` tuples.

Store functions take a :class:`Scope` (a unit of work, or a :class:`Reading` for queries)
instead of a database and a session: one object where there were two.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from contracts.envelope import Event
from services.runtime.mongo import DatabaseT, Session

AfterCommit = Callable[[], Awaitable[None] | None]


class Scope(Protocol):
    """Where store functions read and write: the service's database, the transaction's
    session when there is one, and the time the work runs at (the service's clock)."""

    @property
    def db(self) -> DatabaseT: ...

    @property
    def session(self) -> Session | None: ...

    @property
    def now(self) -> datetime: ...


class NotYet(Exception):
    """Raised by a reaction that cannot be applied yet (it needs an event from another
    stream first): nothing is applied, and the event is delivered again after the consumer's
    back-off; one warning line, no traceback. Past the last delivery it is a dead letter."""


class Applied(StrEnum):
    """What became of an event handed to a consumer."""

    APPLIED = "applied"
    ALREADY = "already applied"
    # A guard said to leave it (it is about an ambassador who was erased).
    IGNORED = "ignored"


@dataclass(frozen=True)
class Reading:
    """A scope without a transaction: queries and background scans."""

    db: DatabaseT
    now: datetime
    session: Session | None = None


@dataclass
class CommandContext:
    """The command being answered: who asked, and what it turned out to be about."""

    command_id: str
    subject: str
    actor: str
    targets: list[str] = field(default_factory=list)

    def about(self, *ids: str | None) -> None:
        for ident in ids:
            if ident and ident not in self.targets:
                self.targets.append(ident)


# Set by the runtime while a command is answered: the units of work it runs (one, or
# several for a command such as an import) know their actor and add to its targets.
current_command: contextvars.ContextVar[CommandContext | None] = contextvars.ContextVar(
    "current_command", default=None
)


class UnitOfWork:
    """One attempt of one transaction of one service."""

    def __init__(
        self,
        db: DatabaseT,
        session: Session | None,
        *,
        now: datetime,
        attempt: int = 1,
        cause: Event | None = None,
        command: CommandContext | None = None,
    ) -> None:
        self._db = db
        self._session = session
        self._now = now
        self.attempt = attempt
        self.cause = cause
        self.command = command
        self._events: list[Event] = []
        self._after_commit: list[AfterCommit] = []

    @property
    def db(self) -> DatabaseT:
        return self._db

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def now(self) -> datetime:
        """The time this unit runs at, the same for everything it does."""
        return self._now

    @property
    def retried(self) -> bool:
        """An earlier attempt of this unit failed (a write conflict, a unique key taken by a
        concurrent request): what it assumed may no longer hold, so look before inserting."""
        return self.attempt > 1

    @property
    def actor(self) -> str | None:
        return self.command.actor if self.command is not None else None

    def emit(self, *events: Event) -> None:
        """Publish these events if, and only if, this unit commits (through the outbox).

        An event whose ``occurred_at`` was not set gets this unit's time; one caused by
        the event being applied gets it as its causation, and its correlation."""
        for event in events:
            self._events.append(self._enveloped(event))

    def after_commit(self, callback: AfterCommit) -> None:
        """Run ``callback`` once the unit committed (wake a worker, delete a file); never on
        a rollback, once however often the transaction was retried."""
        self._after_commit.append(callback)

    def about(self, *ids: str | None) -> None:
        """Name what a command was about, for its audit record (when neither its request
        nor its reply says so, e.g. each ambassador an import created)."""
        if self.command is not None:
            self.command.about(*ids)

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._events)

    @property
    def callbacks(self) -> Sequence[AfterCommit]:
        return tuple(self._after_commit)

    def _enveloped(self, event: Event) -> Event:
        update: dict[str, object] = {}
        if "occurred_at" not in event.model_fields_set:
            update["occurred_at"] = self._now
        if event.causation_id is None and self.cause is not None:
            update["causation_id"] = self.cause.event_id
            if event.correlation_id is None:
                update["correlation_id"] = self.cause.correlation_id or self.cause.event_id
        return event.model_copy(update=update) if update else event


async def run_callbacks(callbacks: Sequence[AfterCommit], log_error: Callable[..., None]) -> None:
    """After a commit: each callback runs; one that fails is logged, the rest still run."""
    for callback in callbacks:
        try:
            outcome = callback()
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log_error(
                "after-commit callback failed",
                callback=getattr(callback, "__qualname__", repr(callback)),
            )
