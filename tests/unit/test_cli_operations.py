"""`samskab health`, `samskab dead-letters list` and `samskab audit` against fake services.

The same seam as tests/unit/test_events_cli.py: ``cli.calls.call`` is replaced by a fake that
records what each service was asked and answers with reply models (or an error: a service
that is not running answers ``service_unavailable``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner, Result

from cli import calls
from cli.main import app, command_name
from contracts import operations as ops
from contracts.ambassadors import Endpoints as Ambassadors
from contracts.ambassadors import Goals
from contracts.errors import ErrorCode, ServiceError
from contracts.networks import Endpoints as Networks
from contracts.networks import Initiatives
from contracts.operations import AuditPage, AuditRecord, DeadLetterPage, DeadLetterView, Health
from services import registry
from tests.unit.test_events_cli import FakeService, one_line_error

RUNNING = tuple(registry.built())
# Health also asks the website (it has no outbox).
CHECKED = (*RUNNING, "web")


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeService]:
    fake = FakeService()
    monkeypatch.setattr(calls, "call", fake.call)
    yield fake


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def not_running(name: str) -> ServiceError:
    return ServiceError(ErrorCode.SERVICE_UNAVAILABLE, f"the {name} service is not running")


def rows(output: str) -> list[list[str]]:
    """A table's lines split on runs of two or more spaces (a cell may hold one)."""
    return [[c for c in line.split("  ") if c.strip()] for line in output.splitlines()]


def cells(line: list[str]) -> list[str]:
    return [c.strip() for c in line]


# ---------------------------------------------------------------- health


def answer_health(service: FakeService, down: tuple[str, ...] = ()) -> None:
    outbox = {
        "ambassadors": (2, 1),
        "networks": (1, 0),
        "events": (0, 0),
        "newsletter": (5, 3),
        "social": (0, 0),
    }
    for name in registry.names():
        if name in outbox and name not in down:
            pending, failed = outbox[name]
            service.answer(
                ops.health(name),
                Health(
                    service=name,
                    status="ok",
                    uptime_seconds=12.5,
                    version="1.2.0",
                    outbox_pending=pending,
                    outbox_failed=failed,
                    consumer_lag=pending * 10,
                    dead_letters=failed,
                ),
            )
        else:
            service.answer(ops.health(name), not_running(name))
    web = Health(service="web", status="ok", uptime_seconds=3.0, version="1.2.0")
    service.answer(ops.health("web"), not_running("web") if "web" in down else web)


def test_health_names_what_staff_must_act_on_and_fails(service: FakeService) -> None:
    answer_health(service)
    problem = "publishing to the Facebook Page is paused since 2027-03-01 09:00 UTC: 190"
    service.answer(
        ops.health("social"),
        Health(service="social", status="degraded", uptime_seconds=1.0, problems=[problem]),
    )

    result = run("health")

    assert result.exit_code == 1
    assert f"social: {problem}" in result.stdout
    assert "not healthy: social" in result.stderr


def test_health_shows_version_outbox_lag_and_dead_letters_of_each(
    service: FakeService,
) -> None:
    answer_health(service)

    result = run("health")

    assert result.exit_code == 0, result.output
    # Only the services that exist, and the website: a planned one is neither asked nor
    # listed.
    assert service.sent == [(f"{name}.health", {}) for name in CHECKED]
    table = [cells(line) for line in rows(result.stdout)]
    header = ["SERVICE", "STATUS", "VERSION", "OUTBOX", "FAILED", "LAG", "DEAD", "UPTIME S"]
    assert table[0] == header
    body = {line[0]: line[1:] for line in table[2:]}
    assert body["ambassadors"] == ["ok", "1.2.0", "2", "1", "20", "1", "12.5"]
    assert body["networks"] == ["ok", "1.2.0", "1", "0", "10", "0", "12.5"]
    assert body["events"] == ["ok", "1.2.0", "0", "0", "0", "0", "12.5"]
    assert body["newsletter"] == ["ok", "1.2.0", "5", "3", "50", "3", "12.5"]
    assert body["web"] == ["ok", "1.2.0", "3.0"]  # no outbox nor consumers: empty cells
    assert [line[0] for line in table[2:]] == list(CHECKED)
    assert result.stderr == ""


def test_health_exits_non_zero_when_a_service_does_not_answer(service: FakeService) -> None:
    answer_health(service, down=("events",))

    result = run("health")

    assert result.exit_code == 1, result.output
    body = {line[0]: line[1:] for line in [cells(line) for line in rows(result.stdout)][2:]}
    assert body["events"] == ["not running"]
    assert body["ambassadors"][0] == "ok"
    assert result.stderr.strip() == "not healthy: events"

    as_json = run("health", "--json")
    assert as_json.exit_code == 1
    answer = json.loads(as_json.stdout)
    assert (answer["not_running"], answer["healthy"]) == (["events"], False)


def test_health_says_so_when_the_website_does_not_answer(service: FakeService) -> None:
    answer_health(service, down=("web",))

    result = run("health")

    assert result.exit_code == 1, result.output
    body = {line[0]: line[1:] for line in [cells(line) for line in rows(result.stdout)][2:]}
    assert body["web"] == ["not running"] and body["ambassadors"][0] == "ok"
    assert result.stderr.strip() == "not healthy: web"


def test_health_json_is_each_answer_as_the_service_sent_it(service: FakeService) -> None:
    answer_health(service)

    result = run("health", "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert set(answer) == {"running", "not_running", "healthy"}
    assert answer["running"]["newsletter"] == {
        "service": "newsletter",
        "status": "ok",
        "uptime_seconds": 12.5,
        "version": "1.2.0",
        "outbox_pending": 5,
        "outbox_failed": 3,
        "consumer_lag": 50,
        "dead_letters": 3,
        "problems": [],
    }
    assert list(answer["running"]) == list(CHECKED)
    assert (answer["not_running"], answer["healthy"]) == ([], True)


def test_health_without_nats_is_an_error_not_five_services_down(service: FakeService) -> None:
    unreachable = calls.Unreachable(
        ErrorCode.SERVICE_UNAVAILABLE, "cannot reach NATS at nats://127.0.0.1:4222"
    )
    for name in registry.names():
        service.answer(ops.health(name), unreachable)

    result = run("health")

    assert result.exit_code == 3
    assert one_line_error(result) == "error: cannot reach NATS at nats://127.0.0.1:4222"
    assert len(service.sent) == 1


# ---------------------------------------------------------------- dead letters


def test_dead_letters_list_shows_failed_outbox_entries_with_their_kind(
    service: FakeService,
) -> None:
    for name in registry.names():
        service.answer(ops.dead_letters_list(name), not_running(name))
    service.answer(
        ops.dead_letters_list("ambassadors"),
        DeadLetterPage(
            service="ambassadors",
            items=[
                DeadLetterView(
                    id="outbox:e1",
                    kind="outbox",
                    subject="ambassadors.v1.activated",
                    reason="message too large",
                    dead_at="2026-12-01T10:00:00+00:00",
                ),
                DeadLetterView(
                    id="NEWSLETTER:7",
                    stream="NEWSLETTER",
                    seq=7,
                    consumer="ambassadors",
                    subject="newsletter.v1.subscribed",
                    reason="boom",
                    dead_at="2026-11-30T10:00:00+00:00",
                ),
            ],
        ),
    )
    service.answer(ops.dead_letters_list("events"), DeadLetterPage(service="events", items=[]))
    service.answer(ops.dead_letters_list("networks"), DeadLetterPage(service="networks", items=[]))

    result = run("dead-letters", "list")

    assert result.exit_code == 0, result.output
    assert service.sent[0] == ("ambassadors.query.dead_letters.list", {"include_replayed": False})
    table = [cells(line) for line in rows(result.stdout)]
    assert table[0] == ["ID", "KIND", "SERVICE", "SUBJECT", "DEAD AT", "REASON"]
    assert table[2] == [
        "outbox:e1",
        "outbox",
        "ambassadors",
        "ambassadors.v1.activated",
        "2026-12-01T10:00:00+00:00",
        "message too large",
    ]
    assert table[3][:3] == ["NEWSLETTER:7", "event", "ambassadors"]
    assert result.stderr.strip() == "not running (not asked): newsletter, social"

    as_json = json.loads(run("dead-letters", "list", "--json").stdout)
    assert [(i["id"], i["kind"], i["service"]) for i in as_json["items"]] == [
        ("outbox:e1", "outbox", "ambassadors"),
        ("NEWSLETTER:7", "event", "ambassadors"),
    ]
    assert as_json["not_running"] == ["newsletter", "social"]


# ---------------------------------------------------------------- audit


def record(service: str, at: datetime, command: str, *targets: str, **more: str) -> AuditRecord:
    values = {"actor": "operator:anna", "outcome": "ok"} | more
    return AuditRecord(
        id=f"{service}-{command}-{at:%H%M}",
        service=service,
        command=command,
        targets=list(targets),
        at=at,
        **values,
    )


AMBASSADOR_RECORDS = [
    record("ambassadors", datetime(2026, 12, 1, 12, 0, tzinfo=UTC), "withdraw", "a1"),
    record("ambassadors", datetime(2026, 12, 1, 9, 0, tzinfo=UTC), "sign_up", "a1"),
]
EVENT_RECORDS = [
    record(
        "events",
        datetime(2026, 12, 1, 10, 30, tzinfo=UTC),
        "rsvp",
        "m1",
        "a1",
        actor="public",
        outcome="invalid_state",
    ),
]


def answer_audit(service: FakeService) -> None:
    for name in registry.names():
        service.answer(ops.audit(name), not_running(name))
    service.answer(
        ops.audit("ambassadors"), AuditPage(service="ambassadors", items=AMBASSADOR_RECORDS)
    )
    service.answer(ops.audit("events"), AuditPage(service="events", items=EVENT_RECORDS))
    service.answer(ops.audit("networks"), AuditPage(service="networks", items=[]))


def test_audit_merges_every_running_service_newest_first(service: FakeService) -> None:
    answer_audit(service)

    result = run("audit")

    assert result.exit_code == 0, result.output
    assert service.sent == [(f"{name}.query.audit", {"limit": 100}) for name in RUNNING]
    table = [cells(line) for line in rows(result.stdout)]
    assert table[0] == ["AT", "SERVICE", "ACTOR", "COMMAND", "TARGETS", "OUTCOME"]
    assert table[2:] == [
        ["2026-12-01T12:00:00Z", "ambassadors", "operator:anna", "withdraw", "a1", "ok"],
        ["2026-12-01T10:30:00Z", "events", "public", "rsvp", "m1, a1", "invalid_state"],
        ["2026-12-01T09:00:00Z", "ambassadors", "operator:anna", "sign_up", "a1", "ok"],
    ]
    assert result.stderr.strip() == "not running (not asked): newsletter, social"


def test_audit_json_is_the_merged_records_and_who_was_not_asked(service: FakeService) -> None:
    answer_audit(service)

    result = run("audit", "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    expected = [AMBASSADOR_RECORDS[0], EVENT_RECORDS[0], AMBASSADOR_RECORDS[1]]
    assert answer == {
        "items": [r.model_dump(mode="json") for r in expected],
        "not_running": ["newsletter", "social"],
    }


def test_audit_of_one_service_about_one_target(service: FakeService) -> None:
    answer_audit(service)

    result = run("audit", "--service", "ambassadors", "--target", "a1", "--limit", "1")

    assert result.exit_code == 0, result.output
    assert service.sent == [("ambassadors.query.audit", {"target": "a1", "limit": 1})]
    # The service answers at most --limit; the merged list keeps to it too.
    body = [cells(line) for line in rows(result.stdout)][2:]
    assert [line[3] for line in body] == ["withdraw"]
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--service", "nope"), "unknown service 'nope'; one of " + ", ".join(RUNNING)),
        (("--limit", "0"), "limit"),
        (("--target", ""), "target"),
    ],
    ids=["unknown-service", "limit", "empty-target"],
)
def test_audit_refuses_bad_options_before_asking(
    service: FakeService, args: tuple[str, ...], expected: str
) -> None:
    result = run("audit", *args)

    assert expected in one_line_error(result)
    assert service.sent == []


def test_audit_error_of_a_service_is_one_line(service: FakeService) -> None:
    answer_audit(service)
    service.answer(ops.audit("events"), ServiceError(ErrorCode.INTERNAL, "internal error: boom"))

    result = run("audit")

    assert result.exit_code == 1
    assert one_line_error(result) == "error: internal error: boom"


# ---------------------------------------------------------------- goals


GOALS = Goals(
    active=40, target=150, progress=40 / 150, citizens=6, citizen_share=0.15,
    citizen_share_target=0.2, by_kind={"citizen": 6}, by_theme={}, by_core_area={},
    pending=1, withdrawn=2, erased=0, months=[],
)  # fmt: skip


def test_goals_show_the_initiatives_month_by_month(service: FakeService) -> None:
    service.answer(Ambassadors.GOALS, GOALS)
    service.answer(
        Networks.INITIATIVES,
        Initiatives.model_validate({
            "period_start": "2026-01-01", "period_end": "2027-12-31", "target": 30,
            "started": 3, "progress": 0.1, "networks": 1, "meetings": 2,
            "by_kind": {"action": 1, "dialogue_meeting": 2},
            "months": [{"month": "2026-11", "networks": 1, "meetings": 2, "total": 3}],
        }),
    )  # fmt: skip
    human = run("goals")
    assert human.exit_code == 0, human.output
    assert "initiatives" in human.stdout and "3 of 30 (10%)" in human.stdout
    assert ["2026-11", "1", "2", "3"] in [cells(line) for line in rows(human.stdout)]
    as_json = json.loads(run("goals", "--json").stdout)
    assert as_json["active"] == 40 and as_json["initiatives"]["started"] == 3


def test_goals_without_the_networks_service_still_show_the_ambassadors(
    service: FakeService,
) -> None:
    service.answer(Ambassadors.GOALS, GOALS)
    service.answer(Networks.INITIATIVES, not_running("networks"))
    result = run("goals")
    assert result.exit_code == 0, result.output
    assert "40 of 150" in result.stdout and "not known: the networks service" in result.stdout


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["privacy", "export", "anna@example.org", "--out", "x.json"], "samskab privacy export"),
        (["health", "--json"], "samskab health"),
        (["ambassadors", "show", "4e6164d280b47b08"], "samskab ambassadors show"),
        (["--help"], "samskab"),
    ],
)
def test_a_traced_command_is_named_by_its_words_never_its_arguments(
    argv: list[str], name: str
) -> None:
    assert command_name(argv) == name
