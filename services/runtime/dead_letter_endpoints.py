"""The dead-letter commands every service answers: list, show, replay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from contracts.errors import ErrorCode, ServiceError
from contracts.operations import (
    ListDeadLetters,
    ReplayDeadLetter,
    ShowDeadLetter,
    dead_letters_list_subject,
    dead_letters_replay_subject,
    dead_letters_show_subject,
)
from services.runtime.dead_letters import public_view

if TYPE_CHECKING:
    from services.runtime.service import Service


def register(service: Service) -> None:
    name = service.name

    async def list_dead_letters(query: ListDeadLetters) -> dict[str, Any]:
        """Dead letters of this service, newest first."""
        criteria: dict[str, Any] = {} if query.include_replayed else {"replayed_at": None}
        cursor = service.db.dead_letters.find(criteria).sort("dead_at", -1).limit(query.limit)
        items = [public_view(doc) async for doc in cursor]
        return {"service": name, "items": items}

    async def show_dead_letter(query: ShowDeadLetter) -> dict[str, Any]:
        """One dead letter with its payload."""
        doc = await service.db.dead_letters.find_one({"_id": query.id})
        if doc is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"dead letter {query.id} not found")
        return {"service": name, **public_view(doc, with_payload=True)}

    async def replay_dead_letter(command: ReplayDeadLetter) -> dict[str, Any]:
        """Apply a dead letter again through the same inbox-guarded handler."""
        doc = await service.db.dead_letters.find_one({"_id": command.id})
        if doc is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"dead letter {command.id} not found")
        if doc.get("subject") not in service.routes:
            raise ServiceError(
                ErrorCode.INVALID_STATE,
                f"{name} has no handler for {doc.get('subject')}; nothing to replay",
            )
        try:
            applied = await service.apply_event(doc["subject"], bytes(doc["payload"]))
        except Exception as exc:
            await service.db.dead_letters.update_one(
                {"_id": command.id},
                {"$push": {"replays": {"at": datetime.now(UTC), "error": repr(exc)[:500]}}},
            )
            raise ServiceError(
                ErrorCode.INTERNAL, f"replay failed: {type(exc).__name__}: {exc}"
            ) from exc
        now = datetime.now(UTC)
        await service.db.dead_letters.update_one(
            {"_id": command.id},
            {"$set": {"replayed_at": now}, "$push": {"replays": {"at": now, "error": None}}},
        )
        return {
            "service": name,
            "id": command.id,
            "applied": applied,
            "already_applied": not applied,
        }

    service.endpoint(dead_letters_list_subject(name), ListDeadLetters)(list_dead_letters)
    service.endpoint(dead_letters_show_subject(name), ShowDeadLetter)(show_dead_letter)
    service.endpoint(dead_letters_replay_subject(name), ReplayDeadLetter)(replay_dead_letter)
