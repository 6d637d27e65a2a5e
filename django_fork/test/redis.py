"""
Redis servers for tests.

RedisServer starts a private redis-server on a free loopback port (never
6379) with persistence off, in a temporary directory, so a test can kill it
and restart it on the same port. Servers still running when the interpreter
exits are stopped; on Linux, a server also dies with the process that
started it, however that process ends.

RedisSentinel starts a sentinel (redis-server --sentinel) that monitors a
RedisServer, and SentinelGroup a primary, its replicas and the sentinels
that watch them, for the tests and drills of failover.

Tests that need Redis call require_redis() (e.g. in setUpClass): it raises
unittest.SkipTest when redis-server is not installed, except under CI
(CI=true), where a missing Redis is an error, not a reason to skip.
"""

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import weakref

__all__ = [
    "RedisSentinel",
    "RedisServer",
    "RedisUnavailable",
    "SentinelGroup",
    "redis_server_path",
    "require_redis",
]

_RESERVED_PORTS = {6379}
_servers = weakref.WeakSet()


class RedisUnavailable(RuntimeError):
    """redis-server is needed and cannot be run."""


def redis_server_path():
    """Return the path of redis-server ($REDIS_SERVER or on PATH), or None."""
    return shutil.which(os.environ.get("REDIS_SERVER", "redis-server"))


def require_redis():
    """
    Raise unittest.SkipTest if redis-server is missing, or RedisUnavailable
    if it is missing under CI (CI=true), where tests must not skip it.
    """
    if redis_server_path() is not None:
        return
    reason = "redis-server is not installed (set REDIS_SERVER or put it on PATH)."
    if os.environ.get("CI") == "true":
        raise RedisUnavailable("%s CI=true: Redis tests may not be skipped." % reason)
    raise unittest.SkipTest(reason)


def _die_with_parent():
    """
    Have the kernel kill the server when the process that started it dies,
    even by SIGKILL or a timeout's SIGTERM, when atexit never runs (Linux).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port():
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _RESERVED_PORTS:
            return port


class RedisServer:
    """A redis-server process of a test's own."""

    def __init__(self, port=None, startup_timeout=10, replica_of=None):
        self.port = port
        self.startup_timeout = startup_timeout
        # The RedisServer this one replicates, if any.
        self.replica_of = replica_of
        self.process = None
        self.directory = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def __repr__(self):
        return "<RedisServer %s%s>" % (
            self.url if self.port else "(not started)",
            "" if self.running else " stopped",
        )

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self):
        """Start the server (on a free port the first time) and wait for it."""
        if self.running:
            return self
        path = redis_server_path()
        if path is None:
            raise RedisUnavailable("redis-server is not installed.")
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="django_fork-redis-")
        fixed = self.port is not None
        for attempt in range(5):
            if not fixed:
                self.port = _free_port()
            if self.port in _RESERVED_PORTS:
                raise ValueError("Tests never use port %d." % self.port)
            log = open(os.path.join(self.directory, "redis.log"), "ab")
            command = self.command(path)
            # The death signal follows the thread that forks: only tie the
            # server to the main thread, which lives as long as the process.
            tie = (
                sys.platform.startswith("linux")
                and threading.current_thread() is threading.main_thread()
            )
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if tie else None,
            )
            log.close()
            if self._wait_ready():
                _servers.add(self)
                return self
            self._terminate(signal.SIGKILL)
            if fixed and attempt >= 2:
                break
            time.sleep(0.2)
        raise RedisUnavailable(
            "redis-server did not start on port %s; see %s."
            % (self.port, os.path.join(self.directory, "redis.log"))
        )

    def command(self, path):
        """Return the command line that starts the server."""
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": self.directory,
            "daemonize": "no",
        }
        command = [path]
        for name, value in options.items():
            command += ["--" + name, value]
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        return command

    def _wait_ready(self):
        import redis

        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.5
        )
        deadline = time.monotonic() + self.startup_timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                except redis.ResponseError:
                    # LOADING: the server is up but not ready yet.
                    pass
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def _terminate(self, sig):
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                process.kill()
                process.wait()

    def stop(self):
        """Stop the server (SIGTERM) and wait for it to exit."""
        self._terminate(signal.SIGTERM)

    def kill(self):
        """Kill the server with SIGKILL, as a crash would."""
        self._terminate(signal.SIGKILL)

    def restart(self, delay=0):
        """Kill the server and start a new, empty one on the same port."""
        self.kill()
        if delay:
            time.sleep(delay)
        return self.start()

    def cleanup(self):
        """Stop the server and remove its directory."""
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.cleanup()


class RedisSentinel(RedisServer):
    """
    A sentinel of a test's own, monitoring the service `service` whose
    primary is the RedisServer `primary` (quorum of 2 by default).
    """

    def __init__(
        self,
        primary,
        service="mymaster",
        quorum=2,
        down_after_ms=1000,
        failover_timeout_ms=3000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.primary = primary
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def command(self, path):
        # A sentinel rewrites its configuration file: one per start.
        config = os.path.join(self.directory, "sentinel-%d.conf" % self.port)
        service = self.service
        with open(config, "w") as f:
            f.write(
                "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
                "sentinel monitor %s 127.0.0.1 %d %d\n"
                "sentinel down-after-milliseconds %s %d\n"
                "sentinel failover-timeout %s %d\n"
                "sentinel parallel-syncs %s 1\n"
                % (
                    self.port,
                    self.directory,
                    service,
                    self.primary.port,
                    self.quorum,
                    service,
                    self.down_after_ms,
                    service,
                    self.failover_timeout_ms,
                    service,
                )
            )
        return [path, config, "--sentinel"]


class SentinelGroup:
    """
    A primary, `replicas` replicas and `sentinels` sentinels watching them,
    all on free loopback ports; location is the layer's LOCATION entry.
    """

    def __init__(self, replicas=1, sentinels=3, service="mymaster", **options):
        self.service = service
        self.primary = RedisServer()
        self.replicas = [RedisServer(replica_of=self.primary) for _ in range(replicas)]
        self.sentinels = [
            RedisSentinel(self.primary, service=service, **options)
            for _ in range(sentinels)
        ]

    @property
    def servers(self):
        return [self.primary, *self.replicas]

    @property
    def location(self):
        return {
            "sentinels": [sentinel.address for sentinel in self.sentinels],
            "service_name": self.service,
        }

    def start(self):
        self.primary.start()
        for replica in self.replicas:
            replica.start()
        self.wait_for_replicas()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_for_sentinels()
        return self

    def _client(self, port):
        import redis

        return redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1
        )

    def wait_for_replicas(self, timeout=10):
        """Wait until every replica has synchronized with the primary."""
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            client = self._client(replica.port)
            try:
                while client.info("replication").get("master_link_status") != "up":
                    if time.monotonic() > deadline:
                        raise RedisUnavailable("%r did not synchronize." % replica)
                    time.sleep(0.05)
            finally:
                client.close()

    def wait_for_sentinels(self, timeout=10):
        """Wait until every sentinel knows the replicas and the others."""
        deadline = time.monotonic() + timeout
        for sentinel in self.sentinels:
            client = self._client(sentinel.port)
            try:
                while True:
                    state = client.sentinel_master(self.service)
                    if (
                        int(state.get("num-slaves", 0)) >= len(self.replicas)
                        and int(state.get("num-other-sentinels", 0))
                        >= len(self.sentinels) - 1
                    ):
                        break
                    if time.monotonic() > deadline:
                        raise RedisUnavailable("%r did not see its peers." % sentinel)
                    time.sleep(0.05)
            finally:
                client.close()

    def primary_port(self):
        """Return the port of the primary the sentinels name now."""
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            client = self._client(sentinel.port)
            try:
                return int(client.sentinel_get_master_addr_by_name(self.service)[1])
            except Exception:
                continue
            finally:
                client.close()
        return None

    def server_on(self, port):
        return next(server for server in self.servers if server.port == port)

    def cleanup(self):
        for server in [*self.sentinels, *self.replicas, self.primary]:
            server.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.cleanup()


@atexit.register
def _stop_all():
    for server in list(_servers):
        server.cleanup()
