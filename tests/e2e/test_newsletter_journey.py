"""The newsletter, end to end: the stack as ``make up`` runs it, driven by the CLI, read
back from the SMTP sink.

A self sign-up gets its confirmation mail, confirms with the token from it and is welcomed
with the certificate attached; a reader subscribes with double opt-in; an issue is drafted,
previewed, test-sent and sent to every confirmed subscriber (the 85 demo organisations
imported at the start among them: they are active ambassadors, so subscribers); one person
unsubscribes with the token from their List-Unsubscribe header and the next issue skips
them; the archive is public and names no subscriber.

As in ``test_ambassador_journey.py``: one stack for the module, small steps in file order
sharing a :class:`Journey`; a step whose input an earlier step did not provide skips. The
stack is started exactly as ``make up`` starts it, with one setting more: a public
``https`` address (``SAMSKAB_PUBLIC_URL``), as a deployment has, since the links and the
RFC 8058 headers are built from it. Mail delivery is asynchronous, so every mail is waited
for with a deadline.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from PIL import Image
from pypdf import PdfReader
from selenium.webdriver.common.by import By

from tests.e2e.conftest import PUBLIC_URL, StackRun
from tests.e2e.mailbox import Mail, Mailbox
from tests.e2e.steps import (
    ambassador_by_email,
    need,
    one_line_error,
    poll,
    subscriber_by_email,
    whitespace_free,
)
from tests.support.browser import chromium, press, screenshot

pytestmark = pytest.mark.e2e


UNSUBSCRIBE_PREFIX = f"{PUBLIC_URL}/newsletter/unsubscribe/"
ONE_CLICK = "List-Unsubscribe=One-Click"

NAME = "Karen Ærø Blichfeldt"
RENAMED = f"{NAME} Nielsen"
EMAIL = "karen.blichfeldt@example.org"
READER_NAME = "Ole Ravn Hansen"
READER_EMAIL = "ole.ravn@example.net"
EDITOR = "redaktion@fredericia.example"

ITEM_TITLE = "Fællesspisning <b>hver</b> torsdag"
ITEM_BODY = (
    "Vi laver mad sammen i Byens Hus, og der er altid plads til én mere.\n\n"
    '<script>alert("hacked")</script>'
    '<p onclick="steal()">Alle er <strong>velkomne</strong>, også børn.</p>'
)
ITEM_LINK = "https://byenshus.example/faellesspisning"
SECOND_ITEM_TITLE = "Ny gåtur langs voldene"
SECOND_ITEM_BODY = "Hver søndag kl. 10 går vi en tur. Mød op ved Prinsens Port."
FIRST_TITLE = "Nyt fra netværket, forår"
SECOND_TITLE = "Nyt fra netværket, sommer"

# From the start: the demo import's 85 welcome mails wait for their certificates.
DEMO_MAIL_TIMEOUT = 90.0
# One mail (a welcome waits for the certificate renderer).
MAIL_TIMEOUT = 45.0
# An issue to every subscriber.
ISSUE_TIMEOUT = 60.0
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


@dataclass
class Journey:
    """What one step learns and a later one needs."""

    demo: frozenset[str] | None = None
    ambassador_id: str | None = None
    confirmation_token: str | None = None
    subscriber_id: str | None = None
    unsubscribe_token: str | None = None
    reader_id: str | None = None
    item_id: str | None = None
    issue_id: str | None = None
    issue_number: int | None = None
    recipients: frozenset[str] | None = None
    second_issue_number: int | None = None
    # Every unsubscribe token seen in any mail: none may reach the public archive.
    tokens: set[str] = field(default_factory=set)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mailbox(stack: StackRun) -> Mailbox:
    return Mailbox(stack.data_dir / "mail")


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey()


# ---------------------------------------------------------------- helpers


def subscribers(stack: StackRun, status: str | None = None) -> list[dict[str, Any]]:
    args = ["newsletter", "subscribers", "--limit", "200", "--json"]
    page = stack.cli(*args, *(["--status", status] if status else [])).ok().json()
    assert page["total"] == len(page["items"]), "more subscribers than one page"
    items: list[dict[str, Any]] = page["items"]
    return items


def confirmed_addresses(stack: StackRun) -> frozenset[str]:
    return frozenset(s["email"].lower() for s in subscribers(stack, "confirmed"))


def structure(mail: Mail) -> list[str]:
    return [part.get_content_type() for part in mail.parts()]


def assert_danish_alternative(mail: Mail) -> None:
    """Plain text and HTML of the same Danish mail."""
    types = structure(mail)
    assert "multipart/alternative" in types, f"{mail.describe()}: {types}"
    assert "text/plain" in types and "text/html" in types, f"{mail.describe()}: {types}"
    assert re.search(r"<html[^>]*\blang=\"da\"", mail.html), mail.html[:300]
    assert "<script" not in mail.html.lower()


def assert_one_click(mail: Mail) -> str:
    """RFC 8058 headers with an https URL under SAMSKAB_PUBLIC_URL and a mailto, both with
    the same personal token; the link is in the body too. The token."""
    unsubscribe = mail.unsubscribe()
    assert unsubscribe is not None, f"{mail.describe()}: no List-Unsubscribe header"
    assert unsubscribe.url.startswith(UNSUBSCRIBE_PREFIX), unsubscribe
    assert unsubscribe.url.startswith("https://"), unsubscribe
    assert unsubscribe.mailto.startswith("mailto:"), unsubscribe
    assert unsubscribe.token in unsubscribe.mailto, unsubscribe
    assert len(unsubscribe.token) >= 20, unsubscribe
    assert unsubscribe.post == ONE_CLICK, unsubscribe
    assert unsubscribe.url in mail.html and unsubscribe.url in mail.text
    return unsubscribe.token


def issue_mails(mailbox: Mailbox, title: str) -> list[Mail]:
    """Copies of the issue with this title to subscribers (the test copy goes to EDITOR)."""
    return mailbox.matching(lambda m: m.subject == title and m.recipient != EDITOR)


def wait_until_sent(stack: StackRun, number: int) -> dict[str, Any]:
    """The archive lists an issue once its fan-out is done; that entry."""

    def listed() -> dict[str, Any] | None:
        entries = stack.cli("newsletter", "archive", "--json").ok().json()["issues"]
        return next((e for e in entries if e["number"] == number), None)

    return poll(listed, timeout=ISSUE_TIMEOUT, what=f"issue {number} listed as sent", interval=0.5)


def send_issue(stack: StackRun, issue_id: str) -> dict[str, Any]:
    sent: dict[str, Any] = stack.cli("newsletter", "send", issue_id, "--json").ok().json()
    assert sent["id"] == issue_id
    assert sent["state"] in ("sending", "sent"), sent
    if sent["state"] == "sending":  # a long fan-out: the reply came before the end
        wait_until_sent(stack, sent["number"])
    return sent


def tiny_png() -> bytes:
    image = Image.new("RGB", (64, 40), (29, 92, 150))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# ---------------------------------------------------------------- the journey


def test_the_newsletter_service_runs_with_make_up(stack: StackRun) -> None:
    health = stack.cli("health", "--json").ok().json()
    assert health["running"]["newsletter"]["status"] == "ok", health
    assert health["running"]["ambassadors"]["status"] == "ok", health
    human = stack.cli("health").ok().stdout
    assert re.search(r"^newsletter\s+ok\b", human, re.M), human


def test_the_demo_organisations_are_welcomed_and_subscribed(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    def imported() -> list[dict[str, Any]] | None:
        page = stack.cli("ambassadors", "list", "--limit", "1000", "--json").ok().json()
        items: list[dict[str, Any]] = page["items"]
        return items if len(items) >= 85 else None

    ambassadors = poll(imported, timeout=30, what="85 demo ambassadors imported")
    assert {(a["status"], a["source"]) for a in ambassadors} == {("active", "import")}
    demo = frozenset(a["email"].lower() for a in ambassadors)
    assert len(demo) == 85
    journey.demo = demo

    # Active at once, so each is welcomed with the certificate, once, like any activation.
    welcomes = mailbox.wait(
        lambda m: m.recipient in demo,
        count=85,
        timeout=DEMO_MAIL_TIMEOUT,
        what="a welcome mail to each demo organisation",
    )
    per_address = Counter(m.recipient for m in welcomes)
    assert set(per_address) == demo
    assert set(per_address.values()) == {1}, per_address.most_common(3)
    for mail in welcomes:
        pdfs = [a for a in mail.attachments() if a.get_content_type() == "application/pdf"]
        assert len(pdfs) == 1, mail.describe()
        journey.tokens.add(assert_one_click(mail))

    # And they became confirmed subscribers, linked to their ambassador.
    by_address = {s["email"].lower(): s for s in subscribers(stack)}
    assert set(by_address) == demo
    ids = {a["email"].lower(): a["id"] for a in ambassadors}
    for address, s in by_address.items():
        assert (s["status"], s["source"]) == ("confirmed", "ambassador"), s
        assert s["ambassador_id"] == ids[address], s


def test_a_self_sign_up_gets_the_confirmation_mail(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    result = stack.cli(
        "ambassadors",
        "sign-up",
        "--name",
        NAME,
        "--email",
        EMAIL,
        "--kind",
        "citizen",
        "--theme",
        "3",
        "--description",
        "Står for fællesspisningen i Byens Hus.",
        "--public",
        "--consent",
        "--json",
    )
    assert result.ok().json() == {"received": True}
    a = ambassador_by_email(stack, EMAIL)
    assert (a["status"], a["source"]) == ("pending", "self")
    journey.ambassador_id = a["id"]

    mails = mailbox.wait(
        lambda m: m.recipient == EMAIL, timeout=MAIL_TIMEOUT, what=f"confirmation to {EMAIL}"
    )
    assert len(mails) == 1, [m.describe() for m in mails]
    mail = mails[0]
    assert mail.message.get_content_type() == "multipart/alternative", structure(mail)
    assert_danish_alternative(mail)
    assert "Bekræft" in mail.subject, mail.subject
    assert parseaddr(mail.header("To") or "")[1].lower() == EMAIL

    links = re.findall(rf"{re.escape(PUBLIC_URL)}/confirm/([\w.-]+)", mail.text)
    assert links, mail.text
    token = links[0]
    assert f"{PUBLIC_URL}/confirm/{token}" in mail.html
    # The link and its page are the way: no command line, no bare token.
    assert "samskab ambassadors" not in mail.text + mail.html
    assert mail.text.count(token) == 1
    journey.confirmation_token = token

    # Not a subscriber before the address is proven.
    assert EMAIL not in {s["email"].lower() for s in subscribers(stack)}


def test_confirming_brings_the_welcome_with_the_certificate(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    token = need(journey.confirmation_token, "the token from the confirmation mail")

    confirmed = stack.cli("ambassadors", "confirm", token).ok()
    assert confirmed.stdout.strip() == f"{ambassador_id} active: {NAME}", confirmed.describe()
    a = stack.cli("ambassadors", "show", ambassador_id, "--json").ok().json()
    number = a["certificate"]["number"]

    def welcome(m: Mail) -> bool:
        return m.recipient == EMAIL and bool(m.attachments())

    mails = mailbox.wait(welcome, timeout=MAIL_TIMEOUT, what=f"welcome with PDF to {EMAIL}")
    assert len(mails) == 1, [m.describe() for m in mails]
    mail = mails[0]
    assert mail.message.get_content_type() == "multipart/mixed", structure(mail)
    assert_danish_alternative(mail)
    assert "Velkommen" in mail.subject, mail.subject
    assert number in mail.text

    [pdf] = mail.attachments()
    assert pdf.get_content_type() == "application/pdf"
    filename = pdf.get_filename() or ""
    assert filename.endswith(".pdf") and number in filename, filename
    data = pdf.get_content()
    assert isinstance(data, bytes) and data.startswith(b"%PDF-")
    text = whitespace_free("".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))
    assert whitespace_free(NAME) in text and number in text, text

    # She is a subscriber now, and the welcome already carries her unsubscribe link.
    journey.unsubscribe_token = assert_one_click(mail)
    journey.tokens.add(journey.unsubscribe_token)
    [s] = [s for s in subscribers(stack) if s["email"].lower() == EMAIL]
    assert (s["status"], s["source"], s["ambassador_id"]) == (
        "confirmed",
        "ambassador",
        ambassador_id,
    )
    journey.subscriber_id = s["id"]


def test_a_reader_subscribes_with_double_opt_in(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    result = stack.cli("newsletter", "subscribe", READER_EMAIL, "--name", READER_NAME, "--json")
    assert result.ok().json() == {"received": True}
    s = subscriber_by_email(stack, READER_EMAIL)
    assert (s["status"], s["source"], s["email"]) == ("pending", "direct", READER_EMAIL)

    mails = mailbox.wait(
        lambda m: m.recipient == READER_EMAIL,
        timeout=MAIL_TIMEOUT,
        what=f"subscription confirmation to {READER_EMAIL}",
    )
    assert len(mails) == 1, [m.describe() for m in mails]
    mail = mails[0]
    assert_danish_alternative(mail)
    journey.tokens.add(assert_one_click(mail))
    pattern = rf"{re.escape(PUBLIC_URL)}/newsletter/confirm/([\w.-]+)"
    links = re.findall(pattern, mail.text)
    assert links, mail.text
    token = links[0]
    assert f"{PUBLIC_URL}/newsletter/confirm/{token}" in mail.html
    assert "samskab newsletter" not in mail.text and mail.text.count(token) == 1

    # Pending subscribers get no issue.
    assert READER_EMAIL not in confirmed_addresses(stack)

    done = stack.cli("newsletter", "confirm", token).ok()
    assert done.stdout.strip() == f"{s['id']} subscribed: {READER_NAME} <{READER_EMAIL}>"
    assert READER_EMAIL in confirmed_addresses(stack)
    journey.reader_id = s["id"]


def test_news_items_are_added_and_removed(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    image = tmp_path / "faellesspisning.png"
    image.write_bytes(tiny_png())

    item = (
        stack.cli(
            "newsletter",
            "item",
            "add",
            "--title",
            ITEM_TITLE,
            "--body",
            ITEM_BODY,
            "--link",
            ITEM_LINK,
            "--image",
            str(image),
            "--ambassador",
            ambassador_id,
            "--json",
        )
        .ok()
        .json()
    )
    assert (item["title"], item["link"], item["ambassador_id"]) == (
        ITEM_TITLE,
        ITEM_LINK,
        ambassador_id,
    )
    assert item["image"] is not None and item["used_in_issue"] is None
    journey.item_id = item["id"]

    mistake = stack.cli("newsletter", "item", "add", "--title", "Fejl", "--body", "Slet mig")
    mistake_id = mistake.ok().stdout.split()[0]
    stack.cli("newsletter", "item", "remove", mistake_id).ok()

    page = stack.cli("newsletter", "item", "list", "--unused", "--json").ok().json()
    assert [i["id"] for i in page["items"]] == [item["id"]], page


def test_a_draft_previews_without_scripts(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    item_id = need(journey.item_id, "the news item")
    draft = (
        stack.cli(
            "newsletter",
            "draft",
            "--title",
            FIRST_TITLE,
            "--intro",
            "Kære ambassadører og venner af netværket.",
            "--json",
        )
        .ok()
        .json()
    )
    assert (draft["state"], draft["title"], draft["items"]) == ("draft", FIRST_TITLE, 1)
    # The demo organisations and she are new (all listed publicly).
    assert draft["sections"].get("new_ambassadors", 0) >= 86, draft
    journey.issue_id = draft["id"]

    out = tmp_path / "preview"
    written = stack.cli("newsletter", "preview", draft["id"], "--out", str(out), "--json")
    files = [Path(f) for f in written.ok().json()["files"]]
    number = written.json()["number"]
    html_file, text_file = out / f"issue-{number}.html", out / f"issue-{number}.txt"
    assert set(files) == {html_file, text_file}
    html, text = html_file.read_text(encoding="utf-8"), text_file.read_text(encoding="utf-8")
    images = [p for p in out.rglob("*") if p.is_file() and p not in files]
    assert len(images) == 1, images
    assert images[0].relative_to(out).as_posix() in html, "the HTML shows the written image"

    # The item is there; what it tried to smuggle in is not.
    lowered = html.lower()
    assert "<script" not in lowered and "onclick" not in lowered and "alert(" not in lowered
    assert "&lt;b&gt;hver&lt;/b&gt;" in html, "a title is text, not markup"
    assert "<strong>velkomne</strong>" in html, "simple markup in a body survives"
    assert ITEM_LINK in html and NAME in html
    assert "Alle er velkomne" in text and "<script" not in text.lower()
    assert ITEM_LINK in text
    # The preview is the public version: no personal link, no address.
    assert "/newsletter/unsubscribe/" not in html + text
    assert not EMAIL_PATTERN.search(html + text), EMAIL_PATTERN.search(html + text)

    listed = stack.cli("newsletter", "item", "list", "--json").ok().json()
    assert [i["used_in_issue"] for i in listed["items"] if i["id"] == item_id] == [None]


def test_a_test_copy_goes_to_the_editor_only(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    issue_id = need(journey.issue_id, "the draft")
    result = stack.cli("newsletter", "test-send", issue_id, "--to", EDITOR, "--json").ok()
    assert result.json()["to"] == EDITOR

    mails = mailbox.wait(
        lambda m: m.recipient == EDITOR and m.subject == FIRST_TITLE,
        timeout=MAIL_TIMEOUT,
        what=f"the test copy to {EDITOR}",
    )
    assert len(mails) == 1, [m.describe() for m in mails]
    assert_danish_alternative(mails[0])
    assert "Alle er velkomne" in mails[0].text
    # Not a subscriber: nothing to unsubscribe from.
    assert mails[0].header("List-Unsubscribe") is None
    assert issue_mails(mailbox, FIRST_TITLE) == [], "a test copy went to subscribers"


def test_the_issue_reaches_every_confirmed_subscriber_once(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    issue_id = need(journey.issue_id, "the draft")
    demo = need(journey.demo, "the demo organisations")
    confirmed = confirmed_addresses(stack)
    assert confirmed == demo | {EMAIL, READER_EMAIL}

    sent = send_issue(stack, issue_id)
    if sent["state"] == "sent":
        assert sent["recipients"] == len(confirmed), sent
    journey.issue_number = sent["number"]
    mails = mailbox.wait(
        lambda m: m.subject == FIRST_TITLE and m.recipient != EDITOR,
        count=len(confirmed),
        timeout=ISSUE_TIMEOUT,
        what="the first issue to every confirmed subscriber",
    )
    entry = wait_until_sent(stack, sent["number"])
    assert entry["title"] == FIRST_TITLE
    mails = issue_mails(mailbox, FIRST_TITLE)  # again, after the send is complete

    per_address = Counter(m.recipient for m in mails)
    assert set(per_address) == confirmed
    assert set(per_address.values()) == {1}, per_address.most_common(3)
    assert mailbox.duplicates() == [], "the sink dropped resent Message-IDs"
    assert len({m.message_id for m in mails}) == len(mails)
    done = stack.cli("newsletter", "archive", "--json").ok().json()
    assert [e["number"] for e in done["issues"]] == [sent["number"]]

    tokens: dict[str, str] = {}
    for mail in mails:
        assert parseaddr(mail.header("To") or "")[1].lower() == mail.recipient
        assert_danish_alternative(mail)
        tokens[mail.recipient] = assert_one_click(mail)
        # The image travels inside the mail, referred to by Content-ID.
        [img] = [p for p in mail.parts() if p.get_content_maintype() == "image"]
        cid = str(img.get("Content-ID", "")).strip("<> ")
        assert cid and f"cid:{cid}" in mail.html, mail.describe()
    assert len(set(tokens.values())) == len(tokens), "unsubscribe tokens must be personal"
    # One permanent token per subscriber: the welcome's link still works in the issue.
    assert tokens[EMAIL] == need(journey.unsubscribe_token, "her token from the welcome")
    journey.tokens.update(tokens.values())
    journey.recipients = frozenset(per_address)

    again = stack.cli("newsletter", "send", issue_id)
    assert "sent already" in one_line_error(again)


def test_unsubscribe_with_the_token_from_the_header(
    stack: StackRun, mailbox: Mailbox, journey: Journey
) -> None:
    need(journey.recipients, "the first issue")
    subscriber_id = need(journey.subscriber_id, "her subscriber id")
    ambassador_id = need(journey.ambassador_id, "the ambassador")
    [mail] = [m for m in issue_mails(mailbox, FIRST_TITLE) if m.recipient == EMAIL]
    unsubscribe = mail.unsubscribe()
    assert unsubscribe is not None

    done = stack.cli("newsletter", "unsubscribe", unsubscribe.token).ok()
    assert done.stdout.strip() == f"{subscriber_id} unsubscribed", done.describe()
    # A second click (mail clients do POST twice) changes nothing and is no error.
    again = stack.cli("newsletter", "unsubscribe", unsubscribe.token, "--json").ok().json()
    assert (again["id"], again["status"]) == (subscriber_id, "unsubscribed")

    gone = subscribers(stack, "unsubscribed")
    assert [(s["id"], s["email"].lower()) for s in gone] == [(subscriber_id, EMAIL)]
    assert EMAIL not in confirmed_addresses(stack)
    # Leaving the newsletter is not leaving the network.
    a = stack.cli("ambassadors", "show", ambassador_id, "--json").ok().json()
    assert a["status"] == "active"

    # A later event about her (a new name) reaches her subscriber record but never
    # subscribes her again.
    stack.cli("ambassadors", "update", ambassador_id, "--name", RENAMED).ok()

    def renamed() -> dict[str, Any] | None:
        found = [s for s in subscribers(stack) if s["id"] == subscriber_id]
        return found[0] if found and found[0]["name"] == RENAMED else None

    s = poll(renamed, timeout=20, interval=0.5, what="her new name in the subscriber list")
    assert s["status"] == "unsubscribed", s

    bad = stack.cli("newsletter", "unsubscribe", "x" * 43)
    one_line_error(bad)


def test_the_next_issue_skips_them(stack: StackRun, mailbox: Mailbox, journey: Journey) -> None:
    first = need(journey.recipients, "the first issue's recipients")
    first_number = need(journey.issue_number, "the first issue's number")
    stack.cli(
        "newsletter", "item", "add", "--title", SECOND_ITEM_TITLE, "--body", SECOND_ITEM_BODY
    ).ok()
    draft = stack.cli("newsletter", "draft", "--title", SECOND_TITLE, "--json").ok().json()
    # Only what is new since the first issue: the sent item is not repeated.
    assert (draft["items"], draft["title"]) == (1, SECOND_TITLE), draft

    expected = first - {EMAIL}
    assert confirmed_addresses(stack) == expected
    sent = send_issue(stack, draft["id"])
    assert sent["number"] == first_number + 1
    if sent["state"] == "sent":
        assert sent["recipients"] == len(expected), sent
    mailbox.wait(
        lambda m: m.subject == SECOND_TITLE,
        count=len(expected),
        timeout=ISSUE_TIMEOUT,
        what="the second issue to every remaining subscriber",
    )
    wait_until_sent(stack, sent["number"])
    journey.second_issue_number = sent["number"]

    mails = issue_mails(mailbox, SECOND_TITLE)
    per_address = Counter(m.recipient for m in mails)
    assert EMAIL not in per_address, "the unsubscribed person got the next issue"
    assert set(per_address) == expected
    assert set(per_address.values()) == {1}, per_address.most_common(3)
    for mail in mails:
        assert_one_click(mail)
        assert SECOND_ITEM_TITLE in mail.text and "Fællesspisning" not in mail.text
    # Her earlier mails are all she has: the confirmation, the welcome, the first issue.
    assert len(mailbox.to(EMAIL)) == 3, [m.describe() for m in mailbox.to(EMAIL)]


def test_the_archive_is_public_and_names_no_subscriber(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    first = need(journey.issue_number, "the first issue")
    second = need(journey.second_issue_number, "the second issue")
    out = tmp_path / "arkiv"
    result = stack.cli("newsletter", "archive", "--out", str(out), "--json").ok().json()
    assert [(e["number"], e["title"]) for e in result["issues"]] == [
        (first, FIRST_TITLE),
        (second, SECOND_TITLE),
    ]
    files = {Path(f) for f in result["files"]}
    for number in (first, second):
        assert out / f"issue-{number}.html" in files and out / f"issue-{number}.txt" in files
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f'href="issue-{first}.html"' in index and f'href="issue-{second}.html"' in index

    addresses = {s["email"].lower() for s in subscribers(stack)} | {EDITOR}
    tokens = journey.tokens
    assert len(addresses) >= 87 and len(tokens) >= 87
    written = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".html", ".txt")]
    assert len(written) == 5, written
    for path in written:
        content = path.read_text(encoding="utf-8")
        lowered = content.lower()
        assert not EMAIL_PATTERN.search(content), (path, EMAIL_PATTERN.search(content))
        assert not [a for a in addresses if a in lowered], path
        assert not [t for t in tokens if t in content], f"{path}: an unsubscribe token"
        assert "/newsletter/unsubscribe/" not in content and READER_NAME not in content
        assert "<script" not in lowered
    first_html = (out / f"issue-{first}.html").read_text(encoding="utf-8")
    assert "Alle er <strong>velkomne</strong>" in first_html and NAME in first_html

    human = stack.cli("newsletter", "archive").ok().stdout
    assert FIRST_TITLE in human and SECOND_TITLE in human


def test_the_website_shows_the_archive_with_its_pictures_and_the_atom_feed(
    stack: StackRun, journey: Journey
) -> None:
    first = need(journey.issue_number, "the first issue")
    second = need(journey.second_issue_number, "the second issue")
    with chromium() as browser:
        browser.get(f"{stack.website}/nyhedsbrev")
        archive = browser.find_element(By.CSS_SELECTOR, "#arkiv + ul").text
        assert FIRST_TITLE in archive and SECOND_TITLE in archive
        press(browser, browser.find_element(By.LINK_TEXT, f"Nr. {first}: {FIRST_TITLE}"))
        assert browser.current_url == f"{stack.website}/nyhedsbrev/{first}"
        assert "Alle er velkomne" in browser.find_element(By.TAG_NAME, "body").text
        # The item's picture is shown: the browser fetched and decoded it from the site.
        [picture] = browser.find_elements(By.CSS_SELECTOR, "img[src^='images/']")
        assert (
            browser.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", picture
            )
            == 64
        ), "the picture did not load"
        screenshot(browser, "web-newsletter-issue")
    source = httpx.get(f"{stack.website}/nyhedsbrev/{first}", timeout=10).text
    [src] = re.findall(r'src="(images/[^"]+)"', source)
    fetched = httpx.get(f"{stack.website}/nyhedsbrev/{src}", timeout=10)
    assert fetched.headers["content-type"] == "image/jpeg" and fetched.headers["ETag"]
    with Image.open(io.BytesIO(fetched.content)) as decoded:
        assert decoded.size == (64, 40)

    feed = httpx.get(f"{stack.website}/nyhedsbrev.atom", timeout=10)
    assert feed.headers["content-type"].startswith("application/atom+xml")
    atom = "{http://www.w3.org/2005/Atom}"
    entries = ElementTree.fromstring(feed.content).findall(f"{atom}entry")
    links = [e.find(f"{atom}link").get("href") for e in entries]  # type: ignore[union-attr]
    assert links == [f"{PUBLIC_URL}/nyhedsbrev/{second}", f"{PUBLIC_URL}/nyhedsbrev/{first}"]
