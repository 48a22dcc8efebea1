"""The endpoints every service answers for operators: health, dead letters (and failed
outbox entries), the audit trail, and a person's data (export, and where their address
occurs)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from contracts.errors import ErrorCode, ServiceError
from contracts.operations import (
    AddressSearch,
    AuditPage,
    DeadLetterPage,
    DeadLetterView,
    ExportPersonalData,
    FindAddress,
    GetHealth,
    Health,
    ListAudit,
    ListDeadLetters,
    PersonalData,
    ReplayDeadLetter,
    ReplayResult,
    ShowDeadLetter,
    audit,
    dead_letters_list,
    dead_letters_replay,
    dead_letters_show,
    health,
    privacy_audit,
    privacy_export,
)
from services.runtime import address_search, dead_letters, outbox, personal_data
from services.runtime import audit as audit_trail
from services.runtime.unit_of_work import Applied, Reading
from services.runtime.version import VERSION

if TYPE_CHECKING:
    from services.runtime.service import Service


def register(service: Service) -> None:
    name = service.name
    started = time.time()

    async def health_of(scope: Reading, _: GetHealth) -> Health:
        """Is the service up: its database answers, and how its outbox stands."""
        try:
            await scope.db.command("ping")
            counts = await outbox.counts(scope.db)
            waiting = await dead_letters.count_waiting(scope.db)
            problems = [found for check in service.health_checks for found in await check(scope)]
        except Exception as exc:
            raise ServiceError(ErrorCode.SERVICE_UNAVAILABLE, f"database: {exc}") from exc
        lag, missing = await service.consumer_lag()
        problems += missing
        # Both wait for an operator (`samskab dead-letters list`): nothing retries them.
        if waiting:
            letters = "1 dead letter waits" if waiting == 1 else f"{waiting} dead letters wait"
            problems.append(f"{letters} to be replayed or looked at")
        if counts.failed:
            entries = "entry" if counts.failed == 1 else "entries"
            problems.append(f"{counts.failed} outbox {entries} could not be published")
        return Health(
            service=name,
            status="degraded" if problems else "ok",
            problems=problems,
            uptime_seconds=round(time.time() - started, 1),
            version=VERSION,
            outbox_pending=counts.pending,
            outbox_failed=counts.failed,
            consumer_lag=lag,
            dead_letters=waiting,
        )

    async def list_dead_letters(scope: Reading, query: ListDeadLetters) -> DeadLetterPage:
        """Dead letters of this service and its failed outbox entries, newest first."""
        items = await dead_letters.page(
            scope.db, include_replayed=query.include_replayed, limit=query.limit
        )
        items += await outbox.failed_entries(scope.db, limit=query.limit)
        items.sort(key=lambda item: item.dead_at, reverse=True)
        return DeadLetterPage(service=name, items=items[: query.limit])

    async def show_dead_letter(scope: Reading, query: ShowDeadLetter) -> DeadLetterView:
        """One dead letter (or failed outbox entry) with its payload."""
        found = await dead_letters.show(scope.db, query.id) or await outbox.failed_entry(
            scope.db, query.id
        )
        if found is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"dead letter {query.id} not found")
        return found.model_copy(update={"service": name})

    async def replay_dead_letter(command: ReplayDeadLetter) -> ReplayResult:
        """Apply a dead letter again through the same inbox-guarded handler; a failed
        outbox entry is queued for publishing again."""
        if await outbox.retry_failed(service.db, command.id):
            if service.relay is not None:
                service.relay.wake()
            return ReplayResult(
                service=name,
                id=command.id,
                applied=True,
                already_applied=False,
                note="queued for publishing again",
            )
        doc = await dead_letters.load(service.db, command.id)
        if doc is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"dead letter {command.id} not found")
        if doc.get("subject") not in service.routes:
            raise ServiceError(
                ErrorCode.INVALID_STATE,
                f"{name} has no handler for {doc.get('subject')}; nothing to replay",
            )
        if doc.get("scrubbed_at") is not None:
            raise ServiceError(
                ErrorCode.INVALID_STATE,
                "the dead letter was about a person who has been erased: nothing to replay",
            )
        try:
            applied = await service.apply_event(doc["subject"], bytes(doc["payload"]))
        except Exception as exc:
            await dead_letters.record_replay(service.db, command.id, service.clock(), exc)
            raise ServiceError(
                ErrorCode.INTERNAL, f"replay failed: {type(exc).__name__}: {exc}"
            ) from exc
        await dead_letters.record_replay(service.db, command.id, service.clock(), None)
        return ReplayResult(
            service=name,
            id=command.id,
            applied=applied == Applied.APPLIED,
            already_applied=applied == Applied.ALREADY,
            note="ignored: about an erased ambassador" if applied == Applied.IGNORED else None,
        )

    async def audit_of(scope: Reading, query: ListAudit) -> AuditPage:
        """The audit trail of this service's commands, newest first."""
        items = await audit_trail.page(scope.db, target=query.target, limit=query.limit)
        return AuditPage(service=name, items=items)

    async def export_personal_data(request: ExportPersonalData) -> PersonalData:
        """Everything the service holds on the person, a part at a time."""
        return await personal_data.export(service.db, name, request)

    async def find_address(request: FindAddress) -> AddressSearch:
        """Where the address occurs: every collection, the event and dead-letter streams."""
        streams = [dead_letters.advisory_stream_name(name)]
        if service.produces:
            streams.insert(0, name.upper())
        return await address_search.search(service.db, service.js, streams, name, request.email)

    service.query(health(name), health_of)
    service.query(dead_letters_list(name), list_dead_letters)
    service.query(dead_letters_show(name), show_dead_letter)
    service.orchestrate(dead_letters_replay(name), replay_dead_letter)
    service.query(audit(name), audit_of)
    service.orchestrate(privacy_export(name), export_personal_data)
    service.orchestrate(privacy_audit(name), find_address)
