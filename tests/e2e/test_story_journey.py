"""A story, end to end: the stack as ``make up`` runs it (the Graph API stand-in included),
a real headless Chromium, the mails in the SMTP sink, the posts on disk.

Staff enter an ambassador; the welcome mail carries their own stories link. On that page
they write a story with two phone photos (GPS position and camera in their EXIF): the guide
stops it until they confirm that the people shown agreed, and its hint about the length is
shown with the thanks. Staff ask for changes; the mail links back to the page, where the
ambassador revises the story. Staff approve and schedule it; when the stack's clock passes
the time, exactly one post with both pictures is on the Page, the pictures without their
metadata. The public stories page shows it with its pictures, and the next newsletter's
draft has it in "Historier fra netværket".

One stack for the module, small steps in file order sharing a :class:`Journey`; a step
whose input an earlier step did not provide skips. Each browser step leaves a screenshot.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from contracts.events import COPENHAGEN
from contracts.social import READABLE_TEXT
from stack.facebook import read_posts
from tests.e2e.conftest import PUBLIC_URL, StackRun
from tests.e2e.mailbox import Mail, Mailbox
from tests.e2e.steps import need, poll
from tests.support.browser import accessible, chromium, press, screenshot
from tests.support.pictures import GPS_IFD, opened, photo

pytestmark = pytest.mark.e2e

NAME = "Karin Fortæller"
EMAIL = "karin.fortaeller@example.org"
TITLE = "To nye frivillige i lektiecaféen"
# Over the length that reads well on a phone: the guide hints, it does not stop it.
LONG_TEXT = "Vi har fået to nye frivillige i lektiecaféen. " * (READABLE_TEXT // 40)
REVISED_TEXT = (
    "Vi har fået to nye frivillige i lektiecaféen: Sara og Ahmed. De hjælper børnene med "
    "lektierne hver tirsdag fra kl. 15."
)
COMMENT = "Skriv gerne, hvad de nye frivillige hedder, og hvornår caféen har åbent."
ALTS = ("To frivillige ved et bord med bøger", "Børn, der laver lektier")
MAIL_TIMEOUT = 120.0
OWN_LINK = re.compile(rf"{re.escape(PUBLIC_URL)}/historier/egne/[^\s\"<>]+")


@dataclass
class Journey:
    ambassador_id: str | None = None
    own_link: str | None = None
    story_id: str | None = None
    published: dict[str, Any] | None = None


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey()


@pytest.fixture(scope="module")
def mailbox(stack: StackRun) -> Mailbox:
    return Mailbox(stack.data_dir / "mail")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two phone photos, each with a GPS position and a camera make in its EXIF."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for n, color in enumerate(((200, 40, 40), (40, 120, 200))):
        path = folder / f"IMG_000{n}.jpg"
        path.write_bytes(photo(3000, 2000, color=color))
        paths.append(path)
    return paths


def own_link_in(mail: Mail) -> str | None:
    found = OWN_LINK.search(mail.text)
    return found.group(0) if found else None


def story_detail(stack: StackRun, story_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = stack.cli("social", "show", story_id, "--json").ok().json()
    return detail


def choose_pictures(browser: WebDriver, photos: list[Path]) -> None:
    for n, (path, alt) in enumerate(zip(photos, ALTS, strict=True), start=1):
        browser.find_element(By.ID, f"picture_{n}").send_keys(str(path))
        described = browser.find_element(By.ID, f"alt_{n}")
        described.clear()
        described.send_keys(alt)


def all_loaded(browser: WebDriver, images: list[WebElement]) -> bool:
    """Each picture shown, decoded (they load lazily: each is scrolled to first)."""
    for image in images:
        browser.execute_script("arguments[0].scrollIntoView()", image)

    def decoded(_: WebDriver) -> bool:
        script = "return arguments[0].complete && arguments[0].naturalWidth > 0"
        return all(browser.execute_script(script, image) for image in images)

    try:
        WebDriverWait(browser, 15).until(decoded)
    except TimeoutException:
        return False
    return True


def open_own_page(stack: StackRun, browser: WebDriver, link: str) -> None:
    """The page behind the link, once the social service knows the ambassador (it learns
    of them from the ambassadors' events, as the newsletter does)."""

    def shown() -> bool:
        browser.get(stack.local(link))
        return browser.find_element(By.TAG_NAME, "h1").text == "Dine historier"

    poll(shown, timeout=30, interval=0.5, what="the own stories page")


# ---------------------------------------------------------------- the steps


def test_the_welcome_mail_carries_the_ambassadors_own_stories_link(
    stack: StackRun, journey: Journey, mailbox: Mailbox
) -> None:
    entered = stack.cli(
        "ambassadors", "sign-up", "--kind", "citizen", "--name", NAME, "--email", EMAIL,
        "--staff", "--consent", "--json",
    ).ok().json()  # fmt: skip
    journey.ambassador_id = entered["ambassador"]["id"]
    [welcome] = mailbox.wait(
        lambda m: m.recipient == EMAIL and m.subject.startswith("Velkommen"),
        timeout=MAIL_TIMEOUT,
        what="the welcome mail",
    )
    journey.own_link = own_link_in(welcome)
    assert journey.own_link, welcome.text


def test_a_story_with_two_photos_waits_for_the_consent_of_those_shown(
    stack: StackRun, journey: Journey, photos: list[Path]
) -> None:
    link = need(journey.own_link, "the own stories link")
    with chromium() as browser:
        open_own_page(stack, browser, link)
        assert f"Hej {NAME}" in browser.page_source
        assert "Du har ikke sendt en historie endnu." in browser.page_source
        accessible(browser)
        Select(browser.find_element(By.ID, "kind")).select_by_value("new_person")
        browser.find_element(By.ID, "title").send_keys(TITLE)
        browser.find_element(By.ID, "text").send_keys(LONG_TEXT)
        choose_pictures(browser, photos)
        press(browser, browser.find_element(By.CSS_SELECTOR, "#historie button[type=submit]"))
        summary = browser.find_element(By.CSS_SELECTOR, ".error-summary").text
        assert "Personerne på billederne" in summary, summary
        assert "Vælg billederne igen" in browser.page_source
        accessible(browser)
        screenshot(browser, "story-refused")
        # What was written is still there; the files must be chosen again.
        assert browser.find_element(By.ID, "title").get_attribute("value") == TITLE
        choose_pictures(browser, photos)
        browser.find_element(By.ID, "people_consent").click()
        press(browser, browser.find_element(By.CSS_SELECTOR, "#historie button[type=submit]"))
        thanks = browser.find_element(By.CSS_SELECTOR, ".result.ok").text
        assert "Tak for din historie" in thanks and "Guiden har et par råd" in thanks, thanks
        assert "Til gennemsyn" in browser.page_source
        accessible(browser)
        screenshot(browser, "story-sent")
    review = stack.cli("social", "review", "--json").ok().json()
    [sent] = [s for s in review["items"] if s["title"] == TITLE]
    journey.story_id = sent["id"]
    detail = story_detail(stack, sent["id"])
    assert detail["story"]["status"] == "in_review" and detail["story"]["pictures"] == 2
    assert [p["alt"] for p in detail["versions"][-1]["pictures"]] == list(ALTS)


def test_staff_ask_for_changes_and_the_ambassador_revises_on_the_page_the_mail_links(
    stack: StackRun, journey: Journey, mailbox: Mailbox
) -> None:
    story_id = need(journey.story_id, "the sent story")
    stack.cli("social", "request-changes", story_id, "--comment", COMMENT).ok()
    [asked] = mailbox.wait(
        lambda m: m.recipient == EMAIL and TITLE in m.text and "ønsker" in m.text,
        timeout=MAIL_TIMEOUT,
        what="the mail asking for changes",
    )
    link = own_link_in(asked)
    assert link, asked.text
    with chromium() as browser:
        browser.get(stack.local(link))
        assert "Ændringer ønsket" in browser.page_source
        assert COMMENT in browser.find_element(By.TAG_NAME, "main").text
        browser.find_element(By.PARTIAL_LINK_TEXT, "Ret historien").click()
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Ret historien")
        # Both pictures are kept, shown from the service.
        kept = browser.find_elements(By.CSS_SELECTOR, ".picture-row.kept img")
        assert len(kept) == 2
        assert all_loaded(browser, kept)
        accessible(browser)
        text = browser.find_element(By.ID, "text")
        text.clear()
        text.send_keys(REVISED_TEXT)
        press(browser, browser.find_element(By.CSS_SELECTOR, "#historie button[type=submit]"))
        assert "Tak for den rettede historie" in browser.page_source
        screenshot(browser, "story-revised")
    detail = story_detail(stack, story_id)
    assert detail["story"]["status"] == "in_review" and detail["story"]["pictures"] == 2
    assert detail["versions"][-1]["text"] == REVISED_TEXT


def test_an_approved_story_goes_out_once_at_its_time_without_the_photos_metadata(
    stack: StackRun, journey: Journey, photos: list[Path]
) -> None:
    story_id = need(journey.story_id, "the revised story")
    stack.cli("social", "approve", story_id).ok()
    at = (datetime.now(COPENHAGEN) + timedelta(hours=3)).replace(second=0, microsecond=0)
    stack.cli("social", "schedule", story_id, "--at", at.strftime("%Y-%m-%dT%H:%M")).ok()
    assert story_detail(stack, story_id)["story"]["status"] == "scheduled"
    posts_dir = stack.data_dir / "facebook"
    assert read_posts(posts_dir) == []
    stack.travel(at + timedelta(minutes=1))

    def published() -> dict[str, Any] | None:
        detail = story_detail(stack, story_id)
        return detail if detail["story"]["status"] == "published" else None

    detail = poll(published, timeout=60, interval=0.5, what="the story published")
    [post] = read_posts(posts_dir)
    assert detail["story"]["post_id"] == post["id"]
    assert post["message"] == f"{TITLE}\n\n{REVISED_TEXT}"
    assert [p["alt_text"] for p in post["pictures"]] == list(ALTS)
    for picture in post["pictures"]:
        data = (posts_dir / picture["file"]).read_bytes()
        image = opened(data)
        assert image.format == "JPEG" and max(image.size) == 2048
        assert not image.getexif().get_ifd(GPS_IFD) and b"SpyCam" not in data
    journey.published = post


def test_the_public_stories_page_and_the_next_newsletter_show_it(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    need(journey.published, "the published story")
    with chromium() as browser:
        browser.get(f"{stack.website}/historier")
        story = browser.find_element(By.CSS_SELECTOR, "article.story")
        assert TITLE in story.text and REVISED_TEXT in story.text
        assert NAME not in browser.page_source  # a citizen, not listed publicly
        pictures = story.find_elements(By.TAG_NAME, "img")
        assert [p.get_attribute("alt") for p in pictures] == list(ALTS)
        assert all_loaded(browser, pictures)
        accessible(browser)
        screenshot(browser, "stories-public")

    def drafted() -> dict[str, Any] | None:
        draft: dict[str, Any] = stack.cli("newsletter", "draft", "--json").ok().json()
        return draft if draft["sections"].get("stories", 0) >= 1 else None

    draft = poll(drafted, timeout=30, interval=1.0, what="the story in a draft")
    written = stack.cli("newsletter", "preview", draft["id"], "--out", str(tmp_path), "--json")
    number = written.ok().json()["number"]
    text = (tmp_path / f"issue-{number}.txt").read_text(encoding="utf-8")
    assert "Historier fra netværket" in text and TITLE in text, text


def test_her_stories_are_in_her_data_and_after_erasure_her_address_is_nowhere(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    story_id = need(journey.story_id, "the story")
    out = tmp_path / "karin.json"

    stack.cli("privacy", "export", EMAIL, "--out", str(out)).ok()

    sections = json.loads(out.read_text(encoding="utf-8"))["services"]
    [story] = [s for s in sections["social"].get("stories", []) if s["_id"] == story_id]
    pictures = [p for v in story["versions"] for p in v["pictures"]]
    assert pictures and all(p["name"] for p in pictures), story["versions"]
    assert TITLE in json.dumps(story, ensure_ascii=False)

    stack.cli("ambassadors", "erase", ambassador_id, "--yes").ok()

    def nowhere() -> bool:
        return stack.cli("privacy", "audit", EMAIL).returncode == 0

    try:
        poll(nowhere, timeout=30, interval=1.0, what="samskab privacy audit finds nothing")
    except AssertionError:
        pytest.fail(stack.cli("privacy", "audit", EMAIL).describe())
