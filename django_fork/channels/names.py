"""
The channel and group name grammar.

    name            := [A-Za-z0-9_.-]+
    channel         := name                 ordinary: any number of readers
                     | name "?" name        single-reader: one reader, FIFO
                     | name "!" name        process-specific: read only by
                                            the process that owns "name!"
    group           := name

Names are at most MAX_NAME_LENGTH characters. A process-specific channel's
part up to and including "!" is its process prefix: a backend may keep all
channels of one prefix together (one shard, one blocking receive). A
single-reader channel is kept whole in one place, so its messages come out in
the order they went in.
"""

import base64
import os
import re
import threading

from django_fork.channels.exceptions import InvalidChannelName

MAX_NAME_LENGTH = 100

_NAME = r"[A-Za-z0-9_.\-]+"
# \Z, not $: $ also matches before a trailing newline, which would let
# "http.request\n" through.
channel_name_re = re.compile(rf"^{_NAME}(?:[!?]{_NAME})?\Z")
group_name_re = re.compile(rf"^{_NAME}\Z")


def validate_channel_name(name):
    """Raise InvalidChannelName if name is not a valid channel name."""
    if not isinstance(name, str):
        raise InvalidChannelName(
            "Channel name must be a str, not %s." % type(name).__name__
        )
    if len(name) > MAX_NAME_LENGTH or not channel_name_re.match(name):
        raise InvalidChannelName(
            "Channel name %r is invalid: it must be at most %d characters of "
            "A-Z, a-z, 0-9, '_', '.', '-', with at most one '!' or '?' "
            "between two non-empty parts." % (name[:120], MAX_NAME_LENGTH)
        )
    return name


def validate_group_name(name):
    """Raise InvalidChannelName if name is not a valid group name."""
    if not isinstance(name, str):
        raise InvalidChannelName(
            "Group name must be a str, not %s." % type(name).__name__
        )
    if len(name) > MAX_NAME_LENGTH or not group_name_re.match(name):
        raise InvalidChannelName(
            "Group name %r is invalid: it must be at most %d characters of "
            "A-Z, a-z, 0-9, '_', '.', '-'." % (name[:120], MAX_NAME_LENGTH)
        )
    return name


def is_process_specific(name):
    return "!" in name


def is_single_reader(name):
    return "?" in name


def is_short_lived(name):
    """
    Return whether name is a process-specific or single-reader channel:
    usually made for one request or stream, so not worth remembering.
    """
    return "!" in name or "?" in name


def process_prefix(name):
    """Return "prefix!" for "prefix!suffix", or None for other channels."""
    index = name.find("!")
    return name[: index + 1] if index != -1 else None


def stats_name(name):
    """
    Return the name a channel's load figures are kept under: "prefix!" or
    "prefix?" for a process-specific or single-reader channel, shared by the
    many short-lived channels made from that prefix; the name itself for
    other channels.
    """
    bang = name.find("!")
    mark = name.find("?")
    if bang == -1:
        return name if mark == -1 else name[: mark + 1]
    if mark != -1 and mark < bang:
        return name[: mark + 1]
    return name[: bang + 1]


#: Random bytes read from the system at a time for channel suffixes: one
#: getrandom() call per 256 names, not one per name (a name per request).
_RANDOM_POOL_SIZE = 16 * 256
_random_pool = memoryview(b"")
_random_lock = threading.Lock()


def _empty_random_pool():
    global _random_pool
    _random_pool = memoryview(b"")


# A forked child must not hand out the names its parent has left (there is
# no fork() on Windows).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_empty_random_pool)


def random_suffix():
    """Return an unguessable channel suffix (128 bits)."""
    global _random_pool
    with _random_lock:
        if len(_random_pool) < 16:
            _random_pool = memoryview(os.urandom(_RANDOM_POOL_SIZE))
        random, _random_pool = _random_pool[:16], _random_pool[16:]
    # What secrets.token_urlsafe(16) returns.
    return base64.urlsafe_b64encode(random).rstrip(b"=").decode("ascii")


def new_channel_name(prefix, client_prefix):
    """
    Return a new, unique channel name built from prefix.

    - "name?" gives a single-reader channel "name?<random>".
    - "name!" gives "name!<random>": the caller owns the process prefix.
    - "name" gives "name.<client_prefix>!<random>", a process-specific
      channel owned by the layer instance whose client_prefix is given.
    """
    if prefix.endswith(("?", "!")):
        name = prefix + random_suffix()
    else:
        name = "%s.%s!%s" % (prefix, client_prefix, random_suffix())
    return validate_channel_name(name)
