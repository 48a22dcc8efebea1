"""The website's Prometheus metrics: requests by method, route and status, and their latency.

A request is labelled with its route's template (``/historier/egne/{token}``), never the
path it asked for: paths carry the personal tokens of mails' links, and one label value
per visitor would also swamp Prometheus. They are served on a port of their own
(``SAMSKAB_WEB_METRICS_PORT``), never on the public site.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

from web.security import ResponseStatus

# What a request no route matched is labelled (a 404 for any path a scanner tries).
UNMATCHED = "(unmatched)"
# Any other method a client makes up is one label value, not one each.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class WebMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "samskab_web_requests",
            "Requests the website answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "samskab_web_request_duration_seconds",
            "Seconds until the website's answer was sent, by method and route template",
            ["method", "route"],
            registry=self.registry,
        )


def method_of(scope: Scope) -> str:
    """The request's method as a label: any method a client makes up is one value."""
    method: str = scope["method"]
    return method if method in METHODS else "OTHER"


def route_of(scope: Scope) -> str:
    """The template of the route that answered (set in the scope by the router)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestMetrics:
    """ASGI middleware counting and timing every request; it must sit inside any layer
    that replaces the scope (HeadAsGet), so that it sees the route the router set."""

    def __init__(self, app: ASGIApp, *, metrics: WebMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = ResponseStatus(send)
        try:
            await self.app(scope, receive, status)
        finally:
            route = route_of(scope)
            method = method_of(scope)
            self.metrics.requests.labels(method=method, route=route, status=str(status.code)).inc()
            self.metrics.latency.labels(method=method, route=route).observe(
                time.perf_counter() - started
            )
