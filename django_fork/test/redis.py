"""
Redis servers for tests.

RedisServer starts a private redis-server on a free loopback port (never
6379) with persistence off, in a temporary directory, so a test can kill it
and restart it on the same port. Servers still running when the interpreter
exits are stopped; on Linux, a server also dies with the process that
started it, however that process ends.

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

__all__ = ["RedisServer", "RedisUnavailable", "redis_server_path", "require_redis"]

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

    def __init__(self, port=None, startup_timeout=10):
        self.port = port
        self.startup_timeout = startup_timeout
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


@atexit.register
def _stop_all():
    for server in list(_servers):
        server.cleanup()
