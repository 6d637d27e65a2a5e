"""
Sessions for channel messages: what SessionMiddleware is to requests.

A WebSocket is a series of messages (connect, each frame, disconnect), each
handled by a new consumer, possibly on another worker. Two sessions can go
with them:

- The channel session belongs to one socket. It is keyed to the socket's
  reply channel, created at connect and deleted at disconnect, whichever
  workers handle the events in between. Its key is an HMAC of the reply
  channel under SECRET_KEY: clients never see it, cannot choose it (the
  interface names reply channels), and cannot derive it from anything they
  know. It holds the reply channel itself, so a later message can tell a
  live session from one the store has lost (evicted, expired, flushed):
  that raises ChannelSessionLost rather than handing the consumer an empty
  session in its place.
- The HTTP session is the user's Django session, found from the session
  cookie sent with the handshake. With a channel session too, its key is
  kept there, so later frames (which carry no cookies) find it again.

At the end of each message, as SessionMiddleware at the end of a response,
each session is saved by save_session()'s rule: when it was modified (or
always under SESSION_SAVE_EVERY_REQUEST), unless it is empty; never when
the consumer failed. Both need a server-side SESSION_ENGINE: a signed-cookie
session lives in the client's cookie, which no message can update.

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
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.http.cookie import parse_cookie
from django.utils.crypto import salted_hmac

KEY_SALT = "django_fork.contrib.sessions.channel"
#: The channel session's own entries, beside the consumer's.
REPLY_CHANNEL_KEY = "_reply_channel"
HTTP_SESSION_KEY = "_http_session_key"

__all__ = [
    "ChannelSessionLost",
    "MessageSessions",
    "channel_and_http_session",
    "channel_session",
    "channel_session_key",
    "get_session_store_class",
    "http_session",
    "load_channel_session",
    "load_http_session",
    "load_user",
    "save_session",
]


class ChannelSessionLost(SessionInterrupted):
    """The channel session of a live socket is gone from the session store."""


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


class _SessionRequest:
    """
    The request-like object that django.contrib.auth.get_user() and
    SessionMiddleware read: a session and, over a socket, no cookies.
    """

    COOKIES = {}

    def __init__(self, session):
        self.session = session


def save_session(session):
    """
    Save session if it was modified, or always with SESSION_SAVE_EVERY_REQUEST,
    unless it is empty. Return whether it was saved. Raise SessionInterrupted
    if the session was deleted from the store meanwhile.
    """
    # SessionMiddleware.process_response() is stock Django's one public entry
    # to this rule; given a request without a session cookie, it saves the
    # session and sets a cookie (discarded here) exactly when the rule says.
    # The middleware's get_response is never called.
    response = SessionMiddleware(HttpResponse).process_response(
        _SessionRequest(session), HttpResponse()
    )
    return settings.SESSION_COOKIE_NAME in response.cookies


def load_channel_session(message):
    """
    Return the channel session of the socket of message: created at connect,
    found again on later events. Raise ChannelSessionLost when a frame's
    session is gone from the store.
    """
    store_class = get_session_store_class()
    reply_channel = message["reply_channel"]
    key = channel_session_key(reply_channel)
    session = store_class(session_key=key)
    if message["type"] == "websocket.connect":
        try:
            # Under this key, not a new random one: a session saved for the
            # first time is stored under a key of the store's choosing.
            session.save(must_create=True)
        except CreateError:
            # A session under this key exists (the handshake was delivered
            # twice): start afresh.
            session = store_class(session_key=key)
            session.clear()
        session[REPLY_CHANNEL_KEY] = reply_channel
    elif message["type"] != "websocket.disconnect":
        if session.get(REPLY_CHANNEL_KEY) != reply_channel:
            raise ChannelSessionLost(
                "The channel session of %s was lost from the session store "
                "before the socket closed: it was evicted or expired. Keep "
                "sessions where they are not evicted (SESSION_ENGINE db or "
                "cached_db, or a cache that never evicts)." % reply_channel
            )
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


def load_user(session):
    """Return the user of an HTTP session (AnonymousUser without one)."""
    if session is None:
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return get_user(_SessionRequest(session))


class MessageSessions:
    """The sessions of one WebSocket event: loaded first, saved at its end."""

    def __init__(self, message, channel=False, http=False):
        self.message = message
        self.channel_session = load_channel_session(message) if channel else None
        self.http_session = None
        self.user = None
        if http:
            self.http_session = load_http_session(message, self.channel_session)
            self.user = load_user(self.http_session)
        self.accepted = False

    def accept(self):
        """
        Save the sessions before the handshake is accepted: the socket's
        first frame may reach another worker before the connect handler
        returns, and must find what it stored.
        """
        self._save(self.channel_session, self.http_session)
        self.accepted = True

    def save(self):
        """Save the sessions at the end of the event."""
        event = self.message["type"]
        channel_session = self.channel_session
        if channel_session is not None and (
            event == "websocket.disconnect"
            or (event == "websocket.connect" and not self.accepted)
        ):
            # The socket has closed, or its handshake was refused.
            channel_session.delete()
            channel_session = None
        http_session = self.http_session
        if self.accepted:
            # Saved at accept(): save again only what was modified since.
            # Saving anyway (SESSION_SAVE_EVERY_REQUEST) could overwrite
            # what the first frame stored meanwhile.
            if channel_session is not None and not channel_session.modified:
                channel_session = None
            if http_session is not None and not http_session.modified:
                http_session = None
        self._save(channel_session, http_session)

    def _save(self, channel_session, http_session):
        if channel_session is not None:
            reply_channel = self.message["reply_channel"]
            # After clear(), the session is still the socket's.
            channel_session.setdefault(REPLY_CHANNEL_KEY, reply_channel)
            try:
                save_session(channel_session)
            except SessionInterrupted as e:
                raise ChannelSessionLost(
                    "The channel session of %s was deleted from the session "
                    "store before the socket closed." % reply_channel
                ) from e
            channel_session.modified = False
        # A socket cannot set a cookie: an HTTP session that the store no
        # longer had (its key was forgotten on load) is not saved under a
        # new key that no client would ever send.
        if http_session is not None and http_session.session_key is not None:
            save_session(http_session)
            http_session.modified = False


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
