"""ChannelClient and AsyncChannelClient: the test clients over channels."""

import threading

from django.contrib.auth.models import User
from django.core.signals import request_started
from django.test import Client, override_settings
from django.urls import reverse

from django_fork.channels.codecs import request_message
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.messages import HTTP_REQUEST_CHANNEL
from django_fork.core.handlers.channel import ChannelRequest
from django_fork.test import (
    AsyncChannelClient,
    ChannelClient,
    ChannelSimpleTestCase,
    ChannelTestCase,
)
from django_fork.test.client import http_scope, scope_from_environ

from .models import Note

IN_MEMORY = "django_fork.channels.layers.inmemory.InMemoryChannelLayer"


def sent_on(layer, prefix):
    """Return how many messages were sent on channels starting with prefix."""
    return sum(
        stats["sent"]
        for name, stats in layer.stats_sync().items()
        if name.startswith(prefix)
    )


@override_settings(ROOT_URLCONF="channel_test_utils.urls")
class ChannelClientTests(ChannelTestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = User.objects.create_user("ada", password="secret")

    def test_request_travels_the_channel_path(self):
        """The request and its reply are messages on the test's layer."""
        response = self.client.get("/describe/")
        self.assertEqual(response.status_code, 200)
        layer = get_channel_layer()
        self.assertEqual(sent_on(layer, HTTP_REQUEST_CHANNEL), 1)
        self.assertEqual(sent_on(layer, "http.response."), 1)
        self.assertIsInstance(response.wsgi_request, ChannelRequest)
        self.assertEqual(response.json()["request_class"], "ChannelRequest")
        self.assertNothingSent(HTTP_REQUEST_CHANNEL)

    def test_view_runs_in_the_test_thread(self):
        """As with AsyncClient, a sync view runs in the test's thread."""
        data = self.client.get("/describe/").json()
        self.assertIs(
            data["main_thread"], threading.current_thread() is (threading.main_thread())
        )
        self.assertFalse(data["in_event_loop"])

    def test_methods(self):
        for method in ("get", "post", "put", "patch", "delete", "options", "trace"):
            with self.subTest(method=method):
                response = getattr(self.client, method)("/describe/")
                self.assertEqual(response.json()["method"], method.upper())
        response = self.client.generic("PROPFIND", "/describe/")
        self.assertEqual(response.json()["method"], "PROPFIND")

    def test_head_has_no_body(self):
        response = self.client.head("/describe/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"")
        self.assertEqual(response.wsgi_request.method, "HEAD")

    def test_query_params_headers_and_body(self):
        response = self.client.put(
            "/describe/?a=1",
            "raw body",
            content_type="text/plain",
            headers={"X-Custom": "yes"},
        )
        data = response.json()
        self.assertEqual(data["query"], {"a": "1"})
        self.assertEqual(data["x_custom"], "yes")
        self.assertEqual(data["body"], "raw body")
        response = self.client.get("/describe/", query_params={"q": "é"})
        self.assertEqual(response.json()["query"], {"q": "é"})

    def test_secure_and_host(self):
        data = self.client.get("/describe/", secure=True).json()
        self.assertEqual(data["scheme"], "https")
        self.assertEqual(data["host"], "testserver")
        data = self.client.get("/describe/", headers={"host": "example.com"}).json()
        self.assertEqual(data["host"], "example.com")

    def test_non_ascii_and_percent_path(self):
        """The view sees the path WSGIRequest would: a "%" stays a "%"."""
        response = self.client.get("/d%C3%A9scribe/%2525/")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.wsgi_request.path, "/déscribe/%25/")

    def test_script_name(self):
        response = self.client.get("/describe/", SCRIPT_NAME="/app")
        data = response.json()
        self.assertEqual(data["path"], "/app/describe/")
        self.assertEqual(data["path_info"], "/describe/")
        self.assertEqual(data["script_name"], "/app")

    def test_remote_addr(self):
        data = self.client.get("/describe/", REMOTE_ADDR="10.0.0.7").json()
        self.assertEqual(data["remote_addr"], "10.0.0.7")

    def test_post_form_and_files(self):
        with open(__file__, "rb") as f:
            response = self.client.post("/upload/", {"name": "Ada", "file": f})
        data = response.json()
        self.assertEqual(data["post"], {"name": "Ada"})
        with open(__file__) as f:
            self.assertEqual(data["files"]["file"], f.read())

    def test_large_bodies_travel_in_chunks(self):
        """Bodies above CHANNEL_CHUNK_SIZE go as chunk messages both ways."""
        with override_settings(CHANNEL_CHUNK_SIZE=1024):
            response = self.client.post(
                "/describe/", "x" * 5000, content_type="text/plain"
            )
            self.assertEqual(response.json()["body"], "x" * 5000)
            big = self.client.get("/big/", {"size": 5000})
        self.assertFalse(big.streaming)
        self.assertEqual(big.content, b"x" * 5000)
        layer = get_channel_layer()
        self.assertGreater(sent_on(layer, "http.request.body?"), 1)
        self.assertGreater(sent_on(layer, "http.response.body?"), 1)

    def test_streaming_response(self):
        response = self.client.get("/stream/")
        self.assertTrue(response.streaming)
        self.assertEqual(b"".join(response.streaming_content), b"part 0;part 1;part 2;")
        self.assertEqual(response["Content-Type"], "text/plain")

    def test_async_view(self):
        response = self.client.get("/async/", {"n": "7"})
        self.assertContains(response, "async 7")

    def test_follow(self):
        response = self.client.get("/redirect/", follow=True)
        self.assertEqual(response.redirect_chain, [("/describe/?redirected=1", 302)])
        self.assertEqual(response.json()["query"], {"redirected": "1"})
        self.assertEqual(response.resolver_match.route, "describe/")
        response = self.client.get("/redirect/")
        self.assertRedirects(
            response, "/describe/?redirected=1", fetch_redirect_response=False
        )

    def test_cookies(self):
        response = self.client.get("/set-cookie/")
        cookie = response.cookies["flavour"]
        self.assertEqual(cookie.value, "ginger")
        self.assertEqual(cookie["max-age"], "3600")
        self.assertIs(cookie["httponly"], True)
        self.assertEqual(response.cookies["colour"].value, "blue")
        data = self.client.get("/describe/").json()
        self.assertEqual(data["cookies"], {"colour": "blue", "flavour": "ginger"})

    def test_templates_and_context(self):
        response = self.client.get(reverse("greeting"), {"name": "Ada"})
        self.assertContains(response, "Hello, Ada!")
        self.assertTemplateUsed(response, "channel_test_utils/greeting.html")
        self.assertEqual(response.context["name"], "Ada")
        self.assertEqual(
            [t.name for t in response.templates], ["channel_test_utils/greeting.html"]
        )

    def test_json(self):
        self.assertEqual(self.client.get("/json/").json(), {"answer": 42})

    def test_response_attributes(self):
        response = self.client.get("/describe/", {"a": "1"})
        self.assertIs(response.client, self.client)
        self.assertEqual(response.request["PATH_INFO"], "/describe/")
        self.assertEqual(response.wsgi_request.GET["a"], "1")
        self.assertEqual(response.resolver_match.route, "describe/")
        self.assertIsNone(response.exc_info)

    def test_view_exception_is_raised(self):
        with self.assertRaisesMessage(KeyError, "boom"):
            self.client.get("/boom/")

    def test_raise_request_exception_false(self):
        client = ChannelClient(raise_request_exception=False)
        response = client.get("/boom/")
        self.assertEqual(response.status_code, 500)
        self.assertIs(response.exc_info[0], KeyError)

    @override_settings(
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ]
    )
    def test_enforce_csrf_checks(self):
        self.assertEqual(self.client.post("/form/").status_code, 200)
        client = ChannelClient(enforce_csrf_checks=True)
        self.assertEqual(client.post("/form/").status_code, 403)

    def test_login_force_login_logout(self):
        self.assertEqual(self.client.get("/private/").status_code, 302)
        self.assertTrue(self.client.login(username="ada", password="secret"))
        self.assertContains(self.client.get("/private/"), "private for ada")
        self.client.logout()
        self.assertEqual(self.client.get("/private/").status_code, 302)
        self.client.force_login(self.user)
        self.assertContains(self.client.get("/private/"), "private for ada")
        self.assertEqual(self.client.session["_auth_user_id"], str(self.user.pk))

    def test_views_share_the_test_transaction(self):
        """Views see the test's rows; the test sees the view's."""
        Note.objects.create(text="from the test")
        response = self.client.post("/notes/", {"text": "from the view"})
        data = response.json()
        self.assertEqual(data["notes"], ["from the test", "from the view"])
        self.assertTrue(data["in_atomic_block"])
        self.assertEqual(Note.objects.count(), 2)

    def test_requests_queued_earlier_are_served_first(self):
        """The in-process worker serves http.request as a worker would."""
        scope = http_scope("GET", b"/json/", headers=[[b"host", b"testserver"]])
        get_channel_layer().send_sync(
            HTTP_REQUEST_CHANNEL, request_message(scope, "test.reply!elsewhere")
        )
        self.assertEqual(self.client.get("/describe/").status_code, 200)
        self.assertMessageSent(
            "test.reply!elsewhere", type="http.response.start", status=200
        )

    def test_failure_outside_the_view_is_raised(self):
        """What fails outside the view's error handling reaches the test."""

        def fail(**kwargs):
            raise RuntimeError("request_started failed")

        request_started.connect(fail)
        self.addCleanup(request_started.disconnect, fail)
        with self.assertRaisesMessage(RuntimeError, "request_started failed"):
            self.client.get("/describe/")

    @override_settings(
        CHANNEL_LAYERS={
            "default": {"BACKEND": IN_MEMORY},
            "other": {"BACKEND": IN_MEMORY},
        }
    )
    def test_other_layer(self):
        client = ChannelClient(layer="other")
        self.assertEqual(client.get("/describe/").status_code, 200)
        self.assertEqual(sent_on(get_channel_layer("other"), HTTP_REQUEST_CHANNEL), 1)
        self.assertEqual(sent_on(get_channel_layer(), HTTP_REQUEST_CHANNEL), 0)

    @override_settings(CHANNEL_ROUTING="channel_test_utils.http_routing")
    def test_routed_http_consumer(self):
        """A consumer CHANNEL_ROUTING gives http.request serves the client."""
        response = self.client.get("/describe/")
        self.assertEqual(response.content, b"from the routed consumer")
        self.assertIsNone(response.wsgi_request)

    def test_a_stock_client_in_the_same_test(self):
        """Stock Client() keeps calling views directly."""
        response = Client().get("/describe/")
        self.assertEqual(response.json()["request_class"], "WSGIRequest")


@override_settings(ROOT_URLCONF="channel_test_utils.urls")
class AsyncChannelClientTests(ChannelTestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = User.objects.create_user("ada", password="secret")

    async def test_get(self):
        response = await self.async_client.get("/describe/", {"a": "1"})
        self.assertIsInstance(self.async_client, AsyncChannelClient)
        self.assertEqual(response.json()["query"], {"a": "1"})
        self.assertIsInstance(response.asgi_request, ChannelRequest)
        self.assertEqual(response.resolver_match.route, "describe/")
        layer = get_channel_layer()
        self.assertEqual(sent_on(layer, HTTP_REQUEST_CHANNEL), 1)

    async def test_post_and_follow(self):
        response = await self.async_client.post("/upload/", {"name": "Ada"})
        self.assertEqual(response.json()["post"], {"name": "Ada"})
        response = await self.async_client.get("/redirect/", follow=True)
        self.assertEqual(response.json()["query"], {"redirected": "1"})

    async def test_async_view(self):
        response = await self.async_client.get("/async/", {"n": "3"})
        self.assertContains(response, "async 3")

    async def test_streaming(self):
        response = await self.async_client.get("/stream/")
        self.assertFalse(response.is_async)
        self.assertEqual(b"".join(response.streaming_content), b"part 0;part 1;part 2;")
        response = await self.async_client.get("/astream/")
        self.assertTrue(response.is_async)
        parts = [part async for part in response.streaming_content]
        self.assertEqual(parts, [b"async 0;", b"async 1;"])

    async def test_exception(self):
        with self.assertRaisesMessage(KeyError, "boom"):
            await self.async_client.get("/boom/")

    async def test_force_login(self):
        await self.async_client.aforce_login(self.user)
        response = await self.async_client.get("/private/")
        self.assertContains(response, "private for ada")


@override_settings(ROOT_URLCONF="channel_test_utils.urls")
class ScopeTests(ChannelSimpleTestCase):
    def test_scope_from_environ(self):
        environ = self.client._base_environ(
            PATH_INFO="/a b/",
            QUERY_STRING="x=1",
            SCRIPT_NAME="/app",
            HTTP_X_THING="1",
            CONTENT_TYPE="text/plain",
            SERVER_PORT="8000",
        )
        scope, body = scope_from_environ(environ)
        self.assertEqual(scope["path"], "/app/a b/")
        self.assertEqual(scope["raw_path"], b"/app/a%20b/")
        self.assertEqual(scope["root_path"], "/app")
        self.assertEqual(scope["query_string"], b"x=1")
        self.assertIn([b"x-thing", b"1"], scope["headers"])
        self.assertIn([b"content-type", b"text/plain"], scope["headers"])
        self.assertEqual(scope["server"], ["testserver", 8000])
        self.assertEqual(scope["client"], ["127.0.0.1", 0])
        self.assertEqual(body, b"")
