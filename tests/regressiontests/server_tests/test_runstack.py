"""manage.py runstack: the whole channel stack in one process, over sockets."""

import asyncio
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.test import SimpleTestCase

from django_fork.management.commands.runstack import CoalescingTransport

from .servers import ServerProcess, WebSocketOverSocketsMixin, free_port, manage


def httptools_installed():
    try:
        import httptools  # NOQA
    except ImportError:
        return False
    return True


class RunstackTests(WebSocketOverSocketsMixin, SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.port = free_port()
        cls.server = ServerProcess(
            manage(
                "runstack",
                "--bind",
                "127.0.0.1:%d" % cls.port,
                "--workers",
                "3",
                "--no-access-log",
            ),
            port=cls.port,
        )

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        super().tearDownClass()

    def test_get(self):
        status, headers, body = self.server.request("GET", "/hello/?name=socket")
        self.assertEqual((status, body), (200, b"Hello, socket!"))
        # Header names are case-insensitive; uvicorn's httptools protocol
        # sends them in lower case, its h11 protocol as given.
        headers = [(name.lower(), value) for name, value in headers]
        self.assertIn(("content-type", "text/html; charset=utf-8"), headers)

    def test_large_upload(self):
        # Above the 256 KiB chunk size, below DATA_UPLOAD_MAX_MEMORY_SIZE.
        body = b"0123456789" * 200_000
        status, _, response = self.server.request(
            "POST",
            "/body-length/",
            body=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(response), {"length": len(body)})

    def test_streaming_response(self):
        status, _, body = self.server.request("GET", "/stream/?parts=10&size=100000")
        self.assertEqual((status, len(body)), (200, 10 * 100_002))

    def test_head(self):
        status, headers, body = self.server.request("HEAD", "/hello/")
        self.assertEqual((status, body), (200, b""))

    def test_concurrent_clients(self):
        def get(i):
            return self.server.request("GET", "/hello/?name=%d" % i)[2]

        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(get, range(200)))
        self.assertEqual(bodies, [b"Hello, %d!" % i for i in range(200)])

    def test_header_limit(self):
        """A request line and headers over --max-header-size get 431."""
        with socket.create_connection(("127.0.0.1", self.port), 10) as client:
            client.sendall(b"GET /hello/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            try:
                for _ in range(40):
                    client.sendall(b"X-Big: " + b"x" * 16384 + b"\r\n")
            except OSError:
                # The server closed the connection while the client sent.
                pass
            answer = client.recv(1024)
        # uvicorn's h11 parser (without httptools) answers its own limit 400.
        expected = b"HTTP/1.1 431 " if httptools_installed() else b"HTTP/1.1 400 "
        self.assertTrue(answer.startswith(expected), answer)
        # Headers under the limit are served.
        status, _, _ = self.server.request(
            "GET", "/hello/", headers={"X-Big": "x" * 30000}
        )
        self.assertEqual(status, 200)

    def test_burst_is_queued_not_refused(self):
        """More concurrent requests than the request channel holds: all 200."""
        with ThreadPoolExecutor(150) as pool:
            statuses = list(
                pool.map(
                    lambda i: self.server.request("GET", "/slow/?seconds=0.01")[0],
                    range(300),
                )
            )
        self.assertEqual(statuses, [200] * 300)

    def test_client_leaving_before_the_first_byte_frees_workers(self):
        """Clients that close before their stream starts hold no worker."""
        for _ in range(6):
            client = socket.create_connection(("127.0.0.1", self.port), 10)
            client.sendall(
                b"GET /late-stream/?think=0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            client.close()
        time.sleep(0.5)
        started = time.monotonic()
        status, _, _ = self.server.request("GET", "/hello/", timeout=10)
        self.assertEqual(status, 200)
        self.assertLess(time.monotonic() - started, 5)


class RunstackShutdownTests(SimpleTestCase):
    def test_sigterm_finishes_in_flight_requests(self):
        """SIGTERM lets an in-flight request finish, then exits cleanly."""
        port = free_port()
        server = ServerProcess(
            manage("runstack", "--bind", "127.0.0.1:%d" % port), port=port
        )
        self.addCleanup(server.cleanup)
        result = {}

        def slow_request():
            result["response"] = server.request("GET", "/slow/?seconds=1")

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.4)
        self.assertEqual(server.stop(signal.SIGTERM), 0, server.output)
        thread.join(10)
        status, _, body = result["response"]
        self.assertEqual((status, body), (200, b"slow done"))
        self.assertIn(
            "Serving channel_path_tests.urls on http://127.0.0.1", server.output
        )

    def test_bad_bind(self):
        server = ServerProcess(
            manage("runstack", "--bind", "nonsense"), wait_for_port=False
        )
        self.addCleanup(server.cleanup)
        self.assertEqual(server.process.wait(30), 1)
        self.assertIn("--bind must be HOST:PORT", server.output)


class RunstackPortTakenTests(SimpleTestCase):
    def test_port_taken(self):
        """A taken port is the command's error, before any banner."""
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            server = ServerProcess(
                manage("runstack", "--bind", "127.0.0.1:%d" % port),
                wait_for_port=False,
            )
            self.addCleanup(server.cleanup)
            self.assertEqual(server.process.wait(30), 1)
        self.assertIn("Could not listen on 127.0.0.1:%d" % port, server.output)
        self.assertNotIn("Serving", server.output)


class RecordingTransport:
    def __init__(self):
        self.writes = []
        self.closed = False
        self.aborted = False

    def write(self, data):
        self.writes.append(data)

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True

    def get_write_buffer_size(self):
        return 0

    def get_extra_info(self, name, default=None):
        return "info:%s" % name


class CoalescingTransportTests(SimpleTestCase):
    def transport(self):
        self.responses = 0

        def on_response():
            self.responses += 1

        real = RecordingTransport()
        return real, CoalescingTransport(real, asyncio.get_running_loop(), on_response)

    async def test_head_and_body_in_one_write(self):
        """The end of a response writes its head and body as one."""
        real, transport = self.transport()
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        self.assertEqual(real.writes, [])
        self.assertEqual(transport.get_write_buffer_size(), 23)
        transport.response_complete()
        self.assertEqual(real.writes, [b"HTTP/1.1 200 OK\r\n\r\nbody"])
        self.assertEqual(self.responses, 1)
        await asyncio.sleep(0)
        self.assertEqual(len(real.writes), 1)

    async def test_written_on_the_next_loop_turn(self):
        """What is written and then waited on goes out on the next turn."""
        real, transport = self.transport()
        transport.write(b"head")
        transport.write(b"")
        await asyncio.sleep(0)
        self.assertEqual(real.writes, [b"head"])
        transport.write(b"chunk")
        await asyncio.sleep(0)
        self.assertEqual(real.writes, [b"head", b"chunk"])

    async def test_close_writes_first_abort_drops(self):
        real, transport = self.transport()
        transport.write(b"last")
        transport.close()
        self.assertEqual(real.writes, [b"last"])
        self.assertIs(real.closed, True)
        real, transport = self.transport()
        transport.write(b"lost")
        transport.abort()
        await asyncio.sleep(0)
        self.assertEqual(real.writes, [])
        self.assertIs(real.aborted, True)

    async def test_nothing_written_to_a_closed_transport(self):
        real, transport = self.transport()
        transport.write(b"late")
        real.closed = True
        await asyncio.sleep(0)
        self.assertEqual(real.writes, [])

    async def test_other_attributes_are_the_transport_s(self):
        real, transport = self.transport()
        self.assertEqual(transport.get_extra_info("peername"), "info:peername")
