"""Following a job (an import, a send, a plan-year) the way the CLI does: by its id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from contracts.jobs import JobEndpoint, show_job
from tests.support.polling import eventually

Request = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def finished(request: Request, job: Mapping[str, Any], *, timeout: float = 120.0) -> Any:
    """The job as its service shows it once it is no longer running."""
    subject = show_job(str(job["id"]).split("-", 1)[0]).subject

    async def probe() -> Any:
        seen = await request(subject, {"job_id": job["id"]})
        return seen if seen["state"] != "running" else None

    return await eventually(probe, f"job {job['id']} to finish", timeout=timeout)


async def report(
    request: Request,
    endpoint: JobEndpoint[Any, Any],
    payload: Mapping[str, Any],
    *,
    timeout: float = 120.0,
) -> Any:
    """Start the job of ``endpoint`` and wait for its report (the job must end done)."""
    job = await request(endpoint.subject, dict(payload))
    assert job["command"] == endpoint.subject and job["state"] in ("running", "done"), job
    done = await finished(request, job, timeout=timeout)
    assert done["state"] == "done", done
    return done["report"]
