"""
The Lua scripts of the layer, read once from lua/*.lua.

Every script is lua/lib.lua (the helpers: now_ms, count, trim, push)
followed by its own file; ARGV[1] is always the key prefix. @name@ marks a
constant filled in here. Times are Redis server time (TIME), so hosts with
skewed clocks agree on expiry. The scripts build key names from the prefix:
the layer is for plain Redis servers (shard by listing several), not Redis
Cluster.
"""

import hashlib
from importlib.resources import files

from django_fork.channels.layers.stats import CONSUMER_WINDOW

#: Seconds stats counters and seen names are kept after the last activity.
STATS_TTL = 3600
#: Consumer group of at-least-once streams.
CONSUMER_GROUP = "consumers"

_CONSTANTS = {
    "@stats_ttl@": str(STATS_TTL * 1000),
    "@ttl@": str(STATS_TTL * 1000),
    "@window@": str(CONSUMER_WINDOW * 1000),
    "@group@": CONSUMER_GROUP,
    "@retry@": "50",
}


def _read(name):
    return files(__package__).joinpath("lua", name + ".lua").read_text("utf-8")


class Script:
    """A script's text (lib.lua first, constants filled in) and its SHA1."""

    def __init__(self, name):
        self.name = name
        text = _read("lib") + _read(name)
        for constant, value in _CONSTANTS.items():
            text = text.replace(constant, value)
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def __repr__(self):
        return "<Script %s.lua>" % self.name


SEND = Script("send")
GROUP_SEND = Script("group_send")
GROUP_ADD = Script("group_add")
BOOK = Script("book")
STATS = Script("stats")
ACK = Script("ack")
ENSURE_GROUPS = Script("ensure_groups")
WAKE = Script("wake")
DELAY = Script("delay")
RELEASE = Script("release")
READ_FIRST = Script("read_first")
