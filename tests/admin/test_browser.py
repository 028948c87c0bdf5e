"""The settings page in a real headless Chromium (Debian's chromium and chromium-driver, which
.ci/run installs), driven by selenium: sign-in through the test IdP's auto-posting form, a
settings link, the one-time token, the IdP metadata URL, the members table, Test sign-in.

No skip: a Chromium that cannot start fails this test, so a missing install never passes as green.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from ..saml.conftest import Site
from ..saml.idp import TestIdP

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1280,1800",
)
WAIT = 15  # seconds; each step is a local round trip or two

pytestmark = pytest.mark.browser  # opt-in: see tests/conftest.py


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """Debian's Chromium through Debian's chromedriver, with a fresh profile."""
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    # Checked first: given a missing path, selenium would try to download a driver instead.
    missing = [path for path in (browser, driver_path) if not Path(path).is_file()]
    if missing:
        pytest.fail(
            f"headless Chromium cannot start: {', '.join(missing)} missing; install "
            "Debian's chromium and chromium-driver (.ci/run does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Downloads (the audit log) land in the profile's folder, without asking.
    downloads = profile / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    try:
        driver = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=driver_path)
        )
    except Exception as error:  # noqa: BLE001 - whatever it is, it is a failure, never a skip
        pytest.fail(f"headless Chromium ({browser}, {driver_path}) could not be started: {error}")
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, condition: object) -> object:
    return WebDriverWait(driver, WAIT).until(condition)


def text_of(driver: WebDriver, css: str) -> str:
    return str(wait_for(driver, ready.visibility_of_element_located((By.CSS_SELECTOR, css))).text)


def scim_status(site: Site, token: str) -> int:
    return requests.get(
        f"{site.url}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}
    ).status_code


UNLABELLED_FIELDS = """
return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
  .filter(el => el.labels.length === 0 && !el.getAttribute('aria-labelledby'))
  .map(el => el.id || el.name);
"""
NAMELESS_BUTTONS = """
return Array.from(document.querySelectorAll('button, a'))
  .filter(el => !el.hidden && !(el.textContent.trim() || el.getAttribute('aria-labelledby')))
  .map(el => el.outerHTML);
"""


def test_owner_settings_in_a_real_browser(site: Site, idp: TestIdP, acme: str, tmp_path: Path):
    site.workspaces.set_domains("acme", ["acme.test"])
    started = time.monotonic()
    with chromium(tmp_path / "profile") as driver:
        # 1. A member signs in SP-initiated from the "Sign in with SSO" page; the IdP's page
        #    posts the response back by itself.
        idp.next_user = "alice@acme.test"
        driver.get(f"{site.url}/saml/login?next=/welcome")
        driver.find_element(By.ID, "email").send_keys("alice@acme.test", Keys.ENTER)
        wait_for(driver, ready.url_to_be(f"{site.url}/welcome"))
        assert "user=alice@acme.test" in driver.find_element(By.TAG_NAME, "body").text

        # 2. The owner's settings link shows one button (a previewer's GET uses nothing up);
        #    pressing it opens the page, and the token leaves the address bar.
        driver.get(site.middleware.settings_link("acme"))
        driver.find_element(By.XPATH, "//button[.='Open the settings page']").click()
        assert "Single sign-on settings: Acme" in text_of(driver, "header h1")
        assert driver.current_url == f"{site.url}/saml/acme/settings"
        assert driver.execute_script(UNLABELLED_FIELDS) == []
        assert driver.execute_script(NAMELESS_BUTTONS) == []
        # Nothing loads from anywhere: no stylesheet, script, font or image requests at all.
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        # Keyboard users start at the skip link, then reach the page's own controls in order.
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert driver.switch_to.active_element.text == "Skip to content"

        # 3. Regenerate: asked first (the old token still works), then the new token is shown
        # once, with a working copy button.
        driver.find_element(By.XPATH, "//button[contains(., 'Regenerate SCIM API Token')]").click()
        confirm_button = wait_for(driver, ready.element_to_be_clickable((By.ID, "confirm")))
        assert "until you paste the new token" in text_of(driver, "main")
        assert scim_status(site, acme) == 200
        confirm_button.click()
        field = wait_for(driver, ready.visibility_of_element_located((By.ID, "scim-token")))
        new_token = field.get_attribute("value")
        assert new_token and new_token.startswith("wwsso_")
        copy = driver.find_element(By.CSS_SELECTOR, 'button[data-copy="scim-token"]')
        assert copy.is_displayed()  # the script revealed it: the CSP nonce let it run
        copy.click()
        WebDriverWait(driver, WAIT).until(
            lambda d: d.find_element(By.ID, "copy-status").get_attribute("textContent")
        )
        status = driver.find_element(By.ID, "copy-status").get_attribute("textContent")
        assert status == "Copied SCIM API Token."
        assert scim_status(site, new_token) == 200 and scim_status(site, acme) == 401
        driver.get(f"{site.url}/saml/acme/settings")
        text_of(driver, "header h1")
        assert new_token not in driver.page_source

        # 4. The IdP metadata URL is fetched and checked; the page describes the IdP.
        metadata_url = f"{idp.url}/idp/metadata"
        driver.find_element(By.ID, "metadata-url").send_keys(metadata_url)
        driver.find_element(By.XPATH, "//button[.='Save and check']").click()
        assert "Saved" in text_of(driver, ".notice.ok")
        described = text_of(driver, "#idp dl")
        stored = site.workspaces.idp("acme")
        assert stored is not None and stored.metadata_url == metadata_url
        assert idp.entity_id in described
        assert stored.certificates[0].sha256_fingerprint in described

        # 5. The members table shows the member who signed in, and how they arrived.
        row = driver.find_element(By.XPATH, "//section[@id='members']//tr[td[.='alice@acme.test']]")
        assert "Active" in row.text and "First SSO login" in row.text and "UTC" in row.text

        # 6. Test sign-in: SP-initiated from the settings page, back with the result, as
        # another person than the one whose access opened the page, which it keeps.
        idp.next_user = "dave@acme.test"
        driver.find_element(By.ID, "test-sign-in").click()
        wait_for(driver, ready.url_contains("tested="))
        assert "sign-in worked" in text_of(driver, "#test-result")
        assert "dave@acme.test" in text_of(driver, "#test-result")
        assert driver.find_element(By.ID, "test-sign-in")  # still on the settings page
        driver.save_screenshot(str(tmp_path / "settings.png"))

        # 7. The audit log downloads as CSV, with the owner's session only, and holds the
        # sign-in of step 1.
        driver.find_element(By.XPATH, "//p[@id='audit-log']/a[.='CSV']").click()
        downloads = tmp_path / "profile" / "downloads"
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            done = [p for p in downloads.iterdir() if p.suffix == ".csv"]
            if done:
                break
            time.sleep(0.1)
        assert done, sorted(p.name for p in downloads.iterdir())
        exported = done[0].read_text(encoding="utf-8")
        assert exported.startswith('"id","occurred_at","workspace"')
        assert "alice@acme.test" in exported

        # The page's inline style and script ran under the CSP: no violations were reported.
        problems = [
            entry["message"]
            for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
        ]
        assert problems == []
    print(f"browser test took {time.monotonic() - started:.1f} s")
