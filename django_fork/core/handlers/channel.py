"""
The channel transport's adapter to Django's request handling.

ChannelRequest is built from an http.request message (an ASGI HTTP scope plus
a reply channel) and ChannelHandler runs it through the same middleware and
view stack as WSGIHandler: the synchronous path, so a sync view costs what it
costs under WSGI. Neither touches the channel layer: the worker reads the body
and sends the response messages.
"""

import logging
import sys
import traceback
from collections import defaultdict
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core import signals
from django.core.handlers import base
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponseBadRequest,
    HttpResponseServerError,
    QueryDict,
    parse_cookie,
)
from django.urls import set_script_prefix
from django.utils.encoding import repercent_broken_unicode
from django.utils.functional import cached_property

from django_fork.channels.codecs import DEFAULT_CHUNK_SIZE

logger = logging.getLogger("django.request")


def get_script_prefix(message):
    """Return the script prefix of a request message, or the setting's."""
    if settings.FORCE_SCRIPT_NAME is not None:
        return settings.FORCE_SCRIPT_NAME
    return message.get("root_path", "") or ""


def get_path(message):
    """
    Return the request's full path as a str.

    When the interface server passed the raw path, decode it the way
    WSGIRequest decodes PATH_INFO: bytes that are not UTF-8 stay
    percent-encoded instead of turning into U+FFFD.
    """
    raw_path = message.get("raw_path")
    if raw_path:
        return repercent_broken_unicode(unquote_to_bytes(raw_path)).decode()
    return message["path"]


def headers_to_meta(headers):
    """
    Return the META entries for a list of header pairs, by ASGIRequest's
    rules: names with underscores are dropped (they would be ambiguous with
    hyphens), repeated headers are joined with commas.
    """
    meta = defaultdict(list)
    for name, value in headers:
        name = name.decode("latin1").lower()
        if "_" in name:
            continue
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        meta[key].append(value.decode("latin1"))
    return {key: ",".join(values) for key, values in meta.items()}


class ChannelRequest(HttpRequest):
    """A request received as an http.request message."""

    def __init__(self, message, body_file):
        self.message = message
        self._post_parse_error = False
        self._read_started = False
        self.resolver_match = None
        self.script_name = get_script_prefix(message)
        path = get_path(message)
        # Like a WSGI server, split the mount point (root_path) off the path
        # to get PATH_INFO; an empty PATH_INFO means "/". FORCE_SCRIPT_NAME
        # replaces SCRIPT_NAME only, as WSGIRequest does: stripping it from
        # the path instead would lose PATH_INFO when it differs from
        # root_path.
        prefix = (message.get("root_path") or "").rstrip("/")
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            self.path_info = path[len(prefix) :] or "/"
        else:
            self.path_info = path
        self.path = "%s/%s" % (
            self.script_name.rstrip("/"),
            self.path_info.replace("/", "", 1),
        )
        self.method = message["method"].upper()
        self.META = {
            "REQUEST_METHOD": self.method,
            # Like a WSGI server, keep the raw query string's bytes as
            # latin-1 text; GET decodes it with the request's encoding.
            "QUERY_STRING": message["query_string"].decode("latin1"),
            "SCRIPT_NAME": self.script_name,
            "PATH_INFO": self.path_info,
            "SERVER_PROTOCOL": "HTTP/%s" % message["http_version"],
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        client = message.get("client")
        if client:
            self.META["REMOTE_ADDR"] = client[0]
            self.META["REMOTE_HOST"] = client[0]
            # A string, as WSGI servers give it (ASGIRequest gives an int).
            self.META["REMOTE_PORT"] = str(client[1])
        server = message.get("server")
        if server:
            self.META["SERVER_NAME"] = server[0]
            self.META["SERVER_PORT"] = str(server[1])
        else:
            self.META["SERVER_NAME"] = "unknown"
            self.META["SERVER_PORT"] = "0"
        self.META.update(headers_to_meta(message["headers"]))
        self._set_content_type_params(self.META)
        self._stream = body_file

    @cached_property
    def GET(self):
        return QueryDict(self.message["query_string"], encoding=self._encoding)

    def _get_scheme(self):
        return self.message.get("scheme") or super()._get_scheme()

    def _get_post(self):
        if not hasattr(self, "_post"):
            self._load_post_and_files()
        return self._post

    def _set_post(self, post):
        self._post = post

    def _get_files(self):
        if not hasattr(self, "_files"):
            self._load_post_and_files()
        return self._files

    POST = property(_get_post, _set_post)
    FILES = property(_get_files)

    @cached_property
    def COOKIES(self):
        return parse_cookie(self.META.get("HTTP_COOKIE", ""))

    def close(self):
        super().close()
        self._stream.close()


class ChannelHandler(base.BaseHandler):
    """Run http.request messages through Django's synchronous stack."""

    request_class = ChannelRequest

    def __init__(self):
        super().__init__()
        self.load_middleware()
        #: Bytes of response body per message (the CHANNEL_CHUNK_SIZE setting).
        self.chunk_size = getattr(settings, "CHANNEL_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)

    def __call__(self, message, body_file):
        """Return the response to an http.request message and its body."""
        set_script_prefix(get_script_prefix(message))
        signals.request_started.send(sender=self.__class__, scope=message)
        request, response = self.create_request(message, body_file)
        if request is not None:
            response = self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            # Read files in message-sized blocks rather than 4 KB ones.
            response.block_size = self.chunk_size
        return response

    def create_request(self, message, body_file):
        """Return (request, None), or (None, response) for a bad request."""
        try:
            return self.request_class(message, body_file), None
        except UnicodeDecodeError:
            logger.warning(
                "Bad Request (UnicodeDecodeError)",
                exc_info=sys.exc_info(),
                extra={"status_code": 400},
            )
            return None, HttpResponseBadRequest()

    def handle_uncaught_exception(self, request, resolver, exc_info):
        """Last-chance handler: there is no server above to catch errors."""
        try:
            return super().handle_uncaught_exception(request, resolver, exc_info)
        except Exception:
            return HttpResponseServerError(
                traceback.format_exc() if settings.DEBUG else "Internal Server Error",
                content_type="text/plain",
            )
