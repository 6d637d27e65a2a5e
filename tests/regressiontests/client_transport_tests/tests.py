"""
The channel switch reaches every test client: a REST framework's client,
with a ClientHandler subclass of its own, goes over the channel path through
channel_clients() alone, its get_response() override runs in the worker on
the ChannelRequest, and the response keeps what the view's response carried.
"""

from django.contrib.auth.models import User
from django.test import Client, TestCase, override_settings

from django_fork.core.handlers.channel import ChannelRequest
from django_fork.test.client import (
    ResponseMismatch,
    carry_view_attributes,
    check_same_response,
)
from django_fork.test.transport import channel_clients, channel_transport

from . import views
from .restish import APIClient, AsyncAPIClient, DataResponse


def channel_requests(handler):
    return [r for r in handler.seen if isinstance(r, ChannelRequest)]


@channel_clients()
@override_settings(ROOT_URLCONF="client_transport_tests.urls")
class APIClientOverChannelsTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.user = User.objects.create_user("ada")

    def test_requests_travel_as_messages(self):
        client = APIClient()
        client.force_authenticate(self.user)
        for _ in range(3):
            response = client.post("/whoami/", "n=1", content_type="text/plain")
            self.assertEqual(response.status_code, 200)
        served = channel_requests(client.handler)
        # One ChannelRequest per request, each built from an http.request
        # message with a reply channel: the worker served it.
        self.assertEqual(len(served), 3)
        self.assertTrue(all(r.message["reply_channel"] for r in served))
        self.assertEqual(response.data["request_class"], "ChannelRequest")
        self.assertEqual(response.data["body"], "n=1")

    def test_get_response_override_runs_in_the_worker(self):
        client = APIClient()
        client.force_authenticate(self.user)
        response = client.get("/whoami/")
        (served,) = channel_requests(client.handler)
        # The override ran on the very request the view saw, and what it set
        # there (the forced user) reached the view.
        self.assertEqual(response.data["request_id"], id(served))
        self.assertIs(served._force_user, self.user)
        self.assertEqual(response.data["user"], "ada")

    def test_data_and_view_travel(self):
        response = APIClient().get("/whoami/")
        self.assertIsInstance(response.data, dict)
        self.assertEqual(response.json(), response.data)
        self.assertIs(response.view, views.whoami.__wrapped__)
        self.assertIsInstance(response.renderer_context["request"], ChannelRequest)
        # The response itself was decoded from the reply messages.
        self.assertNotIsInstance(response, DataResponse)

    def test_attribute_a_view_set_travels(self):
        response = self.client.get("/flagged/")
        self.assertEqual(response.flag, "set by the view")
        self.assertEqual(response.content, b"flagged")

    def test_template_response_attributes_travel(self):
        response = self.client.get("/page/")
        self.assertEqual(response.context_data, {"title": "A page"})
        self.assertEqual(response.template_name, "client_transport_tests/page.html")
        self.assertIsInstance(response._request, ChannelRequest)
        self.assertEqual(response.content, b"<h1>A page</h1>\n")

    def test_wire_is_checked_against_the_view_response(self):
        with self.assertRaisesMessage(ResponseMismatch, "a body of 13 bytes"):
            self.client.get("/shapeshifter/")

    def test_view_state_reaches_wsgi_request(self):
        self.client.force_login(self.user)
        response = self.client.get("/whoami/")
        self.assertEqual(response.data["request_class"], "ChannelRequest")
        self.assertEqual(response.wsgi_request.user, self.user)
        self.assertIsNotNone(response.wsgi_request.resolver_match)

    def test_client_built_in_a_view(self):
        response = self.client.get("/nested/")
        self.assertEqual(response.content, b"ChannelRequest inside ChannelRequest")

    def test_switch_off_for_a_block(self):
        client = APIClient()
        with channel_clients(False):
            self.assertIsNone(channel_transport())
            response = client.get("/whoami/")
        self.assertEqual(response.data["request_class"], "WSGIRequest")
        self.assertEqual(channel_requests(client.handler), [])

    def test_middleware_overridden_by_the_test(self):
        with override_settings(MIDDLEWARE=[]):
            response = APIClient().get("/whoami/")
        self.assertEqual(response.data["request_class"], "ChannelRequest")

    async def test_async_client_and_handler(self):
        client = AsyncAPIClient()
        client.force_authenticate(self.user)
        response = await client.get("/whoami/")
        (served,) = channel_requests(client.handler)
        self.assertEqual(response.data["request_id"], id(served))
        self.assertEqual(response.data["user"], "ada")
        self.assertIs(response.view, views.whoami.__wrapped__)


@override_settings(ROOT_URLCONF="client_transport_tests.urls")
class SwitchScopeTests(TestCase):
    def test_off_by_default(self):
        self.assertIsNone(channel_transport())
        response = APIClient().get("/whoami/")
        self.assertEqual(response.data["request_class"], "WSGIRequest")

    def test_context_manager(self):
        with channel_clients():
            response = Client().get("/flagged/")
            self.assertEqual(response.wsgi_request.resolver_match.url_name, None)
        self.assertEqual(response.flag, "set by the view")

    @channel_clients()
    def test_method_decorator(self):
        self.assertEqual(channel_transport(), "default")
        response = APIClient().get("/whoami/")
        self.assertEqual(response.data["request_class"], "ChannelRequest")


class CheckSameResponseTests(TestCase):
    def test_same(self):
        view_response = DataResponse({"a": 1})
        response = DataResponse({"a": 1})
        del response.data
        carry_view_attributes(response, view_response, "GET")
        self.assertEqual(response.data, {"a": 1})

    def test_status_headers_and_body_must_match(self):
        view_response = DataResponse({"a": 1}, status=201)
        view_response["X-Thing"] = "1"
        for response, message in [
            (DataResponse({"a": 1}), "status 200, not 201"),
            (DataResponse({"a": 2}, status=201), "a body of 8 bytes"),
        ]:
            response["X-Thing"] = "1"
            with (
                self.subTest(message),
                self.assertRaisesMessage(ResponseMismatch, message),
            ):
                check_same_response(response, view_response, "GET")
        response = DataResponse({"a": 1}, status=201)
        with self.assertRaisesMessage(ResponseMismatch, "header X-Thing: None"):
            check_same_response(response, view_response, "GET")

    def test_head_has_no_body(self):
        view_response = DataResponse({"a": 1})
        response = DataResponse({"a": 1})
        response.content = b""
        check_same_response(response, view_response, "HEAD")
        with self.assertRaises(ResponseMismatch):
            check_same_response(response, view_response, "GET")
        view_response.status_code = response.status_code = 304
        check_same_response(response, view_response, "GET")


class SettingTests(TestCase):
    @override_settings(TEST_CLIENT_TRANSPORT="channel")
    def test_setting_turns_the_switch_on(self):
        self.assertEqual(channel_transport(), "default")
        with channel_clients(False):
            self.assertIsNone(channel_transport())

    @override_settings(TEST_CLIENT_TRANSPORT="direct")
    def test_direct(self):
        self.assertIsNone(channel_transport())
