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
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
            cwd=EXAMPLE,
            env=env,
            check=True,
            timeout=120,
        )
        cls.server = ServerProcess(
            [
                sys.executable,
                os.path.join(EXAMPLE, "manage.py"),
                "runstack",
                "--bind",
                "127.0.0.1:%d" % cls.port,
                "--workers",
                "2",
            ],
            port=cls.port,
            env=env,
        )
        cls.addClassCleanup(cls.server.cleanup)

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
