"""A span for every request the website answers, when traces are on (``SAMSKAB_OTEL_EXPORTER``).

The span is the start of the trace: the services' spans for what the page asked continue it
(the typed client sends its ``traceparent``), so a sign-up on the website, the ambassadors
service's command and the mails that followed are one trace. Like the metrics, a span is
named by its route's template, never the path: paths carry the personal tokens of mails'
links.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Receive, Scope, Send

from web.metrics import method_of, route_of
from web.security import ResponseStatus


class RequestSpans:
    """ASGI middleware; like RequestMetrics it sits inside HeadAsGet to see the route."""

    def __init__(self, app: ASGIApp, *, tracer: Any) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = method_of(scope)
        with self.tracer.start_as_current_span(method, kind=SpanKind.SERVER) as span:
            status = ResponseStatus(send)
            try:
                await self.app(scope, receive, status)
            finally:
                route = route_of(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status.code)
                if status.code >= 500:
                    span.set_status(Status(StatusCode.ERROR))
