"""
Side-by-side HTTP benchmarks: classic Django servers, the branch's channel
path, and Channels 4.3 as the peer, all serving benchmarks/project.

Every setup is started once, on its own loopback port (and redis-server of
its own when it uses one), and stays up for the whole run. Each round runs
every test against every setup, the setups in a rotated order, so that
machine noise spreads over all of them; the table gives the median of the
rounds and the ratio to row 1. Load comes from wrk with a generated Lua
script that reports exact percentiles (and paces a fixed rate with delay()).

Tests: GET /hello/ (13 bytes), GET /big/ (100 KB), POST /upload/ (1 MB body),
each at concurrency 1 (latency) and 32 (throughput, CPU per request), plus
/hello/ paced at a fixed rate (300 req/s by default) with 16 connections.
Server CPU is utime + stime of the setup's processes (their children and,
where Redis is on the request path, its redis-server) from /proc; RSS is
the peak, sampled during the tests, of the Python server processes.

With valgrind installed, benchmarks/wsgi_path.py's callgrind measure adds
instructions per request of the branch's WSGI path (./branch, when "make
branch" made it) against stock Django.

Usage: python benchmarks/http_stack.py [--rounds 3] [--duration 2]
       [--only 1,5] [--no-callgrind] [--no-save]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import PackageNotFoundError, version

import stacks

MB = 1024 * 1024

LUA_CLOCK = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local bench_ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, bench_ts)  -- CLOCK_MONOTONIC
  return tonumber(bench_ts.tv_sec) * 1000 + tonumber(bench_ts.tv_nsec) / 1e6
end
"""

# Each wrk thread has its own Lua state and takes rate / threads of the
# load: delay() hands out send times on a fixed schedule. A schedule that
# fell behind by more than 50 ms restarts instead of bursting to catch up.
LUA_PACED = """
local interval = 1000 / %(rate_per_thread)f
local next_at = nil
function delay()
  local now = now_ms()
  if next_at == nil or next_at < now - 50 then next_at = now end
  local wait = next_at - now
  next_at = next_at + interval
  return math.floor(wait + 0.5)
end
"""

LUA_BODY = """
wrk.method = "POST"
wrk.body = string.rep("b", %(size)d)
wrk.headers["Content-Type"] = "application/octet-stream"
"""

LUA_REPORT = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"errors\\": %d, \\"status_errors\\": %d}\\n",
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout,
    e.status))
end
"""


class Test:
    def __init__(self, key, path, connections, body=0, rate=None, length=1.0):
        self.key = key
        self.path = path
        self.connections = connections
        self.body = body
        self.rate = rate
        #: Duration as a multiple of --duration.
        self.length = length

    def script(self, directory, threads):
        parts = [LUA_CLOCK]
        if self.body:
            parts.append(LUA_BODY % {"size": self.body})
        if self.rate:
            parts.append(LUA_PACED % {"rate_per_thread": self.rate / threads})
        parts.append(LUA_REPORT)
        path = os.path.join(directory, "%s.lua" % self.key)
        with open(path, "w") as f:
            f.write("\n".join(parts))
        return path


def tests(rate):
    return [
        Test("hello_c1", "/hello/", 1),
        Test("big_c1", "/big/", 1),
        Test("upload_c1", "/upload/", 1, body=MB),
        Test("hello_rate", "/hello/", 16, rate=rate, length=1.5),
        Test("hello_max", "/hello/", 32),
        Test("big_max", "/big/", 32),
        # Longer: 32 interleaved 1 MB bodies may all finish late.
        Test("upload_max", "/upload/", 32, body=MB, length=2),
    ]


class RssSampler(threading.Thread):
    """Sample the RSS of a stack's processes until stopped; keep the peak."""

    def __init__(self, stack, interval=0.2):
        super().__init__(daemon=True)
        self.pids = stack.pids(with_redis=False)
        self.interval = interval
        self.peak = 0
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            rss = sum(stacks.rss_bytes(pid) for pid in self.pids)
            self.peak = max(self.peak, rss)
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join()
        return self.peak


def run_wrk(stack, test, duration, script, threads=1, timeout=10):
    """Run wrk against stack; return the measures of the run."""
    threads = min(threads, test.connections)
    sampler = RssSampler(stack)
    sampler.start()
    cpu_before = stack.cpu_seconds()
    output = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(test.connections),
            "-d",
            "%ds" % max(1, round(duration * test.length)),
            "--timeout",
            "%ds" % timeout,
            "-s",
            script,
            stack.url(test.path),
        ],
        capture_output=True,
        text=True,
        timeout=duration * test.length + timeout + 30,
    )
    cpu = stack.cpu_seconds() - cpu_before
    peak_rss = sampler.stop()
    for line in output.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result = json.loads(line[len("WRKJSON ") :])
            break
    else:
        return {"failed": (output.stdout + output.stderr)[-1500:]}
    requests = result["requests"]
    if not requests:
        return {"failed": "no request completed", "errors": result["errors"]}
    return {
        "p50": result["p50_us"] / 1000,
        "p99": result["p99_us"] / 1000,
        "rps": requests / (result["duration_us"] / 1e6),
        "cpu": cpu / requests * 1000 if requests else None,
        "errors": result["errors"] + result["status_errors"],
        "rss": peak_rss / MB,
    }


# The table: (label, test key, measure, format).
ROWS = [
    ("hello c=1 p50 ms", "hello_c1", "p50", "%.2f"),
    ("hello c=1 p99 ms", "hello_c1", "p99", "%.2f"),
    ("100KB c=1 p50 ms", "big_c1", "p50", "%.2f"),
    ("100KB c=1 p99 ms", "big_c1", "p99", "%.2f"),
    ("upload c=1 p50 ms", "upload_c1", "p50", "%.2f"),
    ("upload c=1 p99 ms", "upload_c1", "p99", "%.2f"),
    ("hello @%(rate)d/s p50 ms", "hello_rate", "p50", "%.2f"),
    ("hello @%(rate)d/s p99 ms", "hello_rate", "p99", "%.2f"),
    ("hello @%(rate)d/s got req/s", "hello_rate", "rps", "%.0f"),
    ("hello c=32 req/s", "hello_max", "rps", "%.0f"),
    ("100KB c=32 req/s", "big_max", "rps", "%.0f"),
    ("upload c=32 req/s", "upload_max", "rps", "%.1f"),
    ("hello CPU ms/req", "hello_max", "cpu", "%.3f"),
    ("100KB CPU ms/req", "big_max", "cpu", "%.3f"),
    ("upload CPU ms/req", "upload_max", "cpu", "%.3f"),
]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def versions():
    names = [
        "Django",
        "uvicorn",
        "h11",
        "httptools",
        "uvloop",
        "daphne",
        "gunicorn",
        "channels",
        "channels-redis",
        "redis",
        "hiredis",
        "msgpack",
    ]
    found = []
    for name in names:
        try:
            found.append("%s %s" % (name, version(name)))
        except PackageNotFoundError:
            found.append("%s -" % name)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    redis_server = subprocess.run(
        [shutil.which("redis-server") or "redis-server", "--version"],
        capture_output=True,
        text=True,
    ).stdout
    found.append(
        "redis-server %s"
        % (redis_server.split("v=")[1].split()[0] if "v=" in redis_server else "?")
    )
    found.append(
        "wrk %s" % ((wrk.stdout + wrk.stderr).split()[1] if wrk.stdout else "?")
    )
    return "Python %s; %s" % (platform.python_version(), ", ".join(found))


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) / 1024 / 1024
    return "%s, %d CPUs (%s), %.0f GiB, %s; load average at start %s" % (
        platform.node(),
        os.cpu_count(),
        model,
        memory,
        platform.platform(),
        " ".join("%.2f" % x for x in os.getloadavg()),
    )


def callgrind(requests):
    """Return {setup key: instructions per request} from wsgi_path.py."""
    import wsgi_path

    # Row 3 on the branch itself (./branch, "make branch") when it is
    # there, else on stock Django with the django_fork app.
    available = {
        name: (extra, python) for name, extra, python in wsgi_path.available_setups()
    }
    row_3 = available.get(
        wsgi_path.BRANCH_SETUP, ({"WITH_DJANGO_FORK_APP": "1"}, sys.executable)
    )
    results = {}
    for key, (extra, python) in (("1", ({}, sys.executable)), ("3", row_3)):
        results[key] = (
            wsgi_path.instructions(extra, 2 * requests, python)
            - wsgi_path.instructions(extra, requests, python)
        ) / requests
    return results


def format_table(setups, results, rate, instructions):
    width = 9
    label_width = 28
    lines = []
    header = "%-*s" % (label_width, "") + "".join(
        "%*s" % (width, s.key) for s in setups
    )
    lines.append(header)
    lines.append("-" * len(header))
    base = setups[0].key

    def add(label, values, fmt, ratio=True):
        cells = []
        for s in setups:
            value = values.get(s.key)
            cells.append("%*s" % (width, fmt % value if value is not None else "-"))
        lines.append("%-*s" % (label_width, label) + "".join(cells))
        if ratio:
            cells = []
            for s in setups:
                value, reference = values.get(s.key), values.get(base)
                if value is None or not reference:
                    cells.append("%*s" % (width, "-"))
                else:
                    cells.append("%*s" % (width, "%.2fx" % (value / reference)))
            lines.append("%-*s" % (label_width, "  ratio to row 1") + "".join(cells))

    for label, test, measure, fmt in ROWS:
        if test not in results[base]:
            continue
        values = {
            s.key: median([r.get(measure) for r in results[s.key][test]])
            for s in setups
        }
        add(label % {"rate": rate}, values, fmt)
    add(
        "peak RSS MB (Python procs)",
        {
            s.key: max(
                (r.get("rss", 0) for rs in results[s.key].values() for r in rs),
                default=None,
            )
            for s in setups
        },
        "%.0f",
    )
    add(
        "errors (all runs)",
        {
            s.key: sum(
                r.get("errors", 0) + (1 if "failed" in r else 0)
                for rs in results[s.key].values()
                for r in rs
            )
            for s in setups
        },
        "%d",
        ratio=False,
    )
    if instructions:
        add(
            "WSGI instr./req (callgrind)",
            {key: value for key, value in instructions.items()},
            "%.0f",
        )
    return lines


def verdict(met):
    return "met" if met else "MISSED"


#: The goals of issue 17 for the HTTP rows: (label, setup key, test key,
#: measure, reference setup key, bound, whether the ratio must be at most
#: the bound (else at least)). Ratios are to the reference row in this run.
GOALS = [
    ("row 5 (uvicorn + runworker/Redis) hello c=32 req/s", "5", "hello_max",
     "rps", "1", 0.80, False),
    ("row 5 server CPU ms/request (all its processes)", "5", "hello_max", "cpu",
     "1", 1.8, True),
    ("row 5 hello c=1 p50", "5", "hello_c1", "p50", "1", 2.0, True),
    ("row 5b hello c=32 req/s against row 1b (as many processes)", "5b",
     "hello_max", "rps", "1b", 0.70, False),
    ("row 4 (runstack) hello c=32 req/s", "4", "hello_max", "rps", "1", 1.0,
     False),
    ("row 4 hello c=1 p50", "4", "hello_c1", "p50", "1", 1.5, True),
    # Channels 4.3 over channels_redis, for reference: row 5 stays at least
    # 4x ahead of it in throughput and CPU per request.
    ("Channels 4.3 (row 6b) hello c=32 req/s against row 5", "6b", "hello_max",
     "rps", "5", 0.25, True),
    ("Channels 4.3 (row 6b) CPU ms/request against row 5", "6b", "hello_max",
     "cpu", "5", 4.0, False),
]  # fmt: skip


def targets(results, rate, instructions):
    """Return the issue's goals, evaluated on this run."""

    def value(key, test, measure):
        if key not in results or test not in results[key]:
            return None
        return median([r.get(measure) for r in results[key][test]])

    lines = ["Goals (issue 17), evaluated on this run:"]
    if instructions and "3" in instructions:
        ratio = instructions["3"] / instructions["1"]
        lines.append(
            "- branch WSGI path within 1%% of stock in instructions/request: "
            "%.4fx -> %s" % (ratio, verdict(abs(ratio - 1) <= 0.01))
        )
    for label, key, test, measure, reference, bound, at_most in GOALS:
        measured, base = value(key, test, measure), value(reference, test, measure)
        if measured is None or not base:
            continue
        ratio = measured / base
        lines.append(
            "- %s %s %.2fx row %s's: %.3f vs %.3f = %.2fx -> %s"
            % (
                label,
                "<=" if at_most else ">=",
                bound,
                reference,
                measured,
                base,
                ratio,
                verdict(ratio <= bound if at_most else ratio >= bound),
            )
        )
    floor, base = value("5f", "hello_c1", "p50"), value("1", "hello_c1", "p50")
    p50 = value("5", "hello_c1", "p50")
    if floor is not None and base:
        lines.append(
            "- floor of row 5's design (row 5f, info), c=1 p50: %.2f ms = %.2fx "
            "gunicorn's; row 5 is %s"
            % (
                floor,
                floor / base,
                "%.2fx the floor" % (p50 / floor) if p50 is not None else "not run",
            )
        )
    floor_cpu, cpu = value("5f", "hello_max", "cpu"), value("5", "hello_max", "cpu")
    if floor_cpu and cpu is not None:
        lines.append(
            "- floor of row 5's design (row 5f, info), CPU ms/request: %.3f; "
            "row 5 is %.2fx the floor" % (floor_cpu, cpu / floor_cpu)
        )
    for key in ("4", "5", "5b"):
        before, after = value(key + "~", "hello_max", "cpu"), value(
            key, "hello_max", "cpu"
        )
        if before and after is not None:
            lines.append(
                "- row %s against its baseline (row %s~, info): CPU ms/request "
                "%.3f vs %.3f = %.2fx" % (key, key, after, before, after / before)
            )
    return lines


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=2, help="seconds per wrk run")
    parser.add_argument(
        "--warmup", type=int, default=1, help="seconds per warm-up run, 0: none"
    )
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes of rows 5, 6b"
    )
    parser.add_argument(
        "--scaled",
        type=int,
        default=2,
        help="processes serving Django in rows 1b and 5b",
    )
    # runworker's and runstack's own defaults: the setups as shipped.
    parser.add_argument(
        "--threads", type=int, default=4, help="runworker --threads of row 5"
    )
    parser.add_argument(
        "--stack-threads", type=int, default=4, help="runstack --workers (row 4)"
    )
    parser.add_argument("--only", help="comma-separated setup keys, e.g. 1,4,5")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run rows 4, 5 and 5b on the django_fork of the checkout DIR, "
        "as rows 4~, 5~ and 5b~ (select them with --only)",
    )
    parser.add_argument("--tests", help="comma-separated test keys")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--callgrind-requests", type=int, default=100)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--output", help="file to write (default: results/...)")
    args = parser.parse_args()

    started = time.monotonic()
    all_setups = stacks.setups(
        args.workers, args.threads, args.stack_threads, args.scaled
    )
    if args.baseline:
        all_setups += stacks.baseline_setups(
            args.baseline, args.workers, args.threads, args.stack_threads, args.scaled
        )
    if args.only:
        keys = args.only.split(",")
        if "1" not in keys:
            keys.insert(0, "1")
        all_setups = [s for s in all_setups if s.key in keys]
    test_list = tests(args.rate)
    if args.tests:
        test_list = [t for t in test_list if t.key in args.tests.split(",")]
    header = [
        "date: %s" % datetime.datetime.now().astimezone().isoformat("T", "seconds"),
        "machine: %s" % machine(),
        "versions: %s" % versions(),
        "command: %s"
        % " ".join([os.path.relpath(sys.executable, stacks.REPO), *sys.argv]),
        "method: %d interleaved rounds (setup order rotated each round), medians;"
        " wrk -t1, %d s per run (x1.5 for the paced run, x2 for upload c=32),"
        " --timeout 10s, %d s warm-up per c=32 test and setup; CPU ="
        " utime+stime of the setup's processes; RSS = peak of the Python"
        " server processes" % (args.rounds, args.duration, args.warmup),
    ]
    print("\n".join(header), flush=True)

    results = {s.key: {t.key: [] for t in test_list} for s in all_setups}
    workdir = tempfile.mkdtemp(prefix="bench-lua-")
    started_setups = []
    try:
        for stack in all_setups:
            stack.start()
            started_setups.append(stack)
        scripts = {t.key: t.script(workdir, 1) for t in test_list}
        if args.warmup:
            # The c=32 tests warm up every code path the others take.
            for stack in all_setups:
                for test in test_list:
                    if test.connections == 32:
                        run_wrk(stack, test, args.warmup, scripts[test.key])
        for number in range(args.rounds):
            order = all_setups[number % len(all_setups) :]
            order += all_setups[: number % len(all_setups)]
            for test in test_list:
                for stack in order:
                    result = run_wrk(stack, test, args.duration, scripts[test.key])
                    results[stack.key][test.key].append(result)
                    if "failed" in result:
                        print(
                            "! %s %s: wrk failed: %s"
                            % (stack.key, test.key, result["failed"]),
                            flush=True,
                        )
            print(
                "round %d done after %.0f s" % (number + 1, time.monotonic() - started),
                flush=True,
            )
        setup_lines = ["setups (row: what runs; commands, run in benchmarks/project):"]
        for stack in all_setups:
            setup_lines.append(
                "%3s  %s: %s" % (stack.key, stack.name, stack.description)
            )
            for command in stack.commands():
                setup_lines.append("       $ %s" % command)
    finally:
        for stack in started_setups:
            stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    instructions = None
    if not args.no_callgrind and shutil.which("valgrind"):
        if any(s.key == "3" for s in all_setups):
            instructions = callgrind(args.callgrind_requests)

    table = format_table(all_setups, results, args.rate, instructions)
    report = [
        *header,
        "",
        *setup_lines,
        "",
        *table,
        "",
        *targets(results, args.rate, instructions),
        "",
        (
            "(WSGI instructions/request: benchmarks/wsgi_path.py's callgrind measure, "
            "%d vs %d requests, stock project of tests/regressiontests/wsgi_path_tests)"
            % (args.callgrind_requests, 2 * args.callgrind_requests)
            if instructions
            else "(callgrind measure skipped)"
        ),
        "total time: %.0f s" % (time.monotonic() - started),
    ]
    print("\n" + "\n".join(report[len(header) :]))
    if not args.no_save:
        stacks.save_report(report, "http_stack", args.output)


if __name__ == "__main__":
    main()
