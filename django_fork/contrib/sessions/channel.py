"""
Sessions for channel consumers.

- The channel session belongs to one WebSocket: it is keyed to the socket's
  reply channel and lasts from connect to disconnect, whichever workers handle
  the socket's events. Its key is an HMAC of the reply channel under
  SECRET_KEY: clients never see it, cannot choose it (the interface names
  reply channels), and cannot derive it from anything they know.
- The HTTP session is the user's Django session, found from the session
  cookie sent with the handshake. With a channel session too, its key is kept
  there, so later frames (which carry no cookies) find it again.

Both need a server-side SESSION_ENGINE: a signed-cookie session lives in the
client's cookie, which no message can update.

Use the class decorators on consumers::

    @channel_and_http_session
    class ChatConsumer(WebsocketConsumer):
        def receive(self, text_data=None, bytes_data=None):
            session = self.channel_session
            session["frames"] = session.get("frames", 0) + 1
            self.send(text_data="%s: %s" % (self.user, text_data))
"""

from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.sessions.backends.base import CreateError
from django.core.exceptions import ImproperlyConfigured
from django.http import parse_cookie
from django.utils.crypto import salted_hmac

KEY_SALT = "django_fork.contrib.sessions.channel"
HTTP_SESSION_KEY = "_http_session_key"

__all__ = [
    "channel_and_http_session",
    "channel_session",
    "channel_session_key",
    "get_session_store_class",
    "http_session",
    "load_channel_session",
    "load_http_session",
    "load_user",
]


def get_session_store_class():
    """Return SESSION_ENGINE's SessionStore; refuse signed-cookie sessions."""
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.signed_cookies":
        raise ImproperlyConfigured(
            "Channel sessions need a server-side SESSION_ENGINE (db, cache, "
            "cached_db or file): the signed_cookies engine keeps the session in "
            "the client's cookie, which a channel message cannot update."
        )
    return import_module(settings.SESSION_ENGINE).SessionStore


def channel_session_key(reply_channel):
    """Return the session key of a socket's channel session."""
    return salted_hmac(KEY_SALT, reply_channel, algorithm="sha256").hexdigest()[:40]


def load_channel_session(reply_channel):
    """Return the channel session of reply_channel, created if new."""
    store_class = get_session_store_class()
    key = channel_session_key(reply_channel)
    session = store_class(session_key=key)
    if not session.exists(key):
        try:
            session.save(must_create=True)
        except CreateError:
            # Another worker created it first: use that one.
            session = store_class(session_key=key)
    return session


def load_http_session(message, channel_session=None):
    """
    Return the Django session of the handshake's session cookie, or None.
    On later events, find its key in channel_session.
    """
    store_class = get_session_store_class()
    session_key = None
    for name, value in message.get("headers", ()):
        if name.lower() == b"cookie":
            cookies = parse_cookie(value.decode("latin1"))
            session_key = cookies.get(settings.SESSION_COOKIE_NAME, session_key)
    if session_key is None and channel_session is not None:
        session_key = channel_session.get(HTTP_SESSION_KEY)
    if session_key is None:
        return None
    if channel_session is not None and message["type"] == "websocket.connect":
        channel_session[HTTP_SESSION_KEY] = session_key
    return store_class(session_key=session_key)


class _SessionHolder:
    """The request-like object django.contrib.auth.get_user() expects."""

    def __init__(self, session):
        self.session = session


def load_user(session):
    """Return the user of an HTTP session (AnonymousUser without one)."""
    if session is None:
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return get_user(_SessionHolder(session))


def channel_session(consumer_class):
    """Give a consumer class self.channel_session."""
    consumer_class.use_channel_session = True
    return consumer_class


def http_session(consumer_class):
    """Give a consumer class self.http_session and self.user."""
    consumer_class.use_http_session = True
    return consumer_class


def channel_and_http_session(consumer_class):
    """Both: the HTTP session is found on every event, not only at connect."""
    return http_session(channel_session(consumer_class))
