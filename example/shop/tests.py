"""
Tests of the demo, on both paths.

DemoPagesTests drives the views with Django's test client, as for any Django
project. ChannelPathTests sends the same requests through the channel path:
the interface application relays them over an in-memory layer to a worker,
in one event loop and with no sockets.
"""

import asyncio
import contextlib
import hashlib
import json
import re
import tempfile
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from asgiref.testing import ApplicationCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, SimpleTestCase, override_settings
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.worker import Worker

from .views import download_content

IN_MEMORY_LAYER = {
    "default": {"BACKEND": "django_fork.channels.layers.inmemory.InMemoryChannelLayer"}
}
DOWNLOAD_SIZE = 300_000


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def expected_download():
    return b"".join(download_content(DOWNLOAD_SIZE))


def upload_files():
    """Return two files: one small, one larger than several body chunks."""
    return [
        SimpleUploadedFile("notes.txt", b"first file\n", "text/plain"),
        SimpleUploadedFile(
            "data.bin", bytes(range(256)) * 1000, "application/octet-stream"
        ),
    ]


class DemoTestCase(SimpleTestCase):
    """Fast streams and a small download in a temporary directory."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        directory = cls.enterClassContext(tempfile.TemporaryDirectory())
        cls.enterClassContext(
            override_settings(
                DEMO_DOWNLOAD_DIR=directory,
                DEMO_DOWNLOAD_SIZE=DOWNLOAD_SIZE,
                DEMO_STREAM_DELAY=0,
                DEMO_STREAM_LINES=5,
            )
        )


class DemoPagesTests(DemoTestCase):
    def test_home_links_every_page(self):
        response = self.client.get(reverse("shop:home"))
        self.assertContains(response, "<code>WSGIRequest</code>")
        for name in ("order", "upload", "stream", "stream-async", "download"):
            self.assertContains(response, 'href="%s"' % reverse("shop:" + name))
        self.assertContains(response, 'href="%s?hello=world"' % reverse("shop:info"))

    def test_order_form(self):
        response = self.client.get(reverse("shop:order"))
        self.assertContains(response, 'name="csrfmiddlewaretoken"')
        self.assertContains(response, '<select name="product"')

    def test_order_post(self):
        """A valid order renders its summary with the total price."""
        response = self.client.post(
            reverse("shop:order"),
            {
                "name": "Ada",
                "email": "ada@example.com",
                "product": "shirt",
                "quantity": "2",
                "note": "Gift wrap, please.",
            },
        )
        self.assertContains(response, "Thank you, Ada.")
        self.assertContains(response, '<td id="total">$50</td>', html=True)
        self.assertContains(response, "Gift wrap, please.")

    def test_order_post_invalid(self):
        response = self.client.post(
            reverse("shop:order"), {"name": "", "email": "nope", "quantity": "0"}
        )
        self.assertEqual(response.status_code, 200)
        self.assertFormError(
            response.context["form"], "email", "Enter a valid email address."
        )
        self.assertFormError(
            response.context["form"],
            "quantity",
            "Ensure this value is greater than or equal to 1.",
        )

    def test_order_post_requires_csrf_token(self):
        client = Client(enforce_csrf_checks=True)
        data = {"name": "Ada", "email": "ada@example.com", "product": "mug"}
        data["quantity"] = "1"
        self.assertEqual(client.post(reverse("shop:order"), data).status_code, 403)
        token = client.get(reverse("shop:order")).context["csrf_token"]
        response = client.post(
            reverse("shop:order"), {**data, "csrfmiddlewaretoken": str(token)}
        )
        self.assertContains(response, '<td id="total">$12</td>', html=True)

    def test_upload_several_files(self):
        """Each uploaded file is listed with its name, size and SHA-256."""
        files = upload_files()
        contents = [f.read() for f in files]
        for f in files:
            f.seek(0)
        response = self.client.post(reverse("shop:upload"), {"files": files})
        self.assertEqual(
            [(r["name"], r["size"], r["sha256"]) for r in response.context["results"]],
            [
                ("notes.txt", 11, sha256(contents[0])),
                ("data.bin", 256000, sha256(contents[1])),
            ],
        )
        self.assertContains(response, sha256(contents[1]))

    def test_upload_requires_a_file(self):
        response = self.client.post(reverse("shop:upload"), {})
        self.assertIsNone(response.context["results"])
        self.assertFormError(
            response.context["form"], "files", "This field is required."
        )

    def test_stream(self):
        response = self.client.get(reverse("shop:stream"), {"lines": "3"})
        self.assertTrue(response.streaming)
        lines = b"".join(response.streaming_content).decode().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[2].startswith("line 3 of 3 at "))

    async def test_stream_async(self):
        response = await self.async_client.get(reverse("shop:stream-async"))
        self.assertTrue(response.is_async)
        content = b"".join([part async for part in response.streaming_content])
        self.assertEqual(len(content.decode().splitlines()), 5)

    def test_download(self):
        response = self.client.get(reverse("shop:download"))
        self.assertEqual(response["Content-Length"], str(DOWNLOAD_SIZE))
        self.assertEqual(
            response["Content-Disposition"],
            'attachment; filename="demo-download.bin"',
        )
        content = b"".join(response.streaming_content)
        response.close()
        self.assertEqual(sha256(content), sha256(expected_download()))

    def test_head_download(self):
        response = self.client.head(reverse("shop:download"))
        self.assertEqual(response.status_code, 200)
        response.close()

    def test_info(self):
        response = self.client.get(reverse("shop:info"), {"a": ["1", "2"], "q": "été"})
        data = response.json()
        self.assertEqual(data["transport"], "WSGIRequest")
        self.assertEqual(data["query"], {"a": ["1", "2"], "q": ["été"]})
        self.assertEqual(data["method"], "GET")

    def test_entry_points(self):
        """
        wsgi.py is stock Django's. asgi.py serves the channel path, and with
        the in-memory layer (no worker process can share it) it fails loudly
        rather than answer every request 504.
        """
        from demo.wsgi import application as wsgi_application

        self.assertIsInstance(wsgi_application, WSGIHandler)
        with self.assertRaisesMessage(SystemExit, "manage.py runstack"):
            import demo.asgi  # NOQA


# The channel path.


def http_scope(method, path, query_string=b"", headers=()):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ["127.0.0.1", 50000],
        "server": ["testserver", 80],
    }


class ChannelResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        """Return the values of the headers called name."""
        name = name.lower().encode()
        return [value.decode() for key, value in self.headers if key.lower() == name]

    @property
    def text(self):
        return self.body.decode()


async def channel_request(
    method, path, query_string=b"", headers=(), body=b"", step=64 * 1024
):
    """Send a request through the interface; return the ChannelResponse."""
    app = InterfaceApplication()
    communicator = ApplicationCommunicator(
        app, http_scope(method, path, query_string, headers)
    )
    parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    for i, part in enumerate(parts):
        await communicator.send_input(
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        )
    start = await communicator.receive_output(10)
    content = []
    while True:
        message = await communicator.receive_output(10)
        content.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    return ChannelResponse(start["status"], start["headers"], b"".join(content))


@contextlib.asynccontextmanager
async def running_worker(test):
    """Run a worker on the default layer; keep its startup log quiet."""
    with test.assertLogs("django_fork.channels.worker", "INFO"):
        worker = Worker(get_channel_layer(), threads=2)
        task = asyncio.ensure_future(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 10)


# A small chunk size, so the upload and the download travel as several body
# chunk messages.
@override_settings(CHANNEL_LAYERS=IN_MEMORY_LAYER, CHANNEL_CHUNK_SIZE=64 * 1024)
class ChannelPathTests(DemoTestCase):
    async def test_home(self):
        async with running_worker(self):
            response = await channel_request("GET", "/")
        self.assertEqual(response.status, 200)
        self.assertIn("<code>ChannelRequest</code>", response.text)

    async def test_order_post_with_csrf(self):
        """The form round trip: the CSRF cookie and token, then the post."""
        async with running_worker(self):
            page = await channel_request("GET", "/order/")
            cookie = SimpleCookie(page.header("Set-Cookie")[0])["csrftoken"].value
            token = re.search(
                r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text
            ).group(1)
            form = {
                "csrfmiddlewaretoken": token,
                "name": "Ada",
                "email": "ada@example.com",
                "product": "sticker",
                "quantity": "5",
            }
            headers = [
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"cookie", b"csrftoken=" + cookie.encode()),
            ]
            response = await channel_request(
                "POST", "/order/", headers=headers, body=urlencode(form).encode()
            )
            forbidden = await channel_request(
                "POST", "/order/", headers=headers[:1], body=urlencode(form).encode()
            )
        self.assertEqual(response.status, 200)
        self.assertIn('<td id="total">$20</td>', response.text)
        self.assertEqual(forbidden.status, 403)

    async def test_upload_several_files(self):
        files = upload_files()
        contents = [f.read() for f in files]
        for f in files:
            f.seek(0)
        async with running_worker(self):
            # The demo's own CSRF check: take a token first.
            page = await channel_request("GET", "/upload/")
            cookie = SimpleCookie(page.header("Set-Cookie")[0])["csrftoken"].value
            token = re.search(
                r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text
            ).group(1)
            body = encode_multipart(
                BOUNDARY, {"files": files, "csrfmiddlewaretoken": token}
            )
            response = await channel_request(
                "POST",
                "/upload/",
                headers=[
                    (b"content-type", MULTIPART_CONTENT.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"cookie", b"csrftoken=" + cookie.encode()),
                ],
                body=body,
            )
        self.assertEqual(response.status, 200)
        self.assertIn("<td>notes.txt</td><td>11</td>", response.text)
        self.assertIn("<td>data.bin</td><td>256000</td>", response.text)
        for content in contents:
            self.assertIn(sha256(content), response.text)

    async def test_stream(self):
        async with running_worker(self):
            response = await channel_request("GET", "/stream/", b"lines=4")
            async_response = await channel_request("GET", "/stream/async/")
        self.assertEqual(response.status, 200)
        self.assertEqual(len(response.text.splitlines()), 4)
        self.assertTrue(async_response.text.startswith("async line 1 of 5 at "))
        self.assertEqual(len(async_response.text.splitlines()), 5)

    async def test_download(self):
        async with running_worker(self):
            response = await channel_request("GET", "/download/")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("Content-Length"), [str(DOWNLOAD_SIZE)])
        self.assertEqual(sha256(response.body), sha256(expected_download()))

    async def test_info(self):
        async with running_worker(self):
            response = await channel_request(
                "GET", "/api/info/", b"a=1&a=2&q=%C3%A9t%C3%A9"
            )
        self.assertEqual(response.header("Content-Type"), ["application/json"])
        data = json.loads(response.body)
        self.assertEqual(data["transport"], "ChannelRequest")
        self.assertEqual(data["query"], {"a": ["1", "2"], "q": ["été"]})
        self.assertTrue(data["thread"].startswith("django-fork-worker"))
