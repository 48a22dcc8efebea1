"""OpenTelemetry traces of a service: off unless ``SAMSKAB_OTEL_EXPORTER`` says where to.

``none`` (the default) installs nothing: no span is recorded and the tagging below costs a
look-up of the current span. ``console`` prints finished spans (a developer's machine);
``otlp`` sends them over OTLP/HTTP to ``SAMSKAB_OTEL_ENDPOINT``. faststream's telemetry
middleware gives every handled message a span, continuing the trace its ``traceparent``
header names; the outbox keeps the emitting handler's ``traceparent`` with each event and
publishes it as a header, so a trace goes on across the stream to every consumer.

Every handler span carries ``samskab.correlation_id``: the id every event caused by one
request shares (see unit_of_work: a reaction's events take their cause's correlation, or
its id), so a sign-up and the mails it led to are found together.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TextIO

from opentelemetry import propagate, trace

from contracts.envelope import Event
from services.runtime.logging import get_logger

log = get_logger(__name__)

Exporter = Literal["none", "console", "otlp"]
CORRELATION_ATTRIBUTE = "samskab.correlation_id"


def correlation_of(event: Event) -> str:
    """The correlation ``event``'s consequences carry: its own, or (a first event) its id."""
    return str(event.correlation_id or event.event_id)


def tag_event(event: Event) -> None:
    """Mark the current span as belonging to ``event``'s correlation."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(CORRELATION_ATTRIBUTE, correlation_of(event))


def tag_emitted(events: Sequence[Event]) -> None:
    """Mark the current span (a command's) with the correlation of the events it emitted:
    the reactions to them, and the mails those queue, carry it."""
    span = trace.get_current_span()
    if not events or not span.is_recording():
        return
    span.set_attribute(CORRELATION_ATTRIBUTE, correlation_of(events[0]))
    if len(events) > 1:
        span.set_attribute("samskab.correlation_ids", [correlation_of(e) for e in events])


def carrier() -> dict[str, str]:
    """The current trace as W3C headers (``traceparent``), to travel with an event the
    outbox publishes later; empty when nothing is traced."""
    if not trace.get_current_span().is_recording():
        return {}
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def middlewares(service: str, exporter: Exporter, endpoint: str) -> tuple[Any, ...]:
    """The broker middleware that records spans, with a tracer provider exporting them;
    none when ``exporter`` is ``none``."""
    provider = provider_for(service, exporter, endpoint)
    if provider is None:
        return ()
    from faststream.nats.opentelemetry import NatsTelemetryMiddleware

    return (NatsTelemetryMiddleware(tracer_provider=provider),)


def provider_for(
    process: str, exporter: Exporter, endpoint: str, *, console: TextIO | None = None
) -> Any:
    """The tracer provider of ``process`` (``samskab-<process>``), installed globally, or
    None when ``exporter`` is ``none``. ``console``: where ``console`` prints the spans
    (standard output, a service's log; the CLI keeps its output for its answers)."""
    if exporter == "none":
        return None
    # Imported here: a process that traces nothing never loads the SDK.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"samskab-{process}"}))
    processor: SpanProcessor
    if exporter == "console":
        processor = SimpleSpanProcessor(ConsoleSpanExporter(out=console or sys.stdout))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
    provider.add_span_processor(processor)
    # Global as well: get_current_span() and any library instrumented later see it.
    trace.set_tracer_provider(provider)
    if console is None:  # a service says so in its log; the CLI's output is its answer
        log.info(
            "traces exported", exporter=exporter, endpoint=endpoint if exporter == "otlp" else ""
        )
    return provider


def shutdown() -> None:
    """Send what the exporter still holds (at the service's stop)."""
    provider = trace.get_tracer_provider()
    stop = getattr(provider, "shutdown", None)
    if callable(stop):
        stop()


@contextmanager
def command_span(process: str, exporter: Exporter, endpoint: str, name: str) -> Iterator[None]:
    """A span around a whole command of a short-lived process (the CLI), printed to
    standard error by ``console``; what the command asks the services continues it. Sent
    before the process ends."""
    provider = provider_for(process, exporter, endpoint, console=sys.stderr)
    if provider is None:
        yield
        return
    tracer = provider.get_tracer(f"samskab.{process}")
    try:
        # A command ends by exiting (SystemExit, also when it succeeded): not an error.
        with tracer.start_as_current_span(
            name, kind=trace.SpanKind.CLIENT, record_exception=False, set_status_on_exception=False
        ):
            yield
    finally:
        provider.shutdown()
