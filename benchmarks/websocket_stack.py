"""
Side-by-side WebSocket benchmarks: the channel path over Redis (with one
and with two interface processes) and in runstack, Channels 4.3 over
channels_redis 4.3, and a bare ASGI floor, all running the same consumer
logic (benchmarks/project/benchproject/ws.py, ws_peer.py, ws_floor.py):
/ws/echo/ sends every frame back, a frame on /ws/group/ goes to every
socket of /ws/group/ (a group of the layer).

(Named websocket_stack.py, not websockets.py: a module of that name here
would shadow the websockets library for benchmarks/impolite.py.)

Every setup is started once, on its own loopback port (and redis-server of
its own when it uses one), and stays up for the whole run. Each round runs
every test against every setup, the setups in a rotated order, so that
machine noise spreads over all of them; the table gives the median of the
rounds and the ratio to Channels 4.3. The client is one asyncio process with
a minimal RFC 6455 client (a zero mask key, so sending costs no XOR): at
these rates a full client library would measure itself.

Tests:
- echo round trip, one socket: p50 and p99 of send -> echo received;
- echo msg/s with 100 sockets, each sending its next frame as soon as its
  echo is back, the server CPU per echoed message (utime + stime of
  every process of the setup, its redis-server included) and the commands
  its redis-server ran per echoed message (a measure the machine's load
  does not change much; a Lua script counts once, and so does each command
  it runs);
- broadcast to a group of 1,000 sockets: one member sends a frame, the time
  until the last member received it (median of the broadcasts of a round),
  and the commands the setup's redis-server ran per broadcast (with the
  upkeep of the idle sockets meanwhile);
- RSS per 1,000 idle sockets: the Python server processes' RSS with the
  1,000 sockets open and settled, less their RSS after the warm-up (memory
  once taken is seldom given back, so later rounds find the same peak).

Usage: python benchmarks/websocket_stack.py [--rounds 3] [--duration 3]
       [--quick] [--only redis,channels] [--no-save]
"""

import argparse
import asyncio
import base64
import os
import statistics
import struct
import sys
import time

import stacks

MB = 1024 * 1024

SETUPS = ("redis", "redis2", "runstack", "channels", "floor")


def ws_setups(threads=4, stack_threads=4):
    """Return the WebSocket setups, keyed as in SETUPS."""
    fork_env = stacks._env(fork=True, BENCH_WS=1)
    return [
        stacks.Stack(
            "redis",
            "uvicorn interface + runworker/Redis",
            stacks.uvicorn("benchproject.asgi_interface:application"),
            fork_env,
            worker=stacks.runworker(threads),
            workers=1,
            redis=True,
            description="uvicorn hosting get_interface_application(), 1 "
            "runworker --threads %d, RedisChannelLayer on a private "
            "redis-server; sync consumers of benchproject/ws.py" % threads,
        ),
        stacks.Stack(
            "redis2",
            "uvicorn --workers 2 interface + runworker/Redis",
            stacks.uvicorn("benchproject.asgi_interface:application", workers=2),
            fork_env,
            worker=stacks.runworker(threads),
            workers=1,
            redis=True,
            description="the redis setup with two uvicorn worker processes "
            "(one per core) hosting the interface, sharing one listening "
            "socket; the same runworker and redis-server arrangement",
        ),
        stacks.Stack(
            "runstack",
            "runstack (in-memory)",
            stacks.runstack(stack_threads),
            fork_env,
            description="manage.py runstack --workers %d, in-memory layer; "
            "the same consumers" % stack_threads,
        ),
        stacks.Stack(
            "channels",
            "Channels 4.3 (daphne, channels_redis)",
            stacks.daphne("benchproject.ws_peer:application"),
            stacks._env(peer=True),
            redis=True,
            description="daphne + Channels 4.3 sync WebsocketConsumer, groups "
            "on channels_redis 4.3 (benchproject/ws_peer.py)",
        ),
        stacks.Stack(
            "floor",
            "floor: bare ASGI app under uvicorn",
            stacks.uvicorn("benchproject.ws_floor:application"),
            stacks._env(),
            description="the same logic as a bare ASGI app in one uvicorn "
            "process, no Django, no layer (benchproject/ws_floor.py)",
        ),
    ]


# A minimal client.


class Client(asyncio.Protocol):
    """One WebSocket client connection; text frames only."""

    def __init__(self, host, path):
        self.host = host
        self.path = path
        self.transport = None
        self.buffer = bytearray()
        self.open = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        # Called with each text frame's payload (bytes).
        self.on_message = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16))
        transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
            % (self.path.encode(), self.host.encode(), key)
        )

    def data_received(self, data):
        self.buffer += data
        if not self.open.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
            del self.buffer[: end + 4]
            if b" 101 " not in status + b" ":
                self.open.set_exception(ConnectionError(status.decode("latin1")))
                self.transport.close()
                return
            self.open.set_result(None)
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode = buffer[0] & 0x0F
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                (length,) = struct.unpack_from("!H", buffer, 2)
                start = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                (length,) = struct.unpack_from("!Q", buffer, 2)
                start = 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            if opcode == 1 and self.on_message is not None:
                self.on_message(payload)
            elif opcode == 8:
                self.transport.close()
                return

    def connection_lost(self, exc):
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, payload):
        length = len(payload)
        if length < 126:
            header = bytes((0x81, 0x80 | length))
        else:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        # A zero mask key: the payload goes as it is.
        self.transport.write(header + b"\0\0\0\0" + payload)

    async def close(self, timeout=5):
        if self.transport.is_closing():
            return
        self.transport.write(b"\x88\x82\0\0\0\0\x03\xe8")
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except asyncio.TimeoutError:
            self.transport.abort()


async def connect(port, path, timeout=30):
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(
            lambda: Client("127.0.0.1:%d" % port, path), "127.0.0.1", port
        ),
        timeout,
    )
    await asyncio.wait_for(client.open, timeout)
    return client


async def connect_many(port, path, count, batch=50):
    clients = []
    for start in range(0, count, batch):
        clients += await asyncio.gather(
            *(connect(port, path) for _ in range(min(batch, count - start)))
        )
    return clients


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def echo_latency(stack, messages):
    """Return the p50 and p99 (ms) of one socket's echo round trips."""
    client = await connect(stack.port, "/ws/echo/")
    try:
        got = None
        times = []

        def on_message(payload):
            if got is not None and not got.done():
                got.set_result(payload)

        client.on_message = on_message
        loop = asyncio.get_running_loop()
        for n in range(messages):
            got = loop.create_future()
            payload = b"echo %d" % n
            started = time.perf_counter()
            client.send_text(payload)
            if await asyncio.wait_for(got, 10) != payload:
                raise RuntimeError("Echo out of order.")
            times.append(time.perf_counter() - started)
    finally:
        await client.close()
    times.sort()
    return {
        "p50": times[len(times) // 2] * 1000,
        "p99": times[int(len(times) * 0.99)] * 1000,
    }


async def echo_throughput(stack, sockets, duration):
    """Return msg/s and server CPU µs per message, sockets echoing at once."""
    clients = await connect_many(stack.port, "/ws/echo/", sockets)
    try:
        counts = [0] * sockets
        running = [False]
        errors = []

        def make(number, client):
            def on_message(payload):
                if int(payload) != counts[number]:
                    errors.append(number)
                counts[number] += 1
                if running[0]:
                    client.send_text(b"%d" % counts[number])

            return on_message

        for number, client in enumerate(clients):
            client.on_message = make(number, client)
        running[0] = True
        redis_before = redis_calls(stack)
        cpu_before = stack.cpu_seconds()
        started = time.perf_counter()
        for client in clients:
            client.send_text(b"0")
        await asyncio.sleep(duration)
        done = sum(counts)
        elapsed = time.perf_counter() - started
        cpu = stack.cpu_seconds() - cpu_before
        redis_after = redis_calls(stack)
        running[0] = False
        # Let the frames in flight come back before the sockets close.
        await asyncio.sleep(0.2)
    finally:
        await close_all(clients)
    if errors:
        raise RuntimeError("%d echoes out of order." % len(errors))
    result = {"rate": done / elapsed, "cpu": cpu / done * 1e6 if done else None}
    if redis_before is not None and done:
        result["redis"] = (redis_after - redis_before) / done
    return result


def redis_calls(stack):
    """
    Return the commands the stack's own redis-server ran so far (scripts
    and the commands they ran counted apart), or None without one.
    """
    if stack.redis is None:
        return None
    import redis

    client = redis.Redis.from_url(stack.redis.url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(
        value["calls"]
        for name, value in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    )


async def broadcast(stack, members, broadcasts, settle=1.0):
    """
    Return the time (ms, median) from one member's frame to the last
    member's receiving it, and the RSS (MiB) per 1,000 idle members.
    """
    # Memory once taken is seldom given back: the baseline is the setup's
    # RSS before any test opened many sockets (taken after the warm-up).
    rss_before = getattr(stack, "rss_idle", None) or stack.rss()
    clients = await connect_many(stack.port, "/ws/group/", members)
    try:
        await asyncio.sleep(settle)
        rss_after = stack.rss()
        loop = asyncio.get_running_loop()
        state = {"token": None, "left": 0, "done": None, "last": 0.0}

        def on_message(payload):
            if payload == state["token"]:
                state["left"] -= 1
                if state["left"] == 0:
                    state["last"] = time.perf_counter()
                    state["done"].set_result(None)

        for client in clients:
            client.on_message = on_message
        times = []
        redis_before = redis_calls(stack)
        for n in range(broadcasts):
            state.update(
                token=b"broadcast %d %d" % (n, time.monotonic_ns()),
                left=members,
                done=loop.create_future(),
            )
            started = time.perf_counter()
            clients[n % members].send_text(state["token"])
            await asyncio.wait_for(state["done"], 30)
            times.append((state["last"] - started) * 1000)
            await asyncio.sleep(0.2)
        redis_after = redis_calls(stack)
    finally:
        await close_all(clients)
    result = {
        "broadcast": statistics.median(times),
        "rss": (rss_after - rss_before) / MB * 1000 / members,
    }
    if redis_before is not None:
        result["redis_broadcast"] = (redis_after - redis_before) / broadcasts
    return result


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


ROWS = [
    ("echo round trip p50 ms, 1 socket", "p50", "%.3f"),
    ("echo round trip p99 ms, 1 socket", "p99", "%.3f"),
    ("echo msg/s, %(sockets)d sockets", "rate", "%.0f"),
    ("CPU µs per echoed message", "cpu", "%.0f"),
    ("Redis commands per echoed message", "redis", "%.1f"),
    ("broadcast to %(members)d, last receive ms", "broadcast", "%.1f"),
    ("Redis commands per broadcast", "redis_broadcast", "%.0f"),
    ("RSS MiB per 1,000 idle sockets", "rss", "%.1f"),
]


def format_table(setups, results, params):
    """One row per measure, one column per setup; ratios to Channels."""
    width = 40
    cell = 22
    lines = [
        "%-*s" % (width, "") + "".join("%-*s" % (cell, s.key) for s in setups),
    ]
    for label, measure, fmt in ROWS:
        base = median(results.get("channels", {}).get(measure, []))
        if measure.startswith("redis"):
            # Channels' echo does not touch Redis: no ratio to speak of.
            base = None
        line = "%-*s" % (width, label % params)
        for stack in setups:
            value = median(results[stack.key].get(measure, []))
            if value is None:
                text = "-"
            else:
                text = fmt % value
                if base and stack.key != "channels":
                    text += " (%.2fx)" % (value / base)
            line += "%-*s" % (cell, text)
        lines.append(line)
    lines.append("(ratios to the channels column, Channels 4.3)")
    return lines


def verdict(met):
    return "met" if met else "MISSED"


def goals(results):
    """Return issue 17's WebSocket goals, evaluated on this run."""

    def value(key, measure):
        return median(results.get(key, {}).get(measure, []))

    lines = ["Goals (issue 17, WebSockets), evaluated on this run:"]
    peer, floor = "channels", "floor"
    for key, name in (
        ("redis", "over Redis"),
        ("redis2", "over Redis, 2 interface processes"),
        ("runstack", "runstack, info"),
    ):
        rate, base = value(key, "rate"), value(peer, "rate")
        if rate is not None and base:
            lines.append(
                "- %s: echo msg/s >= 3x Channels 4.3: %.0f = %.2fx -> %s"
                % (name, rate, rate / base, verdict(rate >= 3 * base))
            )
        p50, base = value(key, "p50"), value(peer, "p50")
        if p50 is not None and base:
            lines.append(
                "- %s: echo p50 <= Channels 4.3's: %.3f ms = %.2fx -> %s"
                % (name, p50, p50 / base, verdict(p50 <= base))
            )
        took, base, bare = value(key, "broadcast"), value(peer, "broadcast"), None
        bare = value(floor, "broadcast")
        if took is not None and base:
            lines.append(
                "- %s: broadcast <= 1/5 of Channels 4.3's: %.1f ms = %.2fx -> %s"
                % (name, took, took / base, verdict(took <= base / 5))
            )
        if took is not None and bare:
            lines.append(
                "- %s: broadcast <= 2x the floor's: %.1f ms = %.2fx -> %s"
                % (name, took, took / bare, verdict(took <= 2 * bare))
            )
        rss, base = value(key, "rss"), value(peer, "rss")
        if rss is not None and base:
            lines.append(
                "- %s: RSS per socket no worse than Channels 4.3: %.1f MiB per "
                "1,000 = %.2fx -> %s" % (name, rss, rss / base, verdict(rss <= base))
            )
    return lines


async def run_round(order, results, args):
    for stack in order:
        measures = {}
        for name, coroutine in (
            ("latency", echo_latency(stack, args.messages)),
            ("throughput", echo_throughput(stack, args.sockets, args.duration)),
            ("broadcast", broadcast(stack, args.members, args.broadcasts)),
        ):
            try:
                measures.update(await coroutine)
            except Exception as e:
                print("! %s %s failed: %r" % (stack.key, name, e), flush=True)
            # What the test left (disconnects, group discards) settles first.
            await asyncio.sleep(args.pause)
        for measure, value in measures.items():
            results[stack.key].setdefault(measure, []).append(value)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--duration", type=float, default=3, help="seconds of the msg/s test"
    )
    parser.add_argument("--messages", type=int, default=2000, help="echoes for p50")
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--broadcasts", type=int, default=5)
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=4, help="runworker --threads")
    parser.add_argument("--stack-threads", type=int, default=4)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: 1 round, 1 s of msg/s, 500 echoes, 3 broadcasts",
    )
    parser.add_argument("--only", help="comma-separated setups: " + ",".join(SETUPS))
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--output", help="file to write (default: results/...)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.messages = 1, 1.0, 500
        args.broadcasts, args.pause = 3, 0.5

    started = time.monotonic()
    setups = ws_setups(args.threads, args.stack_threads)
    if args.only:
        keys = args.only.split(",")
        setups = [s for s in setups if s.key in keys]
    header = stacks.report_header(
        "method: %d interleaved rounds (setup order rotated each round), "
        "medians; per round and setup: %d echoes on one socket, %g s of "
        "echoes on %d sockets, %d broadcasts to %d sockets; CPU = utime + "
        "stime of the setup's processes (redis-server included); RSS of the "
        "Python server processes"
        % (
            args.rounds,
            args.messages,
            args.duration,
            args.sockets,
            args.broadcasts,
            args.members,
        )
    )
    print("\n".join(header), flush=True)
    results = {s.key: {} for s in setups}
    started_setups = []
    try:
        for stack in setups:
            stack.start()
            started_setups.append(stack)

        async def run():
            # A warm-up: every code path once, not measured.
            for stack in setups:
                await echo_latency(stack, 50)
                await echo_throughput(stack, 10, 0.3)
                stack.rss_idle = stack.rss()
            for number in range(args.rounds):
                order = setups[number % len(setups) :] + setups[: number % len(setups)]
                await run_round(order, results, args)
                print(
                    "round %d done after %.0f s"
                    % (number + 1, time.monotonic() - started),
                    flush=True,
                )

        asyncio.run(run())
        setup_lines = [
            "setups (column: what runs; commands, run in benchmarks/project):"
        ]
        for stack in setups:
            setup_lines.append(
                "%9s  %s: %s" % (stack.key, stack.name, stack.description)
            )
            for command in stack.commands():
                setup_lines.append("           $ %s" % command)
    finally:
        for stack in started_setups:
            stack.stop()
    params = {"sockets": args.sockets, "members": args.members}
    report = [
        *header,
        "",
        *setup_lines,
        "",
        *format_table(setups, results, params),
        "",
        *goals(results),
        "total time: %.0f s" % (time.monotonic() - started),
    ]
    print("\n" + "\n".join(report[len(header) :]))
    if not args.no_save:
        stacks.save_report(report, "websockets", args.output)


if __name__ == "__main__":
    if sys.version_info < (3, 10):
        sys.exit("Python 3.10+ is needed.")
    main()
