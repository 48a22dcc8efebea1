"""The website, end to end: the stack as ``make up`` runs it (the website included), a
real headless Chromium, the mails in the SMTP sink.

A person signs up (the self sign-up), opens the link in the confirmation mail: the page
shows one button and confirms nothing yet (a mail scanner opening the link changes
nothing); pressing the button makes them an active ambassador, and the certificate check
page says their certificate is genuine and valid. Every page passes axe-core's serious and
critical rules. Each step leaves a screenshot of its last page in ``test-artifacts/``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.conftest import PUBLIC_URL, StackRun
from tests.e2e.mailbox import Mailbox
from tests.e2e.steps import ambassador_by_email, poll
from tests.support.browser import axe_violations, chromium, screenshot

pytestmark = pytest.mark.e2e

NAME = "Birte Webløkke"
EMAIL = "birte.weblokke@example.org"


def status_of(stack: StackRun, email: str) -> dict[str, Any]:
    return ambassador_by_email(stack, email)


def accessible(driver: WebDriver) -> None:
    violations = axe_violations(driver)
    assert not violations, f"{driver.current_url}:\n  " + "\n  ".join(violations)


def test_a_sign_up_is_confirmed_on_the_website_and_its_certificate_checks_out(
    stack: StackRun,
) -> None:
    stack.cli(
        "ambassadors",
        "sign-up",
        "--kind",
        "citizen",
        "--name",
        NAME,
        "--email",
        EMAIL,
        "--consent",
    ).ok()
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

        button.click()
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
