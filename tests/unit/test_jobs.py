"""Jobs, with the import as the example: it answers at once, goes on from the first row not
committed after it broke off, is one job however often it is sent while it runs, and ends
done with its report or failed with its error; run by the kit on a database in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from contracts.ambassadors import Endpoints, ImportCsv, ImportResult, Register, Source
from contracts.errors import ErrorCode, ServiceError
from contracts.jobs import JobState, ShowJob
from services.ambassadors import handlers
from services.ambassadors.app import build
from services.ambassadors.context import Context
from services.ambassadors.settings import AmbassadorsSettings
from services.runtime import jobs
from services.runtime.testing import ServiceHarness
from services.runtime.unit_of_work import UnitOfWork


def settings() -> AmbassadorsSettings:
    secret = "jobs-handler-tests-0123456789abcdef"
    return AmbassadorsSettings(_env_file=None, ambassadors_token_secret=secret, demo_import=False)


@pytest.fixture
async def service() -> AsyncIterator[tuple[ServiceHarness, Context]]:
    yield await ServiceHarness.start(build, settings())


def rows(count: int, *, bad_at: int | None = None) -> ImportCsv:
    lines = ["name,email,kind"]
    for i in range(count):
        email = "ikke-en-adresse" if i == bad_at else f"person{i}@example.org"
        lines.append(f"Person {i},{email},citizen")
    return ImportCsv(csv_text="\n".join(lines) + "\n", filename="liste.csv")


def stored_job(h: ServiceHarness, job_id: str) -> dict[str, Any]:
    [doc] = [j for j in h.db.documents(jobs.COLLECTION) if j["_id"] == job_id]
    return doc


async def test_an_import_answers_with_its_job_and_the_job_ends_with_the_report(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    job = await h.call(Endpoints.IMPORT, rows(5, bad_at=2))
    assert job.id.startswith("ambassadors-") and job.state == JobState.RUNNING
    assert (job.done, job.total, job.unit, job.command) == (
        0,
        None,
        "rows",
        "ambassadors.cmd.import",
    )
    assert h.db.documents("ambassadors") == []  # nothing imported before the job runs

    report = await h.report(Endpoints.IMPORT, job)
    assert (report.imported, report.skipped_existing) == (4, 0)
    assert [(e.row, e.message) for e in report.errors] == [(4, "invalid row")]
    shown = await h.call(Endpoints.JOB, ShowJob(job_id=job.id))
    assert (shown.state, shown.done, shown.total) == (JobState.DONE, 5, 5)
    assert ImportResult.model_validate(shown.report) == report
    [record] = [r for r in h.audit_trail() if r["command"] == "ambassadors.cmd.import"]
    assert record["targets"] == report.ambassador_ids  # what the job created, by id


async def test_a_job_that_broke_off_goes_on_from_the_first_row_not_committed(
    service: tuple[ServiceHarness, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    h, _ = service
    real_register = handlers.register
    calls = 0

    async def register_breaking_at_the_fourth(
        ctx: Context, uow: UnitOfWork, cmd: Register, source: Source | None = None
    ) -> Any:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("the process died here")
        return await real_register(ctx, uow, cmd, source)

    monkeypatch.setattr(handlers, "register", register_breaking_at_the_fourth)
    job = await h.call(Endpoints.IMPORT, rows(6))
    await h.service.run_jobs_now()
    broken = stored_job(h, job.id)
    assert (broken["state"], broken["done"]) == ("running", 3)
    assert len(h.db.documents("ambassadors")) == 3  # the fourth row's unit rolled back

    # Its lease runs out (the process is gone): the job is taken up again.
    await h.service.run_jobs_now()
    assert stored_job(h, job.id)["done"] == 3  # still leased: nobody takes it yet
    h.clock.travel(timedelta(seconds=jobs.LEASE_SECONDS + 1))
    report = await h.report(Endpoints.IMPORT, job)

    assert (report.imported, report.skipped_existing, report.errors) == (6, 0, [])
    assert len(set(report.ambassador_ids)) == 6
    emails = sorted(a["email_key"] for a in h.db.documents("ambassadors"))
    assert emails == sorted(f"person{i}@example.org" for i in range(6))
    assert stored_job(h, job.id)["attempts"] == 2


async def test_the_same_list_sent_again_while_it_runs_is_the_same_job_and_later_imports_nobody(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    first = await h.call(Endpoints.IMPORT, rows(3))
    again = await h.call(Endpoints.IMPORT, rows(3))
    assert again.id == first.id
    other = await h.call(Endpoints.IMPORT, rows(2))
    assert other.id != first.id
    assert (await h.report(Endpoints.IMPORT, first)).imported == 3

    rerun = await h.call(Endpoints.IMPORT, rows(3))
    assert rerun.id != first.id  # a new job: the first one is done
    report = await h.report(Endpoints.IMPORT, rerun)
    assert (report.imported, report.skipped_existing) == (0, 3)
    assert len(h.db.documents("ambassadors")) == 3


async def test_a_job_that_keeps_breaking_is_failed_with_an_error_not_tried_forever(
    service: tuple[ServiceHarness, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    h, _ = service

    async def always_broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(handlers, "register", always_broken)
    job = await h.call(Endpoints.IMPORT, rows(1))
    for _ in range(jobs.MAX_ATTEMPTS + 1):
        await h.service.run_jobs_now()
        h.clock.travel(timedelta(seconds=jobs.LEASE_SECONDS + 1))
    with pytest.raises(ServiceError) as failed:
        await h.report(Endpoints.IMPORT, job)
    assert failed.value.code == ErrorCode.INTERNAL
    shown = await h.call(Endpoints.JOB, ShowJob(job_id=job.id))
    assert shown.state == JobState.FAILED and shown.finished_at is not None


async def test_a_job_id_is_checked_and_an_unknown_one_is_not_found(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    malformed = await h.fails(Endpoints.JOB, {"job_id": "../../etc"})
    assert malformed.code == ErrorCode.VALIDATION_FAILED
    unknown = await h.fails(Endpoints.JOB, ShowJob(job_id="ambassadors-0123456789ab"))
    assert unknown.code == ErrorCode.NOT_FOUND
