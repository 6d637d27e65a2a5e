"""
Failure drills: the channel path over Redis under steady mixed load while
parts of it are killed, stopped, restarted and added.

The stack is row 5 of http_stack.py: uvicorn hosting the interface, separate
runworker processes, a private redis-server, serving benchmarks/project with
CHANNEL_HTTP_TIMEOUT = 10 s. The load is this module's own asyncio HTTP/1.1
client: a few concurrent loops, each POSTing a body of 0 to 2 MiB to /echo/
and asking for a response of 0 to 2 MiB. Every request carries a random
token; the response must start with that token and the size and CRC-32 of
the request body, and the rest must repeat the token: a response given to
the wrong client, cut short or corrupted is caught.

Drills:
1. worker-kill: one of two workers is SIGKILLed and another started.
2. redis-restart: redis-server is SIGKILLed and started again on the same
   port 5 s later.
3. interface-kill: two interfaces; the client sends to each in turn and
   retries a request on the other when a connection fails; one interface is
   SIGKILLed (and started again 8 s later).
4. deploy: every worker is stopped with SIGTERM (they finish what they
   hold), none runs for 5 s, then new ones start: requests wait in the
   layer and succeed within the timeout.
5. scale-out: workers are added under load (1, 2, 3 workers); the view
   sleeps 20 ms per request, as I/O-bound views do, so that throughput is
   bounded by the workers rather than by this machine's two cores.

For each drill: requests sent; succeeded; failed with a clean 503/504;
aborted (the response had started when the worker or Redis died: the
connection is closed before the body is complete, which the client sees);
failed otherwise (other status; connection lost before a response); hung
(no answer within the client timeout of 25 s: must be 0); mixed up
(a response that is not the one asked for: must be 0); the longest request;
time to recover: from the fault to the start of the first request from
which on every request succeeded (0 when none failed).

Usage: python benchmarks/chaos.py [--drills 1,2,3,4,5] [--clients 6]
       [--no-save]
"""

import argparse
import asyncio
import os
import random
import secrets
import signal
import sys
import time
import zlib

import stacks

MIB = 1024 * 1024
SERVER_TIMEOUT = 10
CLIENT_TIMEOUT = 25
#: (size, weight) of request bodies and of responses.
SIZES = [(0, 3), (1024, 2), (64 * 1024, 2), (512 * 1024, 2), (2 * MIB, 1)]
SMALL_SIZES = [(0, 1), (1024, 1), (16 * 1024, 1)]
#: Random bytes that request bodies are cut from.
PAYLOAD = os.urandom(2 * MIB + 4096)


def expected_body(token, body, size):
    """Return the body /echo/ answers with (see benchproject.views.echo)."""
    head = b"%s %d %08x\n" % (token.encode(), len(body), zlib.crc32(body))
    fill = token.encode() + b"."
    rest = max(size - len(head), 0)
    return head + (fill * (rest // len(fill) + 1))[:rest]


class ConnectionLost(Exception):
    """The connection failed or closed before a response started."""


class ResponseAborted(Exception):
    """
    The connection closed in the middle of the response body: the server
    had sent the status and headers when the response failed, and aborting
    the connection is how HTTP/1.1 says so. The client sees a body shorter
    than its Content-Length, never a complete wrong one.
    """


async def http_post(port, target, body):
    """
    POST body; return (status, response body). Raise ConnectionLost or
    ResponseAborted.
    """
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        raise ConnectionLost("connect: %s" % e) from e
    sending = None
    try:
        writer.write(
            (
                "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n" % (target, len(body))
            ).encode()
        )
        writer.write(body)
        # Send and read at once: a server may answer (503) before it read
        # the whole body.
        sending = asyncio.ensure_future(writer.drain())
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionLost("closed before the status line")
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            try:
                content = await reader.readexactly(int(headers["content-length"]))
            except (OSError, asyncio.IncompleteReadError) as e:
                raise ResponseAborted("HTTP %d, body cut short: %s" % (status, e))
        elif headers.get("transfer-encoding") == "chunked":
            content = b""
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                content += await reader.readexactly(size)
                await reader.readline()
        else:
            content = await reader.read()
        return status, content
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
        raise ConnectionLost("%s: %s" % (type(e).__name__, e)) from e
    finally:
        if sending is not None:
            sending.cancel()
        writer.close()


class Record:
    __slots__ = ("start", "end", "outcome", "retried", "detail")

    def __init__(self, start, end, outcome, retried=False, detail=""):
        self.start = start
        self.end = end
        self.outcome = outcome
        self.retried = retried
        self.detail = detail


class Load:
    """Closed-loop clients sending /echo/ requests until stopped."""

    def __init__(self, stack, clients, sizes=SIZES, delay_ms=0, retry_other=False):
        self.stack = stack
        self.clients = clients
        self.sizes = sizes
        self.delay_ms = delay_ms
        self.retry_other = retry_other
        self.records = []
        self.stopping = False
        self.random = random.Random(7)
        self._next_front = 0

    def pick(self):
        sizes, weights = zip(*self.sizes)
        return self.random.choices(sizes, weights)[0]

    async def one(self):
        token = secrets.token_hex(8)
        size = self.pick()
        offset = self.random.randrange(4096)
        body = PAYLOAD[offset : offset + self.pick()]
        target = "/echo/?token=%s&size=%d" % (token, size)
        if self.delay_ms:
            target += "&delay=%d" % self.delay_ms
        fronts = len(self.stack.ports)
        first = self._next_front % fronts
        self._next_front += 1
        start = time.monotonic()
        retried = False
        outcome = detail = ""
        for attempt in range(fronts if self.retry_other else 1):
            port = self.stack.ports[(first + attempt) % fronts]
            retried = attempt > 0
            try:
                status, content = await asyncio.wait_for(
                    http_post(port, target, body), CLIENT_TIMEOUT
                )
            except asyncio.TimeoutError:
                outcome, detail = "hung", "no answer in %ds" % CLIENT_TIMEOUT
                break
            except ConnectionLost as e:
                outcome, detail = "lost", str(e)
                continue
            except ResponseAborted as e:
                outcome, detail = "aborted", str(e)
                break
            if status == 200:
                if content == expected_body(token, body, size):
                    outcome = "ok"
                else:
                    outcome = "mixed"
                    detail = repr(content[:60])
            elif status in (503, 504):
                outcome = "clean"
                detail = str(status)
            else:
                outcome = "other"
                detail = "HTTP %d %r" % (status, content[:80])
            break
        self.records.append(Record(start, time.monotonic(), outcome, retried, detail))
        return outcome

    async def client(self):
        while not self.stopping:
            outcome = await self.one()
            if outcome != "ok":
                # A real client backs off a little after an error.
                await asyncio.sleep(0.05)

    async def run(self):
        await asyncio.gather(*(self.client() for _ in range(self.clients)))


def summarize(records, fault_at):
    counts = {
        k: 0
        for k in (
            "sent",
            "ok",
            "clean",
            "aborted",
            "other",
            "lost",
            "hung",
            "mixed",
            "retried",
        )
    }
    for record in records:
        counts["sent"] += 1
        counts[record.outcome] += 1
        counts["retried"] += record.retried
    ordered = sorted(records, key=lambda r: r.start)
    recover = 0.0
    last_failure = None
    for index, record in enumerate(ordered):
        if record.outcome != "ok":
            last_failure = index
    if last_failure is not None:
        if last_failure + 1 < len(ordered):
            recover = max(0.0, ordered[last_failure + 1].start - fault_at)
        else:
            recover = None
    counts["recover"] = recover
    counts["max_latency"] = max((r.end - r.start for r in records), default=0)
    details = {}
    for record in records:
        if record.outcome != "ok":
            key = "%s: %s" % (record.outcome, record.detail[:70])
            details[key] = details.get(key, 0) + 1
    counts["details"] = details
    return counts


def chaos_stack(workers, fronts=1, threads=2):
    return stacks.Stack(
        "5",
        "uvicorn interface + runworker/Redis",
        stacks.uvicorn("benchproject.asgi_interface:application"),
        stacks._env(fork=True, BENCH_HTTP_TIMEOUT=SERVER_TIMEOUT),
        worker=stacks.runworker(threads),
        workers=workers,
        fronts=fronts,
        redis=True,
    )


async def in_thread(func, *args):
    return await asyncio.to_thread(func, *args)


async def run_drill(stack, load, scenario):
    """Start load, run scenario(stack, load) -> fault time, then drain."""
    await in_thread(stack.start)
    try:
        task = asyncio.ensure_future(load.run())
        events = []
        try:
            fault_at = await scenario(stack, load, events)
        finally:
            load.stopping = True
            await asyncio.wait_for(task, CLIENT_TIMEOUT + 10)
        processes = [p.name for p in [*stack.fronts, *stack.workers] if p.running]
        return fault_at, events, processes
    finally:
        await in_thread(stack.stop)


async def worker_kill(stack, load, events):
    await asyncio.sleep(6)
    victim = stack.workers[0]
    fault_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    await in_thread(victim.process.wait)
    await in_thread(stack.add_worker)
    events.append("SIGKILL %s, started %s" % (victim.name, stack.workers[-1].name))
    await asyncio.sleep(SERVER_TIMEOUT + 4)
    return fault_at


async def redis_restart(stack, load, events):
    await asyncio.sleep(6)
    fault_at = time.monotonic()
    await in_thread(stack.redis.kill)
    await asyncio.sleep(5)
    await in_thread(stack.redis.start)
    events.append(
        "SIGKILL redis-server, restarted on port %d after 5 s" % stack.redis.port
    )
    await asyncio.sleep(SERVER_TIMEOUT + 4)
    return fault_at


async def interface_kill(stack, load, events):
    await asyncio.sleep(6)
    fault_at = time.monotonic()
    stack.fronts[0].send_signal(signal.SIGKILL)
    await in_thread(stack.fronts[0].process.wait)
    await asyncio.sleep(8)
    await in_thread(stack.restart_front, 0)
    events.append("SIGKILL front0, restarted after 8 s")
    await asyncio.sleep(6)
    return fault_at


async def deploy(stack, load, events):
    await asyncio.sleep(6)
    fault_at = time.monotonic()
    old = list(stack.workers)
    for worker in old:
        worker.send_signal(signal.SIGTERM)
    for worker in old:
        await in_thread(worker.process.wait)
    stopped = time.monotonic()
    stack.workers = []
    await asyncio.sleep(5)
    for _ in old:
        await in_thread(stack.add_worker)
    events.append(
        "SIGTERM %d workers (exited after %.1f s), none for 5 s, started %d"
        % (len(old), stopped - fault_at, len(old))
    )
    await asyncio.sleep(10)
    return fault_at


PHASE = 8


async def scale_out(stack, load, events):
    fault_at = time.monotonic()
    phases = []
    for number in range(3):
        if number:
            await in_thread(stack.add_worker)
        began = time.monotonic()
        await asyncio.sleep(PHASE)
        phases.append((len(stack.workers), began, time.monotonic()))
    load.phases = phases
    return fault_at


DRILLS = {
    "1": ("worker SIGKILL + new worker", worker_kill, dict(workers=2), {}),
    "2": ("redis-server killed, back in 5 s", redis_restart, dict(workers=2), {}),
    "3": (
        "1 of 2 interfaces killed",
        interface_kill,
        dict(workers=2, fronts=2),
        dict(retry_other=True),
    ),
    "4": ("deploy: no worker for 5 s", deploy, dict(workers=2), {}),
    "5": (
        "workers added under load",
        scale_out,
        dict(workers=1, threads=1),
        dict(sizes=SMALL_SIZES, delay_ms=20),
    ),
}


def phase_rates(load):
    rates = []
    for workers, began, ended in load.phases:
        # Skip the first second of a phase: the new worker is starting.
        done = [
            r for r in load.records if began + 1 <= r.end < ended and r.outcome == "ok"
        ]
        rates.append(
            "%d worker(s): %.0f req/s" % (workers, len(done) / (ended - began - 1))
        )
    return rates


async def main_async(args):
    rows = []
    notes = []
    for key in args.drills.split(","):
        name, scenario, stack_options, load_options = DRILLS[key]
        stack = chaos_stack(**stack_options)
        clients = args.clients * (3 if key == "5" else 1)
        load = Load(stack, clients, **load_options)
        started = time.monotonic()
        fault_at, events, alive = await run_drill(stack, load, scenario)
        summary = summarize(load.records, fault_at)
        summary["name"] = name
        summary["key"] = key
        summary["seconds"] = time.monotonic() - started
        rows.append(summary)
        note = "%s. %s: %s; running at the end: %s" % (
            key,
            name,
            "; ".join(events) or "-",
            ", ".join(alive),
        )
        if key == "5":
            note += "; throughput " + ", ".join(phase_rates(load))
        for detail, count in sorted(summary["details"].items()):
            note += "\n     %5d x %s" % (count, detail)
        notes.append(note)
        print(format_row(summary), flush=True)
    return rows, notes


HEADER = "%-3s %-34s %6s %6s %8s %7s %6s %5s %5s %6s %7s %8s %9s %5s" % (
    "#",
    "drill",
    "sent",
    "ok",
    "503/504",
    "aborted",
    "other",
    "lost",
    "hung",
    "mixed",
    "retried",
    "max lat.",
    "recovered",
    "secs",
)


def format_row(s):
    recover = "never" if s["recover"] is None else "%.1f s" % s["recover"]
    return "%-3s %-34s %6d %6d %8d %7d %6d %5d %5d %6d %7d %7.1fs %9s %5.0f" % (
        s["key"],
        s["name"],
        s["sent"],
        s["ok"],
        s["clean"],
        s["aborted"],
        s["other"],
        s["lost"],
        s["hung"],
        s["mixed"],
        s["retried"],
        s["max_latency"],
        recover,
        s["seconds"],
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--drills", default="1,2,3,4,5")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--output")
    args = parser.parse_args()
    header = stacks.report_header(
        "stack: uvicorn + get_interface_application(), runworker --threads 2 "
        "processes, RedisChannelLayer on a private redis-server; "
        "CHANNEL_HTTP_TIMEOUT=%d s; client timeout %d s; %d client loops "
        "(x3 in drill 5), bodies and responses 0-2 MiB (drill 5: 0-16 KiB, "
        "view sleeps 20 ms, runworker --threads 1)"
        % (SERVER_TIMEOUT, CLIENT_TIMEOUT, args.clients),
        "",
    )
    print("\n".join(header), flush=True)
    print(HEADER, flush=True)
    rows, notes = asyncio.run(main_async(args))
    lines = [
        *header,
        HEADER,
        *(format_row(row) for row in rows),
        "",
        "recovered: from the fault to the start of the first request from which "
        "on every request succeeded; aborted: the response had started (200 and "
        "headers sent) when its worker or Redis died, and the connection was "
        "closed before the body's Content-Length, which the client detects; "
        "lost: connection closed before a response started (after the retry, "
        "in drill 3); retried: sent again to the other interface after a "
        "failed connection",
        "",
        *notes,
    ]
    print("\n" + "\n".join(lines[len(header) + 1 + len(rows) :]))
    failed = [r for r in rows if r["hung"] or r["mixed"] or r["lost"]]
    if not args.no_save:
        stacks.save_report(lines, "chaos", args.output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
