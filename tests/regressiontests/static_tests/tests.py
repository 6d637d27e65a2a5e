import email.utils
import gzip
import os
import shutil
import tempfile

from asgiref.testing import ApplicationCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

from django_fork.contrib.staticfiles.asgi import CHUNK_SIZE, StaticRootApplication

CSS = b"body { color: teal; }\n" * 10


async def fallback(scope, receive, send):
    """The wrapped application: answers 404 "fallback" to everything."""
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"fallback"})


class StaticRootApplicationTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="static-tests-")
        cls.addClassCleanup(shutil.rmtree, cls.root)
        os.makedirs(os.path.join(cls.root, "css"))
        cls.write("css/site.css", CSS)
        cls.write("css/site.css.gz", gzip.compress(CSS, mtime=0))
        cls.write("css/site.css.br", b"pretend-brotli")
        cls.write("big.bin", bytes(range(256)) * (CHUNK_SIZE // 64))
        cls.write("empty.txt", b"")
        # Beside STATIC_ROOT, not in it.
        cls.secret = os.path.join(os.path.dirname(cls.root), "secret.txt")
        with open(cls.secret, "wb") as f:
            f.write(b"secret")
        cls.addClassCleanup(os.unlink, cls.secret)
        cls.app = StaticRootApplication(fallback, root=cls.root, url="/static/")

    @classmethod
    def write(cls, name, data):
        with open(os.path.join(cls.root, name), "wb") as f:
            f.write(data)

    async def request(self, path, headers=(), method="GET"):
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        }
        communicator = ApplicationCommunicator(self.app, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        body = b""
        while True:
            message = await communicator.receive_output(5)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await communicator.wait(1)
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return start["status"], headers, body

    async def test_file(self):
        status, headers, body = await self.request("/static/css/site.css")
        self.assertEqual((status, body), (200, CSS))
        self.assertEqual(headers["content-type"], "text/css")
        self.assertEqual(headers["content-length"], str(len(CSS)))
        self.assertEqual(headers["accept-ranges"], "bytes")
        self.assertEqual(headers["vary"], "Accept-Encoding")
        self.assertNotIn("content-encoding", headers)
        mtime = os.stat(os.path.join(self.root, "css/site.css")).st_mtime
        self.assertEqual(
            headers["last-modified"], email.utils.formatdate(mtime, usegmt=True)
        )
        self.assertRegex(headers["etag"], r'^"[0-9a-f]+-[0-9a-f]+"$')

    async def test_large_file_in_chunks(self):
        status, headers, body = await self.request("/static/big.bin")
        self.assertEqual(status, 200)
        self.assertEqual(body, bytes(range(256)) * (CHUNK_SIZE // 64))

    async def test_head(self):
        status, headers, body = await self.request(
            "/static/css/site.css", method="HEAD"
        )
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["content-length"], str(len(CSS)))

    async def test_empty_file(self):
        status, headers, body = await self.request("/static/empty.txt")
        self.assertEqual((status, body, headers["content-length"]), (200, b"", "0"))

    async def test_if_none_match(self):
        _, headers, _ = await self.request("/static/css/site.css")
        etag = headers["etag"]
        for value in [etag, "W/" + etag, '"other", ' + etag, "*"]:
            with self.subTest(value=value):
                status, headers, body = await self.request(
                    "/static/css/site.css", [("If-None-Match", value)]
                )
                self.assertEqual((status, body), (304, b""))
                self.assertEqual(headers["etag"], etag)
        status, _, _ = await self.request(
            "/static/css/site.css", [("If-None-Match", '"other"')]
        )
        self.assertEqual(status, 200)

    async def test_if_modified_since(self):
        _, headers, _ = await self.request("/static/css/site.css")
        status, _, _ = await self.request(
            "/static/css/site.css", [("If-Modified-Since", headers["last-modified"])]
        )
        self.assertEqual(status, 304)
        for value in ["Mon, 01 Jan 1990 00:00:00 GMT", "not a date"]:
            with self.subTest(value=value):
                status, _, _ = await self.request(
                    "/static/css/site.css", [("If-Modified-Since", value)]
                )
                self.assertEqual(status, 200)

    async def test_ranges(self):
        size = len(CSS)
        for value, first, last in [
            ("bytes=0-9", 0, 9),
            ("bytes=10-", 10, size - 1),
            ("bytes=-5", size - 5, size - 1),
            ("bytes=5-100000", 5, size - 1),
            ("bytes=-100000", 0, size - 1),
        ]:
            with self.subTest(range=value):
                status, headers, body = await self.request(
                    "/static/css/site.css", [("Range", value)]
                )
                self.assertEqual(status, 206)
                self.assertEqual(body, CSS[first : last + 1])
                self.assertEqual(
                    headers["content-range"], "bytes %d-%d/%d" % (first, last, size)
                )
                self.assertEqual(headers["content-length"], str(last - first + 1))

    async def test_unsatisfiable_range(self):
        for value in ["bytes=100000-", "bytes=9-5", "bytes=-0"]:
            with self.subTest(range=value):
                status, headers, body = await self.request(
                    "/static/css/site.css", [("Range", value)]
                )
                self.assertEqual((status, body), (416, b""))
                self.assertEqual(headers["content-range"], "bytes */%d" % len(CSS))

    async def test_ranges_answered_whole(self):
        """Several ranges, or an unknown unit, get the whole file."""
        for value in ["bytes=0-1,5-6", "lines=1-2", "bytes=-"]:
            with self.subTest(range=value):
                status, _, body = await self.request(
                    "/static/css/site.css", [("Range", value)]
                )
                self.assertEqual((status, body), (200, CSS))

    async def test_if_range(self):
        _, headers, _ = await self.request("/static/css/site.css")
        status, _, _ = await self.request(
            "/static/css/site.css",
            [("Range", "bytes=0-1"), ("If-Range", headers["etag"])],
        )
        self.assertEqual(status, 206)
        status, _, _ = await self.request(
            "/static/css/site.css", [("Range", "bytes=0-1"), ("If-Range", '"stale"')]
        )
        self.assertEqual(status, 200)

    async def test_precompressed(self):
        for accept, encoding, body in [
            ("gzip, deflate, br", "br", b"pretend-brotli"),
            ("gzip", "gzip", gzip.compress(CSS, mtime=0)),
            ("br;q=0, gzip", "gzip", gzip.compress(CSS, mtime=0)),
            ("identity", None, CSS),
        ]:
            with self.subTest(accept=accept):
                status, headers, got = await self.request(
                    "/static/css/site.css", [("Accept-Encoding", accept)]
                )
                self.assertEqual((status, got), (200, body))
                self.assertEqual(headers.get("content-encoding"), encoding)
                self.assertEqual(headers["content-type"], "text/css")
                self.assertEqual(headers["vary"], "Accept-Encoding")

    async def test_passes_everything_else_on(self):
        for path, method in [
            ("/static/missing.css", "GET"),
            ("/static/css/", "GET"),
            ("/static/../secret.txt", "GET"),
            ("/static/%2e%2e/secret.txt", "GET"),
            ("/static/css/..%2f..%2fsecret.txt", "GET"),
            ("/static/css/site.css", "POST"),
            ("/other/css/site.css", "GET"),
        ]:
            with self.subTest(path=path, method=method):
                status, _, body = await self.request(path, method=method)
                self.assertEqual((status, body), (404, b"fallback"))

    async def test_websocket_passes_on(self):
        seen = []

        async def app(scope, receive, send):
            seen.append(scope["type"])

        wrapped = StaticRootApplication(app, root=self.root, url="/static/")
        await wrapped({"type": "websocket", "path": "/static/css/site.css"}, None, None)
        self.assertEqual(seen, ["websocket"])


class ConfigurationTests(SimpleTestCase):
    @override_settings(STATIC_ROOT=None)
    def test_needs_static_root(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "collectstatic"):
            StaticRootApplication(fallback)

    @override_settings(STATIC_ROOT="/tmp", STATIC_URL="https://cdn.invalid/static/")
    def test_needs_local_static_url(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "local STATIC_URL"):
            StaticRootApplication(fallback)

    @override_settings(STATIC_ROOT="/tmp", STATIC_URL="assets/")
    def test_settings(self):
        app = StaticRootApplication(fallback)
        self.assertEqual((app.root, app.prefix), (os.path.realpath("/tmp"), "/assets/"))
