"""
Serve the demo over a private Redis: what "make demo-redis" runs.

It starts redis-server on a free loopback port (never 6379, which may hold
someone's data) with persistence off, then uvicorn hosting demo.asgi and
--workers runworker processes, every one with DEMO_REDIS_URL pointing at that
server; the channel layer and the sessions live there. CONTROL-C (or
SIGTERM) stops them all, Redis last.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from django_fork.test.redis import RedisServer, RedisUnavailable

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2, help="runworker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    options = parser.parse_args(argv)
    if options.workers < 1 or options.threads < 1:
        parser.error("--workers and --threads must be at least 1.")
    try:
        redis = RedisServer().start()
    except RedisUnavailable as e:
        sys.exit("%s Install it (apt-get install redis-server)." % e)
    env = dict(
        os.environ,
        DEMO_REDIS_URL="redis://127.0.0.1:%d" % redis.port,
        PYTHONUNBUFFERED="1",
    )
    python = sys.executable
    commands = [
        [
            python,
            "-m",
            "uvicorn",
            "demo.asgi:application",
            "--host",
            options.host,
            "--port",
            str(options.port),
        ]
    ] + [
        [python, "manage.py", "runworker", "--threads", str(options.threads)]
        for _ in range(options.workers)
    ]
    print(
        "Serving the demo on http://%s:%d/ with uvicorn and %d runworker "
        "processes over redis-server on port %d. Quit with CONTROL-C."
        % (options.host, options.port, options.workers, redis.port),
        flush=True,
    )
    processes = [subprocess.Popen(command, cwd=HERE, env=env) for command in commands]
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        redis.stop()
    failed = [p for p in processes if p.returncode not in (0, -signal.SIGINT)]
    return 1 if failed and not stopping else 0


if __name__ == "__main__":
    sys.exit(main())
