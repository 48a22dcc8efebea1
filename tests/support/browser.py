"""A real headless Chromium for the website's tests: Debian's ``chromium`` driven through
its ``chromium-driver`` by Selenium (both installed by the Makefile's apt step; nothing is
downloaded), and axe-core's accessibility rules run in the page."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.stack import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Screenshots of each journey's last page (a CI artifact).
ARTIFACTS = Path(os.environ.get("SAMSKAB_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
# Installed by `make install` from npm (the version is the Makefile's AXE_VERSION).
AXE_DIRS = sorted((REPO_ROOT / ".venv" / "share").glob("axe-core-*/axe.min.js"))


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[WebDriver]:
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "Debian's chromium and chromium-driver are missing: run `make apt`"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="samskab-chromium-")
    # Without the background-networking flags Chromium keeps trying to reach Google's hosts.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--lang=da",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    driver.save_screenshot(str(path))
    return path


def axe_violations(
    driver: WebDriver, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[str]:
    """axe-core's violations of the given impact on the page shown now, one line each."""
    assert AXE_DIRS, "axe-core is missing: run `make install`"
    # The page's CSP allows no script of its own; WebDriver's injected script is not a page
    # script and runs regardless.
    driver.execute_script(AXE_DIRS[-1].read_text(encoding="utf-8"))
    result: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r)).catch(e => done({error: String(e)}));"
    )
    assert "error" not in result, result
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {json.dumps([n['target'] for n in v['nodes']])}"
        for v in result["violations"]
        if v.get("impact") in impacts
    ]


def accessible(driver: WebDriver) -> None:
    """The page shown now has no serious or critical axe-core violation."""
    violations = axe_violations(driver)
    assert not violations, f"{driver.current_url}:\n  " + "\n  ".join(violations)


def press(driver: WebDriver, button: WebElement, timeout: float = 15.0) -> None:
    """Click a button that submits a form, and wait until the next page replaced this
    one (the old page's elements are gone), so what is looked at next is the answer."""
    button.click()
    WebDriverWait(driver, timeout).until(lambda _: _is_gone(button))
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


# While the old document is being replaced, chromedriver sometimes answers a look at one of
# its elements with an "unknown error" naming the node instead of a stale-element error
# (seen in CI); both mean the element's page is gone.
_GONE_NODE_ERRORS = ("does not belong to the document", "No node with given id found")


def _is_gone(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if any(text in (error.msg or "") for text in _GONE_NODE_ERRORS):
            return True
        raise
    return False
