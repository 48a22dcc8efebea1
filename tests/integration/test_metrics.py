"""Metrics and traces of a real ambassadors service process: a sign-up sent through the
typed client shows in its Prometheus endpoint (handled per subject, an error reply by its
code, the outbox gauge), and with traces on the console its handler span carries the
correlation id the events it caused share, and the event on the stream carries its trace.
The real website counts its requests by route template on a port of its own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.ambassadors import Endpoints
from contracts.errors import ServiceError
from stack.nats import NatsServer
from stack.processes import ManagedProcess, free_port
from tests.conftest import ServiceProcessFactory
from tests.integration.ambassadors_harness import AmbassadorsFactory, StreamEvent, eventually
from tests.support.stack import REPO_ROOT

pytest_plugins = ["tests.integration.ambassadors_fixtures"]
pytestmark = pytest.mark.integration

SIGN_UP = Endpoints.SIGN_UP.subject


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def total(text: str, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    return sum(
        value
        for found, have, value in samples(text)
        if found == name and labels.items() <= have.items()
    )


def correlation_of(span: dict[str, Any]) -> Any:
    attributes = span.get("attributes")
    return attributes.get("samskab.correlation_id") if isinstance(attributes, dict) else None


def traced_with(process: ManagedProcess, correlation: str) -> list[dict[str, Any]]:
    """The spans ``process`` printed that carry ``correlation``."""
    printed = spans(process.log_path.read_text(errors="replace"))
    return [span for span in printed if correlation_of(span) == correlation]


def trace_id_of(span: dict[str, Any]) -> str:
    return str(span["context"]["trace_id"]).removeprefix("0x")


def spans(log: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (pretty JSON objects, one after another)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := log.find('{\n    "name"', at)) >= 0:
        span, at = decoder.raw_decode(log, start)
        found.append(span)
    return found


async def test_a_sign_up_is_counted_and_traced_with_its_correlation(
    start_ambassadors: AmbassadorsFactory,
) -> None:
    port = free_port()
    ambassadors = await start_ambassadors(
        {
            "SAMSKAB_METRICS_PORT": str(port),
            "SAMSKAB_METRICS_SAMPLE_SECONDS": "0.5",
            "SAMSKAB_OTEL_EXPORTER": "console",
        }
    )
    url = f"http://127.0.0.1:{port}/metrics"

    async with httpx.AsyncClient(timeout=5) as http:

        async def scraped() -> str:
            return (await http.get(url)).raise_for_status().text

        before = await scraped()
        handled = "samskab_received_processed_messages_total"
        assert total(before, handled, handler=SIGN_UP) == 0

        signed_up = await ambassadors.sign_up()
        with pytest.raises(ServiceError):
            await ambassadors.request(SIGN_UP, {"email": "not-an-address"})

        async def counted() -> str | None:
            text = await scraped()
            done = total(text, handled, app_name="ambassadors", handler=SIGN_UP) >= 2
            return text if done and "samskab_outbox_pending" in text else None

        after = await eventually(counted, what="the sign-ups counted")
        errors = "samskab_request_errors_total"
        assert total(after, errors, subject=SIGN_UP, code="validation_failed") == 1
        latency = "samskab_received_processed_messages_duration_seconds_count"
        assert total(after, latency, handler=SIGN_UP) >= 2
        # Sampled from the database as the health endpoint counts it.
        assert any(name == "samskab_outbox_pending" for name, _, _ in samples(after))
        assert any(name == "samskab_consumer_lag" for name, _, _ in samples(after))

    # The event the sign-up emitted starts the correlation its consequences carry.
    ambassador_id = signed_up["ambassador"]["id"]

    async def emitted() -> list[StreamEvent]:
        return await ambassadors.events([ambassador_id], name="signed_up")

    event = (await eventually(emitted, what="the signed_up event"))[0]
    correlation = event.data["event_id"]
    process = ambassadors.processes[0]

    async def traced() -> list[dict[str, Any]]:
        return traced_with(process, correlation)

    found = await eventually(traced, what="the sign-up's span with its correlation id")
    sign_up_spans = [span for span in found if str(span["name"]).startswith(SIGN_UP)]
    assert sign_up_spans, found
    # The event carries the sign-up's trace on, for its consumers' spans to continue.
    assert event.headers["traceparent"].split("-")[1] == trace_id_of(sign_up_spans[0])


async def test_the_confirmation_mail_of_a_sign_up_is_counted_and_in_the_sign_ups_trace(
    start_ambassadors: AmbassadorsFactory, service_process: ServiceProcessFactory
) -> None:
    traces = {"SAMSKAB_OTEL_EXPORTER": "console"}
    ambassadors = await start_ambassadors(traces)
    port = free_port()
    newsletter = service_process(
        "newsletter",
        {
            **traces,
            "SAMSKAB_MONGO_DATABASE": f"news_{uuid.uuid4().hex[:8]}",
            "SAMSKAB_METRICS_PORT": str(port),
        },
    )
    async with httpx.AsyncClient(timeout=5) as http:
        url = f"http://127.0.0.1:{port}/metrics"
        text = (await http.get(url)).raise_for_status().text
        queued_before = total(text, "samskab_mails_total", state="queued")
        sent_before = total(text, "samskab_mails_total", state="sent")

        signed_up = await ambassadors.sign_up()

        async def mailed() -> str | None:
            text = (await http.get(url)).raise_for_status().text
            sent = total(text, "samskab_mails_total", state="sent")
            return text if sent > sent_before else None

        after = await eventually(mailed, timeout=30, what="the confirmation mail counted sent")
        assert total(after, "samskab_mails_total", state="queued") > queued_before

    async def emitted() -> list[StreamEvent]:
        return await ambassadors.events([signed_up["ambassador"]["id"]], name="signed_up")

    event = (await eventually(emitted, what="the signed_up event"))[0]
    correlation = event.data["event_id"]

    async def reacted() -> list[dict[str, Any]]:
        return traced_with(newsletter, correlation)

    # The newsletter's reaction, which queued the mail, continues the sign-up's trace.
    reaction = await eventually(reacted, what="the newsletter's span with the correlation id")
    sign_up = traced_with(ambassadors.processes[0], correlation)
    assert {trace_id_of(span) for span in reaction} <= {trace_id_of(span) for span in sign_up}


@contextmanager
def running_website(
    nats_server: NatsServer, tmp_path: Path, extra: dict[str, str] | None = None
) -> Iterator[tuple[str, str, ManagedProcess]]:
    """``python -m web`` on free ports; its site and metrics URLs, and the process."""
    port, metrics_port = free_port(), free_port()
    site = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "SAMSKAB_NATS_URL": nats_server.url,
        "SAMSKAB_DATA_DIR": str(tmp_path),
        "SAMSKAB_PUBLIC_URL": site,
        "SAMSKAB_WEB_PORT": str(port),
        "SAMSKAB_WEB_CSRF_SECRET": "c" * 32,
        "SAMSKAB_WEB_METRICS_PORT": str(metrics_port),
        **(extra or {}),
    }

    def up() -> bool:
        try:
            return httpx.get(f"{site}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    process = ManagedProcess(
        "web",
        [sys.executable, "-m", "web"],
        log_path=tmp_path / "log" / "web.log",
        env=env,
        cwd=REPO_ROOT,
        ready_check=up,
    )
    process.start()
    try:
        process.wait_ready(timeout=30)
        yield site, f"http://127.0.0.1:{metrics_port}/metrics", process
    finally:
        process.stop()
        print(f"--- web: {process.log_path}\n{process.log_tail(40)}")


@pytest.fixture
def website(nats_server: NatsServer, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The website with no service behind it; its site and metrics URLs."""
    with running_website(nats_server, tmp_path) as (site, metrics, _):
        yield site, metrics


async def test_the_website_counts_requests_by_route_template_on_its_own_port(
    website: tuple[str, str],
) -> None:
    site, metrics_url = website
    token = "tok_" + "b" * 40
    async with httpx.AsyncClient(timeout=10) as http:
        await http.get(f"{site}/historier/egne/{token}")
        # The public site does not serve them.
        assert (await http.get(f"{site}/metrics")).status_code == 404

        async def counted() -> str | None:
            text = (await http.get(metrics_url)).raise_for_status().text
            route = "/historier/egne/{token}"
            return text if total(text, "samskab_web_requests_total", route=route) >= 1 else None

        exposed = await eventually(counted, what="the website's request counted")
    assert token not in exposed
    assert total(exposed, "samskab_web_requests_total", route="(unmatched)", status="404") >= 1


async def test_a_page_of_the_website_starts_the_trace_the_service_continues(
    start_ambassadors: AmbassadorsFactory, nats_server: NatsServer, tmp_path: Path
) -> None:
    traces = {"SAMSKAB_OTEL_EXPORTER": "console"}
    ambassadors = await start_ambassadors(traces)
    with running_website(nats_server, tmp_path, traces) as (site, _, web):
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{site}/ambassadoerer")).status_code == 200

        async def page_span() -> dict[str, Any] | None:
            printed = spans(web.log_path.read_text(errors="replace"))
            found = [s for s in printed if s["name"] == "GET /ambassadoerer"]
            return found[0] if found else None

        page = await eventually(page_span, what="the website's span of the page")
    assert page["attributes"]["http.route"] == "/ambassadoerer"
    assert page["attributes"]["http.response.status_code"] == 200

    async def continued() -> list[dict[str, Any]]:
        printed = spans(ambassadors.processes[0].log_path.read_text(errors="replace"))
        return [s for s in printed if trace_id_of(s) == trace_id_of(page)]

    served = await eventually(continued, what="the ambassadors service's span in its trace")
    assert any(Endpoints.DIRECTORY.subject in span["name"] for span in served), served


async def test_a_cli_command_starts_the_trace_and_keeps_its_output_clean(
    start_ambassadors: AmbassadorsFactory, nats_server: NatsServer
) -> None:
    traces = {"SAMSKAB_OTEL_EXPORTER": "console"}
    ambassadors = await start_ambassadors(traces)
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli.main", "ambassadors", "list", "--json"],
        env={**os.environ, **traces, "SAMSKAB_NATS_URL": nats_server.url},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert "items" in json.loads(cli.stdout), cli.stdout  # the answer alone: spans on stderr
    [command] = [s for s in spans(cli.stderr) if s["name"] == "samskab ambassadors list"]
    assert command["status"]["status_code"] == "UNSET"

    async def continued() -> list[dict[str, Any]]:
        printed = spans(ambassadors.processes[0].log_path.read_text(errors="replace"))
        return [s for s in printed if trace_id_of(s) == trace_id_of(command)]

    served = await eventually(continued, what="the ambassadors service's span in its trace")
    assert any(Endpoints.LIST.subject in span["name"] for span in served), served
