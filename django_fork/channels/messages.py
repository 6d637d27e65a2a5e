"""
The message schema of the channel transport, one TypedDict per message.

docs/ref/channel-messages.txt is the prose form of this module; keep the two
in step. Every value is JSON-capable or bytes; pairs are two-item lists (a
wire format turns tuples into lists anyway).
"""

from typing import Literal, NotRequired, TypedDict

#: Version of this schema. A receiver refuses a major version it does not know.
SPEC_VERSION = "1.0"

#: Channel that carries HTTP requests to workers.
HTTP_REQUEST_CHANNEL = "http.request"
#: Channel that carries disconnect notices of HTTP clients.
HTTP_DISCONNECT_CHANNEL = "http.disconnect"
#: Prefix of the process-specific reply channels of interface servers.
HTTP_RESPONSE_PREFIX = "http.response"
#: Prefix of the single-reader channels that carry request body chunks.
HTTP_REQUEST_BODY_PREFIX = "http.request.body?"
#: Prefix of the single-reader channels that carry response body chunks.
HTTP_RESPONSE_BODY_PREFIX = "http.response.body?"


class HTTPRequestMessage(TypedDict):
    """An HTTP request, sent by an interface server on "http.request"."""

    type: Literal["http.request"]
    version: str
    reply_channel: str
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: NotRequired[bytes | None]
    query_string: bytes
    root_path: str
    headers: list[list[bytes]]
    client: NotRequired[list | None]
    server: NotRequired[list | None]
    #: The body, or its first chunk when more_body is true.
    body: bytes
    more_body: bool
    #: Where the rest of the body arrives, when more_body is true.
    body_channel: NotRequired[str]


class HTTPRequestBodyMessage(TypedDict):
    """A further chunk of a request body, on the request's body_channel."""

    type: Literal["http.request.body"]
    body: bytes
    more_body: bool


class HTTPResponseStartMessage(TypedDict):
    """The start of a response, sent by a worker on the reply channel."""

    type: Literal["http.response.start"]
    status: int
    headers: list[list[bytes]]
    #: The body, or its first chunk when more_body is true.
    body: bytes
    more_body: bool
    #: Where the rest of the body arrives, when more_body is true.
    body_channel: NotRequired[str]


class HTTPResponseBodyMessage(TypedDict):
    """A further chunk of a response body, on the response's body_channel."""

    type: Literal["http.response.body"]
    body: bytes
    more_body: bool


class HTTPDisconnectMessage(TypedDict):
    """The client went away before its response was complete."""

    type: Literal["http.disconnect"]
    reply_channel: str
    path: str
