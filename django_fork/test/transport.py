"""
The switch that sends every test client's requests over the channel path.

django.test.Client and AsyncClient, every subclass of them and every subclass
of their handlers, serve a request with their handler. With the switch on,
the handler's request travels the channel path instead of going straight to
the middleware: the interface sends it as an http.request message on the
layer, an in-process worker builds a ChannelRequest from the message and
serves it with the test client's own handler (so a subclass's get_response()
runs there, on the ChannelRequest), and the response is decoded from the
reply messages.

The switch is on while channel_clients() is active (a decorator or a context
manager), for a whole run with the test runner's --channels (or the pytest
plugin's), or when the TEST_CLIENT_TRANSPORT setting is "channel".

The overlay reaches the handlers through their middleware chain, which
Django's ClientHandler and AsyncClientHandler build from MIDDLEWARE and call
on every request: ChannelTransportMiddleware, first in MIDDLEWARE while the
switch can be on, takes the request from there. The patch series changes
ClientHandler.__call__() itself and needs no middleware.
"""

import sys

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.test.client import AsyncClientHandler
from django.test.utils import TestContextDecorator

from django_fork.channels.layers import DEFAULT_CHANNEL_LAYER_ALIAS
from django_fork.core.handlers.channel import ChannelRequest
from django_fork.test.client import (
    _ClientChannelHandler,
    _ExchangeMixin,
    _scope_from_test_scope,
    scope_from_environ,
)

__all__ = [
    "channel_clients",
    "channel_transport",
    "enable_channel_transport",
]

CHANNEL_TRANSPORT_MIDDLEWARE = "django_fork.test.transport.ChannelTransportMiddleware"

# (enabled, layer alias) pushed by channel_clients() and the run-wide switch;
# the last one wins, the setting applies when there is none.
_switches = []


def channel_transport():
    """
    Return the alias of the layer the test clients' requests travel, or None
    if they go straight to the middleware, as on stock Django.
    """
    if _switches:
        enabled, layer = _switches[-1]
        return layer if enabled else None
    if getattr(settings, "TEST_CLIENT_TRANSPORT", "direct") == "channel":
        return DEFAULT_CHANNEL_LAYER_ALIAS
    return None


class channel_clients(TestContextDecorator):
    """
    Send the requests of every test client over the channel path (on the
    given layer alias), or, with enabled=False, straight to the middleware.
    A decorator for a test method or a test case class, or a context manager.
    """

    def __init__(self, enabled=True, *, layer=DEFAULT_CHANNEL_LAYER_ALIAS):
        self.switch = (enabled, layer)
        self.reach = MiddlewareReach()
        super().__init__()

    def enable(self):
        self.reach.enable()
        _switches.append(self.switch)

    def disable(self):
        _switches.remove(self.switch)
        self.reach.disable()


def enable_channel_transport(enabled=True, *, layer=DEFAULT_CHANNEL_LAYER_ALIAS):
    """
    Turn the switch on (or off) for the rest of the process, as a test
    runner's --channels does; return the function that turns it back.
    """
    switch = channel_clients(enabled, layer=layer)
    switch.enable()
    return switch.disable


class _HandlerChannelHandler(_ClientChannelHandler):
    """
    The worker's ChannelHandler for a test client's handler: it serves the
    ChannelRequest with that handler's get_response() (a subclass's override
    included) and middleware.
    """

    def __init__(self, client_handler):
        self.client_handler = client_handler
        super().__init__(client_handler.enforce_csrf_checks)

    def load_middleware(self, is_async=False):
        # The client handler's middleware serves the request.
        pass

    def get_response(self, request):
        self.enforce_csrf_checks = self.client_handler.enforce_csrf_checks
        return super().get_response(request)

    def serve(self, request):
        if isinstance(self.client_handler, AsyncClientHandler):
            return async_to_sync(self.client_handler.get_response_async)(request)
        return self.client_handler.get_response(request)


def _exchange_for(handler, layer):
    # Cheap to build: it loads no middleware of its own.
    exchange = _ExchangeMixin(handler.enforce_csrf_checks, layer=layer)
    return exchange, _HandlerChannelHandler(handler)


def serve_environ(handler, environ, body, layer):
    """
    Serve a ClientHandler's request (its environ and body) over the channel
    path; return the response, whose wsgi_request is the ChannelRequest.
    """
    scope, _ = scope_from_environ({**environ, "wsgi.input": None})
    exchange, channel_handler = _exchange_for(handler, layer)
    response, request = async_to_sync(exchange.exchange)(scope, body, channel_handler)
    response.wsgi_request = request
    return response


async def aserve_scope(handler, scope, body, layer):
    """
    Serve an AsyncClientHandler's request (its scope and body) over the
    channel path; return the response, whose asgi_request is the
    ChannelRequest.
    """
    scope, _ = _scope_from_test_scope({**scope, "_body_file": None})
    exchange, channel_handler = _exchange_for(handler, layer)
    response, request = await exchange.exchange(scope, body, channel_handler)
    response.asgi_request = request
    return response


class MiddlewareReach:
    """
    Keep ChannelTransportMiddleware first in MIDDLEWARE while a switch is
    active, so that the middleware chain of every test client's handler
    starts with it: the overlay's reach into the handlers. (The patch series
    has none of it: ClientHandler.__call__() and AsyncClientHandler.__call__()
    ask channel_transport() themselves.)
    """

    #: How many switches are active.
    active = 0

    def __init__(self):
        # Imported here: the patch series has no MiddlewareReach.
        from django.test.utils import modify_settings

        self.middleware = modify_settings(
            MIDDLEWARE={"prepend": CHANNEL_TRANSPORT_MIDDLEWARE}
        )

    def enable(self):
        self.middleware.enable()
        MiddlewareReach.active += 1

    def disable(self):
        MiddlewareReach.active -= 1
        self.middleware.disable()


@receiver(setting_changed)
def keep_transport_first(*, setting, **kwargs):
    """
    Keep ChannelTransportMiddleware first when a test overrides MIDDLEWARE
    while a switch is active: the middleware before it would run in the
    test's process, not in the worker.
    """
    if setting != "MIDDLEWARE" or not MiddlewareReach.active:
        return
    middleware = list(settings.MIDDLEWARE)
    if middleware[:1] != [CHANNEL_TRANSPORT_MIDDLEWARE]:
        settings.MIDDLEWARE = [CHANNEL_TRANSPORT_MIDDLEWARE] + [
            path for path in middleware if path != CHANNEL_TRANSPORT_MIDDLEWARE
        ]


def _give_state(channel_request, request):
    """
    Copy what middleware and the view set on the ChannelRequest (user,
    session, resolver_match...) onto request, the WSGIRequest or ASGIRequest
    that Django's handler attaches to the response.
    """
    if channel_request is None:
        return
    # What a request is built from, which request keeps as it is.
    wire = {"environ", "scope", "message", "META", "_stream", "_read_started"}
    own = vars(request)
    for name, value in vars(channel_request).items():
        if name in wire:
            continue
        if name not in own or name == "resolver_match":
            setattr(request, name, value)


def _calling_handler(request):
    """
    Return the ClientHandler or AsyncClientHandler whose __call__() built
    request, from the call stack; None if no test client handler did (a live
    server's WSGIHandler, for one).
    """
    from django.test.client import ClientHandler

    codes = {ClientHandler.__call__.__code__, AsyncClientHandler.__call__.__code__}
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code in codes and frame.f_locals.get("request") is request:
            return frame.f_locals.get("self")
        frame = frame.f_back
    return None


def _body(request):
    if hasattr(request, "_body"):
        return request.body
    return request.read()


class ChannelTransportMiddleware:
    """
    Serve a test client's request over the channel path while the switch is
    on; otherwise, and for the ChannelRequest the worker serves, pass it on.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _transport(self, request):
        if isinstance(request, ChannelRequest):
            return None, None
        layer = channel_transport()
        if layer is None:
            return None, None
        return _calling_handler(request), layer

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        handler, layer = self._transport(request)
        if handler is None:
            return self.get_response(request)
        response = serve_environ(handler, request.environ, _body(request), layer)
        _give_state(response.wsgi_request, request)
        return response

    async def __acall__(self, request):
        handler, layer = self._transport(request)
        if handler is None:
            return await self.get_response(request)
        response = await aserve_scope(handler, request.scope, _body(request), layer)
        _give_state(response.asgi_request, request)
        return response
