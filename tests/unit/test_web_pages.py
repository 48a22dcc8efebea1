"""The website's pages against a stand-in for the services (the typed client's interface,
in memory): what a visitor sees, and what the pages ask the services to do. The real
services and a real browser drive the same pages in tests/integration/test_web_*.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from contracts.ambassadors import (
    AmbassadorView,
    ConsentText,
    Directory,
    DirectoryEntry,
    Goals,
    MonthPoint,
    SignUpReceived,
    VerifyResult,
)
from contracts.ambassadors import Endpoints as Ambassadors
from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.events import COPENHAGEN, Calendar, InvitationView, PublicMeeting, RsvpResult
from contracts.events import Endpoints as Events
from contracts.networks import (
    AlertAnswerView,
    Initiatives,
    InvitationAnswer,
    NetworkInvitation,
    PublicNetworks,
)
from contracts.networks import Endpoints as Networks
from contracts.newsletter import (
    ARCHIVE_IMAGE_CHUNK,
    Archive,
    ArchiveEntry,
    ArchiveImage,
    GetArchiveImage,
    IssueRendering,
    SubscriberView,
    SubscriptionReceived,
)
from contracts.newsletter import Endpoints as Newsletter
from contracts.social import Endpoints as Social
from contracts.social import OwnStories, OwnStory, PicturePiece
from tests.support.web_pages import page_paths
from web.app import create_app
from web.charts import line_chart
from web.csrf import FIELD
from web.pages.calendar import danish_date, danish_time
from web.security import redact_path
from web.settings import WebSettings

TOKEN = "tok_" + "a" * 40
ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
NOW = datetime.now(UTC)
UNSUBSCRIBED = SubscriberView.model_validate(
    {"id": "sub-1", "status": "unsubscribed", "source": "direct", "email": None, "created_at": NOW}
)
CONFIRMED = AmbassadorView.model_validate(
    {
        "id": "amb-1",
        "status": "active",
        "source": "self",
        "name": "Anna",
        "email": None,
        "kind": "citizen",
        "signed_up_at": NOW,
    }
)


class StandIn:
    """Answers each endpoint with what a test put there (a reply, or an error to raise),
    and keeps every request it was sent."""

    def __init__(self) -> None:
        self.replies: dict[str, Any] = {}
        self.calls: list[tuple[str, BaseModel]] = []

    async def call(
        self, endpoint: Endpoint[Any, Any], request: BaseModel, *, timeout: float | None = None
    ) -> Any:
        self.calls.append((endpoint.subject, request))
        reply = self.replies.get(endpoint.subject)
        if callable(reply):  # an answer that depends on what was asked before
            reply = reply(request)
        if isinstance(reply, Exception):
            raise reply
        if reply is None:
            raise ServiceError(ErrorCode.SERVICE_UNAVAILABLE, "not running")
        return reply

    def subjects(self) -> list[str]:
        return [subject for subject, _ in self.calls]


def settings(**overrides: Any) -> WebSettings:
    chosen: dict[str, Any] = {
        "web_csrf_secret": "s" * 32,
        "public_url": "http://testserver",
        # Each test sets what the services answer; test_web_shared_answers keeps them.
        "web_answer_cache_seconds": 0,
    }
    return WebSettings(_env_file=None, **{**chosen, **overrides})


@pytest.fixture
def services() -> StandIn:
    return StandIn()


@pytest.fixture
def browser(services: StandIn) -> Iterator[TestClient]:
    with TestClient(create_app(settings(), services), raise_server_exceptions=False) as client:
        yield client


def form_token(page: str) -> str:
    found = re.search(rf'name="{FIELD}" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


# ---------------------------------------------------------------- links that act


def test_opening_a_confirmation_link_shows_one_button_and_confirms_nothing(
    browser: TestClient, services: StandIn
) -> None:
    page = browser.get(f"/confirm/{TOKEN}")
    assert page.status_code == 200
    assert page.text.count("<button") == 1 and "Bekræft tilmelding" in page.text
    assert 'lang="da"' in page.text
    assert services.calls == []
    assert page.headers["Cache-Control"] == "no-store"


def test_pressing_the_button_confirms_the_sign_up(browser: TestClient, services: StandIn) -> None:
    services.replies[Ambassadors.CONFIRM.subject] = CONFIRMED
    token = form_token(browser.get(f"/confirm/{TOKEN}").text)
    done = browser.post(f"/confirm/{TOKEN}", data={FIELD: token})
    assert done.status_code == 200, done.text
    assert "du er nu ambassadør" in text(done.text)
    [(subject, request)] = services.calls
    assert subject == Ambassadors.CONFIRM.subject and request.model_dump() == {"token": TOKEN}


def token_routes() -> list[str]:
    """Every page path of the site that carries a token (from a mail)."""
    return [p for p in page_paths() if "{token}" in p]


def test_every_token_link_is_known_to_this_test() -> None:
    assert sorted(token_routes()) == [
        "/akut/{token}",
        "/akut/{token}/{answer}",
        "/confirm/{token}",
        "/historier/egne/{token}",
        "/historier/egne/{token}/billeder/{name}",
        "/historier/egne/{token}/{story_id}",
        "/netvaerk/svar/{token}",
        "/netvaerk/svar/{token}/{answer}",
        "/newsletter/confirm/{token}",
        "/newsletter/unsubscribe/{token}",
        "/rsvp/{token}",
        "/rsvp/{token}/{answer}",
    ]


def own_stories() -> OwnStories:
    story = OwnStory.model_validate(
        {
            "id": "st-1",
            "status": "in_review",
            "kind": "theme_work",
            "text": "Vi laver lektier med børnene.",
            "submitted_at": NOW,
            "updated_at": NOW,
            "revisable": True,
        }
    )
    return OwnStories(ambassador_id="a1", name="Anna", items=[story])


def a_picture_piece(request: Any) -> PicturePiece:
    data = b"\xff\xd8 a small picture"
    digest = hashlib.sha256(data).hexdigest()
    return PicturePiece(
        name=request.name,
        content_type="image/jpeg",
        size=len(data),
        digest=digest,
        offset=request.offset,
        data=data[request.offset :],
    )


@pytest.mark.parametrize("route", token_routes())
def test_opening_any_token_link_asks_no_service_to_change_anything(
    route: str, browser: TestClient, services: StandIn
) -> None:
    """Mail scanners open every link in a mail: a GET (or HEAD) may look, never act."""
    services.replies[Events.INVITATION.subject] = invitation()
    services.replies[Networks.INVITATION.subject] = network_invitation()
    services.replies[Networks.SHOW_ALERT.subject] = an_alert()
    services.replies[Social.OWN.subject] = own_stories()
    services.replies[Social.OWN_PICTURE.subject] = a_picture_piece
    for answer in ("yes", "maybe", "no", "ja", "nej"):
        path = route.replace("{token}", TOKEN).replace("{answer}", answer)
        path = path.replace("{story_id}", "st-1").replace("{name}", "pic-1.jpg")
        assert browser.get(path).status_code == 200
        assert browser.head(path).status_code == 200
    commands = [s for s in services.subjects() if ".cmd." in s]
    assert commands == []


def test_a_post_without_the_forms_token_changes_nothing(
    browser: TestClient, services: StandIn
) -> None:
    browser.get(f"/confirm/{TOKEN}")  # the visitor has the cookie, not the token
    for data in ({}, {FIELD: "forged"}):
        refused = browser.post(f"/confirm/{TOKEN}", data=data)
        assert refused.status_code == 403
        assert "Formularen er udløbet" in refused.text
    assert services.calls == []


def test_a_token_from_another_visitor_does_not_count(services: StandIn) -> None:
    app = create_app(settings(), services)
    with TestClient(app) as mallory, TestClient(app) as anna:
        token = form_token(mallory.get(f"/confirm/{TOKEN}").text)
        anna.get(f"/confirm/{TOKEN}")
        assert anna.post(f"/confirm/{TOKEN}", data={FIELD: token}).status_code == 403
    assert services.calls == []


def test_a_filled_in_honeypot_is_thanked_and_ignored(
    browser: TestClient, services: StandIn
) -> None:
    token = form_token(browser.get(f"/confirm/{TOKEN}").text)
    done = browser.post(f"/confirm/{TOKEN}", data={FIELD: token, "adresse2": "spam"})
    assert done.status_code == 200
    assert services.calls == []


def test_an_expired_link_says_so_in_danish(browser: TestClient, services: StandIn) -> None:
    services.replies[Newsletter.CONFIRM.subject] = ServiceError(
        ErrorCode.TOKEN_EXPIRED, "the token expired"
    )
    token = form_token(browser.get(f"/newsletter/confirm/{TOKEN}").text)
    page = browser.post(f"/newsletter/confirm/{TOKEN}", data={FIELD: token})
    assert page.status_code == 400
    assert "Linket er udløbet" in page.text
    assert "token expired" not in page.text


def test_a_mangled_link_is_refused_before_any_service_is_asked(
    browser: TestClient, services: StandIn
) -> None:
    page = browser.get("/newsletter/unsubscribe/short")
    assert page.status_code == 400 and "Linket er ugyldigt" in page.text
    assert services.calls == []


def test_one_click_unsubscribe_acts_at_once_without_cookie_or_token(
    services: StandIn,
) -> None:
    services.replies[Newsletter.UNSUBSCRIBE.subject] = UNSUBSCRIBED
    with TestClient(create_app(settings(), services)) as mail_program:
        answer = mail_program.post(
            f"/newsletter/unsubscribe/{TOKEN}", data={"List-Unsubscribe": "One-Click"}
        )
    assert answer.status_code == 200
    assert services.subjects() == [Newsletter.UNSUBSCRIBE.subject]


def test_unsubscribing_through_the_page_needs_the_button(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Newsletter.UNSUBSCRIBE.subject] = UNSUBSCRIBED
    page = browser.get(f"/newsletter/unsubscribe/{TOKEN}")
    assert services.calls == [] and "Afmeld" in page.text
    assert browser.post(f"/newsletter/unsubscribe/{TOKEN}", data={}).status_code == 403
    done = browser.post(f"/newsletter/unsubscribe/{TOKEN}", data={FIELD: form_token(page.text)})
    assert done.status_code == 200 and "Du er afmeldt" in done.text
    assert services.subjects() == [Newsletter.UNSUBSCRIBE.subject]


def test_too_many_posts_from_one_client_are_refused(services: StandIn) -> None:
    with TestClient(create_app(settings(web_rate_limit="3/minute"), services)) as client:
        statuses = [client.get(f"/confirm/{TOKEN}").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


# ---------------------------------------------------------------- pages that show


def test_a_genuine_certificate_shows_its_number_and_holder_only(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.VERIFY.subject] = VerifyResult(
        code="ABCD1234",
        genuine=True,
        valid=True,
        number="FRC-2026-000001",
        holder="Anna Hansen",
        organisation=None,
        status="active",
    )
    page = browser.get("/verify/ABCD1234")
    assert page.status_code == 200
    assert "Beviset er ægte og gyldigt" in page.text
    assert "FRC-2026-000001" in page.text and "Anna Hansen" in page.text
    assert page.headers["ETag"] and "public" in page.headers["Cache-Control"]
    again = browser.get("/verify/ABCD1234", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status_code == 304


def test_a_revoked_and_an_unknown_certificate_say_so(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.VERIFY.subject] = VerifyResult(
        code="ABCD1234",
        genuine=True,
        valid=False,
        number="FRC-2026-000001",
        holder="Anna Hansen",
        status="revoked",
    )
    assert "ikke længere gyldigt" in browser.get("/verify/ABCD1234").text
    services.replies[Ambassadors.VERIFY.subject] = VerifyResult(
        code="ZZZZ9999", genuine=False, valid=False, status="unknown"
    )
    assert "Vi kender ikke dette bevis" in browser.get("/verify/ZZZZ9999").text
    assert "Vi kender ikke" in browser.get("/verify/x").text  # too short to ask about


def test_a_service_that_is_down_gets_503_in_danish_and_the_rest_works(
    browser: TestClient, services: StandIn
) -> None:
    down = browser.get("/verify/ABCD1234")
    assert down.status_code == 503 and down.headers["Retry-After"] == "30"
    assert "midlertidigt utilgængelige" in down.text
    front = browser.get("/")
    assert front.status_code == 200
    assert "Nyhedsbrevet er midlertidigt utilgængeligt" in front.text


def test_the_front_page_links_the_latest_newsletter(browser: TestClient, services: StandIn) -> None:
    now = datetime.now(UTC)
    services.replies[Newsletter.ARCHIVE.subject] = Archive(
        issues=[
            ArchiveEntry(
                number=n,
                title=f"Nummer {n}",
                since=now,
                until=now,
                sent_at=now,
                archive_object=f"issue-{n}.html",
            )
            for n in (1, 2)
        ]
    )
    services.replies[Events.CALENDAR.subject] = Calendar(ics=ICS, meetings=0)
    services.replies[Ambassadors.GOALS.subject] = Goals(
        active=90, target=150, progress=0.6, citizens=18, citizen_share=0.2,
        citizen_share_target=0.2, by_kind={}, by_theme={}, by_core_area={}, pending=0,
        withdrawn=0, erased=0, months=[],
    )  # fmt: skip
    page = browser.get("/")
    assert 'href="/nyhedsbrev/2"' in page.text and "Nummer 2" in page.text
    assert "Netværket har 90 aktive ambassadører; målet er 150." in text(page.text)
    assert "public" in page.headers["Cache-Control"]
    # The goals' service down: the rest of the page is still there.
    del services.replies[Ambassadors.GOALS.subject]
    partial = browser.get("/")
    assert partial.status_code == 200 and "Nummer 2" in partial.text
    assert "Ambassadørernes sider er midlertidigt utilgængelige" in partial.text


def test_a_head_request_gets_the_gets_headers_without_the_body(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Events.CALENDAR.subject] = Calendar(ics=ICS, meetings=0)
    got, head = browser.get("/kalender"), browser.head("/kalender")
    assert head.status_code == 200 and head.content == b""
    for header in ("ETag", "Cache-Control", "Content-Length", "Content-Security-Policy"):
        assert head.headers[header] == got.headers[header], header
    assert browser.head("/findes-ikke").status_code == 404


def test_every_page_carries_strict_headers(browser: TestClient) -> None:
    page = browser.get(f"/confirm/{TOKEN}")
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in page.headers  # the public URL is http here


def test_https_sites_add_hsts(services: StandIn) -> None:
    app = create_app(settings(public_url="https://samskab.example"), services)
    with TestClient(app, base_url="https://samskab.example") as client:
        assert "max-age" in client.get("/healthz").headers["Strict-Transport-Security"]


def test_an_unknown_page_and_a_failing_page_are_danish_without_a_trace(
    browser: TestClient, services: StandIn
) -> None:
    missing = browser.get("/findes-ikke")
    assert missing.status_code == 404 and "Siden findes ikke" in missing.text
    services.replies[Ambassadors.VERIFY.subject] = RuntimeError("boom")
    failed = browser.get("/verify/ABCD1234")
    assert failed.status_code == 500 and "Der skete en fejl" in failed.text
    assert "Traceback" not in failed.text and "boom" not in failed.text


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    browser: TestClient, services: StandIn
) -> None:
    answer = browser.post(f"/confirm/{TOKEN}", content=b"x" * (65 * 1024))
    assert answer.status_code == 413
    assert services.calls == []


def test_tokens_never_reach_the_access_log() -> None:
    assert redact_path(f"/confirm/{TOKEN}") == "/confirm/<token>"
    assert redact_path(f"/rsvp/{TOKEN}/yes") == "/rsvp/<token>/yes"
    assert redact_path(f"/newsletter/unsubscribe/{TOKEN}") == "/newsletter/unsubscribe/<token>"
    assert redact_path("/verify/ABCD1234") == "/verify/ABCD1234"


# ---------------------------------------------------------------- becoming an ambassador

CONSENT = ConsentText(version="2026-11", text="Første afsnit.\n\nAndet afsnit.")


def a_sign_up(page: str, **fields: Any) -> dict[str, Any]:
    chosen = {
        FIELD: form_token(page),
        "consent_version": "2026-11",
        "kind": "association",
        "organisation": "Fredericia Skakklub",
        "name": "Jens Hansen",
        "email": "jens@example.net",
        "phone": "75 92 00 00",
        "website": "skak.example.net",
        "description": "Vi spiller skak med alle.",
        "themes": ["5", "10"],
        "core_areas": ["health"],
        "skills": "skak, lektie-hjælp",
        "public": "ja",
        "consent": "ja",
    }
    return {k: v for k, v in {**chosen, **fields}.items() if v is not None}


def test_the_sign_up_form_shows_every_field_and_the_consent_text_in_full(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.CONSENT.subject] = CONSENT
    page = browser.get("/bliv-ambassadoer")
    assert page.status_code == 200
    for field in (
        "kind",
        "organisation",
        "name",
        "email",
        "phone",
        "website",
        "description",
        "themes",
        "core_areas",
        "skills",
        "public",
        "networks_at_once",
        "paused_until",
        "consent",
    ):
        assert f'<label for="{field}"' in page.text or f'id="{field}"' in page.text, field
    assert "Fra udsat til ansat" in page.text and "Lighed i sundhed" in page.text
    assert "Kommunal enhed" in page.text
    assert "<p>Første afsnit.</p><p>Andet afsnit.</p>" in page.text
    assert 'name="consent_version" value="2026-11"' in page.text
    assert page.text.count('type="checkbox" id="themes') == 12


def test_signing_up_sends_the_self_sign_up_with_the_consent_read_and_thanks_neutrally(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.CONSENT.subject] = CONSENT
    services.replies[Ambassadors.SIGN_UP.subject] = SignUpReceived()
    page = browser.get("/bliv-ambassadoer").text
    done = browser.post("/bliv-ambassadoer", data=a_sign_up(page))
    assert done.status_code == 200, done.text
    assert "Hvis adressen kan bruges, er en mail på vej" in text(done.text)
    [request] = [r for s, r in services.calls if s == Ambassadors.SIGN_UP.subject]
    sent = request.model_dump(mode="json")
    assert type(request).__name__ == "SignUp" and "staff" not in sent
    assert sent["themes"] == [5, 10] and sent["core_areas"] == ["health"]
    assert sent["skills"] == ["skak", "lektie-hjælp"] and sent["public"] is True
    assert sent["consent"] is True and sent["consent_version"] == "2026-11"


def test_the_sign_up_says_how_many_networks_at_once_and_until_when_a_pause_lasts(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.CONSENT.subject] = CONSENT
    services.replies[Ambassadors.SIGN_UP.subject] = SignUpReceived()
    page = browser.get("/bliv-ambassadoer").text
    # Left as they come: no limit of their own, no pause.
    browser.post("/bliv-ambassadoer", data=a_sign_up(page))
    # A browser without a date picker lets people type the Danish way.
    browser.post(
        "/bliv-ambassadoer", data=a_sign_up(page, networks_at_once="2", paused_until="1-3-2027")
    )
    sent = [
        r.model_dump(mode="json") for s, r in services.calls if s == Ambassadors.SIGN_UP.subject
    ]
    assert [(r["networks_at_once"], r["paused_until"]) for r in sent] == [
        (None, None),
        (2, "2027-03-01"),
    ]
    refused = browser.post(
        "/bliv-ambassadoer", data=a_sign_up(page, networks_at_once="11", paused_until="snart")
    )
    assert refused.status_code == 400
    for field in ("networks_at_once", "paused_until"):
        assert f'id="{field}-error"' in refused.text, field
    assert len(sent) == 2


def test_a_sign_up_trying_to_be_staff_is_an_ordinary_self_sign_up(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.CONSENT.subject] = CONSENT
    services.replies[Ambassadors.SIGN_UP.subject] = SignUpReceived()
    page = browser.get("/bliv-ambassadoer").text
    browser.post("/bliv-ambassadoer", data=a_sign_up(page, staff="true", source="staff"))
    assert Ambassadors.REGISTER.subject not in services.subjects()
    [request] = [r for s, r in services.calls if s == Ambassadors.SIGN_UP.subject]
    assert "staff" not in request.model_dump() and "source" not in request.model_dump()


def test_every_bad_field_is_named_at_once_and_nothing_is_sent(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.CONSENT.subject] = CONSENT
    page = browser.get("/bliv-ambassadoer").text
    refused = browser.post(
        "/bliv-ambassadoer",
        data=a_sign_up(page, kind=None, email="ikke-en-adresse", consent=None, themes=["13"]),
    )
    assert refused.status_code == 400
    for field in ("kind", "email", "consent", "themes"):
        assert f'href="#{field}"' in refused.text and f'id="{field}-error"' in refused.text
    assert (
        "Du skal give samtykke" in refused.text
        and "Vælg, hvem du tilmelder dig som" in refused.text
    )
    assert (
        'value="Jens Hansen"' in refused.text
        and "Vi spiller skak med alle.</textarea>" in refused.text
    )
    assert Ambassadors.SIGN_UP.subject not in services.subjects()


def test_the_services_field_errors_are_shown_at_their_fields(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.CONSENT.subject] = CONSENT
    services.replies[Ambassadors.SIGN_UP.subject] = ServiceError(
        ErrorCode.VALIDATION_FAILED,
        "invalid",
        details=[
            FieldError(field="organisation", message="an association signs up with its name"),
            FieldError(field="consent_version", message="the consent text is now version 2027"),
        ],
    )
    page = browser.get("/bliv-ambassadoer").text
    refused = browser.post("/bliv-ambassadoer", data=a_sign_up(page, organisation=None))
    assert refused.status_code == 400
    assert (
        'id="organisation-error"' in refused.text
        and "Skriv navnet på din organisation" in refused.text
    )
    assert (
        'id="consent-error"' in refused.text and "Samtykketeksten er blevet ændret" in refused.text
    )
    # The new text must be read and agreed to again: the box is not left ticked.
    consent_box = re.search(r'<input type="checkbox" id="consent"[^>]*>', refused.text)
    assert consent_box and "checked" not in consent_box.group(0)


def test_the_sign_up_page_is_503_in_danish_while_the_ambassadors_service_is_down(
    browser: TestClient,
) -> None:
    page = browser.get("/bliv-ambassadoer")
    assert page.status_code == 503 and page.headers["Retry-After"]
    assert "Ambassadørernes sider er midlertidigt utilgængelige" in page.text


# ---------------------------------------------------------------- the newsletter


def test_subscribing_answers_the_same_neutral_way_and_sends_the_subscription(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Newsletter.SUBSCRIBE.subject] = SubscriptionReceived()
    services.replies[Newsletter.ARCHIVE.subject] = Archive(issues=[])
    page = browser.get("/nyhedsbrev")
    assert page.status_code == 200 and '<label for="email">E-mail</label>' in page.text
    done = browser.post(
        "/nyhedsbrev",
        data={FIELD: form_token(page.text), "email": "ole@example.net", "name": "Ole"},
    )
    assert done.status_code == 200
    assert "Hvis adressen kan bruges, er en mail på vej" in text(done.text)
    sent = [r for s, r in services.calls if s == Newsletter.SUBSCRIBE.subject]
    assert [r.model_dump() for r in sent] == [{"email": "ole@example.net", "name": "Ole"}]


def test_a_bad_address_is_named_next_to_its_field_and_nothing_is_sent(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Newsletter.ARCHIVE.subject] = Archive(issues=[])
    page = browser.get("/nyhedsbrev")
    refused = browser.post(
        "/nyhedsbrev", data={FIELD: form_token(page.text), "email": "ikke-en-adresse"}
    )
    assert refused.status_code == 400
    assert 'class="error-summary"' in refused.text and 'href="#email"' in refused.text
    assert 'id="email-error"' in refused.text and 'aria-invalid="true"' in refused.text
    assert "Skriv en gyldig e-mailadresse" in refused.text
    assert 'value="ikke-en-adresse"' in refused.text  # what was typed stays
    assert Newsletter.SUBSCRIBE.subject not in services.subjects()


def test_the_newsletter_page_works_while_the_archive_is_unavailable(
    browser: TestClient, services: StandIn
) -> None:
    page = browser.get("/nyhedsbrev")
    assert page.status_code == 200
    assert "Nyhedsbrevet er midlertidigt utilgængeligt" in page.text
    assert "<form" in page.text


def test_a_sent_issue_is_shown_as_its_public_web_version(
    browser: TestClient, services: StandIn
) -> None:
    rendering = IssueRendering(
        id="iss-1",
        number=3,
        state="sent",
        title="Nummer 3",
        subject="Nyhedsbrev nr. 3",
        html="<html><body><h1>Nummer 3</h1></body></html>",
        text="Nummer 3",
        sent_at=NOW,
    )
    services.replies[Newsletter.ARCHIVE.subject] = Archive(issues=[], issue=rendering)
    page = browser.get("/nyhedsbrev/3")
    assert page.status_code == 200 and "<h1>Nummer 3</h1>" in page.text
    assert "script" not in page.headers["Content-Security-Policy"]
    [(_, asked)] = services.calls
    assert asked.model_dump() == {"number": 3}
    services.replies[Newsletter.ARCHIVE.subject] = ServiceError(ErrorCode.NOT_FOUND, "none")
    assert browser.get("/nyhedsbrev/4").status_code == 404


def test_an_issues_picture_is_fetched_in_pieces_and_served_cacheable(
    browser: TestClient, services: StandIn
) -> None:
    picture = bytes(range(256)) * 5000  # 1.28 MB: three pieces
    digest = hashlib.sha256(picture).hexdigest()

    def piece(request: Any) -> ArchiveImage:
        data = picture[request.offset : request.offset + ARCHIVE_IMAGE_CHUNK]
        return ArchiveImage(
            name=request.name,
            content_type="image/jpeg",
            size=len(picture),
            digest=digest,
            offset=request.offset,
            data=data,
        )

    services.replies[Newsletter.ARCHIVE_IMAGE.subject] = piece
    shown = browser.get("/nyhedsbrev/images/abc123.jpg")
    assert shown.status_code == 200 and shown.content == picture
    assert shown.headers["content-type"] == "image/jpeg"
    assert shown.headers["Cache-Control"].startswith("public") and shown.headers["ETag"]
    offsets = [r.offset for _, r in services.calls if isinstance(r, GetArchiveImage)]
    assert offsets == [0, ARCHIVE_IMAGE_CHUNK, 2 * ARCHIVE_IMAGE_CHUNK]
    again = browser.get(
        "/nyhedsbrev/images/abc123.jpg", headers={"If-None-Match": shown.headers["ETag"]}
    )
    assert again.status_code == 304
    # A name that is no picture's is refused before any service is asked.
    before = len(services.calls)
    assert browser.get("/nyhedsbrev/images/..%2Fsecret").status_code in (400, 404)
    assert browser.get("/nyhedsbrev/images/a b.jpg").status_code == 400
    assert len(services.calls) == before
    services.replies[Newsletter.ARCHIVE_IMAGE.subject] = ServiceError(ErrorCode.NOT_FOUND, "no")
    assert browser.get("/nyhedsbrev/images/gone.jpg").status_code == 404


def test_the_atom_feed_lists_the_sent_issues_newest_first_with_absolute_links(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Newsletter.ARCHIVE.subject] = Archive(
        issues=[
            ArchiveEntry(number=n, title=f"Nummer {n} & mere", since=NOW, until=NOW,
                         sent_at=NOW + timedelta(days=n), archive_object=f"issue-{n}.html")
            for n in (1, 2)
        ]
    )  # fmt: skip
    answer = browser.get("/nyhedsbrev.atom")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/atom+xml")
    assert answer.headers["ETag"] and answer.headers["Cache-Control"].startswith("public")
    atom = "{http://www.w3.org/2005/Atom}"
    feed = ElementTree.fromstring(answer.content)
    entries = feed.findall(f"{atom}entry")
    titles = [e.findtext(f"{atom}title") for e in entries]
    assert titles == ["Nr. 2: Nummer 2 & mere", "Nr. 1: Nummer 1 & mere"]
    first_link = entries[0].find(f"{atom}link")
    assert first_link is not None and first_link.get("href") == "http://testserver/nyhedsbrev/2"
    assert feed.findtext(f"{atom}updated") == (NOW + timedelta(days=2)).isoformat()
    page = browser.get("/nyhedsbrev")
    assert 'type="application/atom+xml"' in page.text and 'href="/nyhedsbrev.atom"' in page.text


# ---------------------------------------------------------------- the directory


def entry(n: int, **fields: Any) -> DirectoryEntry:
    values: dict[str, Any] = {
        "id": f"amb-{n:03d}",
        "display_name": f"Forening {n:03d}",
        "kind": "association",
        "organisation": f"Forening {n:03d}",
        "themes": [1 + n % 12],
        "core_areas": ["housing"] if n % 2 else ["health"],
    }
    return DirectoryEntry.model_validate({**values, **fields})


def names(page: str) -> list[str]:
    return re.findall(r"<h2>([^<]+)</h2>", page)


def test_the_directory_lists_50_to_a_page_alphabetically(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.DIRECTORY.subject] = Directory(
        generated_at=NOW, entries=[entry(n) for n in reversed(range(60))]
    )
    first = browser.get("/ambassadoerer")
    assert first.status_code == 200 and "60 ambassadører, side 1 af 2" in text(first.text)
    assert names(first.text) == [f"Forening {n:03d}" for n in range(50)]
    assert 'href="/ambassadoerer?side=2" rel="next"' in first.text
    second = browser.get("/ambassadoerer?side=2")
    assert names(second.text) == [f"Forening {n:03d}" for n in range(50, 60)]
    assert "public" in first.headers["Cache-Control"] and first.headers["ETag"]


def test_the_directory_filters_by_theme_core_area_kind_and_name(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.DIRECTORY.subject] = Directory(
        generated_at=NOW,
        entries=[
            entry(1, themes=[3], core_areas=["housing"]),
            entry(2, themes=[3], core_areas=["health"]),
            entry(
                3,
                themes=[4],
                kind="company",
                display_name="Byg & Bo A/S",
                organisation="Byg & Bo A/S",
                website="https://bygbo.example",
            ),
        ],
    )
    assert names(browser.get("/ambassadoerer?tema=3").text) == ["Forening 001", "Forening 002"]
    assert names(browser.get("/ambassadoerer?tema=3&kerneomraade=health").text) == ["Forening 002"]
    company = browser.get("/ambassadoerer?type=company&q=byg").text
    assert names(company) == ["Byg &amp; Bo A/S"]
    assert '<a href="https://bygbo.example" rel="noopener nofollow">' in company
    assert "Ingen ambassadører passer" in browser.get("/ambassadoerer?q=zzz").text
    # The filters stay chosen on the page they led to.
    assert '<option value="3" selected>' in browser.get("/ambassadoerer?tema=3").text


def test_a_directory_query_the_site_does_not_know_is_a_danish_400(
    browser: TestClient, services: StandIn
) -> None:
    for query in ("tema=13", "kerneomraade=space", "side=0", "type=robot"):
        page = browser.get(f"/ambassadoerer?{query}")
        assert page.status_code == 400, query
        assert "Forespørgslen kunne ikke forstås" in page.text
    assert services.calls == []


def test_the_filter_form_as_a_browser_sends_it_with_empty_choices_lists_everyone(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.DIRECTORY.subject] = Directory(
        generated_at=NOW, entries=[entry(1), entry(2)]
    )
    page = browser.get("/ambassadoerer?q=&tema=&kerneomraade=&type=")
    assert page.status_code == 200 and len(names(page.text)) == 2


# ---------------------------------------------------------------- the calendar


def meeting(n: int, days: int, state: str = "scheduled", **fields: Any) -> PublicMeeting:
    starts = (NOW + timedelta(days=days)).replace(hour=16, minute=0, second=0, microsecond=0)
    info = {
        "meeting_id": f"m{n}",
        "kind": "theme_day",
        "title": f"Temadag {n}",
        "starts_at": starts,
        "ends_at": starts + timedelta(hours=2),
        "place": "Rådhuset",
        "public": True,
        **fields,
    }
    return PublicMeeting.model_validate({"meeting": info, "state": state})


def test_the_calendar_shows_the_public_meetings_to_come_soonest_first(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Events.CALENDAR.subject] = Calendar(
        ics=ICS,
        meetings=4,
        entries=[
            meeting(1, 20),
            meeting(2, -3),
            meeting(3, 5),
            meeting(4, 8, state="cancelled"),
        ],
    )
    page = browser.get("/kalender")
    assert page.status_code == 200
    shown = re.findall(r'<a href="/kalender/(m\d)">', page.text)
    assert shown == ["m3", "m1"]
    soonest = meeting(3, 5).meeting.starts_at.astimezone(COPENHAGEN)
    # In Copenhagen time, in Danish.
    assert f"Temadag, {danish_date(soonest)} kl. {soonest:%H.%M}" in text(page.text)
    one = browser.get("/kalender/m3")
    assert one.status_code == 200 and "Rådhuset" in one.text
    assert browser.get("/kalender/m9").status_code == 404
    front = browser.get("/")
    assert re.findall(r'<a href="/kalender/(m\d)">', front.text) == ["m3", "m1"]


def test_the_calendar_feed_is_the_services_icalendar_file_and_cacheable(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Events.CALENDAR.subject] = Calendar(ics=ICS, meetings=0)
    feed = browser.get("/kalender.ics")
    assert feed.status_code == 200 and feed.text == ICS
    assert feed.headers["content-type"].startswith("text/calendar")
    again = browser.get("/kalender.ics", headers={"If-None-Match": feed.headers["ETag"]})
    assert again.status_code == 304


def test_the_calendar_says_so_when_the_events_service_is_down(browser: TestClient) -> None:
    page = browser.get("/kalender")
    assert page.status_code == 503 and "Kalenderen er midlertidigt utilgængelig" in page.text
    assert page.headers["Retry-After"] == "30"


def test_dates_are_written_the_danish_way_in_copenhagen_time() -> None:
    assert danish_date(datetime(2027, 3, 4, 23, 30, tzinfo=UTC)) == "fredag 5. marts 2027"
    assert danish_time(datetime(2027, 7, 1, 14, 0, tzinfo=UTC)) == "16.00"


# ---------------------------------------------------------------- the goals


def test_the_goals_page_shows_the_figures_as_charts_and_as_a_table(
    browser: TestClient, services: StandIn
) -> None:
    months = [
        MonthPoint(month="2026-10", active=40, citizens=4, activated=40, left=0),
        MonthPoint(month="2026-11", active=90, citizens=20, activated=52, left=2),
    ]
    services.replies[Ambassadors.GOALS.subject] = Goals(
        active=90, target=150, progress=0.6, citizens=20, citizen_share=20 / 90,
        citizen_share_target=0.2, by_kind={}, by_theme={}, by_core_area={}, pending=3,
        withdrawn=2, erased=0, months=months,
    )  # fmt: skip
    services.replies[Networks.INITIATIVES.subject] = Initiatives.model_validate({
        "period_start": "2026-01-01", "period_end": "2027-12-31", "target": 30, "started": 4,
        "progress": 4 / 30, "networks": 1, "meetings": 3, "by_kind": {},
        "months": [
            {"month": "2026-10", "networks": 0, "meetings": 2, "total": 2},
            {"month": "2026-11", "networks": 1, "meetings": 1, "total": 4},
        ],
    })  # fmt: skip
    page = browser.get("/maal")
    assert page.status_code == 200 and "public" in page.headers["Cache-Control"]
    shown = text(page.text)
    assert "90 af 150 (60 %)" in shown and "20 (22 %, målet er 20 %)" in shown
    assert page.text.count('<svg viewBox="0 0 640 240" role="img"') == 3
    assert "oktober 2026 40 4 10 % 40 0" in shown and "november 2026 90 20 22 % 52 2" in shown
    assert "Igangsatte initiativer 4 af 30 (13 %)" in shown
    assert "november 2026 1 1 4" in shown


def test_the_goals_page_says_so_in_its_place_when_the_initiatives_cannot_be_had(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Ambassadors.GOALS.subject] = Goals(
        active=90, target=150, progress=0.6, citizens=20, citizen_share=20 / 90,
        citizen_share_target=0.2, by_kind={}, by_theme={}, by_core_area={}, pending=3,
        withdrawn=2, erased=0, months=[],
    )  # fmt: skip
    page = browser.get("/maal")
    assert page.status_code == 200 and "public" not in page.headers["Cache-Control"]
    assert "90 af 150 (60 %)" in text(page.text)
    assert "Netværkenes sider er midlertidigt utilgængelige." in text(page.text)


def test_a_line_chart_reaches_up_to_its_target_and_spreads_the_months() -> None:
    chart = line_chart(["a", "b", "c"], [0, 50, 75], target=150)
    xs = [float(p.split(",")[0]) for p in chart.points.split()]
    ys = [float(p.split(",")[1]) for p in chart.points.split()]
    assert xs == [48.0, 336.0, 624.0]
    assert ys[0] == 208.0 and ys[2] == 112.0  # 0 at the bottom, 75 halfway to 150
    assert chart.target_y == 16.0
    assert [label for _, label in chart.y_labels] == ["0", "38", "75", "112", "150"]


# ---------------------------------------------------------------- answering an invitation


def invitation(participation: str = "invited", **fields: Any) -> InvitationView:
    entry = meeting(7, 3, capacity=1)
    return InvitationView.model_validate(
        {"meeting": entry.meeting, "state": entry.state, "participation": participation, **fields}
    )


def test_an_answer_link_shows_the_meeting_with_its_answer_chosen_and_answers_nothing(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Events.INVITATION.subject] = invitation(seats_left=0)
    page = browser.get(f"/rsvp/{TOKEN}/yes")
    assert page.status_code == 200
    assert "Temadag 7" in page.text and "Rådhuset" in page.text
    assert "Du har ikke svaret endnu." in page.text
    assert "Du har valgt Ja, jeg kommer i mailen" in text(page.text)
    assert "Svarer du ja, kommer du på ventelisten" in page.text
    assert re.findall(r'name="answer" value="(\w+)"', page.text) == ["yes", "maybe", "no"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert services.subjects() == [Events.INVITATION.subject]
    [(_, asked)] = services.calls
    assert asked.model_dump() == {"token": TOKEN}
    # A made-up answer in the link preselects nothing; the page still works.
    other = browser.get(f"/rsvp/{TOKEN}/kommer-maaske")
    assert other.status_code == 200 and "Du har valgt" not in other.text
    assert Events.ANSWER.subject not in services.subjects()


def test_a_yes_to_a_full_meeting_says_the_waitlist_place(
    browser: TestClient, services: StandIn
) -> None:
    answered: list[str] = []

    def current(_: Any) -> InvitationView:
        if answered:
            return invitation("waitlisted", waitlist_position=2, seats_left=0)
        return invitation(seats_left=0)

    def answer(request: Any) -> RsvpResult:
        answered.append(request.answer)
        return RsvpResult(
            meeting_id="m7", ambassador_id="a1", participation="waitlisted", waitlist_position=2
        )

    services.replies[Events.INVITATION.subject] = current
    services.replies[Events.ANSWER.subject] = answer
    page = browser.get(f"/rsvp/{TOKEN}/yes")
    done = browser.post(f"/rsvp/{TOKEN}", data={FIELD: form_token(page.text), "answer": "yes"})
    assert done.status_code == 200, done.text
    assert "Tak, dit svar er noteret." in done.text
    assert "Du er nr. 2 på ventelisten" in done.text
    assert answered == ["yes"]


def test_an_answer_without_the_forms_token_or_with_an_unknown_answer_changes_nothing(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Events.INVITATION.subject] = invitation()
    page = browser.get(f"/rsvp/{TOKEN}")
    assert browser.post(f"/rsvp/{TOKEN}", data={"answer": "yes"}).status_code == 403
    odd = browser.post(f"/rsvp/{TOKEN}", data={FIELD: form_token(page.text), "answer": "ja!"})
    assert odd.status_code == 200 and "Tak, dit svar er noteret." not in odd.text
    assert Events.ANSWER.subject not in services.subjects()


def test_a_cancelled_meeting_takes_no_answer_and_a_bad_link_says_so(
    browser: TestClient, services: StandIn
) -> None:
    cancelled = invitation().model_copy(update={"state": "cancelled"})
    services.replies[Events.INVITATION.subject] = cancelled
    page = browser.get(f"/rsvp/{TOKEN}/yes")
    assert "Mødet er aflyst." in page.text and 'name="answer"' not in page.text
    services.replies[Events.INVITATION.subject] = ServiceError(
        ErrorCode.INVALID_TOKEN, "the answer link is not valid"
    )
    assert browser.get(f"/rsvp/{TOKEN}").status_code == 400
    assert "Linket er ugyldigt" in browser.get(f"/rsvp/{TOKEN}/no").text
    assert browser.get("/rsvp/kort").status_code == 400  # too short to be a token


def test_the_answer_page_is_503_in_danish_while_the_events_service_is_down(
    browser: TestClient,
) -> None:
    page = browser.get(f"/rsvp/{TOKEN}/yes")
    assert page.status_code == 503 and "Kalenderen er midlertidigt utilgængelig" in page.text


# ---------------------------------------------------------------- a network invitation


def network_invitation(state: str = "invited", **fields: Any) -> NetworkInvitation:
    return NetworkInvitation.model_validate(
        {
            "network_id": "n1",
            "kind": "action",
            "title": "Vinterværested",
            "status": "forming",
            "challenge_title": "Et varmt sted om vinteren",
            "challenge_description": "Mange står uden et varmt sted, når det er koldt.",
            "ends": "2027-06-30",
            "state": state,
            "reply_by": NOW + timedelta(days=7),
            **fields,
        }
    )


def test_a_network_invitation_link_shows_the_network_and_answers_nothing(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Networks.INVITATION.subject] = network_invitation()
    page = browser.get(f"/netvaerk/svar/{TOKEN}/ja")
    assert page.status_code == 200
    shown = text(page.text)
    assert "Vinterværested" in shown and "Handlingsnetværk" in shown
    assert "Et varmt sted om vinteren" in shown and "30. juni 2027" in shown
    assert "Det er frivilligt at være med." in shown
    assert "Du har valgt Ja, jeg er med i mailen" in shown
    assert re.findall(r'name="answer" value="(\w+)"', page.text) == ["ja", "nej"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert services.subjects() == [Networks.INVITATION.subject]


def test_pressing_yes_answers_the_network_invitation_once(
    browser: TestClient, services: StandIn
) -> None:
    answered: list[bool] = []

    def current(_: Any) -> NetworkInvitation:
        return network_invitation("joined" if answered else "invited")

    def answer(request: Any) -> InvitationAnswer:
        answered.append(request.accept)
        return InvitationAnswer(network_id="n1", ambassador_id="a1", state="joined")

    services.replies[Networks.INVITATION.subject] = current
    services.replies[Networks.ANSWER.subject] = answer
    page = browser.get(f"/netvaerk/svar/{TOKEN}/ja")
    done = browser.post(
        f"/netvaerk/svar/{TOKEN}", data={FIELD: form_token(page.text), "answer": "ja"}
    )
    assert done.status_code == 200, done.text
    assert "Tak, dit svar er noteret." in done.text
    assert "du er med i netværket" in done.text
    assert answered == [True]
    refused = browser.post(f"/netvaerk/svar/{TOKEN}", data={"answer": "nej"})
    assert refused.status_code == 403 and answered == [True]


def test_a_closed_network_takes_no_answer_and_a_bad_link_says_so(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Networks.INVITATION.subject] = network_invitation(status="closed")
    page = browser.get(f"/netvaerk/svar/{TOKEN}/ja")
    assert "Netværket er afsluttet" in page.text and 'name="answer"' not in page.text
    services.replies[Networks.INVITATION.subject] = ServiceError(
        ErrorCode.INVALID_TOKEN, "the answer link is not valid"
    )
    assert browser.get(f"/netvaerk/svar/{TOKEN}").status_code == 400


def test_the_network_answer_page_is_503_in_danish_while_the_networks_service_is_down(
    browser: TestClient,
) -> None:
    page = browser.get(f"/netvaerk/svar/{TOKEN}/ja")
    assert (
        page.status_code == 503 and "Netværkenes sider er midlertidigt utilgængelige" in page.text
    )


# ---------------------------------------------------------------- the networks


def test_the_networks_page_shows_networks_at_work_and_results_with_organisations_only(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Networks.PUBLIC.subject] = PublicNetworks.model_validate({
        "active": [{
            "id": "n1", "kind": "action", "title": "Vinterværested", "status": "active",
            "challenge_title": "Et varmt sted om vinteren", "target_group": "Hjemløse",
            "started_on": "2026-11-02", "organisations": ["Kirkens Korshær"],
        }],
        "results": [{
            "id": "n0", "kind": "volunteer", "title": "Lektiegruppen", "status": "closed",
            "outcome": "initiative", "initiative_title": "Lektiecafé i beboerhuset",
            "summary": "Hver tirsdag.", "closed_on": "2026-10-30",
            "organisations": ["Fredericia Bibliotek"],
        }],
    })  # fmt: skip
    page = browser.get("/netvaerk")
    assert page.status_code == 200 and "public" in page.headers["Cache-Control"]
    shown = text(page.text)
    assert "Vinterværested" in shown and "Udfordringen: Et varmt sted om vinteren" in shown
    assert "Med er: Kirkens Korshær" in shown and "i gang siden mandag 2. november 2026" in shown
    assert "Lektiecafé i beboerhuset" in shown and "Nyt initiativ" in shown
    assert "Med var: Fredericia Bibliotek" in shown
    assert 'href="/netvaerk" aria-current="page"' in page.text


def test_the_networks_page_is_503_in_danish_while_the_networks_service_is_down(
    browser: TestClient,
) -> None:
    page = browser.get("/netvaerk")
    assert (
        page.status_code == 503 and "Netværkenes sider er midlertidigt utilgængelige" in page.text
    )


# ---------------------------------------------------------------- a call-out


def an_alert(**fields: Any) -> AlertAnswerView:
    return AlertAnswerView.model_validate(
        {
            "alert_id": "al1",
            "network_title": "Akutteamet",
            "message": "En familie står uden bolig i aften.",
            "sent_at": NOW,
            "answer_by": NOW + timedelta(hours=2),
            **fields,
        }
    )


def test_a_call_out_link_shows_the_message_and_answers_only_when_pressed(
    browser: TestClient, services: StandIn
) -> None:
    answered: list[bool] = []

    def answer(request: Any) -> AlertAnswerView:
        answered.append(request.can_help)
        return an_alert(can_help=request.can_help, answered_at=NOW)

    services.replies[Networks.SHOW_ALERT.subject] = an_alert()
    services.replies[Networks.ANSWER_ALERT.subject] = answer
    page = browser.get(f"/akut/{TOKEN}/ja")
    assert page.status_code == 200
    shown = text(page.text)
    assert "En familie står uden bolig i aften." in shown and "Du har ikke svaret endnu." in shown
    assert "Du har valgt Ja, jeg kan hjælpe i mailen" in shown and answered == []
    done = browser.post(f"/akut/{TOKEN}", data={FIELD: form_token(page.text), "answer": "ja"})
    assert "Tak, dit svar er noteret." in done.text and "du kan hjælpe" in done.text
    assert answered == [True]
