"""
Pure functions between HTTP requests and responses and channel messages.

Nothing here does I/O: no layer, no event loop, no socket. The interface
server and the worker call these and move the results over the layer.
"""

import re

from django_fork.channels.exceptions import InvalidMessage
from django_fork.channels.messages import SPEC_VERSION
from django_fork.channels.names import validate_channel_name

#: Bytes of body carried by one message. A body that fits in one chunk
#: travels inside the request or response start message.
DEFAULT_CHUNK_SIZE = 256 * 1024

_SPEC_MAJOR = SPEC_VERSION.split(".")[0]


# Requests.


def _connection_fields(scope, message_type, reply_channel, default_scheme):
    """Return the fields a message takes from an ASGI connection scope."""
    return {
        "type": message_type,
        "version": SPEC_VERSION,
        "reply_channel": reply_channel,
        "http_version": scope.get("http_version", "1.1"),
        "scheme": scope.get("scheme", default_scheme),
        "path": scope["path"],
        "raw_path": scope.get("raw_path"),
        "query_string": scope.get("query_string", b""),
        "root_path": scope.get("root_path", ""),
        "headers": [[name, value] for name, value in scope.get("headers", ())],
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
    }


def request_message(scope, reply_channel, body=b"", more_body=False, body_channel=None):
    """Return the http.request message for an ASGI HTTP scope."""
    message = _connection_fields(scope, "http.request", reply_channel, "http")
    message["method"] = scope["method"]
    message["body"] = body
    message["more_body"] = more_body
    if more_body:
        message["body_channel"] = body_channel
    return message


def request_body_message(body, more_body):
    """Return an http.request.body message carrying a further body chunk."""
    return {"type": "http.request.body", "body": body, "more_body": more_body}


def disconnect_message(reply_channel, path):
    """Return the http.disconnect message for a client that went away."""
    return {"type": "http.disconnect", "reply_channel": reply_channel, "path": path}


def _require(message, key, types, optional=False):
    if key not in message:
        if optional:
            return None
        raise InvalidMessage("%s message has no %r." % (message.get("type"), key))
    value = message[key]
    if not isinstance(value, types) or (
        isinstance(value, bool) and bool not in _as_tuple(types)
    ):
        if optional and value is None:
            return None
        raise InvalidMessage(
            "%s message's %r is a %s."
            % (message.get("type"), key, type(value).__name__)
        )
    return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _require_channel(message, key):
    try:
        return validate_channel_name(_require(message, key, str))
    except ValueError as e:
        raise InvalidMessage(str(e)) from e


def _require_pair(value, what, types):
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(item, types) for item in value)
    ):
        raise InvalidMessage("%s must be a two-item list." % what)


_BAD_NAME_BYTE = re.compile(rb"[:\x00\t\n\r ]")
_BAD_VALUE_BYTE = re.compile(rb"[\x00\n\r]")


def _check_header(name, value):
    """
    Refuse a header that would break HTTP/1.1 framing, in requests and in
    responses alike: a name that is empty or holds a separator, a line break
    or NUL; a value with a line break or NUL (RFC 9110, section 5).
    """
    if not name or _BAD_NAME_BYTE.search(name):
        raise InvalidMessage("Invalid header name %r." % name[:40])
    if _BAD_VALUE_BYTE.search(value):
        raise InvalidMessage("Header %r has a line break or NUL." % name[:40])


def _check_headers(headers):
    """Check that each header is a [name, value] pair of bytes that is safe."""
    for header in headers:
        if not isinstance(header, list) or len(header) != 2:
            raise InvalidMessage("Each header must be a two-item list.")
        name, value = header
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise InvalidMessage("Each header must be a two-item list.")
        _check_header(name, value)


def validate_request_message(message):
    """
    Check an http.request message's shape and return it; raise
    InvalidMessage saying what is wrong. A message that passes cannot make
    the request builder fail on a wrong type.
    """
    if message.get("type") != "http.request":
        raise InvalidMessage("Expected an http.request message.")
    version = _require(message, "version", str)
    if version.split(".")[0] != _SPEC_MAJOR:
        raise InvalidMessage("Unsupported message version %r." % version)
    _require_channel(message, "reply_channel")
    method = _require(message, "method", str)
    if not method or not method.isascii() or not method.isalpha():
        raise InvalidMessage("Invalid HTTP method %r." % method[:20])
    _require(message, "http_version", str)
    if _require(message, "scheme", str) not in ("http", "https"):
        raise InvalidMessage("Invalid scheme.")
    path = _require(message, "path", str)
    if not path.startswith("/"):
        raise InvalidMessage("The path must start with '/'.")
    _require(message, "raw_path", bytes, optional=True)
    _require(message, "query_string", bytes)
    root_path = _require(message, "root_path", str)
    if root_path and not root_path.startswith("/"):
        raise InvalidMessage("The root_path must be empty or start with '/'.")
    _check_headers(_require(message, "headers", list))
    for key in ("client", "server"):
        value = _require(message, key, list, optional=True)
        if value is not None:
            if len(value) != 2 or not isinstance(value[0], str):
                raise InvalidMessage("%r must be [host, port]." % key)
            if not isinstance(value[1], int) or isinstance(value[1], bool):
                if value[1] is not None:
                    raise InvalidMessage("%r must be [host, port]." % key)
    _require(message, "body", bytes)
    if _require(message, "more_body", bool):
        _require_channel(message, "body_channel")
    return message


def validate_response_start(message):
    """Check an http.response.start message's shape and return it."""
    if message.get("type") != "http.response.start":
        raise InvalidMessage("Expected an http.response.start message.")
    status = _require(message, "status", int)
    if not 100 <= status <= 999:
        raise InvalidMessage("Invalid status %r." % status)
    _check_headers(_require(message, "headers", list))
    _require(message, "body", bytes)
    if _require(message, "more_body", bool):
        _require_channel(message, "body_channel")
        if message.get("ack_channel") is not None:
            _require_channel(message, "ack_channel")
    return message


def validate_body_message(message, expected_type):
    """Check a body chunk message (or a disconnect in its stead)."""
    message_type = message.get("type")
    if message_type == "http.disconnect":
        return message
    if message_type != expected_type:
        raise InvalidMessage(
            "Expected %s, got %r." % (expected_type, str(message_type)[:40])
        )
    _require(message, "body", bytes)
    _require(message, "more_body", bool)
    return message


# Responses.


def response_headers(response):
    """Return a Django response's headers, Set-Cookie included, as pairs."""
    headers = []
    # The (name, value) pairs ResponseHeaders keeps, where items() would
    # look each name up again through the Mapping mixins.
    store = getattr(response.headers, "_store", None)
    pairs = store.values() if type(store) is dict else response.items()
    for name, value in pairs:
        if isinstance(name, str):
            name = name.encode("ascii")
        if isinstance(value, str):
            value = value.encode("latin1")
        headers.append([bytes(name), bytes(value)])
    for cookie in response.cookies.values():
        headers.append(
            [b"Set-Cookie", cookie.output(header="").encode("ascii").strip()]
        )
    return headers


def response_start_message(
    status, headers, body=b"", more_body=False, body_channel=None, ack_channel=None
):
    """Return an http.response.start message."""
    message = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
        "body": body,
        "more_body": more_body,
    }
    if more_body:
        message["body_channel"] = body_channel
        if ack_channel is not None:
            message["ack_channel"] = ack_channel
    return message


def response_body_message(body, more_body):
    """Return an http.response.body message carrying a further body chunk."""
    return {"type": "http.response.body", "body": body, "more_body": more_body}


def chunk_bytes(data, chunk_size):
    """Yield (chunk, last) pairs covering data; one empty chunk if empty."""
    if not data:
        yield data, True
        return
    for position in range(0, len(data), chunk_size):
        yield (
            data[position : position + chunk_size],
            position + chunk_size >= len(data),
        )


def encode_response(
    response,
    body_channel,
    chunk_size=DEFAULT_CHUNK_SIZE,
    ack_channel=None,
    head=False,
):
    """
    Yield the messages for a Django response with sync content.

    The first is the http.response.start message for the reply channel; a
    body that fits in one chunk travels inside it. The rest are
    http.response.body messages for body_channel. A streaming response's
    start message goes out before its first part is produced, and each part
    is sent as soon as it is produced: a stream may be slow on purpose.
    For a HEAD request (head=True) no body is produced, as a server would
    not send it.
    """
    status = response.status_code
    headers = response_headers(response)
    if head:
        yield response_start_message(status, headers)
        return
    if not response.streaming:
        content = response.content
        if len(content) <= chunk_size:
            yield response_start_message(status, headers, content)
            return
        yield response_start_message(
            status, headers, content[:chunk_size], True, body_channel, ack_channel
        )
        for chunk, last in chunk_bytes(content[chunk_size:], chunk_size):
            yield response_body_message(chunk, not last)
        return
    yield response_start_message(status, headers, b"", True, body_channel, ack_channel)
    yield from encode_streaming_parts(response.streaming_content, chunk_size)


def encode_short_response(response, chunk_size=DEFAULT_CHUNK_SIZE, head=False):
    """
    Return the only message encode_response() yields for this response, or
    None when it yields more (a body over one chunk, or streamed). The
    content is joined once, where fits_in_start_message() and then
    encode_response() join it twice.
    """
    if head:
        return response_start_message(response.status_code, response_headers(response))
    if response.streaming:
        return None
    content = response.content
    if len(content) > chunk_size:
        return None
    return response_start_message(
        response.status_code, response_headers(response), content
    )


def fits_in_start_message(response, chunk_size=DEFAULT_CHUNK_SIZE, head=False):
    """
    Return whether encode_response() yields only a start message for this
    response: no body channel is needed then.
    """
    return head or (not response.streaming and len(response.content) <= chunk_size)


def encode_streaming_parts(parts, chunk_size=DEFAULT_CHUNK_SIZE):
    """Yield http.response.body messages for an iterable of byte parts."""
    for part in parts:
        if part:
            for chunk, _ in chunk_bytes(part, chunk_size):
                yield response_body_message(chunk, True)
    yield response_body_message(b"", False)


def error_response_messages(status, text):
    """Return the start message of a plain-text error response."""
    body = text.encode()
    return response_start_message(
        status,
        [
            [b"Content-Type", b"text/plain; charset=utf-8"],
            [b"Content-Length", str(len(body)).encode()],
        ],
        body,
    )


# WebSockets.


def websocket_connect_message(scope, reply_channel):
    """Return the websocket.connect message for an ASGI WebSocket scope."""
    message = _connection_fields(scope, "websocket.connect", reply_channel, "ws")
    message["subprotocols"] = list(scope.get("subprotocols", ()))
    return message


def websocket_receive_message(connect, seq, text=None, data=None):
    """Return the websocket.receive message for a client frame."""
    return {
        "type": "websocket.receive",
        "reply_channel": connect["reply_channel"],
        "path": connect["path"],
        "query_string": connect["query_string"],
        "seq": seq,
        "text": text,
        "bytes": data,
    }


def websocket_disconnect_message(connect, code, seq):
    """Return the websocket.disconnect message for a closed socket."""
    return {
        "type": "websocket.disconnect",
        "reply_channel": connect["reply_channel"],
        "path": connect["path"],
        "query_string": connect["query_string"],
        "code": code,
        "seq": seq,
    }


def validate_websocket_message(message):
    """Check a websocket.connect/receive/disconnect message; return it."""
    message_type = message.get("type")
    if message_type not in (
        "websocket.connect",
        "websocket.receive",
        "websocket.disconnect",
    ):
        raise InvalidMessage("Expected a websocket event message.")
    _require_channel(message, "reply_channel")
    path = _require(message, "path", str)
    if not path.startswith("/"):
        raise InvalidMessage("The path must start with '/'.")
    _require(message, "query_string", bytes)
    if message_type == "websocket.connect":
        version = _require(message, "version", str)
        if version.split(".")[0] != _SPEC_MAJOR:
            raise InvalidMessage("Unsupported message version %r." % version)
        for header in _require(message, "headers", list):
            _require_pair(header, "Each header", bytes)
        for subprotocol in _require(message, "subprotocols", list):
            if not isinstance(subprotocol, str):
                raise InvalidMessage("Subprotocols must be str.")
    else:
        _require(message, "seq", int)
    if message_type == "websocket.receive":
        text = _require(message, "text", str, optional=True)
        data = _require(message, "bytes", bytes, optional=True)
        if (text is None) == (data is None):
            raise InvalidMessage("A frame has exactly one of text and bytes.")
    if message_type == "websocket.disconnect":
        _require(message, "code", int)
    return message
