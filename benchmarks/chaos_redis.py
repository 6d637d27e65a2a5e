"""
Failure drills of the Redis channel layer itself: a Sentinel failover, and
one of three shards killed, under steady mixed load.

The load runs at the layer, in this one process: "interface" layers (each
its own client prefix, as separate interface processes would have) send
requests to workers on an ordinary channel and wait for the reply on a
process-specific channel; one request in three first streams a body of
three chunks on a single-reader channel, which the worker reads before it
replies. Workers are coroutines on layers of their own. A worker whose
reply cannot be sent (Redis unreachable) retries it until the request's
deadline, as the request is still owed an answer.

Each request ends as one of:
- ok: the right reply arrived (every reply carries its request's token);
- 503: a send of the request (or of its body) was refused with
  ChannelLayerUnavailable or ChannelFull, which an interface answers 503;
- lost: the request was accepted but no reply came within REPLY_TIMEOUT;
- hung: the request had not ended HUNG_AFTER seconds after it started
  (every wait has a timeout: must be 0).
Recovery: from the fault to the start of the first request from which on
every request was ok.

Drills:
1. sentinel: one shard behind three sentinels with one replica (all started
   here on loopback, down-after 1 s); the primary is SIGKILLed.
2. shard-kill: three plain shards; one is SIGKILLed and stays down.
   Requests are split by where their interface's reply channels live: a
   process-specific channel lives on its process prefix's shard, so the
   interfaces homed on the killed shard cannot get replies while it is
   down; the others must go on with 0 failed beyond those in flight there.

Usage: python benchmarks/chaos_redis.py [--drills 1,2] [--clients 12]
       [--seconds 12] [--kill-at 3] [--output FILE]
"""

import argparse
import asyncio
import collections
import datetime
import os
import platform
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402

from django_fork.channels.exceptions import (  # noqa: E402
    ChannelFull,
    ChannelLayerUnavailable,
)
from django_fork.channels.layers.redis import (  # noqa: E402
    RedisChannelLayer,
    shard_name,
)
from django_fork.test.redis import RedisServer, SentinelGroup  # noqa: E402

REPLY_TIMEOUT = 10
HUNG_AFTER = 20
REQUESTS = "drill.requests"
OPTIONS = {"capacity": 1000, "expiry": 30, "connect_timeout": 0.3}


class Load:
    """Clients on interface layers, workers on worker layers; the tally."""

    def __init__(self, interfaces, workers, clients):
        self.interfaces = interfaces
        self.workers = workers
        self.clients = clients
        self.results = []  # (started, ended, outcome, interface index)
        # Clients stop sending first; workers serve until they are done.
        self.sending = True
        self.running = True

    async def worker(self, layer):
        while self.running:
            try:
                request = await asyncio.wait_for(layer.receive(REQUESTS), 0.5)
            except asyncio.TimeoutError:
                continue
            body = b""
            if request.get("body"):
                try:
                    for _ in range(3):
                        chunk = await asyncio.wait_for(
                            layer.receive(request["body"]), REPLY_TIMEOUT
                        )
                        body += chunk["chunk"]
                except asyncio.TimeoutError:
                    continue
            reply = {"type": "reply", "token": request["token"], "size": len(body)}
            deadline = request["deadline"]
            while time.time() < deadline:
                try:
                    await layer.send(request["reply"], reply)
                    break
                except ChannelLayerUnavailable:
                    await asyncio.sleep(0.1)

    async def client(self, number):
        index = number % len(self.interfaces)
        layer = self.interfaces[index]
        n = 0
        while self.sending:
            n += 1
            started = time.monotonic()
            outcome = await self.request(layer, n % 3 == 0)
            self.results.append((started, time.monotonic(), outcome, index))

    async def request(self, layer, with_body):
        token = secrets.token_hex(8)
        reply = await layer.new_channel("drill.reply")
        message = {
            "type": "request",
            "token": token,
            "reply": reply,
            "deadline": time.time() + REPLY_TIMEOUT,
        }
        try:
            if with_body:
                # The body first: a request whose body cannot be sent is
                # answered 503 without keeping a worker waiting for it.
                message["body"] = await layer.new_channel("drill.body?")
                for i in range(3):
                    chunk = {"type": "chunk", "chunk": b"x" * 4096}
                    await layer.send(message["body"], chunk)
            await layer.send(REQUESTS, message)
        except (ChannelLayerUnavailable, ChannelFull):
            await asyncio.sleep(0.05)
            return "503"
        try:
            answer = await asyncio.wait_for(layer.receive(reply), REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            return "lost"
        if answer["token"] != token:
            return "mixed up"
        return "ok"

    async def run(self, seconds, kill_at, kill):
        tasks = [asyncio.ensure_future(self.worker(w)) for w in self.workers]
        clients = [
            asyncio.ensure_future(
                asyncio.wait_for(self.client(i), seconds + HUNG_AFTER)
            )
            for i in range(self.clients)
        ]
        await asyncio.sleep(kill_at)
        killed_at = time.monotonic()
        await asyncio.to_thread(kill)
        await asyncio.sleep(seconds - kill_at)
        self.sending = False
        done = await asyncio.gather(*clients, return_exceptions=True)
        self.running = False
        hung = sum(isinstance(result, asyncio.TimeoutError) for result in done)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return killed_at, hung


def tally(results, killed_at, hung, which=None):
    rows = [r for r in results if which is None or r[3] in which]
    counts = collections.Counter(outcome for _, _, outcome, _ in rows)
    # Traffic flows again: the first request started after the fault that
    # got its reply, from the fault to that reply.
    flowing = [e for s, e, outcome, _ in rows if s > killed_at and outcome == "ok"]
    recovered = min(flowing) - killed_at if flowing else float("nan")
    failures = [s - killed_at for s, _, outcome, _ in rows if outcome != "ok"]
    in_flight = sum(1 for s, e, _, _ in rows if s <= killed_at <= e)
    return {
        "sent": len(rows),
        "ok": counts["ok"],
        "503": counts["503"],
        "lost": counts["lost"],
        "mixed up": counts["mixed up"],
        "hung": hung,
        "in flight at kill": in_flight,
        "recovered s": recovered,
        "failures started": (
            "%+.2f s to %+.2f s from the fault" % (min(failures), max(failures))
            if failures
            else "none"
        ),
    }


async def sentinel_drill(args):
    group = await asyncio.to_thread(SentinelGroup(replicas=1, sentinels=3).start)
    try:
        location = group.location
        interfaces = [RedisChannelLayer(location, **OPTIONS) for _ in range(3)]
        workers = [RedisChannelLayer(location, **OPTIONS) for _ in range(2)]
        load = Load(interfaces, workers, args.clients)
        primary = group.server_on(group.primary_port())
        killed_at, hung = await load.run(args.seconds, args.kill_at, primary.kill)
        promoted = group.primary_port()
        for layer in interfaces + workers:
            await layer.close()
        row = tally(load.results, killed_at, hung)
        row["note"] = "primary %d killed; promoted %s" % (primary.port, promoted)
        return [("sentinel failover", row)]
    finally:
        await asyncio.to_thread(group.cleanup)


async def shard_drill(args):
    servers = [RedisServer().start() for _ in range(3)]
    try:
        urls = [server.url for server in servers]
        interfaces = [RedisChannelLayer(urls, **OPTIONS) for _ in range(6)]
        workers = [RedisChannelLayer(urls, **OPTIONS) for _ in range(2)]
        # Kill the home shard of the request channel, so that senders must
        # fall back to the next shards of the ring.
        victim_name = interfaces[0]._home(REQUESTS).name
        victim = {shard_name(server.url): server for server in servers}[victim_name]
        homed = {
            i
            for i, layer in enumerate(interfaces)
            if layer._home("drill.reply.%s!" % layer.client_prefix).name == victim_name
        }
        load = Load(interfaces, workers, args.clients)
        killed_at, hung = await load.run(args.seconds, args.kill_at, victim.kill)
        for layer in interfaces + workers:
            try:
                await asyncio.wait_for(layer.close(), 5)
            except Exception:
                pass
        others = set(range(len(interfaces))) - homed
        note = "killed %s (home of %s); %d of 6 interfaces' replies live there" % (
            victim_name,
            REQUESTS,
            len(homed),
        )
        rows = [
            ("shard-kill, other interfaces", tally(load.results, killed_at, 0, others)),
            (
                "shard-kill, interfaces homed on it",
                tally(load.results, killed_at, 0, homed),
            ),
        ]
        rows[0][1]["hung"] = hung
        rows[0][1]["note"] = note
        return rows
    finally:
        for server in servers:
            server.cleanup()


COLUMNS = ["sent", "ok", "503", "lost", "mixed up", "hung", "in flight at kill"]


def report(rows, args):
    lines = [
        "date: %s"
        % datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine: %s, %d CPUs, Python %s, redis-py %s"
        % (
            platform.platform(),
            os.cpu_count(),
            platform.python_version(),
            redis.__version__,
        ),
        "load average at start: %s (other processes share the machine)"
        % " ".join("%.2f" % v for v in os.getloadavg()),
        "command: python benchmarks/chaos_redis.py %s" % " ".join(sys.argv[1:]),
        "settings: %d clients for %.0f s, fault at %.0f s, reply timeout %d s"
        % (args.clients, args.seconds, args.kill_at, REPLY_TIMEOUT),
        "",
        "%-36s" % "drill"
        + "".join("%10s" % c[:9] for c in COLUMNS)
        + "  flowing after",
        "-" * 110,
    ]
    for name, row in rows:
        lines.append(
            "%-36s" % name
            + "".join("%10d" % row[c] for c in COLUMNS)
            + "  %8.2f s" % row["recovered s"]
        )
    lines.append("")
    for name, row in rows:
        lines.append("%s: failures started %s" % (name, row["failures started"]))
        if row.get("note"):
            lines.append("%s: %s" % (name, row["note"]))
    return "\n".join(lines) + "\n"


async def main(args):
    rows = []
    drills = {"1": sentinel_drill, "2": shard_drill}
    for number in args.drills.split(","):
        rows += await drills[number.strip()](args)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drills", default="1,2")
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--kill-at", type=float, default=3.0)
    parser.add_argument("--output", help="also write the report to this file")
    args = parser.parse_args()
    text = report(asyncio.run(main(args)), args)
    print(text, end="")
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
