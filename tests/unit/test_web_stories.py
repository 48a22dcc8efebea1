"""The website's stories pages against a stand-in for the services and for the uploads
bucket: an ambassador's own page behind their link (what they sent, where it stands, the
form for a new one, revising one), and the public stories with their pictures. The real
services, bucket and browser drive the same pages in tests/e2e/test_story_journey.py."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import pytest
from fastapi.testclient import TestClient

from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.social import (
    GOOD_STORIES,
    PICTURE_CHUNK,
    STORIES_PATH,
    UPLOADS_BUCKET,
    GetOwnPicture,
    GetPicture,
    GuideCheck,
    Hint,
    HintSeverity,
    OwnStories,
    OwnStory,
    PicturePiece,
    PictureView,
    PublicStories,
    PublicStory,
    ReviseOwnStory,
    StoryReceipt,
    StoryStatus,
    SubmitOwnStory,
)
from contracts.social import Endpoints as Social
from tests.support.pictures import photo
from tests.unit.test_web_pages import TOKEN, StandIn, form_token, settings, text
from web.app import create_app
from web.csrf import FIELD
from web.security import redact_path

NOW = datetime.now(UTC)
PAGE = f"{STORIES_PATH}/{TOKEN}"


class Bucket:
    """The uploads bucket: keeps what it was given, by bucket and name."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    async def put(self, service: str, bucket: str, name: str, data: BinaryIO) -> None:
        assert service == "social"
        self.objects[(bucket, name)] = data.read()


@pytest.fixture
def services() -> StandIn:
    return StandIn()


@pytest.fixture
def bucket() -> Bucket:
    return Bucket()


@pytest.fixture
def browser(services: StandIn, bucket: Bucket) -> Iterator[TestClient]:
    app = create_app(settings(), services, uploads=bucket)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def picture_view(name: str = "pic-1.jpg", alt: str | None = "Børn ved et bord") -> PictureView:
    return PictureView(name=name, digest="d" * 64, alt=alt, width=800, height=600, size=1000)


def own_story(**fields: Any) -> OwnStory:
    chosen: dict[str, Any] = {
        "id": "st-1",
        "status": StoryStatus.IN_REVIEW,
        "kind": "theme_work",
        "title": "Lektiecafé i Gellerup",
        "text": "Hver tirsdag laver vi lektier med børnene.",
        "pictures": [],
        "submitted_at": NOW - timedelta(days=2),
        "updated_at": NOW - timedelta(days=1),
        "revisable": True,
    }
    return OwnStory.model_validate({**chosen, **fields})


def own(*stories: OwnStory) -> OwnStories:
    return OwnStories(ambassador_id="a1", name="Anna Ambassadør", items=list(stories))


def sendable(request: Any) -> GuideCheck:
    return GuideCheck(hints=[], sendable=True)


def receipt(request: Any) -> StoryReceipt:
    story_id = getattr(request, "story_id", "st-new")
    return StoryReceipt(story_id=story_id, status=StoryStatus.IN_REVIEW, version=1)


def story_fields(token: str, **fields: Any) -> dict[str, Any]:
    return {
        FIELD: token,
        "kind": "theme_work",
        "title": "Lektiecafé",
        "text": "Vi laver lektier med børnene hver tirsdag.",
        "event_date": "",
        "link": "",
        **fields,
    }


def jpeg(name: str) -> tuple[str, bytes, str]:
    return (name, photo(), "image/jpeg")


def sent(services: StandIn, endpoint: Any) -> list[Any]:
    return [r for s, r in services.calls if s == endpoint.subject]


# ---------------------------------------------------------------- the ambassador's own page


def test_the_own_page_shows_the_guide_the_stories_in_danish_and_the_form(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Social.OWN.subject] = own(
        own_story(
            id="st-1",
            status=StoryStatus.CHANGES_REQUESTED,
            comment="Skriv gerne, hvornår caféen har åbent.",
            hints=[Hint(code="long", severity=HintSeverity.HINT, field="text", message="Kort!")],
        ),
        own_story(
            id="st-2",
            status=StoryStatus.FAILED,
            comment="(#100) Invalid parameter",
            revisable=False,
            title="Sommerfest",
        ),
        own_story(
            id="st-3",
            status=StoryStatus.PUBLISHED,
            revisable=False,
            title="Ny frivillig",
            published_at=NOW,
            post_url="https://www.facebook.com/123_456",
        ),
    )
    page = browser.get(PAGE)
    assert page.status_code == 200, page.text
    shown = text(page.text)
    assert "Hej Anna Ambassadør" in shown
    for good in GOOD_STORIES:
        assert good in page.text
    assert "Ændringer ønsket" in shown and "Afventer redaktionen" in shown
    assert "Offentliggjort" in shown and 'href="https://www.facebook.com/123_456"' in page.text
    # The editors' words to the ambassador are shown; Facebook's refusal is not theirs.
    assert "Skriv gerne, hvornår caféen har åbent." in shown
    assert "Invalid parameter" not in page.text
    assert f'href="{PAGE}/st-1"' in page.text and f'href="{PAGE}/st-2"' not in page.text
    assert 'enctype="multipart/form-data"' in page.text and form_token(page.text)
    assert page.text.count('type="file"') == 10
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert [s for s in services.subjects() if ".cmd." in s] == []


def test_a_link_that_is_not_theirs_says_so_and_shows_nothing(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Social.OWN.subject] = ServiceError(ErrorCode.INVALID_TOKEN, "forged")
    page = browser.get(PAGE)
    assert page.status_code == 400 and "Linket er ugyldigt" in page.text
    assert browser.get(f"{STORIES_PATH}/kort").status_code == 400


def test_a_story_with_two_pictures_is_checked_uploaded_and_sent_with_its_link(
    browser: TestClient, services: StandIn, bucket: Bucket
) -> None:
    services.replies[Social.OWN.subject] = own()
    services.replies[Social.CHECK.subject] = sendable
    services.replies[Social.SUBMIT_OWN.subject] = receipt
    token = form_token(browser.get(PAGE).text)
    done = browser.post(
        PAGE,
        data=story_fields(
            token, alt_1="Børn ved et bord", alt_2="En lærer hjælper", people_consent="ja"
        ),
        files={"picture_1": jpeg("IMG_1.JPG"), "picture_2": jpeg("foto.jpeg")},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{PAGE}?sendt=st-new"
    [submitted] = sent(services, Social.SUBMIT_OWN)
    assert isinstance(submitted, SubmitOwnStory) and submitted.token == TOKEN
    assert submitted.people_consent and submitted.kind == "theme_work"
    assert [p.alt for p in submitted.pictures] == ["Børn ved et bord", "En lærer hjælper"]
    names = [p.upload for p in submitted.pictures]
    assert sorted(str(n) for n in names) == sorted(name for _, name in bucket.objects)
    assert str(names[0]).endswith(".jpg") and str(names[1]).endswith(".jpeg")
    assert all(b == UPLOADS_BUCKET for b, _ in bucket.objects)
    assert all(data == photo() for data in bucket.objects.values())
    # The guide was asked before anything was uploaded.
    assert services.subjects().index(Social.CHECK.subject) < services.subjects().index(
        Social.SUBMIT_OWN.subject
    )
    services.replies[Social.OWN.subject] = own(own_story(id="st-new"))
    thanked = browser.get(done.headers["location"])
    assert "Tak for din historie" in text(thanked.text)


def test_what_the_guide_stops_is_shown_at_its_field_and_nothing_is_uploaded(
    browser: TestClient, services: StandIn, bucket: Bucket
) -> None:
    services.replies[Social.OWN.subject] = own()
    services.replies[Social.CHECK.subject] = GuideCheck(
        sendable=False,
        hints=[
            Hint(
                code="no_consent",
                severity=HintSeverity.BLOCKING,
                field="people_consent",
                message="Personerne på billederne skal have sagt ja.",
            ),
            Hint(
                code="no_alt",
                severity=HintSeverity.BLOCKING,
                field="pictures.1.alt",
                message="Beskriv billedet.",
            ),
            Hint(code="long", severity=HintSeverity.HINT, field="text", message="Kort!"),
        ],
    )
    token = form_token(browser.get(PAGE).text)
    page = browser.post(PAGE, data=story_fields(token), files={"picture_1": jpeg("a.jpg")})
    assert page.status_code == 422
    assert 'class="error-summary"' in page.text
    assert 'id="people_consent-error"' in page.text and 'id="alt_1-error"' in page.text
    assert "Personerne på billederne skal have sagt ja." in page.text
    assert "Kort!" not in page.text  # a hint never stops a story
    assert "Vælg billederne igen" in page.text
    # What was written is still there.
    assert "Vi laver lektier med børnene hver tirsdag." in page.text
    assert bucket.objects == {} and sent(services, Social.SUBMIT_OWN) == []


def test_a_file_that_is_no_picture_and_an_alt_without_picture_are_named_before_any_check(
    browser: TestClient, services: StandIn, bucket: Bucket
) -> None:
    services.replies[Social.OWN.subject] = own()
    token = form_token(browser.get(PAGE).text)
    page = browser.post(
        PAGE,
        data=story_fields(token, alt_2="Et billede, jeg glemte"),
        files={"picture_1": ("noter.txt", b"ikke et billede", "text/plain")},
    )
    assert page.status_code == 422
    assert 'id="picture_1-error"' in page.text and "Vælg et billede i JPEG" in page.text
    assert 'id="picture_2-error"' in page.text
    assert sent(services, Social.CHECK) == [] and bucket.objects == {}


def test_missing_fields_are_named_in_danish_and_nothing_is_sent(
    browser: TestClient, services: StandIn, bucket: Bucket
) -> None:
    services.replies[Social.OWN.subject] = own()
    token = form_token(browser.get(PAGE).text)
    page = browser.post(PAGE, data=story_fields(token, kind="", text=""))
    assert page.status_code == 422
    shown = text(page.text)
    assert "Vælg, hvad slags historie det er." in shown
    assert "Skriv selve historien." in shown
    assert [s for s in services.subjects() if s != Social.OWN.subject] == []


def test_a_refusal_by_the_service_is_shown_at_the_picture_it_could_not_use(
    browser: TestClient, services: StandIn, bucket: Bucket
) -> None:
    services.replies[Social.OWN.subject] = own()
    services.replies[Social.CHECK.subject] = sendable
    services.replies[Social.SUBMIT_OWN.subject] = ServiceError(
        ErrorCode.VALIDATION_FAILED,
        "a picture could not be used",
        details=[FieldError(field="pictures.1", message="cannot identify image file")],
    )
    token = form_token(browser.get(PAGE).text)
    page = browser.post(
        PAGE,
        data=story_fields(token, alt_1="Et billede", people_consent="ja"),
        files={"picture_1": jpeg("a.jpg")},
    )
    assert page.status_code == 422
    assert "Billedet kan ikke bruges" in page.text
    assert "cannot identify" not in page.text


def test_a_bot_filling_the_honeypot_is_thanked_and_nothing_is_sent(
    browser: TestClient, services: StandIn, bucket: Bucket
) -> None:
    services.replies[Social.OWN.subject] = own()
    token = form_token(browser.get(PAGE).text)
    done = browser.post(
        PAGE,
        data=story_fields(token, adresse2="spam"),
        files={"picture_1": jpeg("a.jpg")},
        follow_redirects=False,
    )
    assert done.status_code == 303 and "sendt=" in done.headers["location"]
    assert sent(services, Social.SUBMIT_OWN) == [] and bucket.objects == {}


def test_a_story_posted_without_the_forms_token_changes_nothing(
    browser: TestClient, services: StandIn, bucket: Bucket
) -> None:
    services.replies[Social.OWN.subject] = own()
    browser.get(PAGE)
    refused = browser.post(PAGE, data=story_fields("forged"), files={"picture_1": jpeg("a.jpg")})
    assert refused.status_code == 403
    assert services.calls[1:] == [] and bucket.objects == {}


def test_the_story_forms_take_pictures_but_other_pages_keep_their_small_limit(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Social.OWN.subject] = own()
    services.replies[Social.CHECK.subject] = sendable
    services.replies[Social.SUBMIT_OWN.subject] = receipt
    token = form_token(browser.get(PAGE).text)
    big = b"\xff\xd8" + b"\x00" * 2_000_000  # 2 MB: far over the site's usual limit
    done = browser.post(
        PAGE,
        data=story_fields(token, alt_1="Stort billede", people_consent="ja"),
        files={"picture_1": ("stor.jpg", big, "image/jpeg")},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert browser.post(f"/confirm/{TOKEN}", content=big).status_code == 413
    too_big = browser.post(PAGE, content=b"x" * 200_000_000)
    assert too_big.status_code == 413


def test_the_personal_link_never_reaches_the_access_log() -> None:
    assert redact_path(f"{STORIES_PATH}/{TOKEN}") == f"{STORIES_PATH}/<token>"
    assert redact_path(f"{STORIES_PATH}/{TOKEN}/st-1") == f"{STORIES_PATH}/<token>/st-1"
    picture = f"{STORIES_PATH}/{TOKEN}/billeder/a.jpg"
    assert redact_path(picture) == f"{STORIES_PATH}/<token>/billeder/a.jpg"


# ---------------------------------------------------------------- revising a story


def test_a_story_sent_back_is_revised_keeping_one_picture_and_removing_the_other(
    browser: TestClient, services: StandIn, bucket: Bucket
) -> None:
    story = own_story(
        status=StoryStatus.CHANGES_REQUESTED,
        comment="Fortæl, hvornår I mødes.",
        pictures=[picture_view("pic-1.jpg"), picture_view("pic-2.jpg", alt="Gammel")],
        people_consent=True,
    )
    services.replies[Social.OWN.subject] = own(story)
    services.replies[Social.CHECK.subject] = sendable
    services.replies[Social.REVISE_OWN.subject] = receipt
    page = browser.get(f"{PAGE}/st-1")
    assert page.status_code == 200
    assert "Fortæl, hvornår I mødes." in page.text
    assert f'src="{PAGE}/billeder/pic-1.jpg"' in page.text
    assert "Hver tirsdag laver vi lektier med børnene." in page.text
    done = browser.post(
        f"{PAGE}/st-1",
        data=story_fields(
            form_token(page.text),
            text="Hver tirsdag kl. 15 laver vi lektier.",
            kept_1="pic-1.jpg",
            kept_2="pic-2.jpg",
            alt_1="Børn og en frivillig ved et bord",
            alt_2="Gammel",
            remove_2="ja",
            people_consent="ja",
        ),
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{PAGE}?rettet=st-1"
    [revised] = sent(services, Social.REVISE_OWN)
    assert isinstance(revised, ReviseOwnStory) and revised.story_id == "st-1"
    assert revised.text == "Hver tirsdag kl. 15 laver vi lektier."
    assert [(p.name, p.alt) for p in revised.pictures] == [
        ("pic-1.jpg", "Børn og en frivillig ved et bord")
    ]
    assert bucket.objects == {}


def test_a_story_the_editors_decided_on_cannot_be_revised(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Social.OWN.subject] = own(
        own_story(status=StoryStatus.APPROVED, revisable=False)
    )
    page = browser.get(f"{PAGE}/st-1")
    assert page.status_code == 409 and "Historien kan ikke rettes nu" in page.text
    assert "»Godkendt«" in page.text
    assert browser.get(f"{PAGE}/st-9").status_code == 404


def test_a_decision_made_while_the_form_was_open_is_said_in_danish(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Social.OWN.subject] = own(own_story())
    services.replies[Social.CHECK.subject] = sendable
    services.replies[Social.REVISE_OWN.subject] = ServiceError(
        ErrorCode.INVALID_STATE, "approved meanwhile"
    )
    token = form_token(browser.get(f"{PAGE}/st-1").text)
    page = browser.post(f"{PAGE}/st-1", data=story_fields(token))
    assert page.status_code == 409 and "Historien kan ikke rettes nu" in page.text


def test_a_form_opened_before_the_pictures_changed_is_shown_again_to_check(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Social.OWN.subject] = own(own_story(pictures=[picture_view("pic-1.jpg")]))
    token = form_token(browser.get(f"{PAGE}/st-1").text)
    page = browser.post(f"{PAGE}/st-1", data=story_fields(token, kept_1="pic-other.jpg"))
    assert page.status_code == 422 and "Historien er blevet ændret" in page.text
    assert sent(services, Social.REVISE_OWN) == []


# ---------------------------------------------------------------- pictures and the public page


def pieces_of(picture: bytes) -> Any:
    digest = hashlib.sha256(picture).hexdigest()

    def piece(request: Any) -> PicturePiece:
        data = picture[request.offset : request.offset + PICTURE_CHUNK]
        return PicturePiece(
            name=request.name,
            content_type="image/jpeg",
            size=len(picture),
            digest=digest,
            offset=request.offset,
            data=data,
        )

    return piece


def test_their_own_pictures_are_served_in_pieces_to_their_link_only_and_kept_privately(
    browser: TestClient, services: StandIn
) -> None:
    picture = bytes(range(256)) * 5000  # three pieces
    services.replies[Social.OWN_PICTURE.subject] = pieces_of(picture)
    shown = browser.get(f"{PAGE}/billeder/pic-1.jpg")
    assert shown.status_code == 200 and shown.content == picture
    assert shown.headers["Cache-Control"].startswith("private")
    asked = [r for _, r in services.calls if isinstance(r, GetOwnPicture)]
    assert [r.offset for r in asked] == [0, PICTURE_CHUNK, 2 * PICTURE_CHUNK]
    assert {r.token for r in asked} == {TOKEN}
    services.replies[Social.OWN_PICTURE.subject] = ServiceError(ErrorCode.NOT_FOUND, "not theirs")
    assert browser.get(f"{PAGE}/billeder/pic-2.jpg").status_code == 404


def public_story(n: int, **fields: Any) -> PublicStory:
    chosen: dict[str, Any] = {
        "id": f"st-{n}",
        "kind": "theme_work",
        "title": f"Historie {n}",
        "text": f"Det skete {n}.\n\nOg så noget mere.",
        "published_at": NOW - timedelta(hours=n),
    }
    return PublicStory.model_validate({**chosen, **fields})


def test_the_public_stories_show_newest_first_with_credit_pictures_and_safe_links(
    browser: TestClient, services: StandIn
) -> None:
    services.replies[Social.PUBLIC_STORIES.subject] = PublicStories(
        total=2,
        items=[
            public_story(2, credit=None, link="javascript:alert(1)"),
            public_story(
                1,
                credit="Foreningen Lektiehjælp",
                pictures=[picture_view("pub-1.jpg")],
                link="https://lektie.example",
                post_url="https://www.facebook.com/1_2",
            ),
        ],
    )
    page = browser.get("/historier")
    assert page.status_code == 200
    shown = text(page.text)
    assert shown.index("Historie 1") < shown.index("Historie 2")
    assert "Fortalt af Foreningen Lektiehjælp" in shown
    assert 'src="/historier/billeder/pub-1.jpg"' in page.text
    assert 'alt="Børn ved et bord"' in page.text
    assert 'href="https://lektie.example" rel="noopener nofollow"' in page.text
    assert "javascript:" not in page.text
    assert page.headers["Cache-Control"].startswith("public") and page.headers["ETag"]
    assert 'href="/historier"' in page.text  # in the menu
    assert browser.get("/historier?side=2").status_code == 404


def test_public_pictures_are_served_cacheable_and_unknown_ones_are_404(
    browser: TestClient, services: StandIn
) -> None:
    picture = photo()
    services.replies[Social.PUBLIC_PICTURE.subject] = pieces_of(picture)
    shown = browser.get("/historier/billeder/pub-1.jpg")
    assert shown.status_code == 200 and shown.content == picture
    assert shown.headers["Cache-Control"].startswith("public")
    [(_, asked)] = services.calls
    assert isinstance(asked, GetPicture) and asked.name == "pub-1.jpg"
    services.replies[Social.PUBLIC_PICTURE.subject] = ServiceError(ErrorCode.NOT_FOUND, "no")
    assert browser.get("/historier/billeder/gone.jpg").status_code == 404
    assert browser.get("/historier/billeder/..%2Fx").status_code in (400, 404)


def test_the_stories_pages_are_503_in_danish_while_the_social_service_is_down(
    browser: TestClient,
) -> None:
    for path in ("/historier", PAGE):
        page = browser.get(path)
        assert page.status_code == 503 and page.headers["Retry-After"] == "30"
        assert "Historierne er midlertidigt utilgængelige" in page.text
