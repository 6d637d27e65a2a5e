"""Start and stop real server processes on free loopback ports."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
TESTS = os.path.join(REPO, "tests", "regressiontests")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TESTS, REPO, env.get("PYTHONPATH", "")])
    env["DJANGO_SETTINGS_MODULE"] = "server_tests.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class ServerProcess:
    """
    A subprocess serving HTTP on a loopback port, with its output kept.

    It runs in a process group of its own, so that stopping it also ends
    the processes it started (hypercorn serves from a child process).
    """

    def __init__(self, args, port=None, env=None, wait_for_port=True):
        self.port = port
        self.output_path = "/tmp/server-tests-%d-%d.log" % (os.getpid(), id(self))
        self._output = open(self.output_path, "wb")
        self.process = subprocess.Popen(
            args,
            cwd=REPO,
            env=env or environment(),
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait_for_port:
            self.wait_until_serving()

    def wait_until_serving(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "Server exited with %s:\n%s"
                    % (self.process.returncode, self.output)
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("Server did not listen in time:\n%s" % self.output)

    @property
    def output(self):
        with open(self.output_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for_output(self, text, timeout=10):
        """
        Return the output once it holds text, or as it is after timeout
        seconds: a line printed once the port is bound may come a little
        after the port opens.
        """
        deadline = time.monotonic() + timeout
        while text not in (output := self.output) and time.monotonic() < deadline:
            time.sleep(0.05)
        return output

    def request(self, method, path, body=None, headers=None, timeout=30):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """
        Signal the process and return its exit code; kill whatever of its
        process group is left.
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._output.close()
        return self.process.returncode

    def cleanup(self):
        self.stop(signal.SIGKILL)
        try:
            os.unlink(self.output_path)
        except FileNotFoundError:
            pass


def manage(*args):
    return [sys.executable, "-m", "django", *args]


class WebSocketOverSocketsMixin:
    """WebSocket tests against a server listening on self.port."""

    def test_websocket_echo(self):
        url = "ws://127.0.0.1:%d/ws/echo/" % self.port
        with connect(url, open_timeout=10) as websocket:
            websocket.send("hi")
            self.assertEqual(websocket.recv(10), "echo:hi")
            websocket.send(b"abc")
            self.assertEqual(websocket.recv(10), b"cba")

    def test_websocket_refused(self):
        with self.assertRaises(InvalidStatus) as cm:
            connect("ws://127.0.0.1:%d/ws/refuse/" % self.port, open_timeout=10)
        self.assertEqual(cm.exception.response.status_code, 403)
