"""The example time tracker's pages in a real headless Chromium (Debian's chromium and
chromium-driver), as ``webwork-sso serve`` runs it: the owner signs in through the dev IdP and
finds the navigation bar, the settings link, Team and Activity; an admin gets no settings link;
a plain member gets the tracker's own 403; signing out ends on a "signed out" notice.

No skip: a Chromium that cannot start fails this test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from webwork_sso_middleware.devserver import DEMO_ADMIN_GROUP, DEMO_OWNER

from ..devidp.test_browser import chromium
from .conftest import TrackerSite

ALICE = "alice.smith@example.com"
BOB = "bob.jones@example.com"
WAIT = 15  # seconds; every step is a local round trip or two

pytestmark = pytest.mark.browser  # opt-in: see tests/conftest.py

# Nothing on the page may come from elsewhere, and the CSP must have let the style apply.
STYLED = "return getComputedStyle(document.querySelector('header.top')).backgroundColor"


def sign_in_as(browser: WebDriver, site: TrackerSite, user: str) -> None:
    wait = WebDriverWait(browser, WAIT)
    browser.get(f"{site.url}/")
    browser.find_element(By.LINK_TEXT, "Sign in with SSO").click()
    wait.until(ready.presence_of_element_located((By.NAME, "email"))).send_keys(user)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(
        ready.element_to_be_clickable((By.CSS_SELECTOR, f"button[name=user][value='{user}']"))
    ).click()
    wait.until(ready.url_to_be(f"{site.url}/"))
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "form.who")))


def sign_out(browser: WebDriver) -> None:
    wait = WebDriverWait(browser, WAIT)
    browser.find_element(By.CSS_SELECTOR, "form.who button").click()  # asks to confirm
    wait.until(ready.presence_of_element_located((By.NAME, "csrf_token")))
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".notice.ok")))


def nav_links(browser: WebDriver) -> list[str]:
    return [link.text for link in browser.find_elements(By.CSS_SELECTOR, "header.top li a")]


def with_people(site: TrackerSite) -> None:
    alice = site.demo.create_user(ALICE)
    site.demo.create_group(DEMO_ADMIN_GROUP, [alice])
    site.demo.create_user("carol@example.com")


def test_the_owner_in_a_browser(tracker_site: TrackerSite, tmp_path: Path) -> None:
    site = tracker_site
    with_people(site)

    with chromium(tmp_path / "profile") as browser:
        # The owner: nav with Team, Activity and the settings link.
        sign_in_as(browser, site, DEMO_OWNER)
        assert nav_links(browser) == ["Time", "Team", "Activity", "SSO settings"]
        assert browser.execute_script(STYLED) == "rgb(29, 35, 48)"
        assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0

        browser.find_element(By.LINK_TEXT, "Team").click()
        assert browser.find_element(By.ID, "seat-count").text == "3"  # owner, alice, carol
        assert "carol@example.com" in browser.find_element(By.TAG_NAME, "table").text

        browser.find_element(By.LINK_TEXT, "Activity").click()
        first = browser.find_element(By.CSS_SELECTOR, "tbody tr").text
        assert "Signed in" in first and DEMO_OWNER in first  # newest first

        browser.find_element(By.LINK_TEXT, "SSO settings").click()
        heading = WebDriverWait(browser, WAIT).until(
            ready.visibility_of_element_located((By.CSS_SELECTOR, "header h1"))
        )
        assert "Single sign-on settings" in heading.text
        browser.get(f"{site.url}/")
        sign_out(browser)
        assert "You are signed out." in browser.find_element(By.CSS_SELECTOR, ".notice.ok").text


def test_an_admin_and_a_member_in_a_browser(tracker_site: TrackerSite, tmp_path: Path) -> None:
    site = tracker_site
    with_people(site)

    with chromium(tmp_path / "profile") as browser:
        # An admin who is not the owner: Team and Activity, no settings link.
        sign_in_as(browser, site, ALICE)
        assert nav_links(browser) == ["Time", "Team", "Activity"]
        assert browser.execute_script(STYLED) == "rgb(29, 35, 48)"
        browser.find_element(By.LINK_TEXT, "Team").click()
        assert browser.find_element(By.ID, "seat-count").text == "2"  # alice, carol
        browser.find_element(By.LINK_TEXT, "Activity").click()
        first = browser.find_element(By.CSS_SELECTOR, "tbody tr").text
        assert "Signed in" in first and ALICE in first  # newest first
        sign_out(browser)
        assert "You are signed out." in browser.find_element(By.CSS_SELECTOR, ".notice.ok").text

        # A plain member: no admin links; the admin pages answer with the tracker's own 403.
        sign_in_as(browser, site, BOB)
        assert nav_links(browser) == ["Time"]
        browser.get(f"{site.url}/team")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Forbidden"
        assert "admins" in browser.find_element(By.CSS_SELECTOR, "section.error").text
        assert browser.execute_script(STYLED) == "rgb(29, 35, 48)"
        browser.save_screenshot(str(tmp_path / "forbidden.png"))
        browser.find_element(By.LINK_TEXT, "Back to your time").click()
        WebDriverWait(browser, WAIT).until(ready.url_to_be(f"{site.url}/"))

        browser.get(f"{site.url}/no/such/page")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Not Found"
        assert nav_links(browser) == ["Time"]
