import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading

import uvicorn
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, SystemCheckError
from django.utils import autoreload

from django_fork.channels.interface import InterfaceApplication
from django_fork.channels.layers import DEFAULT_CHANNEL_LAYER_ALIAS, channel_layers
from django_fork.channels.loops import LOOP_CHOICES, resolve_loop, run
from django_fork.channels.worker import Worker
from django_fork.contrib.staticfiles.asgi import StaticRootApplication

logger = logging.getLogger("django_fork.channels.stack")

#: The default of --max-header-size: the request line and headers (64 KiB).
DEFAULT_MAX_HEADER_SIZE = 64 * 1024


class CoalescingTransport:
    """
    The transport of one request and response on a connection, which
    writes what one turn of the event loop wrote as one write: a response's
    head and its body, which uvicorn writes apart, leave in one send() (one
    system call and one segment, not two), and the end of the response
    writes at once. What an application writes and then waits on goes out
    on the loop's next turn.
    """

    def __init__(self, transport, loop, on_response):
        self.transport = transport
        self.loop = loop
        self.pending = []
        self.handle = None
        self.on_response = on_response

    def write(self, data):
        if not data:
            return
        self.pending.append(data)
        if self.handle is None:
            self.handle = self.loop.call_soon(self.flush)

    def flush(self):
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        pending = self.pending
        if pending:
            self.pending = []
            if not self.transport.is_closing():
                self.transport.write(
                    pending[0] if len(pending) == 1 else b"".join(pending)
                )

    def response_complete(self):
        """uvicorn's end of a response: write it, then carry on."""
        self.flush()
        self.on_response()

    def close(self):
        self.flush()
        self.transport.close()

    def abort(self):
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.pending = []
        self.transport.abort()

    def get_write_buffer_size(self):
        return self.transport.get_write_buffer_size() + sum(map(len, self.pending))

    def __getattr__(self, name):
        return getattr(self.transport, name)


def http_protocol(max_header_size):
    """
    Return uvicorn's "http" option and its keyword options for a server
    that refuses a request line and headers larger than max_header_size.

    h11 has a limit of its own (h11_max_incomplete_event_size); httptools
    has none, so its protocol is wrapped to count what arrives before the
    end of the headers.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11", {"h11_max_incomplete_event_size": max_header_size}

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        """Answer 431 to a request whose head passes max_header_size."""

        _in_head = True
        _head_bytes = 0

        def data_received(self, data):
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            # One read (at most 256 KiB) past the bound at the most.
            if self._in_head and self._head_bytes > max_header_size:
                self._in_head = False
                logger.warning(
                    "Refused a request whose headers are over %d bytes.",
                    max_header_size,
                )
                self.transport.write(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                    b"content-type: text/plain; charset=utf-8\r\n"
                    b"content-length: 36\r\nconnection: close\r\n\r\n"
                    b"431 Request Header Fields Too Large\n"
                )
                self.transport.close()

        def on_headers_complete(self):
            self._in_head = False
            self._head_bytes = 0
            previous = self.cycle
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None and cycle is not previous:
                # A new request (not an upgrade): coalesce its writes.
                transport = CoalescingTransport(
                    cycle.transport, self.loop, cycle.on_response
                )
                cycle.transport = transport
                cycle.on_response = transport.response_complete

        def on_message_complete(self):
            self._in_head = True
            super().on_message_complete()

    return LimitedHttpToolsProtocol, {}


class StackServer(uvicorn.Server):
    """
    uvicorn's server, exiting with status 0 on SIGINT/SIGTERM: a requested
    shutdown that completed is a success, as it is for gunicorn.
    """

    @contextlib.contextmanager
    def capture_signals(self):
        # Under --reload the server runs in a thread of the autoreloader,
        # which handles the signals.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for signum in signals:
            loop.add_signal_handler(signum, self.handle_exit, signum, None)
        try:
            yield
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)


def parse_bind(bind):
    """Return (host, port) from "host:port", "[v6]:port" or ":port"."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise CommandError("--bind must be HOST:PORT, not %r." % bind)
    return host.strip("[]") or "127.0.0.1", int(port)


class Command(BaseCommand):
    help = (
        "Run the complete channel stack in one process: the interface server "
        "(uvicorn) and worker threads, over the channel layer (by default "
        "in-memory)."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind",
            default="127.0.0.1:8000",
            help="Address to listen on, HOST:PORT (default: %(default)s).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=4,
            help="Worker threads for views and consumers (default: %(default)s).",
        )
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER_ALIAS,
            help="The CHANNEL_LAYERS alias to use (default: %(default)s).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="Seconds to wait for a response (default: CHANNEL_HTTP_TIMEOUT "
            "or 60).",
        )
        parser.add_argument(
            "--ws-ping-interval",
            type=float,
            default=20.0,
            help="Seconds between WebSocket pings (default: %(default)s).",
        )
        parser.add_argument(
            "--ws-ping-timeout",
            type=float,
            default=20.0,
            help="Seconds to wait for a pong before closing a WebSocket "
            "(default: %(default)s).",
        )
        parser.add_argument(
            "--max-header-size",
            type=int,
            default=DEFAULT_MAX_HEADER_SIZE,
            help="The largest request line and headers, in bytes, a request "
            "may have; larger ones get 431 (default: %(default)s).",
        )
        parser.add_argument(
            "--loop",
            choices=LOOP_CHOICES,
            default="auto",
            help="Event loop: uvloop when installed, for auto (default: "
            "%(default)s). The HTTP parser is uvicorn's choice: httptools "
            "when installed.",
        )
        parser.add_argument(
            "--static",
            action="store_true",
            help="Serve STATIC_ROOT at STATIC_URL from the interface, with no "
            "worker hop (run collectstatic first).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Restart when a Python file of the project changes, as "
            "runserver does (for development).",
        )
        parser.add_argument(
            "--no-access-log",
            action="store_false",
            dest="access_log",
            help="Do not log each request.",
        )

    def handle(self, *args, **options):
        if options["reload"]:
            autoreload.run_with_reloader(self.reloaded_run, **options)
        else:
            self.inner_run(**options)

    def reloaded_run(self, **options):
        """Run inner_run() in the autoreloader's thread, reporting errors."""
        try:
            self.inner_run(**options)
        except SystemCheckError as e:
            # Keep watching: saving the fix restarts the server.
            self.stderr.write(str(e))
        except CommandError as e:
            self.stderr.write("Error: %s" % e)
            # sys.exit() would end only this thread.
            os._exit(1)

    def inner_run(self, **options):
        self.check(display_num_errors=True)
        host, port = parse_bind(options["bind"])
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1.")
        layer = channel_layers[options["layer"]]
        app = InterfaceApplication(
            layer_alias=options["layer"], timeout=options["timeout"]
        )
        if options["static"]:
            try:
                app = StaticRootApplication(app)
            except ImproperlyConfigured as e:
                raise CommandError(e)
        worker = Worker(layer, threads=options["workers"])
        http, http_options = http_protocol(options["max_header_size"])
        config = uvicorn.Config(
            app,
            http=http,
            **http_options,
            host=host,
            port=port,
            lifespan="off",
            access_log=options["access_log"],
            log_level="info" if options["verbosity"] > 0 else "warning",
            server_header=False,
            timeout_graceful_shutdown=30,
            ws_ping_interval=options["ws_ping_interval"],
            ws_ping_timeout=options["ws_ping_timeout"],
        )
        server = StackServer(config)
        try:
            # Bind before announcing anything: a taken port is reported as
            # the command's error, not after a misleading banner.
            listener = socket.create_server(
                (host, port),
                family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                backlog=config.backlog,
            )
        except OSError as e:
            raise CommandError("Could not listen on %s: %s" % (options["bind"], e))
        # Accepted sockets take their listener's proto, which create_server()
        # leaves at 0; asyncio sets TCP_NODELAY only when it is IPPROTO_TCP.
        # Without it, a response written in two parts (start, then body) on
        # a kept-alive connection waits ~40 ms for the client's delayed ACK.
        listener = socket.socket(
            listener.family, listener.type, socket.IPPROTO_TCP, listener.detach()
        )
        self.stdout.write(
            "Serving %s on http://%s:%d/ with %d worker threads on the %r "
            "channel layer (%s), %s loop. DEBUG is %s. Quit with CONTROL-C."
            % (
                settings.ROOT_URLCONF,
                host,
                port,
                options["workers"],
                options["layer"],
                type(layer).__name__,
                resolve_loop(options["loop"]),
                settings.DEBUG,
            )
        )
        run(self.serve(server, listener, worker, layer), options["loop"])
        self.stdout.write("Stopped after %d messages." % worker.handled)

    async def serve(self, server, listener, worker, layer):
        try:
            # uvicorn handles SIGINT/SIGTERM: it stops accepting, lets open
            # requests finish, then serve() returns.
            await worker.run_while(server.serve(sockets=[listener]))
        finally:
            await layer.close()
        if not server.started:
            raise CommandError("The server could not start (see the log above).")
