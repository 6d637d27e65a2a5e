"""
A test module written for stock Django, for the runner tests: they build and
run it with the channel switch on and off. The name keeps runtests.py's
discovery (test*.py) away from it.
"""

import os

from django.test import Client, SimpleTestCase, override_settings

results = []


def report(name):
    results.append(name)
    if os.environ.get("SWITCHED_SUITE_PRINT"):
        # For a test that runs this module in a subprocess and reads its
        # output.
        print("request class: %s" % name)


@override_settings(ROOT_URLCONF="channel_test_utils.urls")
class StockTests(SimpleTestCase):
    def test_get(self):
        response = self.client.get("/describe/")
        report(response.json()["request_class"])

    async def test_async_get(self):
        response = await self.async_client.get("/describe/")
        report(response.json()["request_class"])


class CustomClient(Client):
    pass


@override_settings(ROOT_URLCONF="channel_test_utils.urls")
class CustomClientTests(SimpleTestCase):
    client_class = CustomClient

    def test_custom_client(self):
        response = self.client.get("/describe/")
        report("%s %s" % (type(self.client).__name__, response.json()["request_class"]))

    def test_client_of_its_own(self):
        response = Client().get("/describe/")
        report("Client() %s" % response.json()["request_class"])
