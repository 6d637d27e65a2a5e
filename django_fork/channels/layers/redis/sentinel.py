"""
Shards behind Redis Sentinel, through redis-py's own Sentinel client.

A LOCATION entry names a shard either by URL ("redis://host:6379/0") or by
its sentinels and service name, as a URL::

    sentinel://[[username]:password@]host:port[,host:port...]/service[/db]

or as a dict::

    {
        "sentinels": [("10.0.0.1", 26379), "10.0.0.2:26379"],
        "service_name": "channels",
        "db": 0,
        # Optional: connection options of the sentinels themselves, and of
        # the primary (password, username, ssl...).
        "sentinel_kwargs": {"password": "..."},
        "password": "...",
    }

Connections ask a sentinel for the service's primary when they connect, so
after a failover they reconnect to the promoted replica. The shard's name on
the hash ring is "sentinel:<service>/<db>": the same in every process,
whatever the order of the sentinels.
"""

import urllib.parse

import redis.asyncio.sentinel
import redis.sentinel

__all__ = ["SentinelLocation"]


def _address(entry):
    if isinstance(entry, str):
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("A sentinel address is host:port, not %r." % entry)
        return host, int(port)
    host, port = entry
    return str(host), int(port)


class SentinelLocation:
    """The sentinels of one shard, its service name and database."""

    def __init__(
        self, sentinels, service_name, db=0, sentinel_kwargs=None, **connection
    ):
        self.sentinels = [_address(entry) for entry in sentinels]
        if not self.sentinels:
            raise ValueError("A Sentinel shard needs at least one sentinel.")
        if not service_name or not isinstance(service_name, str):
            raise ValueError("A Sentinel shard needs a service_name.")
        self.service_name = service_name
        self.db = int(db)
        self.sentinel_kwargs = dict(sentinel_kwargs or {})
        # Options of the connections to the primary (password, ssl...).
        self.connection = connection

    @classmethod
    def from_url(cls, url):
        parts = urllib.parse.urlsplit(url)
        credentials, _, hosts = parts.netloc.rpartition("@")
        connection = {}
        if credentials:
            username, _, password = credentials.partition(":")
            if username:
                connection["username"] = urllib.parse.unquote(username)
            if password:
                connection["password"] = urllib.parse.unquote(password)
        path = [part for part in parts.path.split("/") if part]
        if not hosts or not 1 <= len(path) <= 2:
            raise ValueError(
                "A Sentinel URL is sentinel://host:port[,host:port...]/service[/db], "
                "not %r." % url
            )
        db = path[1] if len(path) == 2 else 0
        return cls(hosts.split(","), path[0], db=db, **connection)

    @property
    def name(self):
        return "sentinel:%s/%s" % (self.service_name, self.db)

    def __repr__(self):
        return "<SentinelLocation %s via %s>" % (
            self.name,
            ",".join("%s:%s" % address for address in self.sentinels),
        )

    def _sentinel_kwargs(self, kwargs):
        # The sentinels get the layer's timeouts and RESP version unless
        # sentinel_kwargs says otherwise.
        options = {
            key: kwargs[key]
            for key in ["protocol", "socket_connect_timeout", "driver_info"]
            if key in kwargs
        }
        options["socket_timeout"] = kwargs.get("socket_connect_timeout")
        options.update(self.sentinel_kwargs)
        return options

    def _primary_kwargs(self, kwargs):
        # A connection learns the primary's address from the sentinels when
        # it connects. Until then its address is one that refuses
        # connections, never redis-py's default (localhost:6379).
        return {**kwargs, **self.connection, "host": "127.0.0.1", "port": 0}

    def sync_client(self, **kwargs):
        """Return a redis-py sync client of the service's primary."""
        manager = redis.sentinel.Sentinel(
            self.sentinels, sentinel_kwargs=self._sentinel_kwargs(kwargs)
        )
        return manager.master_for(
            self.service_name, db=self.db, **self._primary_kwargs(kwargs)
        )

    def connection_pool(self, **kwargs):
        """
        Return an asyncio pool (of one event loop) whose connections ask the
        sentinels for the service's primary when they connect.
        """
        manager = redis.asyncio.sentinel.Sentinel(
            self.sentinels, sentinel_kwargs=self._sentinel_kwargs(kwargs)
        )
        return redis.asyncio.sentinel.SentinelConnectionPool(
            self.service_name, manager, db=self.db, **self._primary_kwargs(kwargs)
        )
