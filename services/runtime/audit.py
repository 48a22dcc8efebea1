"""The audit trail: one record per command a service answered.

Who asked (the actor), which command, which ids it was about, when, and how it ended ("ok"
or the error code). Ids only, never a personal field: the trail outlives erasures. A
command that committed wrote its record in its own transaction; one that failed gets it
written afterwards. The record's id is the command's, which also makes it how the runtime
recognises a commit whose answer was lost (see transactions).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from pymongo import DESCENDING

from contracts.operations import AuditRecord
from services.runtime.logging import get_logger
from services.runtime.mongo import DatabaseT, Session
from services.runtime.unit_of_work import CommandContext, Scope

log = get_logger(__name__)

COLLECTION = "audit"
OK = "ok"


async def ensure_audit_indexes(db: DatabaseT, retention: timedelta) -> None:
    await db[COLLECTION].create_index("at", expireAfterSeconds=int(retention.total_seconds()))
    await db[COLLECTION].create_index("targets")


def _resolve(model: BaseModel | None, path: str | None) -> list[str]:
    """The ids at ``path`` (a dotted field path, e.g. ``ambassador.id``, through lists
    too: ``meetings.id``) of ``model``."""
    if model is None or not path:
        return []
    values: list[Any] = [model]
    for part in path.split("."):
        step: list[Any] = []
        for value in values:
            found = getattr(value, part, None)
            step.extend(found if isinstance(found, list | tuple) else [found])
        values = [v for v in step if v is not None]
    return [str(v) for v in values]


def targets_of(request: BaseModel | None, reply: BaseModel | None) -> list[str]:
    """What a command was about, as its request and reply models declare (``audit_target``:
    the field naming the thing it acts on, or the thing it created)."""
    found: list[str] = []
    for model in (request, reply):
        path = getattr(type(model), "audit_target", None) if model is not None else None
        for ident in _resolve(model, path):
            if ident not in found:
                found.append(ident)
    return found


def committed(
    service: str, command: CommandContext, request: BaseModel, result: object, at: datetime
) -> dict[str, Any]:
    """The record a command's own unit of work writes as it commits."""
    reply = result if isinstance(result, BaseModel) else None
    return record(service, command, at=at, outcome=OK, targets=targets_of(request, reply))


def record(
    service: str, command: CommandContext, *, at: datetime, outcome: str, targets: Iterable[str]
) -> dict[str, Any]:
    ids = list(dict.fromkeys([*targets, *command.targets]))
    return {
        "_id": command.command_id,
        "service": service,
        "actor": command.actor,
        "command": command.subject,
        "targets": ids,
        "at": at,
        "outcome": outcome,
    }


async def write(db: DatabaseT, doc: dict[str, Any], session: Session | None = None) -> None:
    await db[COLLECTION].insert_one(doc, session=session)


async def write_outside(db: DatabaseT, doc: dict[str, Any]) -> None:
    """A record written outside any transaction (a failed command's, whose transaction rolled
    back); an outage here must not hide the command's own answer or error from the caller."""
    try:
        await db[COLLECTION].replace_one({"_id": doc["_id"]}, doc, upsert=True)
    except Exception as exc:
        log.warning("audit record not written", command=doc["command"], error=repr(exc))


async def add_targets(scope: Scope, command_id: str, targets: Iterable[str]) -> None:
    """What a command turned out to be about once its job ended (its record is written)."""
    ids = list(targets)
    if ids:
        await scope.db[COLLECTION].update_one(
            {"_id": command_id},
            {"$addToSet": {"targets": {"$each": ids}}},
            session=scope.session,
        )


async def exists(db: DatabaseT, command_id: str, session: Session | None) -> bool:
    found = await db[COLLECTION].find_one({"_id": command_id}, {"_id": 1}, session=session)
    return found is not None


async def page(db: DatabaseT, *, target: str | None, limit: int) -> list[AuditRecord]:
    criteria: dict[str, Any] = {"targets": target} if target is not None else {}
    cursor = db[COLLECTION].find(criteria).sort("at", DESCENDING).limit(limit)
    return [AuditRecord.model_validate({**doc, "id": doc["_id"]}) async for doc in cursor]
