"""Metrics: what a service's registry holds, the backlog gauges sampled from a stand-in,
error replies counted by code, mails and posts counted once committed, and the website
labelling requests by route template, never by the path with its token."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from contracts.errors import Error, ErrorCode
from services import registry
from services.runtime import metrics, tracing
from services.runtime.metrics import ServiceMetrics
from services.runtime.rpc import encode_error, encode_result
from services.runtime.testing import MemoryDatabase
from services.runtime.unit_of_work import UnitOfWork
from stack.embedded import EmbeddedStack, _banner, fresh_settings
from tests.unit.test_web_pages import TOKEN, StandIn, settings
from web.app import create_app
from web.metrics import UNMATCHED


def value(registry: Any, name: str, **labels: str) -> float | None:
    found = registry.get_sample_value(name, labels)
    return None if found is None else float(found)


@dataclass
class Scope:
    db: MemoryDatabase


class FakeService:
    """What the sampler asks of a service: a read scope and its consumers' lag."""

    def __init__(self, db: MemoryDatabase, lag: int | None) -> None:
        self.db = db
        self.lag = lag

    def reading(self) -> Scope:
        return Scope(self.db)

    async def consumer_lag(self) -> tuple[int | None, list[str]]:
        return self.lag, []


async def test_the_backlog_gauges_are_what_the_health_endpoint_counts() -> None:
    db = MemoryDatabase()
    states = ["pending", "in_progress", "failed", "published"]
    await db.outbox.insert_many([{"_id": str(i), "state": s} for i, s in enumerate(states)])
    await db.dead_letters.insert_many([{"_id": "x", "replayed_at": None}, {"_id": "y"}])
    await db.dead_letters.insert_one({"_id": "z", "replayed_at": "2026-01-01"})
    sampled = ServiceMetrics("ambassadors")

    await sampled.sample(FakeService(db, lag=7))  # type: ignore[arg-type]

    registry = sampled.registry
    assert value(registry, "samskab_outbox_pending") == 2
    assert value(registry, "samskab_outbox_failed") == 1
    assert value(registry, "samskab_dead_letters_waiting") == 2
    assert value(registry, "samskab_consumer_lag") == 7


async def test_a_lag_jetstream_cannot_tell_is_not_a_number_not_zero() -> None:
    sampled = ServiceMetrics("events")
    await sampled.sample(FakeService(MemoryDatabase(), lag=None))  # type: ignore[arg-type]
    lag = value(sampled.registry, "samskab_consumer_lag")
    assert lag is not None and math.isnan(lag)


def test_error_replies_are_counted_by_subject_and_code_and_results_are_not() -> None:
    counted = ServiceMetrics("ambassadors")
    subject = "ambassadors.cmd.sign_up"
    refused = encode_error(Error(code=ErrorCode.VALIDATION_FAILED, message="no"))

    counted.count_reply(subject, refused)
    counted.count_reply(subject, refused)
    counted.count_reply(subject, encode_result(None))

    labels = {"subject": subject, "code": "validation_failed"}
    assert value(counted.registry, "samskab_request_errors_total", **labels) == 2
    assert value(counted.registry, "samskab_request_errors_total", subject=subject) is None


def test_the_registry_serves_faststreams_counters_and_the_process_counters() -> None:
    names = generate_latest(ServiceMetrics("newsletter").registry).decode()
    for name in (
        "samskab_request_errors_total",
        "samskab_outbox_pending",
        "samskab_outbox_failed",
        "samskab_consumer_lag",
        "samskab_dead_letters_waiting",
        # faststream's middleware: messages handled per subject and status, and latency.
        "samskab_received_processed_messages_total",
        "samskab_received_processed_messages_duration_seconds",
        "samskab_mails_total",
        "samskab_posts_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in names, name


async def test_a_mail_queued_in_a_unit_of_work_counts_once_it_committed() -> None:
    before = value(metrics.PROCESS, "samskab_mails_total", state="queued") or 0.0
    uow = UnitOfWork(MemoryDatabase(), None, now=datetime.now(UTC))  # type: ignore[arg-type]

    metrics.count_mails(uow, "queued")
    assert (value(metrics.PROCESS, "samskab_mails_total", state="queued") or 0.0) == before
    for callback in uow.callbacks:
        callback()
    assert value(metrics.PROCESS, "samskab_mails_total", state="queued") == before + 1

    metrics.count_mails(object(), "queued", 3)  # outside a transaction: at once
    metrics.count_mails(object(), "queued", 0)
    assert value(metrics.PROCESS, "samskab_mails_total", state="queued") == before + 4


def test_a_post_counts_under_its_outcome() -> None:
    before = value(metrics.PROCESS, "samskab_posts_total", state="unconfirmed") or 0.0
    metrics.count_post(object(), "unconfirmed")
    assert value(metrics.PROCESS, "samskab_posts_total", state="unconfirmed") == before + 1


def test_the_website_labels_requests_by_route_template_never_by_token() -> None:
    app = create_app(settings(), StandIn())
    with TestClient(app, raise_server_exceptions=False) as browser:
        browser.get(f"/historier/egne/{TOKEN}")
        browser.head(f"/historier/egne/{TOKEN}")
        browser.get(f"/no/such/page/{TOKEN}")

    exposed = generate_latest(app.state.metrics.registry).decode()
    assert TOKEN not in exposed
    registry = app.state.metrics.registry
    samples = [
        s.labels
        for metric in registry.collect()
        for s in metric.samples
        if s.name == "samskab_web_requests_total"
    ]
    routes = {labels["route"] for labels in samples}
    assert "/historier/egne/{token}" in routes
    assert UNMATCHED in routes
    own = [labels for labels in samples if labels["route"] == "/historier/egne/{token}"]
    # HEAD is answered as the GET it stands for, and counted so.
    assert {labels["method"] for labels in own} == {"GET"}
    assert (
        sum(value(registry, "samskab_web_requests_total", **labels) or 0.0 for labels in own) == 2
    )
    assert (
        value(
            registry,
            "samskab_web_request_duration_seconds_count",
            method="GET",
            route="/historier/egne/{token}",
        )
        == 2
    )


def test_without_traces_an_outbox_entry_carries_no_trace() -> None:
    # SAMSKAB_OTEL_EXPORTER=none: no span records, so nothing is stored or published.
    assert tracing.middlewares("ambassadors", "none", "http://unused") == ()
    assert tracing.carrier() == {}


def test_make_up_gives_each_process_its_metrics_port_in_the_registrys_order(
    tmp_path: Path,
) -> None:
    chosen = fresh_settings(tmp_path, services=registry.built(), web=True, metrics_base_port=9460)
    stack = EmbeddedStack(chosen, tmp_path)
    ports = {name: stack.metrics_port(name) for name in stack.services}
    assert ports == {
        "ambassadors": 9460,
        "networks": 9461,
        "events": 9462,
        "newsletter": 9463,
        "social": 9464,
        "web": 9465,
    }
    newsletter = stack.service("newsletter").env or {}
    assert newsletter["SAMSKAB_METRICS_PORT"] == "9463"
    web = stack.service("web").env or {}
    assert web["SAMSKAB_WEB_METRICS_PORT"] == "9465"
    summary = _banner(stack)
    assert all(url in summary for url in stack.metrics_urls().values())
    assert "http://127.0.0.1:9460/metrics" in summary


def test_a_test_stack_serves_no_metrics(tmp_path: Path) -> None:
    stack = EmbeddedStack(fresh_settings(tmp_path, services=["ambassadors"]), tmp_path)
    assert stack.metrics_urls() == {}
    assert (stack.service("ambassadors").env or {})["SAMSKAB_METRICS_PORT"] == "0"
    assert "none (SAMSKAB_METRICS_BASE_PORT=0)" in _banner(stack)
