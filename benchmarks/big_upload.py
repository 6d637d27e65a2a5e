"""
A 1 GiB upload through the channel path, with the memory it costs.

For runstack (in-memory layer, one process) and for a uvicorn-hosted
interface with a runworker process over Redis, a streaming client
(http.client with a generator body and a Content-Length, 1 MiB blocks, each
numbered so that a lost, repeated or reordered block changes the digest)
POSTs the body to /stream-upload/, whose view reads it in 1 MiB pieces and
answers with its size and SHA-256. The RSS of every server process is
sampled every 0.1 s; the report gives each process's RSS before the upload
(after a few warm-up requests), its peak during the upload, and the growth.
Target (issue 7): at most 64 MiB of growth for the interface and for the
worker.

Usage: python benchmarks/big_upload.py [--size-mb 1024] [--only 4,5]
       [--no-save]
"""

import argparse
import hashlib
import http.client
import json
import sys
import threading
import time

import stacks

MIB = 1024 * 1024
TARGET_MIB = 64


class Sampler(threading.Thread):
    """Sample the RSS of named processes every interval seconds."""

    def __init__(self, processes, interval=0.1):
        super().__init__(daemon=True)
        self.processes = processes
        self.interval = interval
        self.peak = {name: 0 for name in processes}
        self._done = threading.Event()

    def sample(self):
        return {
            name: sum(stacks.rss_bytes(pid) for pid in pids)
            for name, pids in self.processes.items()
        }

    def run(self):
        while not self._done.is_set():
            for name, rss in self.sample().items():
                self.peak[name] = max(self.peak[name], rss)
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join()
        return self.peak


def blocks(size, digest):
    """Yield size bytes in numbered 1 MiB blocks; update digest."""
    pattern = bytes(range(256)) * (MIB // 256)
    sent = 0
    number = 0
    while sent < size:
        block = (b"%016d" % number + pattern)[: min(MIB, size - sent)]
        digest.update(block)
        sent += len(block)
        number += 1
        yield block


def upload(port, size, timeout):
    digest = hashlib.sha256()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request(
            "POST",
            "/stream-upload/",
            body=blocks(size, digest),
            headers={
                "Content-Length": str(size),
                "Content-Type": "application/octet-stream",
            },
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    result = {"status": response.status, "seconds": elapsed}
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    result["ok"] = (
        response.status == 200
        and answer.get("size") == size
        and answer.get("sha256") == digest.hexdigest()
    )
    if not result["ok"]:
        result["answer"] = body[:200].decode(errors="replace")
    return result


def named_processes(stack):
    names = {}
    for process in stack.processes():
        role = "interface" if process.name.startswith("front") else "worker"
        if stack.key == "4":
            role = "interface + workers (one process)"
        names.setdefault(role, []).extend(stacks.children_of([process.pid]))
    if stack.redis is not None:
        names["redis-server (no target)"] = [stack.redis.process.pid]
    return names


def measure(stack, size, timeout):
    stack.start()
    try:
        for _ in range(20):
            connection = http.client.HTTPConnection("127.0.0.1", stack.port)
            connection.request("POST", "/stream-upload/", body=b"x" * MIB)
            connection.getresponse().read()
            connection.close()
        time.sleep(0.5)
        processes = named_processes(stack)
        sampler = Sampler(processes)
        before = sampler.sample()
        sampler.start()
        try:
            result = upload(stack.port, size, timeout)
        finally:
            peak = sampler.stop()
        result["memory"] = {
            name: (
                before[name] / MIB,
                peak[name] / MIB,
                (peak[name] - before[name]) / MIB,
            )
            for name in processes
        }
        if not result["ok"]:
            result["log"] = "".join(p.tail(10) for p in stack.processes())
        return result
    finally:
        stack.stop()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="MiB to upload")
    parser.add_argument("--only", default="4,5", help="setups: 4, 5 or both")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--output")
    args = parser.parse_args()
    size = args.size_mb * MIB

    chosen = [s for s in stacks.setups() if s.key in args.only.split(",")]
    lines = stacks.report_header(
        "upload: %d MiB POST /stream-upload/ (Content-Length, 1 MiB writes); "
        "RSS sampled every 0.1 s; target: growth <= %d MiB per process"
        % (args.size_mb, TARGET_MIB),
        "",
        "%-5s %-36s %-34s %9s %9s %9s %s"
        % ("setup", "", "process", "RSS MiB", "peak MiB", "growth", "target"),
    )
    print("\n".join(lines), flush=True)
    results = []
    for stack in chosen:
        result = measure(stack, size, args.timeout)
        results.append(result)
        for name, (before, peak, growth) in result["memory"].items():
            line = "%-5s %-36s %-34s %9.1f %9.1f %9.1f %s" % (
                stack.key,
                stack.name,
                name,
                before,
                peak,
                growth,
                (
                    ""
                    if name.startswith("redis")
                    else "met" if growth <= TARGET_MIB else "MISSED"
                ),
            )
            lines.append(line)
            print(line, flush=True)
        line = "%-5s %-36s %s" % (
            "",
            "",
            "upload: HTTP %d, %s, %.1f s (%.0f MiB/s)"
            % (
                result["status"],
                "size and SHA-256 match" if result["ok"] else "WRONG ANSWER",
                result["seconds"],
                args.size_mb / result["seconds"],
            ),
        )
        lines.append(line)
        print(line, flush=True)
        if not result["ok"]:
            print(result.get("answer"), result.get("log"), flush=True)
    if not args.no_save:
        stacks.save_report(lines, "big_upload", args.output)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
