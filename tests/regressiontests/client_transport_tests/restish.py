"""
A REST framework's test client and responses, in miniature: what such
frameworks do that a test suite over channels must survive.

APIClient is a Client subclass that installs its own ClientHandler subclass,
ForceAuthClientHandler, whose get_response() override marks the request
with the user a test forced; api_view() authenticates from that mark and
returns a DataResponse, whose data attribute the tests read.
"""

import functools
import json

from django.http import HttpResponse
from django.test import AsyncClient, Client
from django.test.client import AsyncClientHandler, ClientHandler


class DataResponse(HttpResponse):
    """A response that keeps the data it renders as JSON."""

    def __init__(self, data, status=200):
        super().__init__(
            json.dumps(data), content_type="application/json", status=status
        )
        self.data = data


def api_view(func):
    """Authenticate from the forced user, call func, note the view."""

    @functools.wraps(func)
    def view(request, *args, **kwargs):
        forced = getattr(request, "_force_user", None)
        if forced is not None:
            request.user = forced
        response = func(request, *args, **kwargs)
        response.view = func
        response.renderer_context = {"request": request}
        return response

    return view


class ForceAuthClientHandler(ClientHandler):
    """Mark each request with the forced user; keep the requests seen."""

    def __init__(self, *args, **kwargs):
        self._force_user = None
        #: Every request get_response() was called with.
        self.seen = []
        super().__init__(*args, **kwargs)

    def get_response(self, request):
        self.seen.append(request)
        request._force_user = self._force_user
        return super().get_response(request)


class AsyncForceAuthClientHandler(AsyncClientHandler):
    def __init__(self, *args, **kwargs):
        self._force_user = None
        self.seen = []
        super().__init__(*args, **kwargs)

    async def get_response_async(self, request):
        self.seen.append(request)
        request._force_user = self._force_user
        return await super().get_response_async(request)


class APIClient(Client):
    def __init__(self, enforce_csrf_checks=False, **defaults):
        super().__init__(**defaults)
        self.handler = ForceAuthClientHandler(enforce_csrf_checks)

    def force_authenticate(self, user):
        self.handler._force_user = user


class AsyncAPIClient(AsyncClient):
    def __init__(self, enforce_csrf_checks=False, **defaults):
        super().__init__(**defaults)
        self.handler = AsyncForceAuthClientHandler(enforce_csrf_checks)

    def force_authenticate(self, user):
        self.handler._force_user = user
