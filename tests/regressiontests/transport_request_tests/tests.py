"""
The transport-neutral request base (TransportRequest), the ASGI scope's
mapping onto it (ScopeRequest) and BaseHandler's request lifecycle.
"""

import io

from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import request_started
from django.test import SimpleTestCase, override_settings
from django.urls import clear_script_prefix, get_script_prefix

from django_fork.core.handlers.base import BaseHandler
from django_fork.http.transport import (
    ScopeRequest,
    TransportRequest,
    headers_to_meta,
    scope_path,
    scope_path_info,
    scope_script_name,
)


def scope(**overrides):
    base = {
        "type": "http",
        "http_version": "1.1",
        "method": "get",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 51000),
        "server": ("testserver", 80),
    }
    base.update(overrides)
    return base


class HeadersToMetaTests(SimpleTestCase):
    def test_names(self):
        """Content-Length and Content-Type lose the HTTP_ prefix."""
        meta = headers_to_meta(
            [
                (b"content-length", b"3"),
                (b"Content-Type", b"text/plain"),
                (b"x-forwarded-for", b"10.0.0.1"),
            ]
        )
        self.assertEqual(
            meta,
            {
                "CONTENT_LENGTH": "3",
                "CONTENT_TYPE": "text/plain",
                "HTTP_X_FORWARDED_FOR": "10.0.0.1",
            },
        )

    def test_underscores_dropped(self):
        """A name with an underscore could spoof its hyphenated twin."""
        meta = headers_to_meta([(b"x_user", b"admin"), (b"x-user", b"guest")])
        self.assertEqual(meta, {"HTTP_X_USER": "guest"})

    def test_repeated_joined(self):
        meta = headers_to_meta([(b"accept", b"a"), (b"accept", b"b")])
        self.assertEqual(meta, {"HTTP_ACCEPT": "a,b"})

    def test_cookie_crumbs_joined(self):
        """Cookie headers split by HTTP/2 join back as one Cookie header."""
        meta = headers_to_meta([(b"cookie", b"a=1"), (b"cookie", b"b=2")])
        self.assertEqual(meta, {"HTTP_COOKIE": "a=1; b=2"})

    def test_cookie_crumbs_trailing_semicolon(self):
        """A crumb's trailing semicolon is not doubled by the join."""
        meta = headers_to_meta([(b"cookie", b"a=1;"), (b"cookie", b"b=2; ")])
        self.assertEqual(meta, {"HTTP_COOKIE": "a=1; b=2"})

    def test_values_are_latin1(self):
        meta = headers_to_meta([(b"x-name", "café".encode())])
        self.assertEqual(meta["HTTP_X_NAME"].encode("latin1"), "café".encode())


class ScopePathTests(SimpleTestCase):
    def test_root_path_stripped(self):
        self.assertEqual(scope_path_info("/app/x/", "/app", "/app"), "/x/")

    def test_root_path_is_a_whole_segment(self):
        """/app is not the mount point of /application."""
        self.assertEqual(
            scope_path_info("/application/", "/app", "/app"), "/application/"
        )

    def test_nothing_left_is_root(self):
        self.assertEqual(scope_path_info("/app", "/app", "/app"), "/")
        self.assertEqual(scope_path_info("", "", ""), "/")

    def test_forced_script_name_without_root_path(self):
        """Without a mount point, FORCE_SCRIPT_NAME's prefix is stripped."""
        self.assertEqual(scope_path_info("/forced/x", "/forced", ""), "/x")

    def test_root_path_wins_over_forced_script_name(self):
        self.assertEqual(scope_path_info("/app/x", "/forced", "/app"), "/x")

    def test_raw_path_keeps_invalid_utf8_percent_encoded(self):
        self.assertEqual(
            scope_path(scope(path="/caf\ufffd", raw_path=b"/caf%E9")), "/caf%E9"
        )

    def test_rewritten_path_wins_over_raw_path(self):
        """An ASGI middleware that rewrote path is not undone."""
        self.assertEqual(scope_path(scope(path="/new/", raw_path=b"/old/")), "/new/")

    def test_script_name(self):
        self.assertEqual(scope_script_name(scope(root_path="/app")), "/app")
        with override_settings(FORCE_SCRIPT_NAME=""):
            self.assertEqual(scope_script_name(scope(root_path="/app")), "")


class ScopeRequestTests(SimpleTestCase):
    def request(self, body=b"", **overrides):
        return ScopeRequest(scope(**overrides), io.BytesIO(body))

    def test_path_outside_root_path(self):
        """
        A path that root_path is not a whole leading segment of is kept
        whole: nothing is stripped and nothing put before it.
        """
        request = self.request(
            path="/rootprefix/x/", raw_path=b"/rootprefix/x/", root_path="/root"
        )
        self.assertEqual(request.path, "/rootprefix/x/")
        self.assertEqual(request.path_info, "/rootprefix/x/")
        self.assertEqual(request.script_name, "/root")

    def test_meta(self):
        request = self.request(
            path="/app/x/", raw_path=b"/app/x/", root_path="/app", query_string=b"a=1"
        )
        self.assertEqual(request.method, "GET")
        self.assertEqual(request.path, "/app/x/")
        self.assertEqual(request.path_info, "/x/")
        self.assertEqual(request.script_name, "/app")
        self.assertEqual(
            {k: v for k, v in request.META.items() if not k.startswith("wsgi.")},
            {
                "REQUEST_METHOD": "GET",
                "QUERY_STRING": "a=1",
                "SCRIPT_NAME": "/app",
                "PATH_INFO": "/x/",
                "SERVER_NAME": "testserver",
                "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "127.0.0.1",
                "REMOTE_HOST": "127.0.0.1",
                "REMOTE_PORT": "51000",
                "HTTP_HOST": "testserver",
            },
        )

    def test_no_client_or_server(self):
        request = self.request(client=None, server=None)
        self.assertEqual(request.META["SERVER_NAME"], "unknown")
        self.assertEqual(request.META["SERVER_PORT"], "0")
        self.assertNotIn("REMOTE_ADDR", request.META)

    @override_settings(FORCE_SCRIPT_NAME="/forced")
    def test_path_carries_forced_script_name(self):
        request = self.request(path="/x/", raw_path=b"/x/")
        self.assertEqual(request.path, "/forced/x/")
        self.assertEqual(request.path_info, "/x/")

    def test_query_string_as_wsgi(self):
        """QUERY_STRING is latin-1 text; GET decodes with request.encoding."""
        request = self.request(query_string="q=café".encode())
        self.assertEqual(request.META["QUERY_STRING"], "q=cafÃ©")
        self.assertEqual(request.GET["q"], "café")
        request = self.request(
            query_string=b"q=caf%E9",
            headers=[(b"content-type", b"text/plain; charset=iso-8859-1")],
        )
        self.assertEqual(request.GET["q"], "café")

    def test_query_string_not_utf8(self):
        """As WSGIRequest: QueryDict falls back to latin-1, no error."""
        self.assertEqual(self.request(query_string=b"q=\xff").GET["q"], "\xff")

    def test_str_query_string(self):
        self.assertEqual(self.request(query_string="q=1").GET["q"], "1")

    def test_cookies_decoded_as_utf8(self):
        request = self.request(headers=[(b"cookie", "name=café".encode())])
        self.assertEqual(request.COOKIES, {"name": "café"})

    def test_scheme(self):
        self.assertEqual(self.request(scheme="https").scheme, "https")
        self.assertEqual(self.request(scheme=None).scheme, "http")

    def test_post_and_body(self):
        request = self.request(
            body=b"a=1&b=2",
            method="POST",
            headers=[
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", b"7"),
            ],
        )
        self.assertEqual(request.POST.dict(), {"a": "1", "b": "2"})
        self.assertEqual(request.body, b"a=1&b=2")
        self.assertEqual(dict(request.FILES), {})

    def test_close_closes_body_file(self):
        body_file = io.BytesIO(b"")
        request = ScopeRequest(scope(), body_file)
        request.close()
        self.assertTrue(body_file.closed)


class BrokenRequest(ScopeRequest):
    def __init__(self, scope, body_file):
        b"\xff".decode()


class Handler(BaseHandler):
    request_class = ScopeRequest

    def __init__(self, chunk_size=None):
        super().__init__()
        self.chunk_size = chunk_size
        self.load_middleware()


@override_settings(ROOT_URLCONF="transport_request_tests.urls", MIDDLEWARE=[])
class LifecycleTests(SimpleTestCase):
    def tearDown(self):
        clear_script_prefix()

    def test_start_request(self):
        """start_request() sets the script prefix and sends request_started."""
        received = []

        def receiver(sender, signal, **kwargs):
            received.append((sender, kwargs))

        request_started.connect(receiver)
        self.addCleanup(request_started.disconnect, receiver)
        Handler().start_request("/app/", scope="the scope")
        self.assertEqual(get_script_prefix(), "/app/")
        self.assertEqual(received, [(Handler, {"scope": "the scope"})])

    def test_respond(self):
        handler = Handler()
        response = handler.respond(scope(), io.BytesIO())
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"hello")
        self.assertIs(response._handler_class, Handler)
        response.close()

    def test_undecodable_input_is_400(self):
        handler = Handler()
        handler.request_class = BrokenRequest
        with self.assertLogs("django.request", "WARNING") as logs:
            response = handler.respond(scope(), io.BytesIO())
        self.assertEqual(response.status_code, 400)
        self.assertIn("Bad Request (UnicodeDecodeError)", logs.output[0])
        self.assertIs(response._handler_class, Handler)

    def test_file_block_size(self):
        """A FileResponse is read in blocks of the transport's chunk size."""
        for chunk_size, block_size in ((None, 4096), (65536, 65536)):
            with self.subTest(chunk_size=chunk_size):
                handler = Handler(chunk_size)
                response = handler.respond(
                    scope(path="/download/", raw_path=b"/download/"), io.BytesIO()
                )
                self.assertEqual(response.block_size, block_size)
                response.close()


class DjangoRequestsTests(SimpleTestCase):
    def test_handlers_requests_share_the_base(self):
        """
        Django's request classes are built on the transport-neutral base
        once the series has rebuilt them; stock Django's are not.
        """
        rebuilt = issubclass(ASGIRequest, ScopeRequest)
        self.assertEqual(issubclass(WSGIRequest, TransportRequest), rebuilt)
        if not rebuilt:
            self.skipTest("Django's own handlers keep their own copies.")
        self.assertNotIn("GET", vars(WSGIRequest))
        self.assertNotIn("__init__", vars(ASGIRequest))
