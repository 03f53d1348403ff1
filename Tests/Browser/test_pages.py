#!/usr/bin/env python3
"""Tessera's web pages in a real headless Chromium (Debian's chromium and chromium-driver), against the real binary.

Run by `swift test` (Tests/TesseraServerTests/BrowserTests.swift) once scripts/prepare-browser-tests made .build-venv;
by hand:
    TESSERA_BINARY=.build/debug/tessera .build-venv/bin/python Tests/Browser/test_pages.py -v
TESSERA_SCREENSHOTS=docs/screenshots also saves the login, account and admin pages there as PNG, at 1280 px and at
phone width (390 px), for the README.
Nothing is downloaded: the driver is Debian's, by path, and Chromium resolves no host but 127.0.0.1 and localhost.
"""
import base64
import http.server
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BINARY = os.environ.get("TESSERA_BINARY", ".build/debug/tessera")
SCREENSHOTS = os.environ.get("TESSERA_SCREENSHOTS")
SECRET = "browser-tests-secret-0123456789-abcdefghij"
PASSWORD = "correct horse"
ADMIN = "admin@example.org"
PHONE = dict(width=390, height=844)
# How much of the page a screenshot keeps, from the top (the README shows them side by side).
SCREENSHOT_HEIGHT = 1400


def gone(element):
    """A wait condition: `element` has left the page. Selenium's `staleness_of` knows only "stale element"; after a
    navigation chromedriver may answer "Node with given id does not belong to the document" instead, which means
    the same."""
    def predicate(_):
        try:
            element.is_enabled()
            return False
        except WebDriverException:
            return True
    return predicate


class Server:
    """`tessera serve` on a fresh SQLite file and a free loopback port; restartable on the same port."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="tessera-browser-")
        self.env = dict(
            os.environ,
            DATABASE_URL=os.path.join(self.directory, "tessera.sqlite"),
            JWT_SECRET=SECRET,
            BCRYPT_COST="4",
            LOG_LEVEL="info",
        )
        self.process = None
        self.port = 0
        self.starts = 0
        self.start()

    def start(self, port=0):
        self.starts += 1
        log_path = os.path.join(self.directory, f"server-{self.starts}.log")
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [BINARY, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=self.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                match = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
            if match and int(match.group(1)) > 0:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None:
                raise RuntimeError("tessera serve exited: " + open(log_path).read())
            time.sleep(0.05)
        raise RuntimeError("tessera serve did not start within 30 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.log.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self):
        return self.env["DATABASE_URL"]

    def cli(self, *arguments, stdin=None):
        return subprocess.run([BINARY, *arguments], env=self.env, input=stdin, capture_output=True, text=True, check=True)

    def api(self, method, path, body=None, token=None):
        """(status, parsed JSON or None) of one API call."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            text = error.read()
            return error.code, json.loads(text) if text else None
        except urllib.error.URLError:
            self.check_running()
            raise

    def check_running(self):
        """Raises with the exit status and the end of the log when the server has exited unasked."""
        if self.process and self.process.poll() is not None and not self.log.closed:
            self.log.flush()
            with open(self.log.name, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"tessera serve exited with status {self.process.returncode}:\n{tail}")

    def register(self, email):
        status, _ = self.api("POST", "/api/auth/register", {"email": email, "password": PASSWORD})
        assert status == 201, status
        return email

    def api_access_token(self, email):
        status, pair = self.api("POST", "/api/auth/login", {"email": email, "password": PASSWORD, "deviceName": "script"})
        assert status == 200, status
        return pair["accessToken"]


def new_browser(width=1280, height=900, overlay_scrollbars=False):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        *(["--hide-scrollbars"] if overlay_scrollbars else []),
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


class PageTestCase(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.server.cli("users", "add", ADMIN, "--admin", "--password-stdin", stdin=PASSWORD + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def setUp(self):
        self.browsers = []

    def tearDown(self):
        for browser in self.browsers:
            browser.quit()
        self.server.check_running()

    def browser(self, width=1280, height=900):
        phone = width < 500
        # A phone's scrollbars take no room, as on a real one.
        browser = new_browser(width=max(width, 500), height=height, overlay_scrollbars=phone)
        self.browsers.append(browser)
        if phone:
            # Chromium's window is at least 500 px wide: narrower, the page gets a phone-sized viewport instead.
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            )
        return browser

    def wait(self, browser, seconds=10):
        return WebDriverWait(browser, seconds)

    def wait_for_path(self, browser, path):
        self.wait(browser).until(lambda b: b.current_url.split("?")[0] == self.server.base + path)

    def sign_in(self, browser, email, device=None):
        browser.get(self.server.base + "/login")
        browser.find_element(By.ID, "email").send_keys(email)
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        if device:
            browser.find_element(By.ID, "deviceName").send_keys(device)
        browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        self.wait_for_path(browser, "/account")
        return browser

    def confirm(self, browser, button, answer="Yes", warning=None):
        """Clicks a button that asks first, checks the inline question (and its warning, or that it has none), and answers it."""
        form = button.find_element(By.XPATH, "./ancestor::form")
        button.click()
        question = self.wait(browser).until(lambda b: form.find_element(By.CSS_SELECTOR, ".confirm-question"))
        self.assertEqual(question.text, "Are you sure?")
        self.assertFalse(button.is_displayed(), "the button makes way for the question")
        warnings = [w.text for w in form.find_elements(By.CSS_SELECTOR, ".confirm .confirm-warning") if w.is_displayed()]
        self.assertEqual(warnings, [warning] if warning else [])
        form.find_element(By.CSS_SELECTOR, ".confirm-yes" if answer == "Yes" else ".confirm-cancel").click()

    def notice(self, browser):
        """The notice's text, read within the wait: a page replaced meanwhile is read again, not a stale element."""

        def text(b):
            shown = [e for e in b.find_elements(By.ID, "notice") if e.is_displayed()]
            return shown[0].text if shown else False

        return WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException]).until(text)

    def screenshot(self, browser, name, top=0, height=SCREENSHOT_HEIGHT):
        """The page from `top` down, as tall as `height` allows (more than the window shows), when TESSERA_SCREENSHOTS is set."""
        if not SCREENSHOTS:
            return
        os.makedirs(SCREENSHOTS, exist_ok=True)
        content = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": top, "width": content["width"], "height": min(height, content["height"] - top), "scale": 1}
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        with open(os.path.join(SCREENSHOTS, name + ".png"), "wb") as f:
            f.write(base64.b64decode(shot["data"]))

    def assert_no_sideways_scrolling(self, browser):
        """Neither the page nor a table in it scrolls sideways."""
        page = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        self.assertLessEqual(page[0], page[1], "the page scrolls sideways")
        tables = browser.execute_script(
            "return [...document.querySelectorAll('.table-wrap')].filter(w => w.scrollWidth > w.clientWidth).map(w => w.firstElementChild.id)"
        )
        self.assertEqual(tables, [], "these tables scroll sideways")

    def header_height(self, browser):
        return browser.execute_script("return document.querySelector('.site-header').getBoundingClientRect().height")

    def user_row(self, browser, email):
        return browser.find_element(By.CSS_SELECTOR, f"#users tr[data-email='{email}']")

    def open_row_menu(self, browser, row):
        """Opens an account row's "Manage" menu (a <details>) and returns it."""
        menu = row.find_element(By.CSS_SELECTOR, "details.row-menu")
        if menu.get_attribute("open") is None:
            menu.find_element(By.TAG_NAME, "summary").click()
        self.wait(browser).until(lambda b: menu.find_element(By.CSS_SELECTOR, ".row-menu-panel").is_displayed())
        return menu

    def assert_no_secret_in_page(self, browser):
        """No token in the HTML or the URL, and none readable by script (httpOnly)."""
        cookies = {c["name"]: c for c in browser.get_cookies()}
        for name in ("tessera_access", "tessera_refresh"):
            self.assertIn(name, cookies)
            self.assertTrue(cookies[name]["httpOnly"])
            self.assertEqual(cookies[name]["sameSite"], "Lax")
            self.assertNotIn(cookies[name]["value"], browser.page_source)
            self.assertNotIn(cookies[name]["value"], browser.current_url)
        self.assertEqual(browser.execute_script("return document.cookie"), "")

    def assert_every_input_labelled(self, browser):
        unlabelled = browser.execute_script(
            "return [...document.querySelectorAll('input:not([type=hidden]):not([hidden]), select')]"
            ".filter(e => e.labels.length === 0).map(e => e.outerHTML)"
        )
        self.assertEqual(unlabelled, [])


class SignOutTests(PageTestCase):
    def test_sign_out_of_all_devices_lands_on_login_and_refuses_an_api_access_token_from_before(self):
        email = self.server.register("ann@example.org")
        token = self.server.api_access_token(email)
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 200)

        browser = self.sign_in(self.browser(), email, device="Ann's laptop")
        self.assertEqual(browser.find_element(By.ID, "signed-in-email").text, email)
        sessions = browser.find_elements(By.CSS_SELECTOR, "#sessions li.session")
        self.assertEqual(len(sessions), 2, "the script's session and this browser's")
        current = browser.find_element(By.CSS_SELECTOR, "#sessions li.session.current")
        self.assertIn("Ann's laptop", current.text)
        self.assertIn("This device", current.text)
        self.assertIn("Headless Chrome on Linux", current.text)
        self.assert_no_secret_in_page(browser)
        self.assert_every_input_labelled(browser)
        self.screenshot(browser, "account")

        # Cancel keeps everything as it was.
        self.confirm(browser, browser.find_element(By.ID, "sign-out-all"), answer="Cancel")
        self.assertTrue(browser.find_element(By.ID, "sign-out-all").is_displayed())
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 200)

        self.confirm(browser, browser.find_element(By.ID, "sign-out-all"))
        self.wait_for_path(browser, "/login")
        self.assertEqual(self.notice(browser), "You signed out of all devices.")
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 401)
        self.assertNotIn("tessera_access", {c["name"] for c in browser.get_cookies()})
        self.screenshot(browser, "login")

        # And the account page is closed to this browser now.
        browser.get(self.server.base + "/account")
        self.wait_for_path(browser, "/login")

    def test_one_browser_signs_another_out_and_its_next_click_lands_on_login(self):
        email = self.server.register("bob@example.org")
        phone = self.sign_in(self.browser(), email, device="Bob's phone")
        laptop = self.sign_in(self.browser(), email, device="Bob's laptop")
        laptop.refresh()
        rows = laptop.find_elements(By.CSS_SELECTOR, "#sessions li.session")
        phone_row = next(row for row in rows if "Bob's phone" in row.text)
        self.assertNotIn("current", phone_row.get_attribute("class"))
        phone_row.find_element(By.CSS_SELECTOR, "button.session-sign-out").click()
        self.assertEqual(self.notice(laptop), "That device was signed out.")
        remaining = laptop.find_elements(By.CSS_SELECTOR, "#sessions li.session")
        self.assertEqual([r.find_element(By.TAG_NAME, "strong").text for r in remaining], ["Bob's laptop"])

        # The phone still shows its page; its next click is refused and it lands on /login.
        phone.find_element(By.LINK_TEXT, "Account").click()
        self.wait_for_path(phone, "/login")
        self.assertEqual(self.notice(phone), "You were signed out. Sign in again to continue.")

        # A button (sent by script) on a page that was open when the session ended does the same.
        laptop_two = self.sign_in(self.browser(), email, device="Bob's tablet")
        laptop.get(self.server.base + "/account")  # not refresh(): that keeps the notice of the first sign-out
        tablet_row = next(r for r in laptop.find_elements(By.CSS_SELECTOR, "#sessions li.session") if "Bob's tablet" in r.text)
        tablet_row.find_element(By.CSS_SELECTOR, "button.session-sign-out").click()
        self.wait(laptop).until(gone(tablet_row))
        self.assertEqual(self.notice(laptop), "That device was signed out.")
        self.confirm(laptop_two, laptop_two.find_element(By.ID, "sign-out-all"))
        self.wait_for_path(laptop_two, "/login")
        self.assertEqual(self.notice(laptop_two), "You were signed out. Sign in again to continue.")

    def test_account_never_shows_a_signed_in_page_whose_session_the_database_has_ended(self):
        # For a moment after a revoke by the CLI (or another instance), the database is ahead of this server's
        # revocation index: the access cookie still verifies here, but its session is over. /account then signs the
        # browser out instead of showing a signed-in page without its own session.
        email = self.server.register("lena@example.org")
        browser = self.sign_in(self.browser(), email, device="Lena's laptop")
        session = browser.find_element(By.CSS_SELECTOR, "#sessions li.session.current").get_attribute("data-session-id")
        # That moment, held still: the session ends in the database alone, with no revocation row for the index to read.
        db = sqlite3.connect(self.server.database, timeout=10)
        try:
            with db:
                ended = db.execute(
                    "UPDATE sessions SET invalidated_at = ?, invalidated_reason = 'browser test' WHERE id = ? AND invalidated_at IS NULL",
                    (int(time.time() * 1000), session),
                ).rowcount
        finally:
            db.close()
        self.assertEqual(ended, 1)
        browser.get(self.server.base + "/account")
        self.wait_for_path(browser, "/login")
        self.assertEqual(self.notice(browser), "You were signed out. Sign in again to continue.")
        self.assertNotIn("tessera_access", {c["name"] for c in browser.get_cookies()})
        self.assertNotIn("tessera_refresh", {c["name"] for c in browser.get_cookies()})

        # The real thing, a revoke by the CLI beside the server, then a page load at once: whichever side of the
        # index's catching up it lands on, the page is consistent: signed out, or showing this browser's session.
        for _ in range(3):
            self.sign_in(browser, email)
            self.server.cli("revoke", "--user", email, "--reason", "browser test")
            browser.get(self.server.base + "/account")
            if browser.current_url.split("?")[0] == self.server.base + "/account":
                self.assertEqual(len(browser.find_elements(By.CSS_SELECTOR, "#sessions li.session.current")), 1)

                # The index catches up within a second: a later load signs the browser out.
                def reloaded_to_login(b):
                    b.get(self.server.base + "/account")
                    return b.current_url.split("?")[0] == self.server.base + "/login"

                self.wait(browser).until(reloaded_to_login)
            else:
                self.wait_for_path(browser, "/login")
                self.assertEqual(self.notice(browser), "You were signed out. Sign in again to continue.")

    def test_a_lost_access_cookie_is_refreshed_silently(self):
        email = self.server.register("cleo@example.org")
        browser = self.sign_in(self.browser(), email)
        before = browser.get_cookie("tessera_refresh")["value"]
        browser.delete_cookie("tessera_access")
        browser.get(self.server.base + "/account")
        self.assertEqual(browser.find_element(By.ID, "account-email").text, email)
        self.assertIsNotNone(browser.get_cookie("tessera_access"))
        self.assertNotEqual(browser.get_cookie("tessera_refresh")["value"], before, "the refresh token was rotated")
        self.assertEqual(len(browser.find_elements(By.CSS_SELECTOR, "#sessions li.session")), 1, "still one session")

    def test_password_change_keeps_this_browser_and_signs_out_the_others(self):
        email = self.server.register("dana@example.org")
        token = self.server.api_access_token(email)
        browser = self.sign_in(self.browser(), email)
        browser.find_element(By.ID, "currentPassword").send_keys("wrong password")
        browser.find_element(By.ID, "newPassword").send_keys("a new password")
        browser.find_element(By.ID, "confirmPassword").send_keys("a new password")
        browser.find_element(By.CSS_SELECTOR, "#password-form button[type=submit]").click()
        status = self.wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, "#password-form .form-status.error"))
        self.assertTrue(status.text)
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 200, "a refused change revokes nothing")
        current = browser.find_element(By.ID, "currentPassword")
        current.clear()
        current.send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "#password-form button[type=submit]").click()
        self.assertEqual(self.notice(browser), "Your password was changed; every other device was signed out.")
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 401)
        browser.refresh()
        self.assertEqual(browser.find_element(By.ID, "account-email").text, email)


class AdminTests(PageTestCase):
    def test_admin_deactivates_a_signed_in_user_who_is_then_signed_out(self):
        email = self.server.register("eve@example.org")
        user = self.sign_in(self.browser(), email)
        admin = self.sign_in(self.browser(), ADMIN)
        admin.find_element(By.LINK_TEXT, "Admin").click()
        self.wait_for_path(admin, "/admin")
        self.assert_every_input_labelled(admin)
        search = admin.find_element(By.ID, "q")
        search.send_keys("eve@")
        search.send_keys(Keys.ENTER)
        self.wait(admin).until(lambda b: "q=eve" in b.current_url)
        rows = admin.find_elements(By.CSS_SELECTOR, "#users tbody tr[data-email]")
        self.assertEqual([r.get_attribute("data-email") for r in rows], [email])
        menu = self.open_row_menu(admin, rows[0])
        self.confirm(admin, menu.find_element(By.CSS_SELECTOR, "button.deactivate"))
        self.assertEqual(self.notice(admin), "The account was deactivated and every session of it signed out.")
        row = admin.find_element(By.CSS_SELECTOR, f"#users tr[data-email='{email}']")
        self.assertIn("deactivated", row.text)

        user.find_element(By.LINK_TEXT, "Account").click()
        self.wait_for_path(user, "/login")
        self.assertEqual(self.notice(user), "You were signed out. Sign in again to continue.")
        user.find_element(By.ID, "email").send_keys(email)
        user.find_element(By.ID, "password").send_keys(PASSWORD)
        user.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        refusal = self.wait(user).until(lambda b: b.find_element(By.CSS_SELECTOR, "#login-form .form-status.error"))
        self.assertTrue(refusal.text)
        self.assertEqual(user.current_url.split("?")[0], self.server.base + "/login")

        # The audit log shows it, filtered by event and user.
        Select = webdriver.support.select.Select
        admin.get(self.server.base + "/admin")
        admin.find_element(By.ID, "auditUser").send_keys(email)
        Select(admin.find_element(By.ID, "event")).select_by_value("ACCOUNT_DEACTIVATED")
        admin.find_element(By.CSS_SELECTOR, "#audit-filters button[type=submit]").click()
        self.wait(admin).until(lambda b: "event=ACCOUNT_DEACTIVATED" in b.current_url)
        events = [e.text for e in admin.find_elements(By.CSS_SELECTOR, "#audit tbody td.event")]
        self.assertEqual(events, ["ACCOUNT_DEACTIVATED"])
        self.assertIn(ADMIN, admin.find_element(By.CSS_SELECTOR, "#audit tbody tr").text)

        # Activate: sign-in works again.
        admin.get(self.server.base + "/admin?q=eve")
        self.open_row_menu(admin, self.user_row(admin, email)).find_element(By.CSS_SELECTOR, "button.activate").click()
        self.assertEqual(self.notice(admin), "The account was activated. Its old sessions stay signed out.")
        self.sign_in(user, email)

    def test_revoke_all_asks_first_and_cancel_changes_nothing(self):
        admin = self.sign_in(self.browser(), ADMIN)
        admin.get(self.server.base + "/admin")
        self.confirm(admin, admin.find_element(By.ID, "revoke-all"), answer="Cancel")
        admin.refresh()
        self.assertEqual(admin.current_url.split("?")[0], self.server.base + "/admin")

    def test_revoke_all_signs_out_everyone_including_the_admin_and_can_be_undone(self):
        email = self.server.register("kim@example.org")
        token = self.server.api_access_token(email)
        user = self.sign_in(self.browser(), email)
        admin = self.sign_in(self.browser(), ADMIN)
        admin.get(self.server.base + "/admin")
        admin.find_element(By.ID, "revoke-all-reason").send_keys("browser test")
        self.confirm(admin, admin.find_element(By.ID, "revoke-all"))
        self.wait_for_path(admin, "/login")
        self.assertEqual(self.notice(admin), "Every session of every user was signed out, yours included.")
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 401)
        user.find_element(By.LINK_TEXT, "Account").click()
        self.wait_for_path(user, "/login")
        self.assertEqual(self.notice(user), "You were signed out. Sign in again to continue.")

        # Signing in right after works; undoing the revoke-all brings the old API access token back.
        self.sign_in(admin, ADMIN)
        admin.get(self.server.base + "/admin")
        self.confirm(admin, admin.find_element(By.ID, "unrevoke-all"))
        self.assertEqual(self.notice(admin), "The latest revoke-all was undone.")
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 200)

    def test_the_console_lists_the_signing_keys_and_the_clients_never_a_secret(self):
        created = json.loads(self.server.cli("clients", "add", "billing service", "--introspect", "--json").stdout)
        for size in (dict(width=1280, height=900), PHONE):
            admin = self.sign_in(self.browser(**size), ADMIN)
            admin.get(self.server.base + "/admin")
            keys = admin.find_elements(By.CSS_SELECTOR, "#keys tbody tr")
            self.assertEqual([k.get_attribute("data-kid").startswith("hs_") for k in keys], [True])
            self.assertIn("current", keys[0].text)
            client = admin.find_element(By.CSS_SELECTOR, f"#clients tr[data-client-id='{created['clientId']}']")
            self.assertIn("billing service", client.text)
            self.assertIn("introspect", client.text)
            self.assertNotIn(created["clientSecret"], admin.page_source)
            self.assert_no_sideways_scrolling(admin)

    def test_the_console_explains_why_a_signed_out_token_is_refused_without_showing_it(self):
        email = self.server.register("explained@example.org")
        token = self.server.api_access_token(email)
        status, _ = self.server.api("POST", "/api/auth/logout", token=token)
        self.assertEqual(status, 204)
        for size in (dict(width=1280, height=900), PHONE):
            admin = self.sign_in(self.browser(**size), ADMIN)
            admin.get(self.server.base + "/admin")
            box = admin.find_element(By.ID, "explain-token")
            self.assert_every_input_labelled(admin)
            box.send_keys(token)
            admin.find_element(By.ID, "explain-submit").click()
            verdict = self.wait(admin).until(lambda b: b.find_element(By.ID, "explain-verdict"))
            self.assertEqual(verdict.text, "Refused")
            self.assertEqual(admin.find_element(By.ID, "explain-reason").text, "revoked")
            self.assertIn("signed out", admin.find_element(By.ID, "explain-detail").text)
            cut = admin.find_element(By.CSS_SELECTOR, "tr.explain-cut")
            self.assertIn("session", cut.text)
            self.assertIn(email, cut.text)
            self.assertIn("AUTH_LOGOUT", cut.text)
            # Neither the page nor its address carries the token.
            self.assertNotIn(token, admin.page_source)
            self.assertNotIn(token, admin.current_url)
            self.assert_no_sideways_scrolling(admin)

    def test_the_audit_log_reads_at_1280_px_and_at_phone_width(self):
        email = self.server.register("lou@example.org")
        self.server.api_access_token(email)
        reason = "stolen phone, reported to the help desk on Monday morning by its owner, who was travelling"
        self.server.cli("revoke", "--user", email, "--reason", reason)
        for size, name in ((dict(width=1280, height=900), "admin"), (PHONE, "admin-phone")):
            admin = self.sign_in(self.browser(**size), ADMIN)
            admin.get(self.server.base + "/admin")
            self.assert_no_sideways_scrolling(admin)
            # Every date on one line: one line box, about one line high.
            dates = admin.execute_script(
                "return [...document.querySelectorAll('#audit tbody td.when time')]"
                ".map(t => [t.textContent, t.getClientRects().length, t.getBoundingClientRect().height, parseFloat(getComputedStyle(t).lineHeight)])"
            )
            self.assertGreater(len(dates), 3)
            for text, lines, height, line_height in dates:
                self.assertRegex(text, r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$")
                self.assertEqual(lines, 1, f"{text} wraps at {size['width']} px")
                self.assertLess(height, 1.5 * line_height, f"{text} is taller than a line at {size['width']} px")
            # Details are folded: a long reason is one click away, and does not widen the table when shown.
            row = next(r for r in admin.find_elements(By.CSS_SELECTOR, "#audit tbody tr") if r.find_element(By.CSS_SELECTOR, "td.event").text == "REVOKE_USERS")
            details = row.find_element(By.CSS_SELECTOR, "td.details details")
            self.assertFalse(details.find_element(By.CSS_SELECTOR, "dl").is_displayed())
            self.assertIn("reason", details.find_element(By.TAG_NAME, "summary").text)
            details.find_element(By.TAG_NAME, "summary").click()
            self.assertIn(reason, self.wait(admin).until(lambda b: details.find_element(By.CSS_SELECTOR, "dl")).text)
            self.assertIn(email, row.text)
            self.open_row_menu(admin, self.user_row(admin, ADMIN))
            self.assert_no_sideways_scrolling(admin)
            if size["width"] == 1280:
                self.screenshot(admin, name, height=2000)
            else:
                self.screenshot(admin, name, height=1500)
                top = admin.execute_script("return document.getElementById('audit-title').getBoundingClientRect().top + window.scrollY - 24")
                self.screenshot(admin, "admin-audit-phone", top=top, height=1500)

    def test_row_actions_wait_in_the_row_menu_and_the_own_row_says_they_sign_you_out(self):
        revoked = self.server.register("mia@example.org")
        other = self.server.register("nat@example.org")
        self.server.cli("revoke", "--user", revoked, "--reason", "browser test")
        admin = self.sign_in(self.browser(), ADMIN)
        admin.get(self.server.base + "/admin")
        rows = admin.find_elements(By.CSS_SELECTOR, "#users tbody tr[data-email]")
        self.assertGreater(len(rows), 2)
        for row in rows:
            email = row.get_attribute("data-email")
            summary = row.find_element(By.CSS_SELECTOR, "details.row-menu > summary")
            self.assertTrue(summary.is_displayed())
            self.assertEqual(summary.get_attribute("textContent").strip(), f"Manage {email}", "its accessible name says whose")
            controls = row.find_elements(By.CSS_SELECTOR, "button, input:not([type=hidden])")
            self.assertGreaterEqual(len(controls), 4)
            self.assertEqual([c.get_attribute("outerHTML") for c in controls if c.is_displayed()], [], f"{email}: before the menu is opened")
        # "Undo latest revoke" only where an operator's revoke can be undone.
        self.assertEqual(len(self.user_row(admin, revoked).find_elements(By.CSS_SELECTOR, "button.unrevoke")), 1)
        self.assertEqual(self.user_row(admin, other).find_elements(By.CSS_SELECTOR, "button.unrevoke"), [])

        # By keyboard: Enter on the summary opens the menu; another account's actions ask without a warning.
        summary = self.user_row(admin, other).find_element(By.CSS_SELECTOR, "details.row-menu > summary")
        menu = summary.find_element(By.XPATH, "..")
        admin.execute_script("arguments[0].focus()", summary)
        admin.switch_to.active_element.send_keys(Keys.ENTER)
        self.wait(admin).until(lambda b: menu.get_attribute("open") is not None)
        self.assertEqual(menu.find_elements(By.CSS_SELECTOR, ".self-warning"), [])
        self.confirm(admin, menu.find_element(By.CSS_SELECTOR, "button.deactivate"), answer="Cancel")

        # The admin's own row says what its actions do to the admin, beside them and again on the confirmation.
        own = self.user_row(admin, ADMIN)
        self.assertIn("self", own.get_attribute("class").split())
        menu = self.open_row_menu(admin, own)
        warning = menu.find_element(By.CSS_SELECTOR, ".self-warning")
        self.assertTrue(warning.is_displayed())
        self.assertIn("signs you out too", warning.text)
        for selector in ("button.deactivate", "button.revoke", "button.reset-password"):
            self.assertEqual(menu.find_element(By.CSS_SELECTOR, selector).get_attribute("aria-describedby"), warning.get_attribute("id"))
        self.confirm(
            admin, menu.find_element(By.CSS_SELECTOR, "button.deactivate"), answer="Cancel",
            warning="This signs you out too, and you cannot sign in until the account is activated again.",
        )
        self.confirm(admin, menu.find_element(By.CSS_SELECTOR, "button.revoke"), warning="This signs you out too.")
        self.wait_for_path(admin, "/login")
        self.assertEqual(self.notice(admin), "Every session of your account was signed out, this one included.")
        self.assertNotIn("tessera_access", {c["name"] for c in admin.get_cookies()})
        self.sign_in(admin, ADMIN)

    def test_a_user_gets_no_admin_console(self):
        email = self.server.register("frank@example.org")
        browser = self.sign_in(self.browser(), email)
        self.assertEqual(browser.find_elements(By.LINK_TEXT, "Admin"), [])
        browser.get(self.server.base + "/admin")
        self.assertIn("Forbidden", browser.find_element(By.TAG_NAME, "h1").text)


class ForgeryTests(PageTestCase):
    """Cross-site request forgery: another page can make the browser send its cookies, but not the CSRF token."""

    def test_a_forged_form_post_from_another_origin_is_refused(self):
        email = self.server.register("gina@example.org")
        token = self.server.api_access_token(email)
        browser = self.sign_in(self.browser(), email)
        target = self.server.base + "/logout-all"

        class Attacker(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                page = (
                    f'<!doctype html><form id="f" method="post" action="{target}"><input name="x" value="1"></form>'
                    '<script>document.getElementById("f").submit()</script>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        # Another port of 127.0.0.1 is the same *site*: SameSite=Lax cookies are sent, so only the token stops it.
        attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=attacker.serve_forever, daemon=True).start()
        try:
            browser.get(f"http://127.0.0.1:{attacker.server_address[1]}/")
            self.wait(browser).until(lambda b: b.current_url.startswith(target))
            self.assertIn("Forbidden", browser.find_element(By.TAG_NAME, "h1").text)
        finally:
            attacker.shutdown()
            attacker.server_close()
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 200)

        # The same post from Tessera's own origin, by script, without the token.
        browser.get(self.server.base + "/account")
        result = browser.execute_async_script(
            "const done = arguments[0];"
            "fetch('/logout-all', {method: 'POST', body: new URLSearchParams({x: '1'})})"
            ".then(r => r.text().then(t => done([r.status, t])))"
        )
        self.assertEqual(result[0], 403)
        self.assertIn("did not come from Tessera", result[1])
        # A token of another session does not fit either.
        other = self.sign_in(self.browser(), email)
        stolen = other.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        result = browser.execute_async_script(
            "const token = arguments[0], done = arguments[1];"
            "fetch('/logout-all', {method: 'POST', headers: {'X-Tessera-Fetch': '1'}, body: new URLSearchParams({csrf: token})})"
            ".then(r => done(r.status))",
            stolen,
        )
        self.assertEqual(result, 403)
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 200)
        browser.refresh()
        self.assertEqual(browser.find_element(By.ID, "account-email").text, email)


class UsabilityTests(PageTestCase):
    def test_keyboard_alone_signs_in_and_answers_the_question(self):
        email = self.server.register("hugo@example.org")
        browser = self.browser()
        browser.get(self.server.base + "/login")
        self.assert_every_input_labelled(browser)
        focused = browser.switch_to.active_element
        self.assertEqual(focused.get_attribute("id"), "email")
        focused.send_keys(email, Keys.TAB)
        browser.switch_to.active_element.send_keys(PASSWORD, Keys.ENTER)
        self.wait_for_path(browser, "/account")
        browser.execute_script("document.getElementById('sign-out-all').focus()")
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        self.wait(browser).until(lambda b: b.switch_to.active_element.get_attribute("class") == "confirm-cancel")
        browser.switch_to.active_element.send_keys(Keys.ESCAPE)
        self.wait(browser).until(lambda b: b.find_element(By.ID, "sign-out-all").is_displayed())
        browser.find_element(By.ID, "sign-out-all").send_keys(Keys.ENTER)
        self.wait(browser).until(lambda b: b.switch_to.active_element.get_attribute("class") == "confirm-cancel")
        browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
        self.assertEqual(browser.switch_to.active_element.text, "Yes")
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        self.wait_for_path(browser, "/login")

    def test_pages_fit_a_phone_screen(self):
        email = self.server.register("ines@example.org")
        self.server.api_access_token(email)
        phone = self.browser(**PHONE)
        self.assertEqual(phone.execute_script("return [window.innerWidth, document.documentElement.clientWidth]"), [PHONE["width"]] * 2)
        phone.get(self.server.base + "/login")
        self.assert_no_sideways_scrolling(phone)
        self.screenshot(phone, "login-phone")
        self.sign_in(phone, email, device="Ines's phone")
        self.assert_no_sideways_scrolling(phone)
        self.screenshot(phone, "account-phone")
        admin = self.sign_in(self.browser(**PHONE), ADMIN)
        admin.get(self.server.base + "/admin")
        self.assert_no_sideways_scrolling(admin)
        for row in admin.find_elements(By.CSS_SELECTOR, "#users tbody tr[data-email]"):
            self.open_row_menu(admin, row)
        self.assert_no_sideways_scrolling(admin)


class ServerGoneTests(PageTestCase):
    def test_buttons_say_so_inline_when_the_server_is_stopped_and_claim_nothing(self):
        email = self.server.register("jo@example.org")
        browser = self.sign_in(self.browser(), email)
        phone = self.sign_in(self.browser(**PHONE), email)
        heights = [self.header_height(b) for b in (browser, phone)]
        port = self.server.port
        self.server.stop()
        browser.find_element(By.ID, "sign-out").click()
        status = self.wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, "form[action='/logout'] .form-status.error"))
        self.assertIn("Could not reach Tessera", status.text)
        self.assertIn("nothing was changed", status.text)
        self.assertEqual(browser.current_url.split("?")[0], self.server.base + "/account")
        for page, height in zip((browser, phone), heights):
            self.confirm(page, page.find_element(By.ID, "sign-out-all"))
            status = self.wait(page).until(lambda b: b.find_element(By.CSS_SELECTOR, "#sign-out-all ~ .form-status.error"))
            self.assertIn("Could not reach Tessera", status.text)
            self.assertTrue(status.is_displayed())
            self.assertTrue(page.find_element(By.ID, "sign-out-all").is_enabled(), "the button can be tried again")
            # The header keeps its layout: as tall as before, its two buttons once each, the question gone, one message.
            self.assertAlmostEqual(self.header_height(page), height, delta=1, msg=f"the header at {page.execute_script('return innerWidth')} px")
            header = page.find_element(By.CSS_SELECTOR, ".site-header")
            self.assertEqual([b.text for b in header.find_elements(By.TAG_NAME, "button") if b.is_displayed()], ["Sign out", "Sign out of all devices"])
            self.assertEqual([m.text for m in header.find_elements(By.CSS_SELECTOR, ".form-status") if m.is_displayed()], [status.text])
            self.assert_no_sideways_scrolling(page)
        self.assertLess(heights[0], 80, "one row at 1280 px")

        # Back up on the same port: the browser is still signed in, and signing out now works.
        self.server.start(port=port)
        browser.find_element(By.ID, "sign-out").click()
        self.wait_for_path(browser, "/login")
        self.assertEqual(self.notice(browser), "You signed out.")


class APITokenPageTests(PageTestCase):
    """The account page's "API tokens": the secret is shown once and only in the page that made it."""

    TOKEN_SHAPE = re.compile(r"^tsr_[A-Za-z0-9_-]{51}$")
    REVOKE_WARNING = "Whatever uses this token is refused at once."

    def create_token(self, browser, name, days=None):
        """Fills in and sends "Create token"; returns the secret shown."""
        browser.find_element(By.ID, "api-token-name").send_keys(name)
        if days is not None:
            browser.find_element(By.ID, "api-token-days").send_keys(str(days))
        browser.find_element(By.ID, "create-api-token").click()
        panel = self.wait(browser).until(lambda b: b.find_element(By.ID, "new-api-token") if b.find_element(By.ID, "new-api-token").is_displayed() else False)
        secret = panel.find_element(By.ID, "new-api-token-secret").get_attribute("value")
        self.assertRegex(secret, self.TOKEN_SHAPE)
        self.assertIn(name, panel.text)
        self.assertIn("It will not be shown again", panel.text)
        return secret

    def token_row(self, browser, name):
        def row(b):
            rows = [r for r in b.find_elements(By.CSS_SELECTOR, "#api-tokens li.api-token") if r.find_element(By.CLASS_NAME, "api-token-name").text == name]
            return rows[0] if rows else False

        return WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException]).until(row)

    def page_request(self, browser, path, fields=None, fetch=False):
        """A request with the browser's cookies, outside the browser: (status, headers, body)."""
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
        data = urllib.parse.urlencode(fields).encode() if fields is not None else None
        request = urllib.request.Request(self.server.base + path, data=data, headers={"Cookie": cookie})
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        if fetch:
            request.add_header("X-Tessera-Fetch", "1")

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args):
                return None

        try:
            with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    def test_a_token_is_shown_once_works_is_listed_and_revoked_after_asking(self):
        email = self.server.register("tara@example.org")
        browser = self.sign_in(self.browser(), email)
        self.assertEqual(browser.find_element(By.ID, "no-api-tokens").text, "No API tokens yet.")
        self.assertFalse(browser.find_element(By.ID, "new-api-token").is_displayed())
        self.assert_every_input_labelled(browser)

        secret = self.create_token(browser, "CI deploys", days=7)
        copy = browser.find_element(By.ID, "copy-api-token")
        self.assertTrue(copy.is_displayed())
        self.assertEqual(browser.switch_to.active_element.get_attribute("id"), "new-api-token-secret", "the secret is focused, ready to copy")
        self.assert_every_input_labelled(browser)
        # Never in the address, a cookie or the server's log.
        self.assertEqual(browser.current_url.split("?")[0], self.server.base + "/account")
        self.assertNotIn(secret, browser.current_url)
        self.assertFalse([c["name"] for c in browser.get_cookies() if secret in c["value"]])
        self.assert_no_secret_in_page(browser)

        # The Clipboard API copies it.
        browser.execute_cdp_cmd(
            "Browser.grantPermissions", {"origin": self.server.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}
        )
        copy.click()
        self.wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, "#new-api-token .copy-status").text == "Copied.")
        pasted = browser.execute_async_script("const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('failed: ' + e))")
        self.assertEqual(pasted, secret)
        # Without it (a page served over plain HTTP to another host), the field is selected instead.
        browser.execute_script(
            "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined, configurable: true});"
            "document.getElementById('api-token-name').focus();"
        )
        copy.click()
        self.wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, "#new-api-token .copy-status").text != "Copied." or
                                 b.switch_to.active_element.get_attribute("id") == "new-api-token-secret")
        selection = browser.execute_script(
            "const f = document.getElementById('new-api-token-secret'); return [document.activeElement.id, f.selectionStart, f.selectionEnd]"
        )
        self.assertEqual(selection, ["new-api-token-secret", 0, len(secret)])
        self.assertIn(browser.find_element(By.CSS_SELECTOR, "#new-api-token .copy-status").text,
                      ["Copied.", "Selected: press Ctrl+C (⌘C on a Mac) to copy it."])

        # The list shows it at once, and the token works on the API.
        row = self.token_row(browser, "CI deploys")
        self.assertIn("last used never", row.text)
        self.assertEqual(row.find_elements(By.CLASS_NAME, "api-token-status"), [])
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=secret)[0], 200)
        status, listed = self.server.api("GET", "/api/tokens", token=secret)
        self.assertEqual(status, 200)
        self.assertEqual([t["name"] for t in listed["tokens"]], ["CI deploys"])
        self.assertNotIn(secret, json.dumps(listed))

        # A reload never shows the secret again; the list keeps the token, and soon says when it was last used.
        browser.refresh()
        self.assertNotIn(secret, browser.page_source)
        self.assertFalse(browser.find_element(By.ID, "new-api-token").is_displayed())
        self.assertEqual(browser.find_element(By.ID, "new-api-token-secret").get_attribute("value"), "")
        status, _, html = self.page_request(browser, "/account")
        self.assertEqual(status, 200)
        self.assertNotIn(secret, html)

        def used(b):
            b.refresh()
            return "last used never" not in self.token_row(b, "CI deploys").text

        WebDriverWait(browser, 12, poll_frequency=1).until(used)

        # "Revoke" asks first; cancel changes nothing.
        row = self.token_row(browser, "CI deploys")
        self.confirm(browser, row.find_element(By.CLASS_NAME, "api-token-revoke"), answer="Cancel", warning=self.REVOKE_WARNING)
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=secret)[0], 200)
        self.confirm(browser, row.find_element(By.CLASS_NAME, "api-token-revoke"), warning=self.REVOKE_WARNING)
        self.assertEqual(self.notice(browser), "The API token was revoked: it is refused from now on.")
        deadline = time.time() + 1
        while self.server.api("GET", "/api/v1/ping-auth", token=secret)[0] != 401:
            self.assertLess(time.time(), deadline, "the revoked token is still accepted after a second")
            time.sleep(0.05)
        row = self.token_row(browser, "CI deploys")
        self.assertEqual(row.find_element(By.CLASS_NAME, "api-token-status").text, "Revoked")
        self.assertEqual(row.find_elements(By.CLASS_NAME, "api-token-revoke"), [], "nothing left to revoke")

        self.server.log.flush()
        with open(self.server.log.name, encoding="utf-8", errors="replace") as f:
            self.assertNotIn(secret, f.read())

    def test_without_the_script_the_form_answers_the_secret_once_never_in_a_redirect(self):
        email = self.server.register("uma@example.org")
        browser = self.sign_in(self.browser(), email)
        csrf = browser.find_element(By.CSS_SELECTOR, "#api-token-form input[name=csrf]").get_attribute("value")
        status, headers, html = self.page_request(browser, "/account/tokens", {"csrf": csrf, "name": "no script"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Cache-Control"], "no-store")
        self.assertIsNone(headers["Location"])
        secret = re.search(r'id="new-api-token-secret"[^>]*value="(tsr_[^"]+)"', html).group(1)
        self.assertRegex(secret, self.TOKEN_SHAPE)
        self.assertFalse([c for c in headers.get_all("Set-Cookie") or [] if secret in c])
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=secret)[0], 200)
        status, _, html = self.page_request(browser, "/account")
        self.assertNotIn(secret, html)
        self.assertIn("no script", html)

        # A bad lifetime is refused with the reason, and makes nothing.
        status, _, answer = self.page_request(browser, "/account/tokens", {"csrf": csrf, "name": "too long", "days": "9999"}, fetch=True)
        self.assertEqual((status, json.loads(answer)["code"]), (400, "invalid_request"))
        self.assertIn("expiresInDays", json.loads(answer)["detail"])
        status, _, answer = self.page_request(browser, "/account/tokens", {"csrf": csrf, "name": "not a number", "days": "soon"}, fetch=True)
        self.assertEqual(status, 400)

        # A forged post (the browser's cookies, no CSRF token) makes no token.
        status, _, answer = self.page_request(browser, "/account/tokens", {"name": "forged"}, fetch=True)
        self.assertEqual((status, json.loads(answer)["code"]), (403, "csrf_failed"))
        status, _, answer = self.page_request(browser, "/account/tokens", {"csrf": "forged", "name": "forged"}, fetch=True)
        self.assertEqual(status, 403)
        listed = self.server.api("GET", "/api/tokens", token=self.server.api_access_token(email))[1]["tokens"]
        self.assertEqual([t["name"] for t in listed], ["no script"])

        # Nor can another user's token be revoked from this page.
        other = self.server.register("victor@example.org")
        status, made = self.server.api("POST", "/api/tokens", {"name": "victor's"}, token=self.server.api_access_token(other))
        self.assertEqual(status, 201)
        status, _, answer = self.page_request(browser, f"/account/tokens/{made['id']}/revoke", {"csrf": csrf}, fetch=True)
        self.assertEqual((status, json.loads(answer)["code"]), (404, "api_token_not_found"))
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=made["token"])[0], 200)

    def test_the_token_section_fits_a_phone_screen(self):
        email = self.server.register("wren@example.org")
        phone = self.sign_in(self.browser(**PHONE), email)
        self.assert_no_sideways_scrolling(phone)
        secret = self.create_token(phone, "a rather long name for the nightly backup job of the photo library")
        self.token_row(phone, "a rather long name for the nightly backup job of the photo library")
        self.assert_no_sideways_scrolling(phone)
        self.assert_every_input_labelled(phone)
        self.assertTrue(phone.find_element(By.ID, "copy-api-token").is_displayed())
        self.screenshot(phone, "account-api-token-phone")
        phone.refresh()
        self.assertNotIn(secret, phone.page_source)
        self.assert_no_sideways_scrolling(phone)


class AccountLifecycleTests(PageTestCase):
    """Deleting one's account from the account page, and an admin changing a role and deleting an account from the console."""

    DELETE_WARNING = "Your account is deleted for good: this cannot be undone."

    def test_delete_account_asks_for_the_password_and_lands_on_login(self):
        email = self.server.register("olga@example.org")
        token = self.server.api_access_token(email)
        browser = self.sign_in(self.browser(), email, device="Olga's laptop")
        self.assert_every_input_labelled(browser)
        password = browser.find_element(By.ID, "delete-password")

        # A wrong password: said inline, nothing deleted.
        password.send_keys("not my password")
        self.confirm(browser, browser.find_element(By.ID, "delete-account"), warning=self.DELETE_WARNING)
        error = self.wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, "#delete-account-form .form-status.error"))
        self.assertEqual(error.text, "The email or password is wrong.")
        self.assertEqual(browser.current_url.split("?")[0], self.server.base + "/account")
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 200)

        # Cancel keeps everything as it was; the right password and "Yes" delete it.
        password.clear()
        password.send_keys(PASSWORD)
        self.confirm(browser, browser.find_element(By.ID, "delete-account"), answer="Cancel", warning=self.DELETE_WARNING)
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 200)
        self.confirm(browser, browser.find_element(By.ID, "delete-account"), warning=self.DELETE_WARNING)
        self.wait_for_path(browser, "/login")
        self.assertEqual(
            self.notice(browser), "Your account was deleted: every device was signed out and your email and personal data were erased."
        )
        self.assertNotIn("tessera_access", {c["name"] for c in browser.get_cookies()})
        self.assertEqual(self.server.api("GET", "/api/v1/ping-auth", token=token)[0], 401)

        # It cannot sign in; the address can be registered again, as a new account.
        browser.find_element(By.ID, "email").send_keys(email)
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        self.wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, "#login-form .form-status.error"))
        self.assertEqual(browser.current_url.split("?")[0], self.server.base + "/login")
        self.server.register(email)
        self.sign_in(browser, email)
        self.assertNotIn("Olga's laptop", browser.find_element(By.ID, "sessions").text)

    def test_an_admin_changes_a_role_and_deletes_an_account_from_the_console(self):
        email = self.server.register("pia@example.org")
        user = self.sign_in(self.browser(), email)
        self.assertEqual(user.find_elements(By.LINK_TEXT, "Admin"), [])
        admin = self.sign_in(self.browser(), ADMIN)
        admin.get(self.server.base + "/admin?q=pia")
        menu = self.open_row_menu(admin, self.user_row(admin, email))
        make_admin = menu.find_element(By.CSS_SELECTOR, "button.role-change")
        self.assertEqual(make_admin.text, "Make admin")
        self.confirm(admin, make_admin, answer="Cancel", warning="Every session of this account is signed out.")
        self.confirm(admin, make_admin, warning="Every session of this account is signed out.")
        self.assertEqual(
            self.notice(admin), "The role was changed and every session of that account signed out; it signs in again with the new role."
        )
        self.assertIn("admin", self.user_row(admin, email).find_element(By.CSS_SELECTOR, "td[data-label=Role]").text)

        # The user's browser was signed out by it; signed in again, it has the console.
        user.find_element(By.LINK_TEXT, "Account").click()
        self.wait_for_path(user, "/login")
        self.sign_in(user, email)
        self.assertEqual(len(user.find_elements(By.LINK_TEXT, "Admin")), 1)

        # The own row offers no deletion (that is the account page's, with the password).
        own = self.open_row_menu(admin, self.user_row(admin, ADMIN))
        self.assertEqual(own.find_elements(By.CSS_SELECTOR, "button.delete-user"), [])
        self.assertIn("your account page", own.find_element(By.CSS_SELECTOR, ".self-warning").text)

        admin.get(self.server.base + "/admin?q=pia")
        menu = self.open_row_menu(admin, self.user_row(admin, email))
        self.assertEqual(menu.find_element(By.CSS_SELECTOR, "button.role-change").text, "Make user")
        self.confirm(
            admin, menu.find_element(By.CSS_SELECTOR, "button.delete-user"),
            warning="The account's email and personal data are erased for good; this cannot be undone.",
        )
        self.assertEqual(self.notice(admin), "The account was deleted: every session of it was signed out and its personal data erased.")
        self.assertEqual(admin.find_elements(By.CSS_SELECTOR, f"#users tr[data-email='{email}']"), [])
        user.find_element(By.LINK_TEXT, "Account").click()
        self.wait_for_path(user, "/login")

        # Now the last admin: making itself a user is refused inline, and it stays signed in.
        admin.get(self.server.base + "/admin")
        own = self.open_row_menu(admin, self.user_row(admin, ADMIN))
        self.confirm(admin, own.find_element(By.CSS_SELECTOR, "button.role-change"), warning="Every session of this account is signed out, yours included.")
        error = self.wait(admin).until(lambda b: own.find_element(By.CSS_SELECTOR, "form[action$='/role'] .form-status.error"))
        self.assertIn("last active admin", error.text)
        admin.get(self.server.base + "/admin")
        self.wait_for_path(admin, "/admin")

if __name__ == "__main__":
    unittest.main()
