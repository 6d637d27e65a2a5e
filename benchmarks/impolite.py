"""
Drills of impolite clients: bursts, clients that leave early, read slowly or
trickle their uploads, and aborted downloads, on the channel path.

Two stacks serve benchmarks/project (with BENCH_IMPOLITE=1, which adds
benchproject/impolite.py's views and WebSocket consumer), each started by
this module on free loopback ports:

- runstack: manage.py runstack --workers 4, in-memory layer;
- split: uvicorn hosting the interface, 2 runworker --threads 4 processes,
  RedisChannelLayer on a private redis-server.

Drills (each reports sent / succeeded / failed / hung / lost, and the RSS of
the stack's Python processes before and after):

1. burst-get: 1,000 concurrent GETs. failed: any status but 200.
2. ws-burst: 1,000 concurrent WebSocket handshakes to a consumer that joins
   a group with a channel session, then one frame from every socket at the
   same moment. failed: refused handshakes (503) or closed sockets (1013).
3. ws-close: those 1,000 sockets closed at once. lost: group members and
   channel sessions left 30 s later (every disconnect must be delivered).
4. early-close: 100 clients that close before the first byte of a streamed
   response, then a normal GET, which must be answered within 1 s.
5. raise-stream: a streaming view that raises; the client must see the
   connection end within 1 s of the headers.
6. trickle: 20 uploads trickling at 2 KB/s beside normal GETs (4 loops):
   the GETs' p99 with and without them.
7. slow-reader: a client reading a 2 MiB download at 3 KB/s (runs beside
   the other drills; about 12 minutes): the whole body, correct SHA-256.
8. mixed: 20,000 mixed requests (32 loops), 2,000 of them downloads aborted
   after 64 KiB. RSS of every process after warm-up, after the drill, and
   after the layer's expiry (65 s later); over Redis, keys without expiry.

Usage: python benchmarks/impolite.py [--stacks runstack,split]
       [--drills 1,2,3,4,5,6,7,8] [--scale 1.0] [--no-save]
--scale multiplies every count (0.1 for a quick run while developing).
"""

import argparse
import asyncio
import hashlib
import json
import socket
import sys
import time

import stacks

CLIENT_TIMEOUT = 60
KIB = 1024
#: The pattern of benchproject.impolite's downloads.
PATTERN = bytes(range(256)) * 64


def download_body(size):
    """Return what benchproject.impolite.download() answers for size."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


class Lost(Exception):
    """The connection closed (or failed) before a complete response."""


async def http_request(
    port,
    target,
    method="GET",
    body=b"",
    read_limit=None,
    close_after_send=False,
    upload_rate=None,
    read_rate=None,
):
    """
    Send one HTTP/1.1 request; return (status, headers, body, seconds from
    the headers to the end of the connection).

    read_limit: close after that many body bytes (an aborted download).
    close_after_send: close right after sending (a client that leaves before
    the first byte); returns None. upload_rate, read_rate: bytes per second
    of a trickling upload, of a slow reader (with a small receive buffer, so
    that the kernel does not read for it).
    """
    sock = socket.socket()
    if read_rate:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * KIB)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise Lost("connect: %s" % e)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (
            method,
            target,
        )
        if body:
            head += "Content-Type: application/octet-stream\r\n"
            head += "Content-Length: %d\r\n" % len(body)
        writer.write((head + "\r\n").encode())
        if upload_rate:
            step = max(1, upload_rate // 10)
            for position in range(0, len(body), step):
                writer.write(body[position : position + step])
                await writer.drain()
                await asyncio.sleep(0.1)
        else:
            writer.write(body)
        await writer.drain()
        if close_after_send:
            return None
        status_line = await reader.readline()
        if not status_line:
            raise Lost("closed before the status line")
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin1").partition(":")
            headers[name.strip().lower()] = value.strip()
        headers_at = time.monotonic()
        content = bytearray()
        while True:
            want = 64 * KIB
            if read_rate:
                want = max(1, read_rate // 10)
            part = await reader.read(want)
            if not part:
                break
            content += part
            if read_limit is not None and len(content) >= read_limit:
                return status, headers, bytes(content), None
            if read_rate:
                await asyncio.sleep(len(part) / read_rate)
        return (
            status,
            headers,
            decode(headers, bytes(content)),
            (time.monotonic() - headers_at),
        )
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
        raise Lost("%s: %s" % (type(e).__name__, e))
    finally:
        writer.close()


def decode(headers, content):
    """Return the body of a complete response; raise Lost for a cut one."""
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        position = 0
        while True:
            end = content.find(b"\r\n", position)
            if end < 0:
                raise Lost("chunked body cut short")
            size = int(content[position:end].split(b";")[0], 16)
            if size == 0:
                return bytes(body)
            body += content[end + 2 : end + 2 + size]
            position = end + 4 + size
    if "content-length" in headers and len(content) != int(headers["content-length"]):
        raise Lost(
            "body cut short: %d of %s bytes" % (len(content), headers["content-length"])
        )
    return content


class Tally:
    """The outcomes of one drill."""

    def __init__(self, name):
        self.name = name
        self.sent = self.succeeded = self.failed = self.hung = self.lost = 0
        self.notes = []
        self.details = {}

    def add(self, outcome, detail=None):
        self.sent += 1
        setattr(self, outcome, getattr(self, outcome) + 1)
        if detail:
            key = "%s: %s" % (outcome, detail)
            self.details[key] = self.details.get(key, 0) + 1


async def timed(coroutine, timeout=CLIENT_TIMEOUT):
    """Return (outcome, result or detail)."""
    try:
        return "succeeded", await asyncio.wait_for(coroutine, timeout)
    except asyncio.TimeoutError:
        return "hung", "no answer in %d s" % timeout
    except Lost as e:
        return "lost", str(e)


async def get_ok(port, target="/hello/"):
    outcome, result = await timed(http_request(port, target))
    if outcome != "succeeded":
        return outcome, result
    status = result[0]
    return ("succeeded", None) if status == 200 else ("failed", "HTTP %d" % status)


async def drill_burst_get(stack, n, tally):
    results = await asyncio.gather(*(get_ok(stack.port) for _ in range(n)))
    for outcome, detail in results:
        tally.add(outcome, detail)


async def open_socket(port, n):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        return "succeeded", await connect(
            "ws://127.0.0.1:%d/ws/group/" % port,
            open_timeout=CLIENT_TIMEOUT,
            ping_interval=None,
            close_timeout=10,
            max_queue=4,
        )
    except InvalidStatus as e:
        return "failed", "handshake HTTP %d" % e.response.status_code
    except asyncio.TimeoutError:
        return "hung", "no handshake in %d s" % CLIENT_TIMEOUT
    except OSError as e:
        return "lost", str(e)


async def echo_once(ws, n):
    from websockets.exceptions import ConnectionClosed

    try:
        await ws.send("frame %d" % n)
        answer = await asyncio.wait_for(ws.recv(), CLIENT_TIMEOUT)
    except asyncio.TimeoutError:
        return "hung", "no echo in %d s" % CLIENT_TIMEOUT
    except ConnectionClosed as e:
        return "failed", "closed %s" % (e.rcvd.code if e.rcvd else "abruptly")
    if answer != "echo:frame %d" % n:
        return "failed", "wrong echo"
    return "succeeded", None


async def drill_ws_burst(stack, n, tally, sockets):
    opened = await asyncio.gather(*(open_socket(stack.port, i) for i in range(n)))
    live = []
    for outcome, result in opened:
        if outcome == "succeeded":
            live.append(result)
        else:
            tally.add(outcome, result)
    answers = await asyncio.gather(*(echo_once(ws, i) for i, ws in enumerate(live)))
    for (outcome, detail), ws in zip(answers, live):
        tally.add(outcome, detail)
        if outcome == "succeeded":
            sockets.append(ws)


async def drill_state(stack):
    _, _, body, _ = await http_request(stack.port, "/drill-state/")
    return json.loads(body)


async def drill_ws_close(stack, n, tally, sockets):
    before = await drill_state(stack)
    tally.notes.append(
        "%d sockets open, %d group members, %d channel sessions"
        % (len(sockets), before["members"], before["sessions"])
    )
    started = time.monotonic()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    state = before
    while time.monotonic() - started < 30:
        state = await drill_state(stack)
        if state["members"] == 0 and state["sessions"] == 0:
            break
        await asyncio.sleep(0.5)
    cleaned = time.monotonic() - started
    left = max(state["members"], state["sessions"])
    for i in range(len(sockets)):
        tally.add("lost" if i < left else "succeeded")
    tally.notes.append(
        "%d members and %d sessions left, %.1f s after the close"
        % (state["members"], state["sessions"], cleaned)
    )
    sockets.clear()


async def drill_early_close(stack, n, tally):
    await asyncio.gather(
        *(
            http_request(stack.port, "/slow-stream/?every=20", close_after_send=True)
            for _ in range(n)
        ),
        return_exceptions=True,
    )
    await asyncio.sleep(0.2)
    started = time.monotonic()
    outcome, detail = await get_ok(stack.port)
    took = time.monotonic() - started
    if outcome == "succeeded" and took > 1:
        outcome, detail = "failed", "answered in more than 1 s"
    tally.add(outcome, detail)
    tally.notes.append("the GET after %d early closes took %.3f s" % (n, took))


async def drill_raise_stream(stack, n, tally):
    longest = 0
    for _ in range(n):
        started = time.monotonic()
        outcome, result = await timed(http_request(stack.port, "/raise-stream/"), 10)
        took = time.monotonic() - started
        longest = max(longest, took)
        if outcome == "lost" and "cut short" in result:
            # The connection ended before the body's end, as it should: in
            # time?
            if took <= 1:
                tally.add("succeeded")
            else:
                tally.add("failed", "the connection ended after more than 1 s")
            continue
        if outcome == "succeeded":
            outcome, result = "failed", "a complete body: the error was hidden"
        tally.add(outcome, result)
    tally.notes.append("the longest request took %.3f s" % longest)


async def p99_of_gets(port, seconds, loops=4, pause=0.08):
    """GET /hello/ from loops clients pausing between requests (about 50/s)."""
    latencies = []
    failures = 0
    deadline = time.monotonic() + seconds

    async def loop():
        nonlocal failures
        while time.monotonic() < deadline:
            started = time.monotonic()
            outcome, _ = await get_ok(port)
            if outcome == "succeeded":
                latencies.append(time.monotonic() - started)
            else:
                failures += 1
            await asyncio.sleep(pause)

    await asyncio.gather(*(loop() for _ in range(loops)))
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    return p99, len(latencies), failures


async def trickle_upload(port, size, rate):
    body = bytes(size)
    outcome, result = await timed(
        http_request(port, "/upload/", "POST", body, upload_rate=rate),
        size / rate + CLIENT_TIMEOUT,
    )
    if outcome != "succeeded":
        return outcome, result
    status, _, content, _ = result
    if status != 200 or content != b"%d" % size:
        return "failed", "HTTP %d %r" % (status, content[:40])
    return "succeeded", None


async def drill_trickle(stack, n, tally, seconds=20):
    base_p99, base_count, _ = await p99_of_gets(stack.port, seconds / 2)
    uploads = asyncio.gather(
        *(trickle_upload(stack.port, 2 * KIB * seconds, 2 * KIB) for _ in range(n))
    )
    await asyncio.sleep(1)
    p99, count, failures = await p99_of_gets(stack.port, seconds - 2)
    for outcome, detail in await uploads:
        tally.add(outcome, detail)
    for _ in range(failures):
        tally.add("failed", "a normal GET failed beside the uploads")
    tally.notes.append(
        "GET p99 %.1f ms alone (%d GETs), %.1f ms beside %d uploads at 2 KB/s "
        "(%d GETs)" % (base_p99 * 1000, base_count, p99 * 1000, n, count)
    )


async def drill_slow_reader(stack, tally, size=2 * 1024 * KIB, rate=3 * KIB):
    started = time.monotonic()
    outcome, result = await timed(
        http_request(stack.port, "/download/?size=%d" % size, read_rate=rate),
        size / rate * 2 + CLIENT_TIMEOUT,
    )
    if outcome == "succeeded":
        status, _, body, _ = result
        expected = hashlib.sha256(download_body(size)).hexdigest()
        if status != 200 or hashlib.sha256(body).hexdigest() != expected:
            outcome, result = "failed", "HTTP %d, %d bytes, wrong hash" % (
                status,
                len(body),
            )
    tally.add(outcome, result if outcome != "succeeded" else None)
    tally.notes.append(
        "%d KiB at %d B/s in %.0f s" % (size // KIB, rate, time.monotonic() - started)
    )


MIX = [
    ("/hello/", 12),
    ("/big/", 3),
    ("/download/?size=%d" % (600 * KIB), 1),
]


async def mixed_load(port, total, aborted, loops, tally):
    """
    Send total requests from loops clients: every (total / aborted)th an
    aborted download, every 20th a 300 KiB upload, the rest from MIX.
    """
    every = max(1, total // aborted) if aborted else 0
    counter = iter(range(total))
    targets = [t for t, weight in MIX for _ in range(weight)]

    async def loop():
        for i in counter:
            if every and i % every == 0:
                outcome, result = await timed(
                    http_request(port, "/download/", read_limit=64 * KIB)
                )
                tally.add(outcome, result if outcome != "succeeded" else None)
                continue
            target = targets[i % len(targets)]
            if i % 20 == 3:
                outcome, result = await timed(
                    http_request(port, "/upload/", "POST", bytes(300 * KIB))
                )
            else:
                outcome, result = await timed(http_request(port, target))
            if outcome == "succeeded" and result[0] != 200:
                outcome, result = "failed", "HTTP %d" % result[0]
            tally.add(outcome, result if outcome != "succeeded" else None)

    await asyncio.gather(*(loop() for _ in range(loops)))


def process_rss(stack):
    return {p.name: stacks.rss_bytes(p.pid) for p in [*stack.fronts, *stack.workers]}


def format_rss(rss):
    return ", ".join("%s %.0f MiB" % (name, v / 2**20) for name, v in rss.items())


async def drill_mixed(stack, total, aborted, tally):
    warm = Tally("warm-up")
    await mixed_load(stack.port, max(100, total // 20), aborted // 20, 32, warm)
    warmed = process_rss(stack)
    await mixed_load(stack.port, total, aborted, 32, tally)
    after = process_rss(stack)
    await asyncio.sleep(65)
    settled = process_rss(stack)
    state = await drill_state(stack)
    tally.notes.append("RSS after warm-up: " + format_rss(warmed))
    tally.notes.append("RSS after the drill: " + format_rss(after))
    tally.notes.append("RSS 65 s later: " + format_rss(settled))
    growth = max(settled[name] / warmed[name] - 1 for name in warmed)
    tally.notes.append("largest growth over warm-up, settled: %+.1f%%" % (growth * 100))
    if stack.uses_redis:
        tally.notes.append(
            "Redis keys without expiry: %d %s"
            % (state["no_expiry"], state["no_expiry_sample"])
        )


def make_stack(name):
    env = stacks._env(fork=True, BENCH_IMPOLITE=1)
    if name == "runstack":
        return stacks.Stack(
            "runstack", "runstack --workers 4 (in-memory)", stacks.runstack(4), env
        )
    return stacks.Stack(
        "split",
        "uvicorn + 2 runworker --threads 4 / Redis",
        stacks.uvicorn("benchproject.asgi_interface:application"),
        env,
        worker=stacks.runworker(4),
        workers=2,
        redis=True,
    )


DRILLS = {
    "1": "burst-get",
    "2": "ws-burst",
    "3": "ws-close",
    "4": "early-close",
    "5": "raise-stream",
    "6": "trickle",
    "7": "slow-reader",
    "8": "mixed",
}


async def run_stack(name, drills, scale):
    def n(count):
        return max(1, int(count * scale))

    stack = make_stack(name)
    await asyncio.to_thread(stack.start)
    rows = []
    sockets = []
    try:
        # Let the workers start.
        for _ in range(100):
            if (await get_ok(stack.port))[0] == "succeeded":
                break
            await asyncio.sleep(0.2)
        reader = None
        if "7" in drills:
            reader_tally = Tally("slow-reader")
            reader = asyncio.ensure_future(drill_slow_reader(stack, reader_tally))
        for key in drills:
            if key == "7":
                continue
            tally = Tally(DRILLS[key])
            rss_before = stack.rss()
            started = time.monotonic()
            if key == "1":
                await drill_burst_get(stack, n(1000), tally)
            elif key == "2":
                await drill_ws_burst(stack, n(1000), tally, sockets)
            elif key == "3":
                await drill_ws_close(stack, n(1000), tally, sockets)
            elif key == "4":
                await drill_early_close(stack, n(100), tally)
            elif key == "5":
                await drill_raise_stream(stack, 10, tally)
            elif key == "6":
                await drill_trickle(stack, n(20), tally)
            elif key == "8":
                await drill_mixed(stack, n(20000), n(2000), tally)
            rows.append(
                (key, tally, rss_before, stack.rss(), time.monotonic() - started)
            )
            print(format_row(name, rows[-1]), flush=True)
        if reader is not None:
            rss_before = stack.rss()
            started = time.monotonic()
            await reader
            rows.append(
                ("7", reader_tally, rss_before, stack.rss(), time.monotonic() - started)
            )
            print(format_row(name, rows[-1]), flush=True)
    finally:
        for ws in sockets:
            await ws.close()
        await asyncio.to_thread(stack.stop)
    return stack, rows


HEADER = "%-9s %-3s %-13s %6s %6s %6s %5s %5s %9s %9s %6s" % (
    "stack",
    "#",
    "drill",
    "sent",
    "ok",
    "failed",
    "hung",
    "lost",
    "RSS before",
    "RSS after",
    "secs",
)


def format_row(stack_name, row):
    key, t, before, after, seconds = row
    return "%-9s %-3s %-13s %6d %6d %6d %5d %5d %6.0f MiB %6.0f MiB %6.0f" % (
        stack_name,
        key,
        t.name,
        t.sent,
        t.succeeded,
        t.failed,
        t.hung,
        t.lost,
        before / 2**20,
        after / 2**20,
        seconds,
    )


async def main_async(args):
    drills = args.drills.split(",")
    lines = []
    notes = []
    bad = False
    for name in args.stacks.split(","):
        stack, rows = await run_stack(name, drills, args.scale)
        notes.append("%s: %s" % (name, "; ".join(stack.commands())))
        for row in rows:
            lines.append(format_row(name, row))
            key, tally, _, _, _ = row
            bad = bad or bool(tally.failed or tally.hung or tally.lost)
            for note in tally.notes:
                notes.append("  %s %s: %s" % (name, tally.name, note))
            for detail, count in sorted(tally.details.items()):
                notes.append("  %s %s: %5d x %s" % (name, tally.name, count, detail))
    return lines, notes, bad


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stacks", default="runstack,split")
    parser.add_argument("--drills", default="1,2,3,4,5,6,7,8")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--output")
    args = parser.parse_args()
    header = stacks.report_header(
        "client timeout %d s; RSS: the stack's Python processes (redis-server "
        "not counted)" % CLIENT_TIMEOUT,
        "",
    )
    print("\n".join(header) + HEADER, flush=True)
    lines, notes, bad = asyncio.run(main_async(args))
    report = [*header, HEADER, *lines, "", *notes]
    print("\n" + "\n".join(notes))
    if not args.no_save:
        stacks.save_report(report, "impolite", args.output)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
