"""
The transport-neutral request lifecycle, for the handlers of every transport.

BaseHandler below holds what Django's WSGIHandler and ASGIHandler each do
around get_response(): set the script prefix, send request_started, build the
request (400 when the input cannot be decoded), and mark the response with
the handler that made it. A handler for a transport only reads the
transport's input and writes the response to it. In Django these methods are
BaseHandler's own.
"""

import logging
import sys

from django.core import signals
from django.core.exceptions import RequestDataTooBig
from django.core.handlers import base
from django.http import FileResponse, HttpResponse, HttpResponseBadRequest
from django.urls import set_script_prefix

logger = logging.getLogger("django.request")


class BaseHandler(base.BaseHandler):
    # Bytes per block a transport writes a FileResponse in, or None to keep
    # FileResponse's own block size.
    chunk_size = None

    def start_request(self, script_prefix, **kwargs):
        """
        Begin a request: set the script prefix and send request_started with
        kwargs, the transport's input (environ=..., scope=...).
        """
        set_script_prefix(script_prefix)
        signals.request_started.send(sender=self.__class__, **kwargs)

    async def astart_request(self, script_prefix, **kwargs):
        """Begin a request, as start_request() does, on the event loop."""
        set_script_prefix(script_prefix)
        await signals.request_started.asend(sender=self.__class__, **kwargs)

    def create_request(self, *args):
        """
        Build request_class(*args); return (request, None), or (None, an
        error response) when the transport's input is not a valid request.
        """
        try:
            return self.request_class(*args), None
        except UnicodeDecodeError:
            logger.warning(
                "Bad Request (UnicodeDecodeError)",
                exc_info=sys.exc_info(),
                extra={"status_code": 400},
            )
            return None, HttpResponseBadRequest()
        except RequestDataTooBig:
            return None, HttpResponse("413 Payload too large", status=413)

    def respond(self, *args):
        """
        Return the response to the request that request_class builds from
        args, after start_request().
        """
        request, response = self.create_request(*args)
        if request is not None:
            response = self.get_response(request)
        return self.prepare_response(response)

    def prepare_response(self, response):
        """Ready a response from get_response() for the transport."""
        response._handler_class = self.__class__
        if self.chunk_size is not None and isinstance(response, FileResponse):
            # The transport sends the file in blocks of its message size.
            response.block_size = self.chunk_size
        return response
