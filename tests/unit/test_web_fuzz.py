"""Hostile input to every page and form of the website: whatever a visitor (or a bot)
sends, and whatever the services answer, the site answers with a page of its own, never a
500 or a stack trace.

The services are a stand-in that answers each request with one of the errors the real ones
give (unavailable, not found, a field error, an expired link, a conflict, a wrong state,
an internal error). Each example draws a route, fills its path parameters, and sends a GET
with a random query or a POST with a genuine CSRF token and random fields: the names the site's
forms use and made-up ones, holding control characters, bidi overrides, long strings and
files. The real services and browser drive the real pages in tests/e2e.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import hypothesis.strategies as st
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from contracts.errors import ErrorCode, FieldError, ServiceError
from tests.unit.test_web_pages import StandIn, form_token
from tests.unit.test_web_pages import settings as web_settings
from web.app import PAGES, create_app
from web.csrf import FIELD

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"
FIELD_NAMES = sorted(
    {
        name
        for template in TEMPLATES.glob("*.j2")
        for name in re.findall(r'name="([a-z_0-9]+)"', template.read_text(encoding="utf-8"))
    }
    | {f"picture_{n}" for n in range(1, 11)}
    | {f"alt_{n}" for n in range(1, 11)}
)
ROUTES = [
    (route.path, method)
    for module in PAGES
    for route in module.router.routes
    if isinstance(route, APIRoute)
    for method in sorted(route.methods or ())
    if method in ("GET", "POST")
]
ANSWERS = [
    ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "not running"),
    ServiceError(ErrorCode.NOT_FOUND, "no such thing"),
    ServiceError(
        ErrorCode.VALIDATION_FAILED,
        "bad",
        details=[FieldError(field="email", message="bad"), FieldError(field="x.1", message="?")],
    ),
    ServiceError(ErrorCode.INVALID_TOKEN, "forged"),
    ServiceError(ErrorCode.TOKEN_EXPIRED, "old"),
    ServiceError(ErrorCode.CONFLICT, "already"),
    ServiceError(ErrorCode.INVALID_STATE, "not now"),
    ServiceError(ErrorCode.INTERNAL, "boom"),
]
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "\u202eredro\u202c",
            "a\x00b",
            "\r\n\x1b[31m",
            "x" * 70_000,
            "../../etc/passwd",
            "<script>alert(1)</script>",
            "2027-02-30",
            "-1",
            "99999999999999999999999",
            "ja",
            "",
        ]
    ),
)
PATH_VALUE = st.one_of(
    st.sampled_from(["tok_" + "a" * 40, "ABCD-EFGH", "1", "st-1", "a.jpg", "yes", "ja"]),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="/?#%"), max_size=30),
)


class Everything(StandIn):
    """Answers every request with the example's error."""

    answer: ServiceError = ANSWERS[0]

    async def call(self, endpoint: Any, request: Any, *, timeout: float | None = None) -> Any:
        self.calls.append((endpoint.subject, request))
        raise self.answer


@pytest.fixture(scope="module")
def services() -> Everything:
    return Everything()


@pytest.fixture(scope="module")
def browser(services: Everything) -> Iterator[TestClient]:
    # No rate limit to speak of: the examples are one visitor in a hurry.
    app = create_app(web_settings(web_rate_limit="100000/minute"), services)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def filled(path: str, draw: st.DrawFn) -> str:
    # Quoted as a browser would: the control characters reach the site as %1F and so on.
    return re.sub(r"\{[a-z_]+\}", lambda _: quote(draw(PATH_VALUE) or "x", safe=""), path)


@st.composite
def visits(draw: st.DrawFn) -> dict[str, Any]:
    path, method = draw(st.sampled_from(ROUTES))
    names = st.one_of(st.sampled_from(FIELD_NAMES), st.text(min_size=1, max_size=12))
    fields = draw(st.dictionaries(names, HOSTILE, max_size=8))
    files = {}
    if method == "POST" and draw(st.booleans()):
        content = draw(st.binary(max_size=2000))
        files[draw(st.sampled_from([f"picture_{n}" for n in range(1, 4)]))] = (
            draw(st.sampled_from(["a.jpg", "b.png", "c.txt", "", "../x.gif"])),
            content,
            draw(st.sampled_from(["image/jpeg", "text/plain", "application/octet-stream"])),
        )
    return {
        "path": filled(path, draw),
        "method": method,
        "fields": fields,
        "files": files,
        "answer": draw(st.sampled_from(ANSWERS)),
    }


@settings(
    max_examples=len(ROUTES) * 12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(visit=visits())
def test_no_input_and_no_service_answer_brings_a_500_or_a_trace(
    visit: dict[str, Any], browser: TestClient, services: Everything
) -> None:
    services.answer = visit["answer"]
    if visit["method"] == "GET":
        # An address is bounded long before a form is (h11 and every proxy cut it).
        query = {name: value[:8_000] for name, value in visit["fields"].items()}
        page = browser.get(visit["path"], params=query)
    else:
        # A page that asks no service, for the visitor's genuine form token.
        token = form_token(browser.get("/confirm/tok_" + "a" * 40).text)
        data = {**visit["fields"], FIELD: token}
        page = browser.post(visit["path"], data=data, files=visit["files"] or None)
    assert page.status_code != 500 or visit["answer"].code == ErrorCode.INTERNAL, (
        visit["path"],
        page.status_code,
        page.text[:500],
    )
    assert "Traceback" not in page.text and 'File "' not in page.text
    if page.headers.get("content-type", "").startswith("text/html"):
        assert 'lang="da"' in page.text
