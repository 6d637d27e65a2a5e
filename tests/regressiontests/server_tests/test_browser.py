"""
The demo's chat page in a real headless browser: two pages in one room
exchange a message over WebSockets through runstack.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from django.test import SimpleTestCase

from .servers import REPO, ServerProcess, environment, free_port

EXAMPLE = os.path.join(REPO, "example")
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def require_browser():
    if CHROMIUM and CHROMEDRIVER:
        return
    reason = "Debian's chromium and chromium-driver packages are not installed."
    if os.environ.get("CI") == "true":
        raise RuntimeError("%s CI=true: browser tests may not be skipped." % reason)
    raise unittest.SkipTest(reason)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class ChatInBrowserTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_browser()
        cls.port = free_port()
        env = environment(DJANGO_SETTINGS_MODULE="demo.settings")
        env["PYTHONPATH"] = os.pathsep.join([EXAMPLE, REPO])
        # The demo keeps sessions in the database: a fresh one per run.
        directory = tempfile.TemporaryDirectory(prefix="browser-tests-")
        cls.addClassCleanup(directory.cleanup)
        env["DEMO_DATABASE"] = os.path.join(directory.name, "db.sqlite3")
        env["DEMO_STATIC_ROOT"] = os.path.join(directory.name, "static")
        for command in [
            ["migrate", "--noinput", "--verbosity", "0"],
            ["collectstatic", "--noinput", "--verbosity", "0"],
            ["createsuperuser", "--noinput", "--username", "staff", "--email", ""],
        ]:
            subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=EXAMPLE,
                env=dict(env, DJANGO_SUPERUSER_PASSWORD="staff-password"),
                check=True,
                timeout=120,
            )
        # Where screenshots go: SCREENSHOTS_DIR=example/screenshots refreshes
        # the committed ones.
        cls.screenshots = os.environ.get("SCREENSHOTS_DIR") or directory.name
        cls.server = ServerProcess(
            [
                sys.executable,
                os.path.join(EXAMPLE, "manage.py"),
                "runstack",
                "--bind",
                "127.0.0.1:%d" % cls.port,
                "--workers",
                "2",
                "--static",
            ],
            port=cls.port,
            env=env,
        )
        cls.addClassCleanup(cls.server.cleanup)

    def screenshot(self, page, name):
        path = os.path.join(self.screenshots, name)
        page.set_window_size(1280, 900)
        self.assertTrue(page.save_screenshot(path))
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def join(self, name):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        page = browser()
        self.addCleanup(page.quit)
        page.get("http://127.0.0.1:%d/chat/lobby/" % self.port)
        page.find_element(By.NAME, "name").send_keys(name)
        page.find_element(By.ID, "set-name").click()
        WebDriverWait(page, 20).until(
            ec.text_to_be_present_in_element((By.ID, "status"), "connected")
        )
        return page

    def test_two_pages_exchange_a_message(self):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        ada, bob = self.join("Ada"), self.join("Bob")
        ada.find_element(By.ID, "message").send_keys("Hello, Bob!", Keys.ENTER)
        for page in (bob, ada):
            WebDriverWait(page, 20).until(
                ec.text_to_be_present_in_element((By.ID, "log"), "Ada: Hello, Bob!")
            )
        bob.find_element(By.ID, "message").send_keys("Hi Ada", Keys.ENTER)
        WebDriverWait(ada, 20).until(
            ec.text_to_be_present_in_element((By.ID, "log"), "Bob: Hi Ada")
        )
        self.screenshot(ada, "chat.png")

    def test_long_room_name_is_explained(self):
        from selenium.webdriver.common.by import By

        page = browser()
        self.addCleanup(page.quit)
        page.get("http://127.0.0.1:%d/chat/%s/" % (self.port, "r" * 96))
        self.assertIn(
            "A room name has at most 95 characters; this one has 96.",
            page.find_element(By.ID, "refusal").text,
        )
        self.screenshot(page, "chat-refused.png")

    def test_load_page(self):
        """The admin's load page plots the channels the chat uses."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        page = browser()
        self.addCleanup(page.quit)
        page.get("http://127.0.0.1:%d/admin/channels/load/" % self.port)
        # Staff only: the admin's login page first, with its CSS.
        page.find_element(By.NAME, "username").send_keys("staff")
        page.find_element(By.NAME, "password").send_keys("staff-password", Keys.ENTER)
        WebDriverWait(page, 20).until(
            ec.text_to_be_present_in_element((By.ID, "load-status"), "updated")
        )
        background = page.execute_script(
            "return getComputedStyle(document.getElementById('header'))"
            ".backgroundColor"
        )
        self.assertNotIn(background, ("", "rgba(0, 0, 0, 0)"))
        ada = self.join("Ada")
        for n in range(5):
            ada.find_element(By.ID, "message").send_keys("load %d" % n, Keys.ENTER)
        # A few samples, so that the lines have a length.
        start = page.execute_script("return performance.now()")
        WebDriverWait(page, 30).until(
            lambda page: page.execute_script("return performance.now()") > start + 6000
        )
        WebDriverWait(page, 30).until(
            ec.presence_of_element_located(
                (By.CSS_SELECTOR, '#current tr[data-channel="websocket.receive"]')
            )
        )
        WebDriverWait(page, 30).until(
            lambda page: page.execute_script(
                "return document.querySelectorAll("
                "'.chart[data-field=in_rate] polyline').length"
            )
            > 0
        )
        self.screenshot(page, "load-page.png")
