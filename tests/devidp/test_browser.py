"""The README's walk-through in a real headless Chromium: the time tracker behind the middleware,
the dev IdP beside it (as ``webwork-sso serve`` runs them), and a person who clicks "Sign in with
SSO", types an @example.com address, picks a user at the dev IdP, lets its page auto-post back,
logs time, and signs out.

No skip: a Chromium that cannot start fails this test (Debian's chromium and chromium-driver).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import Site

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WAIT = 15  # seconds; every step is a local round trip or two

pytestmark = pytest.mark.browser  # opt-in: see tests/conftest.py


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    try:
        driver = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=driver_path)
        )
    except Exception as error:  # noqa: BLE001 - a browser that cannot start is a failure
        pytest.fail(f"headless Chromium could not be started: {error}")
    try:
        yield driver
    finally:
        driver.quit()


def test_the_readme_walk_through_in_a_browser(site: Site, tmp_path: Path) -> None:
    with chromium(tmp_path / "profile") as browser:
        wait = WebDriverWait(browser, WAIT)
        browser.get(f"{site.url}/")
        browser.find_element(By.LINK_TEXT, "Sign in with SSO").click()

        wait.until(ready.presence_of_element_located((By.NAME, "email"))).send_keys(
            "alice.smith@example.com"
        )
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        # The dev IdP's page, then its script posts the response back to the ACS by itself.
        pick = wait.until(
            ready.element_to_be_clickable(
                (By.CSS_SELECTOR, "button[name=user][value='alice.smith@example.com']")
            )
        )
        assert "Development IdP — not for production" in browser.page_source
        assert browser.current_url.startswith(site.idp.sso_url)
        pick.click()
        wait.until(ready.url_to_be(f"{site.url}/"))
        assert "Signed in as" in browser.page_source and "Alice Smith" in browser.page_source

        browser.find_element(By.NAME, "description").send_keys("Read the README")
        browser.find_element(By.NAME, "minutes").send_keys("15")
        browser.find_element(By.CSS_SELECTOR, "form.add button").click()
        wait.until(ready.text_to_be_present_in_element((By.TAG_NAME, "body"), "Read the README"))
        assert "This week: 0:15" in browser.find_element(By.TAG_NAME, "body").text

        browser.find_element(By.CSS_SELECTOR, "form.who button").click()  # asks to confirm
        wait.until(ready.presence_of_element_located((By.NAME, "csrf_token")))
        browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        wait.until(ready.presence_of_element_located((By.LINK_TEXT, "Sign in with SSO")))
        assert "Alice Smith" not in browser.page_source
