"""
Compare send+receive on Redis: django_fork's RedisChannelLayer, channels_redis
4.3's RedisChannelLayer and a raw redis-py LPUSH -> BLPOP pair, in one run,
on one private redis-server.

    python benchmarks/redis_layer.py [--pairs 5000] [--seconds 3] [--rounds 3]
                                     [--baseline PATH]

Needs redis-server on PATH, redis[hiredis] and msgpack; channels_redis is
measured when it is installed (pip install "channels-redis==4.3.0").

Two measures, each repeated --rounds times with the contenders interleaved
(the median round is reported):

- sequential: one coroutine sends a message and receives it back, --pairs
  times; the p50 and p99 of one pair, in microseconds.
- throughput: 10 coroutines in one event loop each send and receive on a
  channel of their own for --seconds; pairs per second, all together.

Ratios are against the raw redis-py pair (latency: lower is better;
throughput: higher is better). The contenders run in a rotated order each
round, so that a change in the machine's load spreads over all of them.
Beside the timings, which other processes on the machine sway, two figures
of the throughput measure that they barely touch: the client's CPU time per
pair (process time of the one Python process) and the Redis commands per
pair (INFO commandstats, commands run inside scripts included).

--baseline PATH measures another version of the layer in the same run, for
a before/after comparison on a shared machine: PATH is its redis.py module
or its redis/ package (e.g. from `git archive <commit>`), loaded under the
name baseline_redis on top of this tree's django_fork.
"""

import argparse
import asyncio
import datetime
import importlib.util
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import msgpack  # noqa: E402
import redis  # noqa: E402
import redis.asyncio  # noqa: E402

from django_fork.channels.layers.redis import RedisChannelLayer  # noqa: E402
from django_fork.test.redis import RedisServer  # noqa: E402

CONCURRENCY = 10
MESSAGE = {
    "type": "http.response.body",
    "body": b"x" * 100,
    "more_body": False,
}


class Raw:
    name = "redis-py LPUSH->BLPOP"

    def __init__(self, url):
        self.client = redis.asyncio.Redis.from_url(url)
        self.payload = msgpack.packb(MESSAGE)

    async def channel(self, i, reply=False):
        return "raw-%d" % i

    async def pair(self, channel):
        await self.client.lpush(channel, self.payload)
        _, data = await self.client.blpop([channel], 5)
        msgpack.unpackb(data)

    async def close(self):
        await self.client.aclose()


class Layer:
    def __init__(self, layer, name):
        self.layer = layer
        self.name = name

    async def channel(self, i, reply=False):
        if reply:
            return await self.layer.new_channel("bench.reply")
        return "bench-%d" % i

    async def pair(self, channel):
        await self.layer.send(channel, MESSAGE)
        await self.layer.receive(channel)

    async def close(self):
        close = getattr(self.layer, "close", None) or self.layer.close_pools
        await close()


def load_baseline(path):
    """Return the RedisChannelLayer class of the module or package at path."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        spec = importlib.util.spec_from_file_location(
            "baseline_redis",
            os.path.join(path, "__init__.py"),
            submodule_search_locations=[path],
        )
    else:
        spec = importlib.util.spec_from_file_location("baseline_redis", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_redis"] = module
    spec.loader.exec_module(module)
    return module.RedisChannelLayer


def contenders(url, baseline=None):
    yield lambda: Raw(url)
    # A generous socket_timeout: on a busy machine a stall of a few seconds
    # must not end the run.
    yield lambda: Layer(
        RedisChannelLayer(url, capacity=10000, socket_timeout=60),
        "django_fork RedisChannelLayer",
    )
    if baseline is not None:
        yield lambda: Layer(
            baseline(url, capacity=10000, socket_timeout=60),
            "baseline RedisChannelLayer",
        )
    try:
        from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
    except ImportError:
        print("channels_redis is not installed: skipped.", file=sys.stderr)
        return
    yield lambda: Layer(
        ChannelsRedisLayer(hosts=[url], capacity=10000), "channels_redis 4.3"
    )


async def sequential(contender, pairs, reply):
    channel = await contender.channel(0, reply)
    for _ in range(min(500, pairs)):
        await contender.pair(channel)
    times = []
    clock = time.perf_counter
    for _ in range(pairs):
        start = clock()
        await contender.pair(channel)
        times.append(clock() - start)
    times.sort()
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6


async def throughput(contender, seconds, reply, server):
    """Return (pairs per second, client CPU us per pair, commands per pair)."""
    channels = [await contender.channel(i, reply) for i in range(CONCURRENCY)]
    done = 0
    before = commands(server)
    cpu = time.process_time()
    stop = time.perf_counter() + seconds

    async def loop(channel):
        nonlocal done
        while time.perf_counter() < stop:
            await contender.pair(channel)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(channel) for channel in channels))
    rate = done / (time.perf_counter() - start)
    cpu = time.process_time() - cpu
    return rate, cpu / done * 1e6, (commands(server) - before) / done


def commands(server):
    """Return the commands server ran so far (not counting INFO)."""
    client = redis.Redis.from_url(server.url, socket_timeout=10)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(
        value["calls"] for name, value in stats.items() if name != "cmdstat_info"
    )


async def measure(factory, args, reply, server):
    contender = factory()
    try:
        if reply and isinstance(contender, Raw):
            return contender.name, None
        p50, p99 = await sequential(contender, args.pairs, reply)
        rate, cpu, calls = await throughput(contender, args.seconds, reply, server)
        return contender.name, (p50, p99, rate, cpu, calls)
    finally:
        await contender.close()


def run(args):
    server = RedisServer().start()
    flush = redis.Redis.from_url(server.url)
    try:
        results = {}
        baseline = load_baseline(args.baseline) if args.baseline else None
        for workload, reply in [("ordinary channel", False), ("reply channel", True)]:
            for number in range(args.rounds):
                factories = list(contenders(server.url, baseline))
                turn = number % len(factories)
                for factory in factories[turn:] + factories[:turn]:
                    flush.flushall()
                    name, figures = asyncio.run(measure(factory, args, reply, server))
                    if figures is not None:
                        results.setdefault((workload, name), []).append(figures)
        return results
    finally:
        flush.close()
        server.cleanup()


def median_round(rounds):
    """Return the round with the median p50 (its p99 and rate with it)."""
    ordered = sorted(rounds, key=lambda figures: figures[0])
    p50, p99 = ordered[len(ordered) // 2][:2]
    rate, cpu, calls = (
        statistics.median(figures[i] for figures in rounds) for i in (2, 3, 4)
    )
    return p50, p99, rate, cpu, calls


def table(results):
    raw = {
        workload: median_round(rounds)
        for (workload, name), rounds in results.items()
        if name == Raw.name
    }
    baseline = raw["ordinary channel"]
    lines = [
        "%-16s %-30s %9s %9s %9s %11s %9s %9s %9s"
        % (
            "workload",
            "contender",
            "p50 us",
            "p99 us",
            "p50/raw",
            "pairs/s",
            "raw/rate",
            "CPU us/p",
            "cmds/p",
        ),
        "-" * 119,
    ]
    for (workload, name), rounds in results.items():
        p50, p99, rate, cpu, calls = median_round(rounds)
        lines.append(
            "%-16s %-30s %9.0f %9.0f %8.2fx %11.0f %8.2fx %9.1f %9.2f"
            % (
                workload,
                name,
                p50,
                p99,
                p50 / baseline[0],
                rate,
                baseline[2] / rate,
                cpu,
                calls,
            )
        )
    return "\n".join(lines)


def header(args):
    return "\n".join(
        [
            "date: %s"
            % datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine: %s, %s, %d CPUs, Python %s"
            % (
                platform.node(),
                platform.platform(),
                os.cpu_count(),
                platform.python_version(),
            ),
            "versions: redis-py %s, hiredis %s, redis-server %s, channels_redis %s"
            % (
                redis.__version__,
                _version("hiredis"),
                _server_version(),
                _version("channels_redis"),
            ),
            "load average at start: %.2f %.2f %.2f (other processes share the "
            "machine)" % os.getloadavg(),
            "command: %s" % " ".join([os.path.basename(sys.executable), *sys.argv]),
            "settings: %d pairs sequential, %d coroutines for %s s, %d rounds "
            "(order rotated each round, median reported; CPU us/p and cmds/p: "
            "client CPU time and Redis commands per pair of the throughput "
            "measure); message %d bytes of MessagePack"
            % (
                args.pairs,
                CONCURRENCY,
                args.seconds,
                args.rounds,
                len(msgpack.packb(MESSAGE)),
            ),
        ]
    )


def _version(package):
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return "not installed"


def _server_version():
    import subprocess

    from django_fork.test.redis import redis_server_path

    output = subprocess.run(
        [redis_server_path(), "--version"], capture_output=True, text=True
    ).stdout
    return output.split("v=")[1].split()[0] if "v=" in output else output.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", help="also write the report to this file")
    parser.add_argument(
        "--baseline", help="another version's redis.py or redis/ to measure too"
    )
    args = parser.parse_args()
    report = header(args) + "\n\n" + table(run(args)) + "\n"
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
