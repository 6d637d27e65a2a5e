"""
Load-independent counts per request of the HTTP setups: context switches
(voluntary and involuntary, summed over every thread of each process, from
/proc/<pid>/task/*/status), Redis commands (INFO commandstats of the
setup's private redis-server) and CPU ms, over a wrk run at concurrency 1
and 32 against /hello/.

Context switches and Redis commands per request do not depend on how busy
the machine is; CPU ms does, a little. Nothing is saved unless --output is
given.

Usage: python benchmarks/http_counts.py [--only 5,5f] [--duration 3]
       [--baseline DIR --only 5~,5]
"""

import argparse
import os
import re
import subprocess
import sys

import redis
import stacks

DEFAULT_SETUPS = "4,5,5f"


def switches(pids):
    """Return {pid: (voluntary, involuntary)}, summed over its threads."""
    counts = {}
    for pid in pids:
        voluntary = involuntary = 0
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for task in tasks:
            try:
                with open("/proc/%d/task/%s/status" % (pid, task)) as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            voluntary += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            involuntary += int(line.split()[1])
            except OSError:
                continue
        counts[pid] = (voluntary, involuntary)
    return counts


def commandstats(stack):
    """Return {command: calls} of the stack's redis-server, or {}."""
    if stack.redis is None:
        return {}
    client = redis.Redis.from_url(stack.redis.url, socket_timeout=5)
    try:
        info = client.info("commandstats")
    finally:
        client.close()
    return {
        name[len("cmdstat_") :]: stats["calls"]
        for name, stats in info.items()
        if name.startswith("cmdstat_")
    }


def wrk(stack, connections, duration):
    """Run wrk against stack's /hello/; return the requests it completed."""
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c%d" % connections,
            "-d%ds" % duration,
            "--timeout",
            "10s",
            stack.url("/hello/"),
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    match = re.search(r"(\d+) requests in", output)
    if match is None:
        raise RuntimeError("wrk said: %s" % output)
    if "Non-2xx" in output or "Socket errors" in output:
        print("! %s: %s" % (stack.key, output.strip().splitlines()[-3:]))
    return int(match.group(1))


def measure(stack, connections, duration):
    names = {p.pid: p.name for p in stack.processes()}
    pids = list(names)
    before_process_cpu = {pid: stacks.cpu_seconds([pid]) for pid in pids}
    before_switches = switches(pids)
    before_commands = commandstats(stack)
    before_cpu = stack.cpu_seconds(with_redis=False)
    before_all = stack.cpu_seconds()
    requests = wrk(stack, connections, duration)
    cpu = stack.cpu_seconds(with_redis=False) - before_cpu
    redis_cpu = stack.cpu_seconds() - before_all - cpu
    after_switches = switches(pids)
    process_cpu = {
        pid: stacks.cpu_seconds([pid]) - before_process_cpu[pid] for pid in pids
    }
    after_commands = commandstats(stack)
    lines = [
        "%s c=%d: %d requests, server CPU %.3f ms/request (Python processes)"
        % (stack.key, connections, requests, 1000 * cpu / requests)
    ]
    if stack.redis is not None:
        lines.append(
            "  redis-server CPU %.3f ms/request" % (1000 * redis_cpu / requests)
        )
    total = 0.0
    for pid in pids:
        if pid not in before_switches or pid not in after_switches:
            continue
        voluntary = after_switches[pid][0] - before_switches[pid][0]
        involuntary = after_switches[pid][1] - before_switches[pid][1]
        total += voluntary / requests
        lines.append(
            "  %-8s context switches/request: %.2f voluntary, %.2f involuntary;"
            " CPU %.3f ms/request"
            % (
                names[pid],
                voluntary / requests,
                involuntary / requests,
                1000 * process_cpu[pid] / requests,
            )
        )
    lines.append("  all     voluntary context switches/request: %.2f" % total)
    if after_commands:
        calls = {
            name: after_commands[name] - before_commands.get(name, 0)
            for name in after_commands
        }
        calls.pop("info", None)
        busy = sorted((n for n in calls.items() if n[1]), key=lambda n: -n[1])
        lines.append(
            "  Redis commands/request: %.2f (%s)"
            % (
                sum(calls.values()) / requests,
                ", ".join("%s %.2f" % (name, n / requests) for name, n in busy),
            )
        )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=DEFAULT_SETUPS)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", default="1,32")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also offer rows 4~, 5~, 5b~: rows 4, 5, 5b on the checkout DIR",
    )
    parser.add_argument("--output")
    args = parser.parse_args()
    all_setups = stacks.by_key(threads=args.threads, stack_threads=args.threads)
    if args.baseline:
        for stack in stacks.baseline_setups(
            args.baseline, threads=args.threads, stack_threads=args.threads
        ):
            all_setups[stack.key] = stack
    report = [
        "command: %s"
        % " ".join([os.path.relpath(sys.executable, stacks.REPO), *sys.argv])
    ]
    for key in args.only.split(","):
        stack = all_setups[key].start()
        try:
            wrk(stack, 32, 1)
            for connections in args.connections.split(","):
                lines = measure(stack, int(connections), args.duration)
                print("\n".join(lines), flush=True)
                report += lines
        finally:
            stack.stop()
    if args.output:
        stacks.save_report(report, "http_counts", args.output)


if __name__ == "__main__":
    main()
