"""
The overlay's reach into the test clients' handlers: the transport
middleware, kept first in MIDDLEWARE while a switch is active. (The patch
series changes ClientHandler itself and has none of this.)
"""

from django.conf import settings
from django.http import HttpResponse
from django.test import (
    RequestFactory,
    SimpleTestCase,
    modify_settings,
    override_settings,
)

from django_fork.test.transport import (
    CHANNEL_TRANSPORT_MIDDLEWARE,
    ChannelTransportMiddleware,
    channel_clients,
)

from .restish import APIClient


@override_settings(ROOT_URLCONF="client_transport_tests.urls")
class MiddlewareReachTests(SimpleTestCase):
    def test_first_while_a_switch_is_active(self):
        self.assertNotIn(CHANNEL_TRANSPORT_MIDDLEWARE, settings.MIDDLEWARE)
        with channel_clients():
            self.assertEqual(settings.MIDDLEWARE[0], CHANNEL_TRANSPORT_MIDDLEWARE)
            with channel_clients(False):
                self.assertEqual(
                    settings.MIDDLEWARE.count(CHANNEL_TRANSPORT_MIDDLEWARE), 1
                )
        self.assertNotIn(CHANNEL_TRANSPORT_MIDDLEWARE, settings.MIDDLEWARE)

    def test_kept_first_when_a_test_overrides_middleware(self):
        middleware = ["django.middleware.common.CommonMiddleware"]
        with channel_clients():
            with override_settings(MIDDLEWARE=middleware):
                self.assertEqual(
                    settings.MIDDLEWARE, [CHANNEL_TRANSPORT_MIDDLEWARE] + middleware
                )
            with modify_settings(
                MIDDLEWARE={"prepend": "django.middleware.gzip.GZipMiddleware"}
            ):
                self.assertEqual(settings.MIDDLEWARE[0], CHANNEL_TRANSPORT_MIDDLEWARE)
        with override_settings(MIDDLEWARE=middleware):
            self.assertEqual(settings.MIDDLEWARE, middleware)

    def test_requests_not_from_a_test_client_pass(self):
        """A live server's handler, for one, serves its requests itself."""
        request = RequestFactory().get("/")
        middleware = ChannelTransportMiddleware(lambda request: HttpResponse("here"))
        with channel_clients():
            self.assertEqual(middleware(request).content, b"here")

    @override_settings(TEST_CLIENT_TRANSPORT="channel")
    @modify_settings(MIDDLEWARE={"prepend": CHANNEL_TRANSPORT_MIDDLEWARE})
    def test_setting_with_the_middleware_in_test_settings(self):
        response = APIClient().get("/whoami/")
        self.assertEqual(response.data["request_class"], "ChannelRequest")

    @override_settings(TEST_CLIENT_TRANSPORT="channel")
    def test_setting_alone_does_not_reach(self):
        response = APIClient().get("/whoami/")
        self.assertEqual(response.data["request_class"], "WSGIRequest")

    def test_get_response_override_runs_twice(self):
        """In the test's process on the WSGIRequest, then in the worker."""
        client = APIClient()
        with channel_clients():
            client.get("/whoami/")
        self.assertEqual(
            [type(r).__name__ for r in client.handler.seen],
            ["WSGIRequest", "ChannelRequest"],
        )

    def test_wsgi_request_is_the_test_process_request(self):
        with channel_clients():
            response = APIClient().get("/whoami/")
        self.assertEqual(type(response.wsgi_request).__name__, "WSGIRequest")
        self.assertEqual(response.wsgi_request.environ["PATH_INFO"], "/whoami/")
