"""The website, end to end: the stack as ``make up`` runs it (the website included), a
real headless Chromium, the mails in the SMTP sink.

A person signs up (the self sign-up), opens the link in the confirmation mail: the page
shows one button and confirms nothing yet (a mail scanner opening the link changes
nothing); pressing the button makes them an active ambassador, and the certificate check
page says their certificate is genuine and valid. A reader subscribes through the form,
confirms and unsubscribes through the pages; a mail program's one-click POST unsubscribes
without a browser. Every page passes axe-core's serious and
critical rules. Each step leaves a screenshot of its last page in ``test-artifacts/``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import icalendar
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from contracts.events import COPENHAGEN
from services.runtime.tokens import UNSUBSCRIBE, Signer
from tests.e2e.conftest import PUBLIC_URL, StackRun
from tests.e2e.mailbox import Mailbox
from tests.e2e.steps import ambassador_by_email, poll, schedule_when_known, subscriber_by_email
from tests.support.browser import accessible, chromium, press, screenshot
from tests.support.web_pages import page_paths

pytestmark = pytest.mark.e2e

NAME = "Birte Webløkke"
EMAIL = "birte.weblokke@example.org"


def status_of(stack: StackRun, email: str) -> dict[str, Any]:
    return ambassador_by_email(stack, email)


def test_samskab_health_lists_the_website(stack: StackRun) -> None:
    health = stack.cli("health", "--json").ok().json()
    assert health["running"]["web"]["status"] == "ok" and health["healthy"] is True
    human = stack.cli("health").ok().stdout
    assert re.search(r"^web\s+ok\b", human, re.M), human


def test_a_sign_up_is_confirmed_on_the_website_and_its_certificate_checks_out(
    stack: StackRun,
) -> None:
    with chromium() as browser:
        browser.get(f"{stack.website}/bliv-ambassadoer")
        assert "Samtykketekst version" in browser.page_source
        accessible(browser)
        # A first try without consent and with a bad address: both named, nothing stored.
        browser.find_element(By.ID, "kind").click()  # the first kind: a citizen
        browser.find_element(By.ID, "name").send_keys(NAME)
        browser.find_element(By.ID, "email").send_keys("birte-uden-snabel-a")
        browser.find_element(By.CSS_SELECTOR, "input[name=themes][value='7']").click()
        press(browser, browser.find_element(By.CSS_SELECTOR, "main form button"))
        summary = browser.find_element(By.CSS_SELECTOR, ".error-summary").text
        assert "Skriv en gyldig e-mailadresse" in summary and "Du skal give samtykke" in summary
        accessible(browser)
        screenshot(browser, "web-sign-up-refused")
        # What was typed and chosen is still there; mend it and agree.
        assert browser.find_element(By.ID, "name").get_attribute("value") == NAME
        assert browser.find_element(By.CSS_SELECTOR, "input[name=themes][value='7']").is_selected()
        address = browser.find_element(By.ID, "email")
        address.clear()
        address.send_keys(EMAIL)
        browser.find_element(By.ID, "public").click()
        browser.find_element(By.ID, "consent").click()
        press(browser, browser.find_element(By.CSS_SELECTOR, "main form button"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Tak for din tilmelding"
        accessible(browser)
        screenshot(browser, "web-signed-up")
    pending = status_of(stack, EMAIL)
    assert pending["status"] == "pending" and pending["source"] == "self"
    assert pending["themes"] == [7] and pending["public"] is True
    assert pending["consent_version"]
    [mail] = Mailbox(stack.data_dir / "mail").wait(
        lambda m: EMAIL in m.to and "/confirm/" in m.text,
        timeout=60,
        what=f"the confirmation mail to {EMAIL}",
    )
    found = re.search(rf"{re.escape(PUBLIC_URL)}/confirm/\S+", mail.text)
    assert found, mail.text
    link = stack.local(found.group(0))

    with chromium() as browser:
        browser.get(link)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Bekræft din tilmelding"
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "da"
        [button] = browser.find_elements(By.CSS_SELECTOR, "main button")
        accessible(browser)
        # Opening the link (as a mail scanner does) confirmed nothing.
        assert status_of(stack, EMAIL)["status"] == "pending"

        press(browser, button)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Tak, du er nu ambassadør"
        accessible(browser)
        screenshot(browser, "web-confirmed")
        person = poll(
            lambda: (p := status_of(stack, EMAIL))["certificate"] and p,
            timeout=60,
            what="the certificate of the confirmed ambassador",
        )
        assert person["status"] == "active"
        certificate = person["certificate"]
        assert isinstance(certificate, dict)

        browser.get(f"{stack.website}/verify/{certificate['verification_code']}")
        answer = browser.find_element(By.CSS_SELECTOR, ".result").text
        assert "Beviset er ægte og gyldigt" in answer
        assert certificate["number"] in answer and NAME in answer
        assert EMAIL not in browser.page_source
        accessible(browser)
        screenshot(browser, "web-certificate-check")

        browser.get(stack.website + "/")
        assert "Bliv ambassadør" in browser.page_source
        accessible(browser)
        screenshot(browser, "web-front-page")


def newest_link(stack: StackRun, address: str, path: str, what: str, count: int = 1) -> str:
    """The link to ``path`` in the newest of at least ``count`` mails to ``address``."""
    mails = Mailbox(stack.data_dir / "mail").wait(
        lambda m: address in m.to and f"{PUBLIC_URL}{path}" in m.text,
        count=count,
        timeout=60,
        what=what,
    )
    found = re.search(rf"{re.escape(PUBLIC_URL)}{re.escape(path)}\S+", mails[-1].text)
    assert found, mails[-1].text
    return stack.local(found.group(0))


def unsubscribe_link(stack: StackRun, address: str) -> str:
    """The link every issue mailed to ``address`` carries (signed as the newsletter service
    signs it: sending an issue to the demo's 85 subscribers just for it would be slow)."""
    subscriber = subscriber_by_email(stack, address)
    token = Signer(stack.token_secret("newsletter_token_secret"), UNSUBSCRIBE).sign(
        subscriber["id"]
    )
    return f"{stack.website}/newsletter/unsubscribe/{token}"


def test_a_reader_subscribes_confirms_and_unsubscribes_on_the_website(stack: StackRun) -> None:
    reader = "ellen.web@example.net"
    with chromium() as browser:
        browser.get(f"{stack.website}/nyhedsbrev")
        accessible(browser)
        browser.find_element(By.ID, "email").send_keys("ikke-en-adresse")
        press(browser, browser.find_element(By.CSS_SELECTOR, "main form button"))
        summary = browser.find_element(By.CSS_SELECTOR, ".error-summary").text
        assert "Skriv en gyldig e-mailadresse" in summary
        accessible(browser)

        field = browser.find_element(By.ID, "email")
        field.clear()
        field.send_keys(reader)
        browser.find_element(By.ID, "name").send_keys("Ellen Web")
        press(browser, browser.find_element(By.CSS_SELECTOR, "main form button"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Tjek din mail"

        browser.get(newest_link(stack, reader, "/newsletter/confirm/", "the confirmation"))
        assert subscriber_by_email(stack, reader)["status"] == "pending"  # opened, not acted
        press(browser, browser.find_element(By.CSS_SELECTOR, "main button"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Tak for dit abonnement"
        assert subscriber_by_email(stack, reader)["status"] == "confirmed"

        browser.get(unsubscribe_link(stack, reader))
        assert subscriber_by_email(stack, reader)["status"] == "confirmed"
        accessible(browser)
        press(browser, browser.find_element(By.CSS_SELECTOR, "main button"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Du er afmeldt"
        screenshot(browser, "web-unsubscribed")
    assert subscriber_by_email(stack, reader)["status"] == "unsubscribed"


def test_the_one_click_unsubscribe_of_a_mail_program_works_without_a_browser(
    stack: StackRun,
) -> None:
    reader = "oneclick.web@example.net"
    stack.cli("newsletter", "subscribe", reader).ok()
    confirm = newest_link(stack, reader, "/newsletter/confirm/", "the confirmation")
    token = confirm.rsplit("/", 1)[-1]
    stack.cli("newsletter", "confirm", token).ok()
    link = unsubscribe_link(stack, reader)
    # What a mail program sends for List-Unsubscribe-Post (RFC 8058): no cookie, no token.
    answer = httpx.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert subscriber_by_email(stack, reader)["status"] == "unsubscribed"


def test_the_public_directory_shows_the_listed_organisations_and_filters_them(
    stack: StackRun,
) -> None:
    listed = stack.cli("ambassadors", "directory", "--json").ok().json()
    entries = listed["entries"]
    assert entries, "the demo import lists its organisations"
    housing = {e["display_name"] for e in entries if "housing" in e["core_areas"]}
    with chromium() as browser:
        browser.get(f"{stack.website}/ambassadoerer")
        accessible(browser)
        status = browser.find_element(By.CSS_SELECTOR, "[role=status]").text
        assert status.startswith(f"{len(entries)} ambassadører")
        Select(browser.find_element(By.ID, "kerneomraade")).select_by_visible_text("Bolig")
        press(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
        assert "kerneomraade=housing" in browser.current_url
        shown = {h.text for h in browser.find_elements(By.CSS_SELECTOR, ".directory h2")}
        assert shown <= housing
        assert len(shown) == min(50, len(housing))
        # Nothing but what the organisations chose to show: no address, no phone.
        assert "@" not in browser.find_element(By.TAG_NAME, "main").text
        screenshot(browser, "web-directory")


def test_a_public_meeting_is_in_the_calendar_its_page_and_the_feed(stack: StackRun) -> None:
    starts = (datetime.now(COPENHAGEN) + timedelta(days=40)).replace(
        hour=17, minute=0, second=0, microsecond=0
    )
    scheduled = stack.cli(
        "events", "schedule", "--kind", "theme_day", "--title", "Temadag om fællesskaber",
        "--starts", starts.strftime("%Y-%m-%dT%H:%M"),
        "--ends", (starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "--place", "Fredericia Bibliotek", "--public", "--theme", "5", "--json",
    ).ok().json()  # fmt: skip
    with chromium() as browser:
        browser.get(f"{stack.website}/kalender")
        accessible(browser)
        link = browser.find_element(By.LINK_TEXT, "Temadag om fællesskaber")
        assert "kl. 17.00" in browser.find_element(By.CSS_SELECTOR, ".meetings").text
        press(browser, link)
        assert browser.current_url.endswith(f"/kalender/{scheduled['id']}")
        assert "Fredericia Bibliotek" in browser.find_element(By.TAG_NAME, "main").text
        accessible(browser)
        screenshot(browser, "web-meeting")
    feed = httpx.get(f"{stack.website}/kalender.ics", timeout=10)
    assert feed.headers["content-type"].startswith("text/calendar")
    events = icalendar.Calendar.from_ical(feed.content).walk("VEVENT")
    [found] = [e for e in events if str(e["SUMMARY"]) == "Temadag om fællesskaber"]
    assert found.decoded("DTSTART") == starts


def staff_sign_up(stack: StackRun, name: str, email: str) -> str:
    entered = stack.cli(
        "ambassadors", "sign-up", "--kind", "citizen", "--name", name, "--email", email,
        "--staff", "--consent", "--json",
    ).ok().json()  # fmt: skip
    ambassador_id: str = entered["ambassador"]["id"]
    return ambassador_id


def schedule_in_days(stack: StackRun, days: int, kind: str, title: str, *more: str) -> Any:
    """A two-hour meeting at 16.00 Copenhagen time ``days`` from now."""
    starts = (datetime.now(COPENHAGEN) + timedelta(days=days)).replace(
        hour=16, minute=0, second=0, microsecond=0
    )
    return schedule_when_known(
        stack, "--kind", kind, "--title", title,
        "--starts", starts.strftime("%Y-%m-%dT%H:%M"),
        "--ends", (starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        *more,
    )  # fmt: skip


def test_an_invitation_link_answers_yes_to_a_full_meeting_and_shows_the_waitlist_place(
    stack: StackRun,
) -> None:
    first = staff_sign_up(stack, "Karl Første", "karl.forste@example.org")
    second = staff_sign_up(stack, "Lise Anden", "lise.anden@example.org")
    meeting = schedule_in_days(
        stack, 9, "dialogue_meeting", "Dialogmøde om ensomhed",
        "--place", "Fredericia Rådhus", "--capacity", "1", "--invite", first, "--invite", second,
    )  # fmt: skip
    link = newest_link(
        stack, "lise.anden@example.org", "/rsvp/", "Lise's invitation to the dialogue meeting"
    )
    assert link.endswith("/yes") or link.endswith("/maybe") or link.endswith("/no")
    yes = link.rsplit("/", 1)[0] + "/yes"
    stack.cli("events", "rsvp", meeting["id"], first, "--yes").ok()  # the one seat goes

    def answer_of(who: str) -> str:
        detail = stack.cli("events", "show", meeting["id"], "--json").ok().json()
        [invitee] = [i for i in detail["invitees"] if i["ambassador_id"] == who]
        participation: str = invitee["participation"]
        return participation

    with chromium() as browser:
        browser.get(yes)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Dialogmøde om ensomhed"
        main = browser.find_element(By.TAG_NAME, "main").text
        assert "Du har ikke svaret endnu." in main and "Mødet er fuldt" in main
        accessible(browser)
        # The link (as a mail scanner opens it) answered nothing.
        assert answer_of(second) == "invited"
        press(browser, browser.find_element(By.CSS_SELECTOR, "button[value=yes]"))
        main = browser.find_element(By.TAG_NAME, "main").text
        assert "Tak, dit svar er noteret." in main
        assert "Du er nr. 1 på ventelisten" in main
        accessible(browser)
        screenshot(browser, "web-rsvp-waitlisted")
    assert answer_of(second) == "waitlisted"


def test_the_goals_page_shows_the_numbers_samskab_goals_shows(stack: StackRun) -> None:
    goals = stack.cli("goals", "--json").ok().json()
    with chromium() as browser:
        browser.get(f"{stack.website}/maal")
        accessible(browser)
        figures = browser.find_element(By.CSS_SELECTOR, ".figures").text
        assert f"{goals['active']} af {goals['target']}" in figures
        # Ambassadors, citizens' share, initiatives: a chart each, and a table with the
        # same numbers.
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg[role=img]")) == 3
        ambassadors, initiatives = browser.find_elements(By.TAG_NAME, "table")
        rows = ambassadors.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == len(goals["months"])
        last = rows[-1].find_elements(By.TAG_NAME, "td")
        assert int(last[0].text) == goals["months"][-1]["active"]
        started = goals["initiatives"]
        assert (
            f"{started['started']} af {started['target']}"
            in browser.find_element(By.TAG_NAME, "main").text
        )
        months = initiatives.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(months) == len(started["months"])
        screenshot(browser, "web-goals")


def test_a_mail_scanner_opening_every_link_in_the_mails_changes_nothing(
    stack: StackRun,
) -> None:
    """Security scanners fetch every link of a mail (GET and HEAD, following redirects)
    before the person reads it: nobody may be confirmed, subscribed, unsubscribed or
    answered for by that."""
    person, reader = "scanner.amb@example.org", "scanner.reader@example.net"
    stack.cli("ambassadors", "sign-up", "--kind", "citizen", "--name", "Sine Scanner",
              "--email", person, "--consent").ok()  # fmt: skip
    stack.cli("newsletter", "subscribe", reader).ok()
    invitee = staff_sign_up(stack, "Ivan Inviteret", "ivan.inviteret@example.org")
    meeting = schedule_in_days(
        stack, 12, "workshop", "Værksted om frivillighed", "--invite", invitee
    )
    confirmed = stack.cli("newsletter", "subscribers", "--status", "confirmed", "--json")
    subscriber = confirmed.ok().json()["items"][0]
    rsvp = newest_link(stack, "ivan.inviteret@example.org", "/rsvp/", "Ivan's invitation")
    links = [
        newest_link(stack, person, "/confirm/", "the confirmation mail"),
        newest_link(stack, reader, "/newsletter/confirm/", "the subscription mail"),
        unsubscribe_link(stack, subscriber["email"]),
        *(rsvp.rsplit("/", 1)[0] + f"/{answer}" for answer in ("yes", "maybe", "no")),
        rsvp.rsplit("/", 1)[0],
    ]
    with httpx.Client(follow_redirects=True, timeout=10) as scanner:
        for link in links:
            for method in ("GET", "HEAD"):
                opened = scanner.request(method, link)
                assert opened.status_code == 200, (method, link, opened.status_code)

    assert status_of(stack, person)["status"] == "pending"
    assert subscriber_by_email(stack, reader)["status"] == "pending"
    assert subscriber_by_email(stack, subscriber["email"])["status"] == "confirmed"
    detail = stack.cli("events", "show", meeting["id"], "--json").ok().json()
    assert [i["participation"] for i in detail["invitees"]] == ["invited"]


# Where a visitor reaches each page (a made-up token or code where one goes: the page for
# a link that does not work is a page too). The real pages behind tokens and codes are
# checked in the journeys above.
WELL_FORMED_TOKEN = "tok_" + "a" * 40
EVERY_PAGE = {
    "/": "/",
    "/bliv-ambassadoer": "/bliv-ambassadoer",
    "/confirm/{token}": f"/confirm/{WELL_FORMED_TOKEN}",
    "/newsletter/confirm/{token}": f"/newsletter/confirm/{WELL_FORMED_TOKEN}",
    "/newsletter/unsubscribe/{token}": f"/newsletter/unsubscribe/{WELL_FORMED_TOKEN}",
    "/rsvp/{token}": f"/rsvp/{WELL_FORMED_TOKEN}",
    "/rsvp/{token}/{answer}": f"/rsvp/{WELL_FORMED_TOKEN}/yes",
    "/netvaerk/svar/{token}": f"/netvaerk/svar/{WELL_FORMED_TOKEN}",
    "/netvaerk/svar/{token}/{answer}": f"/netvaerk/svar/{WELL_FORMED_TOKEN}/ja",
    "/verify": "/verify",
    "/verify/{code}": "/verify/ABCD-EFGH",
    "/nyhedsbrev": "/nyhedsbrev",
    "/nyhedsbrev/{number}": "/nyhedsbrev/999",
    "/ambassadoerer": "/ambassadoerer?tema=5&kerneomraade=health",
    "/kalender": "/kalender",
    "/kalender/{meeting_id}": "/kalender/findes-ikke",
    "/maal": "/maal",
    "/netvaerk": "/netvaerk",
    "/akut/{token}": f"/akut/{WELL_FORMED_TOKEN}",
    "/akut/{token}/{answer}": f"/akut/{WELL_FORMED_TOKEN}/ja",
    "/historier": "/historier",
    "/historier/egne/{token}": f"/historier/egne/{WELL_FORMED_TOKEN}",
    "/historier/egne/{token}/{story_id}": f"/historier/egne/{WELL_FORMED_TOKEN}/st-1",
}
# Not pages a person reads: the health check, pictures and feeds.
NOT_PAGES = {
    "/healthz",
    "/nyhedsbrev/images/{name}",
    "/nyhedsbrev.atom",
    "/kalender.ics",
    "/historier/billeder/{name}",
    "/historier/egne/{token}/billeder/{name}",
}


def test_every_page_of_the_site_passes_axe(stack: StackRun) -> None:
    assert set(EVERY_PAGE) | NOT_PAGES == set(page_paths()), "a page this test does not visit"
    with chromium() as browser:
        for path in [*EVERY_PAGE.values(), "/findes-ikke"]:
            browser.get(stack.website + path)
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "da"
            assert browser.find_elements(By.TAG_NAME, "h1"), path
            accessible(browser)
        screenshot(browser, "web-page-not-found")
