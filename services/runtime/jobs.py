"""A service's jobs: long work that answers at once and is followed by its id.

A job is a document in the service's ``jobs`` collection, created in the unit of work of
the command that starts it (so it exists exactly when the command committed), moved on by
whoever does the work, and finished with the command's report or failed with an error.

Two kinds of work drive a job:

- A **runner** job (``Service.job_runner``, an import) is run by the runtime: the command
  stores its request as the job's input; the jobs loop claims the job with a lease and
  hands it to the service's runner with a :class:`RunningJob`. The runner moves the job on
  in the same unit of work as the work itself (``advance``), so after a crash it goes on
  from the first step not committed, and nothing is done twice. A job whose lease ran out
  (its process died) is claimed again by any replica.
- A **driven** job (sending an issue, planning a year) is moved on by the service's own
  background work, which already resumes after a crash; it calls ``progress`` and
  ``finish`` on the job it was started with.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo import ReturnDocument

from contracts.errors import Error, ErrorCode, ServiceError
from contracts.jobs import JobEndpoint, JobState, JobView
from services.runtime import audit
from services.runtime.logging import get_logger
from services.runtime.mongo import DatabaseT
from services.runtime.unit_of_work import Scope, UnitOfWork, current_command

log = get_logger(__name__)

Req = TypeVar("Req", bound=BaseModel)
Report = TypeVar("Report", bound=BaseModel)

COLLECTION = "jobs"
# A runner holds its job this long past its last step; a process that died holding it
# loses it after this much silence.
LEASE_SECONDS = 30.0
# A runner job whose run broke (not a ServiceError: a bug, an outage) this many times is
# failed rather than tried forever.
MAX_ATTEMPTS = 5


class JobTakenOver(Exception):
    """Another process holds the job now (this one's lease ran out): stop running it."""


class _Resync(Exception):
    """The job moved on without this runner knowing (a commit whose answer was lost)."""


async def ensure_job_indexes(db: DatabaseT, retention: timedelta) -> None:
    jobs = db[COLLECTION]
    await jobs.create_index([("runner", 1), ("state", 1), ("lease_until", 1)])
    # One running job per request key: the same import sent twice is the same job.
    await jobs.create_index("running_key", unique=True, sparse=True)
    await jobs.create_index("finished_at", expireAfterSeconds=int(retention.total_seconds()))


def request_key(request: BaseModel) -> str:
    """What makes two requests the same job: their content."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def view(doc: Mapping[str, Any]) -> JobView:
    return JobView.model_validate({**doc, "id": doc["_id"]})


async def start(
    uow: UnitOfWork,
    service: str,
    endpoint: JobEndpoint[Any, Any],
    *,
    total: int | None = None,
    runner_input: BaseModel | None = None,
    key: str | None = None,
) -> JobView:
    """A new job, in ``uow`` (it exists if the unit commits). With ``key``, a running job
    with the same key is answered instead of starting a second one."""
    running_key = f"{endpoint.subject}:{key}" if key else None
    if running_key and uow.retried:
        # The unique key was taken (the first attempt's clash): it is that job.
        existing = await uow.db[COLLECTION].find_one(
            {"running_key": running_key}, session=uow.session
        )
        if existing is not None:
            return view(existing)
    command = current_command.get()
    doc: dict[str, Any] = {
        "_id": f"{service}-{secrets.token_hex(6)}",
        "command": endpoint.subject,
        "state": JobState.RUNNING.value,
        "done": 0,
        "total": total,
        "unit": endpoint.unit,
        "started_at": uow.now,
        "updated_at": uow.now,
        "actor": command.actor if command else None,
        "command_id": command.command_id if command else None,
        "runner": runner_input is not None,
        "attempts": 0,
    }
    if running_key:
        doc["running_key"] = running_key
    if runner_input is not None:
        doc["input"] = runner_input.model_dump(mode="json")
        doc["lease_until"] = None
    await uow.db[COLLECTION].insert_one(doc, session=uow.session)
    return view(doc)


async def load(scope: Scope, job_id: str) -> JobView:
    doc = await scope.db[COLLECTION].find_one(
        {"_id": job_id}, {"input": 0, "partial": 0}, session=scope.session
    )
    if doc is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"no job {job_id}")
    return view(doc)


async def progress(scope: Scope, job_id: str, *, done: int, total: int | None = None) -> None:
    """How far a driven job got (never backwards: a resumed worker may count again)."""
    update: dict[str, Any] = {"$max": {"done": done}, "$set": {"updated_at": scope.now}}
    if total is not None:
        update["$set"]["total"] = total
    await scope.db[COLLECTION].update_one(
        {"_id": job_id, "state": JobState.RUNNING.value}, update, session=scope.session
    )


async def finish(scope: Scope, job_id: str, report: BaseModel) -> None:
    """The job is done, with ``report`` (its command's declared report model). The command's
    audit record gains what the report names (the ambassadors an import created)."""
    command_id = await _end(scope, job_id, JobState.DONE, report=report.model_dump(mode="json"))
    if command_id:
        await audit.add_targets(scope, command_id, audit.targets_of(None, report))


async def fail(scope: Scope, job_id: str, error: Error) -> None:
    await _end(scope, job_id, JobState.FAILED, error=error.model_dump(mode="json"))


async def _end(scope: Scope, job_id: str, state: JobState, **outcome: Any) -> str | None:
    """A running job ends: its outcome stays, what ran it goes (the input too: an import's
    names and addresses are not kept for the job's retention). The command that started
    it, if it is still running (None: it had ended already)."""
    doc = await scope.db[COLLECTION].find_one_and_update(
        {"_id": job_id, "state": JobState.RUNNING.value},
        {
            "$set": {
                "state": state.value,
                **outcome,
                "updated_at": scope.now,
                "finished_at": scope.now,
            },
            "$unset": {
                "running_key": "",
                "lease_until": "",
                "lease_owner": "",
                "partial": "",
                "input": "",
            },
        },
        projection={"command_id": 1},
        session=scope.session,
    )
    return doc.get("command_id") if doc is not None else None


# ---------------------------------------------------------------- runner jobs


@dataclass
class RunningJob:
    """A runner's hold on its job: where it stands, and how it moves on."""

    id: str
    owner: str
    done: int
    total: int | None
    partial: dict[str, Any] = field(default_factory=dict)

    async def sized(self, scope: Scope, total: int) -> None:
        self.total = total
        await self._update(scope, {"$set": {"total": total}}, expect_done=None)

    async def advance(
        self,
        scope: Scope,
        *,
        push: Mapping[str, Any] | None = None,
        add: Mapping[str, int] | None = None,
    ) -> None:
        """One step further (in ``scope``: in a unit of work, with the step's own writes),
        adding to what the report is made of: ``push`` appends to lists, ``add`` to counts.
        Raises :class:`JobTakenOver` when another process holds the job now."""
        update: dict[str, Any] = {"$inc": {"done": 1}}
        for name, amount in (add or {}).items():
            update["$inc"][f"partial.{name}"] = amount
        if push:
            update["$push"] = {f"partial.{name}": value for name, value in push.items()}
        await self._update(scope, update, expect_done=self.done)
        if isinstance(scope, UnitOfWork):
            scope.after_commit(self._stepped)
        else:
            self._stepped()

    def _stepped(self) -> None:
        self.done += 1

    async def _update(self, scope: Scope, update: dict[str, Any], expect_done: int | None) -> None:
        update.setdefault("$set", {}).update(
            updated_at=scope.now, lease_until=scope.now + timedelta(seconds=LEASE_SECONDS)
        )
        criteria: dict[str, Any] = {"_id": self.id, "lease_owner": self.owner}
        if expect_done is not None:
            criteria["done"] = expect_done
        result = await scope.db[COLLECTION].update_one(criteria, update, session=scope.session)
        if result.matched_count == 1:
            return
        current = await scope.db[COLLECTION].find_one(
            {"_id": self.id}, {"lease_owner": 1, "done": 1}, session=scope.session
        )
        if current is None or current.get("lease_owner") != self.owner:
            raise JobTakenOver(self.id)
        raise _Resync(self.id)

    async def reload(self, scope: Scope) -> None:
        """Where the job stands as stored (the report's parts gathered so far)."""
        doc = await scope.db[COLLECTION].find_one({"_id": self.id}, session=scope.session)
        if doc is None or doc.get("lease_owner") != self.owner:
            raise JobTakenOver(self.id)
        self.done = int(doc["done"])
        self.total = doc.get("total")
        self.partial = dict(doc.get("partial") or {})


Runner = Callable[[RunningJob, Req], Awaitable[Report]]


@dataclass(frozen=True)
class _Registered(Generic[Req, Report]):
    endpoint: JobEndpoint[Req, Report]
    run: Runner[Req, Report]


class JobRunners:
    """The runner jobs of one service, and the one loop step that runs them."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._runners: dict[str, _Registered[Any, Any]] = {}

    def register(self, endpoint: JobEndpoint[Req, Report], run: Runner[Req, Report]) -> None:
        self._runners[endpoint.subject] = _Registered(endpoint, run)

    def __bool__(self) -> bool:
        return bool(self._runners)

    async def claim(self, db: DatabaseT, now: datetime) -> dict[str, Any] | None:
        return await db[COLLECTION].find_one_and_update(
            {
                "runner": True,
                "state": JobState.RUNNING.value,
                "command": {"$in": list(self._runners)},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            {
                "$set": {
                    "lease_owner": self.owner,
                    "lease_until": now + timedelta(seconds=LEASE_SECONDS),
                },
                "$inc": {"attempts": 1},
            },
            sort=[("started_at", 1)],
            return_document=ReturnDocument.AFTER,
        )

    async def step(self, scope_of: Callable[[], Scope]) -> bool:
        """Claim one job that needs running and run it to its end; True if one ran."""
        scope = scope_of()
        doc = await self.claim(scope.db, scope.now)
        if doc is None:
            return False
        registered = self._runners[doc["command"]]
        job_id = doc["_id"]
        if int(doc.get("attempts", 1)) > MAX_ATTEMPTS:
            log.error("job given up", job_id=job_id, attempts=doc["attempts"] - 1)
            await fail(
                scope,
                job_id,
                Error(
                    code=ErrorCode.INTERNAL,
                    message=f"the job broke off {MAX_ATTEMPTS} times; see the service's log",
                ),
            )
            return True
        job = RunningJob(job_id, self.owner, int(doc["done"]), doc.get("total"))
        job.partial = dict(doc.get("partial") or {})
        request = registered.endpoint.request.model_validate(doc["input"])
        log.info("job running", job_id=job_id, command=doc["command"], resumed_at=job.done)
        while True:
            try:
                report = await registered.run(job, request)
            except _Resync:
                await job.reload(scope_of())
                continue
            except JobTakenOver:
                log.warning("job taken over by another process", job_id=job_id)
                return True
            except ServiceError as exc:
                await fail(scope_of(), job_id, exc.error)
                log.info("job failed", job_id=job_id, code=exc.code.value)
                return True
            except Exception:
                # Let the lease run out: this or another replica tries again from the last
                # committed step.
                log.exception("job broke off, trying again later", job_id=job_id)
                return False
            await finish(scope_of(), job_id, report)
            log.info("job done", job_id=job_id, command=doc["command"])
            return True
