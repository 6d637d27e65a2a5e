"""
The message schema of the channel transport, one TypedDict per message.

docs/ref/channel-messages.txt is the prose form of this module; keep the two
in step. Every value is JSON-capable or bytes; pairs are two-item lists (a
wire format turns tuples into lists anyway).
"""

from typing import Literal, TypedDict

try:
    from typing import NotRequired
except ImportError:
    # Python 3.10 (PEP 655 arrived in 3.11): the keys read as required to a
    # type checker; nothing changes at run time, where TypedDicts are dicts.
    class NotRequired:
        def __class_getitem__(cls, item):
            return item


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
#: Prefix of the workers' channels for stream acknowledgements.
HTTP_RESPONSE_ACK_PREFIX = "http.response.ack"
#: Chunks a worker sends ahead of the interface's acknowledgements.
HTTP_RESPONSE_WINDOW = 4


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
    #: Where the interface acknowledges each further chunk it relayed (or
    #: sends http.disconnect when the client went away), when more_body is
    #: true. The worker stays at most HTTP_RESPONSE_WINDOW chunks ahead.
    ack_channel: NotRequired[str]


class HTTPResponseAckMessage(TypedDict):
    """The interface relayed one more response chunk to the client."""

    type: Literal["http.response.ack"]


class HTTPResponseProgressMessage(TypedDict):
    """
    On the ack_channel: the client still reads the current chunk, slowly.
    The worker's stream timeout starts again; the window does not move.
    """

    type: Literal["http.response.progress"]


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


#: Channels that carry WebSocket events to workers.
WEBSOCKET_CONNECT_CHANNEL = "websocket.connect"
WEBSOCKET_RECEIVE_CHANNEL = "websocket.receive"
WEBSOCKET_DISCONNECT_CHANNEL = "websocket.disconnect"
#: Prefix of the process-specific reply channels of WebSocket connections.
WEBSOCKET_SEND_PREFIX = "websocket.send"


class WebSocketConnectMessage(TypedDict):
    """A client opened a WebSocket, sent on "websocket.connect"."""

    type: Literal["websocket.connect"]
    version: str
    #: The socket's channel: workers send accept/send/close/ack there.
    reply_channel: str
    http_version: str
    scheme: str
    path: str
    raw_path: NotRequired[bytes | None]
    query_string: bytes
    root_path: str
    headers: list[list[bytes]]
    client: NotRequired[list | None]
    server: NotRequired[list | None]
    subprotocols: list[str]


class WebSocketReceiveMessage(TypedDict):
    """
    A frame from the client, sent on "websocket.receive". The interface sends
    frame seq + 1 only once a worker acknowledged frame seq, so the frames of
    one socket are handled in order whichever workers take them.
    """

    type: Literal["websocket.receive"]
    reply_channel: str
    path: str
    query_string: bytes
    seq: int
    text: NotRequired[str | None]
    bytes: NotRequired[bytes | None]


class WebSocketDisconnectMessage(TypedDict):
    """The socket closed, sent on "websocket.disconnect" after every frame."""

    type: Literal["websocket.disconnect"]
    reply_channel: str
    path: str
    query_string: bytes
    code: int
    seq: int


class WebSocketAcceptMessage(TypedDict):
    """Accept the handshake (worker to interface)."""

    type: Literal["websocket.accept"]
    subprotocol: NotRequired[str | None]
    headers: NotRequired[list[list[bytes]]]


class WebSocketSendMessage(TypedDict):
    """Send a frame to the client (worker to interface; also group sends)."""

    type: Literal["websocket.send"]
    text: NotRequired[str | None]
    bytes: NotRequired[bytes | None]
    #: The seq of the client frame this, the worker's last message for it,
    #: acknowledges (see WebSocketAckMessage).
    ack: NotRequired[int]


class WebSocketCloseMessage(TypedDict):
    """Close the socket, or refuse the handshake (403) before accepting."""

    type: Literal["websocket.close"]
    code: NotRequired[int]
    reason: NotRequired[str]
    #: As on WebSocketSendMessage.
    ack: NotRequired[int]


class WebSocketAckMessage(TypedDict):
    """
    A worker finished handling frame seq (worker to interface), when the
    consumer sent nothing to the socket; otherwise "ack" on its last message
    says the same.
    """

    type: Literal["websocket.ack"]
    seq: int
