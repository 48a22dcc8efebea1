"""Running a unit of work: the one transaction shape of every service.

:class:`Transactions.run` opens a MongoDB transaction, gives the handler a fresh
:class:`UnitOfWork`, then writes what it emitted to the outbox (born claimed by this
process's relay, handed to it after the commit), the inbox record when it applies an event,
and the audit record when it answers a command, and commits. A transient error reruns the
whole unit (pymongo's ``with_transaction``); so does a unique key another request took
first, after which the unit sees that request's row (``uow.retried``).

A commit whose answer was lost (the database restarted during the commit) is recognised
on the rerun by what it left: the audit record of a command, the inbox record of an event.
The rerun then answers what the committed attempt answered instead of doing it twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from contracts.envelope import Event
from services.runtime import audit
from services.runtime.background import retry
from services.runtime.logging import get_logger
from services.runtime.mongo import DatabaseT, Document, Session, in_transaction
from services.runtime.outbox import OutboxRelay, add_to_outbox
from services.runtime.unit_of_work import (
    AfterCommit,
    CommandContext,
    Reading,
    UnitOfWork,
    current_command,
    run_callbacks,
)

log = get_logger(__name__)

T = TypeVar("T")

# Reruns after a unique key clash: the rerun sees the other request's row, so a second
# clash means a genuine conflict, which the handler reports.
DUPLICATE_KEY_ATTEMPTS = 3

Work = Callable[[UnitOfWork], Awaitable[T]]


@dataclass
class _Attempts:
    """What the attempts of one unit have in common (kept by the runtime, not the handler)."""

    count: int = 0
    result: Any = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    callbacks: Sequence[AfterCommit] = ()


class Transactions:
    """Runs units of work on one service's database."""

    def __init__(
        self,
        service: str,
        client: Callable[[], AsyncMongoClient[Document]],
        db: Callable[[], DatabaseT],
        clock: Callable[[], datetime],
        relay: Callable[[], OutboxRelay | None],
    ) -> None:
        self.service = service
        self._client = client
        self._db = db
        self._clock = clock
        self._relay = relay

    def reading(self) -> Reading:
        """A scope for reads outside any transaction."""
        return Reading(self._db(), self._clock())

    async def run(
        self,
        work: Work[T],
        *,
        name: str,
        cause: Event | None = None,
        audited: BaseModel | None = None,
    ) -> T:
        """Run ``work`` in one transaction; its changes, events and records commit together.

        ``audited``: the command's request; the unit writes the command's audit record.
        """
        db = self._db()
        command = current_command.get()
        attempts = _Attempts()

        async def attempt(session: Session) -> T:
            attempts.count += 1
            if (
                audited is not None
                and command is not None
                and attempts.count > 1
                and attempts.result is not None
                and await audit.exists(db, command.command_id, session)
            ):
                # The last attempt committed and its answer was lost: it is the answer.
                return attempts.result  # type: ignore[no-any-return]
            uow = UnitOfWork(
                db,
                session,
                now=self._clock(),
                attempt=attempts.count,
                cause=cause,
                command=command,
            )
            result = await work(uow)
            relay = self._relay()
            entries = await add_to_outbox(
                db, session, uow.events, relay.claim() if relay is not None else None
            )
            if audited is not None and command is not None:
                doc = audit.committed(self.service, command, audited, result, uow.now)
                await audit.write(db, doc, session)
            attempts.result, attempts.entries, attempts.callbacks = result, entries, uow.callbacks
            return result

        # What a stalled transaction is, in the log (see in_transaction).
        attempt.__qualname__ = name
        result = await retry(
            lambda: in_transaction(self._client(), attempt),
            what=f"{name} (unique key taken meanwhile)",
            on=DuplicateKeyError,
            attempts=DUPLICATE_KEY_ATTEMPTS,
            wait_initial=0.0,
            jitter=0.0,
            quiet=True,
        )
        relay = self._relay()
        if relay is not None and attempts.entries:
            relay.hand_over(attempts.entries)
        await run_callbacks(attempts.callbacks, log.exception)
        return result

    async def record_outcome(
        self, command: CommandContext, request: BaseModel, reply: BaseModel | None, outcome: str
    ) -> None:
        """The audit record of a command answered outside one unit of work: one that failed
        (its transaction rolled back), or one that ran several."""
        targets = audit.targets_of(request, reply)
        doc = audit.record(
            self.service, command, at=self._clock(), outcome=outcome, targets=targets
        )
        await audit.write_outside(self._db(), doc)
