"""Metrics and traces of a real ambassadors service process: a sign-up sent through the
typed client shows in its Prometheus endpoint (handled per subject, an error reply by its
code, the outbox gauge), and with traces on the console its handler span carries the
correlation id the events it caused share, and the event on the stream carries its trace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.ambassadors import Endpoints
from contracts.errors import ServiceError
from stack.processes import free_port
from tests.integration.ambassadors_harness import AmbassadorsFactory, StreamEvent, eventually

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
        printed = spans(process.log_path.read_text(errors="replace"))
        return [span for span in printed if correlation_of(span) == correlation]

    found = await eventually(traced, what="the sign-up's span with its correlation id")
    sign_up_spans = [span for span in found if str(span["name"]).startswith(SIGN_UP)]
    assert sign_up_spans, found
    # The event carries the sign-up's trace on, for its consumers' spans to continue.
    trace_id = str(sign_up_spans[0]["context"]["trace_id"]).removeprefix("0x")
    assert event.headers["traceparent"].split("-")[1] == trace_id
