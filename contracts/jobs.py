"""Long work as a job: a command that would outlast a caller's time-out answers at once.

An import of 2,000 rows, an issue sent to every subscriber, a year of meetings with their
invitations: each such command is declared with :func:`job`. It answers at once with a
:class:`JobView` (its id, how far it got); the service goes on in the background, and the
caller follows it with the service's ``<service>.query.job`` (``show_job``) until it is
``done`` (its ``report`` is then the command's real reply, the declared ``report`` model)
or ``failed`` (its ``error`` says why). A job survives a restart of its service: it is
stored, and taken up where it stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts import endpoints
from contracts.endpoints import Endpoint
from contracts.envelope import Message
from contracts.errors import Error

Req = TypeVar("Req", bound=BaseModel)
Report = TypeVar("Report", bound=BaseModel)

# "<service>-<12 hex>": the id says which service to ask about it.
JOB_ID_PATTERN = re.compile(r"^(?P<service>[a-z][a-z0-9_]{1,30})-(?P<key>[0-9a-f]{12})$")


class JobState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobView(BaseModel):
    """A job as its caller sees it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    # The subject of the command that started it: what kind of job it is.
    command: str
    state: JobState
    # How far it got, in ``unit`` (rows, mails, ambassadors); ``total`` once known.
    done: int = 0
    total: int | None = None
    unit: str = ""
    started_at: AwareDatetime
    updated_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    # The command's reply (its declared report model) once done.
    report: dict[str, Any] | None = None
    error: Error | None = None

    @property
    def finished(self) -> bool:
        return self.state != JobState.RUNNING


class ShowJob(Message):
    job_id: str = Field(max_length=64)

    @field_validator("job_id")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if not JOB_ID_PATTERN.fullmatch(value):
            raise ValueError("not a job id (<service>-<12 hex digits>)")
        return value


def service_of(job_id: str) -> str | None:
    """The service a job id belongs to, or None when it is no job id."""
    found = JOB_ID_PATTERN.fullmatch(job_id)
    return found["service"] if found else None


@dataclass(frozen=True)
class JobEndpoint(Endpoint[Req, JobView], Generic[Req, Report]):
    """A command that answers with its job; ``report`` is what the job ends with."""

    report: type[Report] = field(kw_only=True)
    # What ``done`` and ``total`` count, for a progress bar ("rows", "mails").
    unit: str = field(kw_only=True, default="")


def job(
    subject: str,
    request: type[Req],
    report: type[Report],
    description: str = "",
    *,
    unit: str,
) -> JobEndpoint[Req, Report]:
    """Declare a command that runs as a job (see the module's text)."""
    declared = JobEndpoint(subject, request, JobView, description, report=report, unit=unit)
    if not declared.changes_state:
        raise ValueError(f"{subject} is not a command subject")
    return declared


def show_job(service: str) -> Endpoint[ShowJob, JobView]:
    """``<service>.query.job``: one of the service's jobs, as it is now."""
    return endpoints.query(
        f"{service}.query.job", ShowJob, JobView, "A job: how far it got, and its report."
    )
