"""
Background tasks side by side: Celery 5.7 and ChannelTaskBackend, each with
two worker processes on a redis-server of its own.

- Celery: a Redis broker and a Redis result backend, two ``celery worker
  -c 1`` (prefork, one child each), as a user would start them.
- ChannelTaskBackend: the Redis channel layer (task channels of the default
  capacity, 100, unless --capacity), results in the layer's store (or,
  with --results cache, in Django's RedisCache), two ``runworker --threads
  1 --only-channels "tasks.*"``.

Each round enqueues a burst of --tasks no-op tasks (10,000) from this
process, one thread, as fast as it can, into every setup in turn (the order
rotated each round), and waits for all of them to have started. A task
records when it started beside when it was enqueued (project/benchtasks/
records.py), the same work on both. The table gives the medians over the
rounds and the ratios to row 1 (Celery):

- tasks/s: tasks over the time from the first enqueue to the last start;
- enqueue p50: wall time of one enqueue call, and CPU of this process per
  enqueue (a full task channel makes enqueue wait: that shows in tasks/s,
  not in the p50 unless the queue is full most of the time);
- enqueue-to-start p50 and p99;
- CPU per task: utime + stime of the workers (and their children) and the
  setup's redis-server, per task;
- failed: enqueues that raised, over all rounds (a burst must never fail).

The goals (issue 17) are evaluated at the end as met or missed.

Usage: python benchmarks/tasks.py [--rounds 3] [--tasks 10000]
       [--capacity N] [--results store|cache] [--no-save]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version

import stacks

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, stacks.PROJECT)

#: Seconds a round may take to see all its tasks start.
ROUND_TIMEOUT = 300
WARMUP_TASKS = 200

GOALS = [
    # (column, test on the ratio to Celery, wording)
    ("rate", lambda r: r >= 2.0, "tasks/s >= 2x Celery's"),
    ("enqueue", lambda r: r <= 0.5, "enqueue p50 <= half Celery's"),
]


class Setup:
    """A system under test: its redis-server, workers and enqueue call."""

    name = None

    def __init__(self, logdir, workers=2):
        self.logdir = logdir
        self.workers_count = workers
        self.redis = stacks.RedisServer().start()
        self.env = stacks.environment(BENCH_REDIS_URL=self.redis.url)
        self.processes = []
        import redis

        self.records = redis.Redis.from_url(self.redis.url)

    def start(self):
        for number in range(self.workers_count):
            self.processes.append(
                stacks.Process(
                    "%s-%d" % (self.key, number),
                    self.worker_argv(number),
                    self.env,
                    self.logdir,
                ).start()
            )

    def pids(self):
        return stacks.children_of([p.pid for p in self.processes]) + [
            self.redis.process.pid
        ]

    def cpu_seconds(self):
        return stacks.cpu_seconds(self.pids())

    def stop(self):
        for process in self.processes:
            process.stop()
        self.records.close()
        self.redis.stop()


class CelerySetup(Setup):
    key = "celery"
    name = "Celery %s, Redis broker + results, 2 x worker -c 1" % version("celery")

    def worker_argv(self, number):
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchtasks.celery_app",
            "worker",
            "-c",
            "1",
            "-n",
            "bench%d@%%h" % number,
            "--loglevel",
            "WARNING",
        ]

    def prepare(self):
        os.environ["BENCH_REDIS_URL"] = self.redis.url
        from benchtasks.celery_app import noop

        self.task = noop

    def enqueue(self, enqueued_at):
        self.task.delay(enqueued_at)


class ChannelSetup(Setup):
    key = "channels"

    def __init__(self, logdir, capacity=None, results="store", **options):
        super().__init__(logdir, **options)
        self.env["DJANGO_SETTINGS_MODULE"] = "benchtasks.settings"
        if capacity:
            self.env["BENCH_TASK_CAPACITY"] = str(capacity)
        if results == "cache":
            self.env["BENCH_TASK_RESULTS"] = "cache"
        self.name = (
            "ChannelTaskBackend, Redis layer (task channels of capacity %s), "
            "results in %s, 2 x runworker --threads 1"
            % (
                capacity or 100,
                "Django's RedisCache" if results == "cache" else "the layer's store",
            )
        )

    def worker_argv(self, number):
        return stacks.manage(
            "runworker", "--threads", "1", "--only-channels", "tasks.*"
        )

    def prepare(self):
        # This process enqueues with the same settings as the workers.
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("BENCH_")})
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchtasks.settings"
        import django

        django.setup()
        from benchtasks.tasks import noop

        self.task = noop

    def enqueue(self, enqueued_at):
        self.task.enqueue(enqueued_at)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def burst(setup, count):
    """Enqueue count tasks into setup, wait for them; return the figures."""
    setup.records.delete("bench:starts")
    cpu_before = setup.cpu_seconds()
    calls = []
    failed = 0
    first = time.time()
    process_before = time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        try:
            setup.enqueue(time.time())
        except Exception as e:
            failed += 1
            if failed == 1:
                print("  %s: enqueue failed: %r" % (setup.key, e))
        calls.append(time.perf_counter() - started)
    enqueue_cpu = (time.process_time() - process_before) / count
    deadline = time.monotonic() + ROUND_TIMEOUT
    while setup.records.llen("bench:starts") < count - failed:
        if time.monotonic() > deadline:
            raise RuntimeError(
                "%s: %d of %d tasks started in %d s"
                % (
                    setup.key,
                    setup.records.llen("bench:starts"),
                    count - failed,
                    ROUND_TIMEOUT,
                )
            )
        time.sleep(0.02)
    cpu = setup.cpu_seconds() - cpu_before
    starts = [
        tuple(map(float, item.split()))
        for item in setup.records.lrange("bench:starts", 0, -1)
    ]
    last = max(started for _, started in starts)
    waits = [started - enqueued for enqueued, started in starts]
    return {
        "rate": len(starts) / (last - first),
        "enqueue": statistics.median(calls) * 1e6,
        "enqueue_cpu": enqueue_cpu * 1e6,
        "start_p50": percentile(waits, 0.5) * 1e3,
        "start_p99": percentile(waits, 0.99) * 1e3,
        "cpu": cpu / max(1, len(starts)) * 1e6,
        "failed": failed,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument(
        "--capacity", type=int, default=None, help="of the task channels"
    )
    parser.add_argument(
        "--results",
        choices=["store", "cache"],
        default="store",
        help="where ChannelTaskBackend keeps results: the layer's store, or "
        "Django's RedisCache (the 'cache' option)",
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    logdir = tempfile.mkdtemp(prefix="bench-tasks-")
    setups = [
        CelerySetup(logdir),
        ChannelSetup(logdir, capacity=args.capacity, results=args.results),
    ]
    try:
        for setup in setups:
            setup.start()
            setup.prepare()
        for setup in setups:
            burst(setup, WARMUP_TASKS)
        figures = {setup.key: [] for setup in setups}
        for number in range(args.rounds):
            order = setups[number % len(setups) :] + setups[: number % len(setups)]
            for setup in order:
                result = burst(setup, args.tasks)
                figures[setup.key].append(result)
                print(
                    "round %d %-8s %7.0f tasks/s, enqueue p50 %5.0f us, "
                    "start p50 %6.2f ms, failed %d"
                    % (
                        number + 1,
                        setup.key,
                        result["rate"],
                        result["enqueue"],
                        result["start_p50"],
                        result["failed"],
                    )
                )
    finally:
        for setup in setups:
            setup.stop()
    lines = report(setups, figures, args)
    print("\n".join(lines))
    if not args.no_save:
        stacks.save_report(lines, "tasks")


def report(setups, figures, args):
    medians = {
        key: {
            column: statistics.median(r[column] for r in rounds) for column in rounds[0]
        }
        for key, rounds in figures.items()
    }
    for key, rounds in figures.items():
        medians[key]["failed"] = sum(r["failed"] for r in rounds)
    base = medians[setups[0].key]
    lines = stacks.report_header(
        "tasks: %d no-op tasks per burst, %d rounds (interleaved, medians)"
        % (args.tasks, args.rounds),
        "versions: Django %s, celery %s, kombu %s, redis-py %s"
        % (version("Django"), version("celery"), version("kombu"), version("redis")),
        "",
    )
    header = "%-3s %-14s %14s %16s %10s %18s %12s %7s" % (
        "row",
        "setup",
        "tasks/s",
        "enqueue p50 us",
        "enq CPU us",
        "start p50/p99 ms",
        "CPU us/task",
        "failed",
    )
    lines.append(header)
    for number, setup in enumerate(setups, 1):
        m = medians[setup.key]
        lines.append(
            "%-3d %-14s %7.0f %5.2fx %9.0f %5.2fx %10.0f %8.2f/%-8.2f %12.0f %7d"
            % (
                number,
                setup.key,
                m["rate"],
                m["rate"] / base["rate"],
                m["enqueue"],
                m["enqueue"] / base["enqueue"],
                m["enqueue_cpu"],
                m["start_p50"],
                m["start_p99"],
                m["cpu"],
                m["failed"],
            )
        )
    lines.append("")
    for number, setup in enumerate(setups, 1):
        lines.append("row %d: %s" % (number, setup.name))
    lines.append("")
    ours = medians["channels"]
    for column, test, wording in GOALS:
        ratio = ours[column] / base[column]
        lines.append(
            "goal %-34s %5.2fx  %s"
            % (wording, ratio, "met" if test(ratio) else "missed")
        )
    lines.append(
        "goal %-34s %5d   %s"
        % (
            "a burst of %d enqueues never fails" % args.tasks,
            ours["failed"],
            "met" if ours["failed"] == 0 else "missed",
        )
    )
    return lines


if __name__ == "__main__":
    main()
