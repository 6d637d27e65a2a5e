"""
Server stacks for the benchmarks and failure drills: processes serving
benchmarks/project on loopback ports, with their CPU time and memory.

A Stack is one setup: the processes that serve it (an HTTP server, workers,
a redis-server of its own) and the port clients connect to. Every process is
started by this module and stopped by its pid; a stack's CPU time and RSS
are summed over its processes and their children, read from /proc.
"""

import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROJECT = os.path.join(HERE, "project")
BIN = os.path.dirname(sys.executable)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

if REPO not in sys.path:
    sys.path.insert(0, REPO)

from django_fork.test.redis import RedisServer  # noqa: E402

__all__ = ["REPO", "RedisServer", "Stack", "free_port", "environment", "setups"]


def report_header(*lines):
    """
    Return the first lines of a benchmark's report: when, on what machine,
    and by what command it ran, then lines (describing the setup).
    """
    return [
        "date: %s"
        % datetime.datetime.now(datetime.timezone.utc).isoformat("T", "seconds"),
        "machine: %d CPUs, load average at start %s"
        % (os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg())),
        "command: %s" % " ".join([os.path.relpath(sys.executable, REPO), *sys.argv]),
        *lines,
    ]


def save_report(lines, name, path=None):
    """
    Write lines to path, by default results/<name>-<today>.txt in
    benchmarks/.
    """
    path = path or os.path.join(
        HERE, "results", "%s-%s.txt" % (name, datetime.date.today().isoformat())
    )
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("Saved to %s" % os.path.relpath(path, REPO))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(tree=None, **extra):
    """
    Return the environment of a server of the benchmark project; tree, if
    given, is another checkout whose django_fork the server runs (for a
    before/after comparison in one run).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # BENCH_PYTHONPATH puts more on the path of the servers, for trying
    # e.g. httptools and uvloop installed with pip install --target.
    extra_path = os.environ.get("BENCH_PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [extra_path, tree, PROJECT, REPO] if p
    )
    env["DJANGO_SETTINGS_MODULE"] = "benchproject.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(*args):
    return [sys.executable, "-m", "django", *args]


def children_of(pids):
    """Return pids and all their descendants that are alive now."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if os.path.exists("/proc/%d" % pid):
            found.append(pid)
            todo.extend(parents.get(pid, ()))
    return found


def cpu_seconds(pids):
    """Return the user + system CPU seconds the processes used so far."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime and stime are fields 14 and 15 of stat(5).
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_bytes(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


class Process:
    """A server process with its output in a log file."""

    def __init__(self, name, argv, env, logdir):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = os.path.join(logdir, "%s.log" % name)
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=PROJECT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def pid(self):
        return self.process.pid

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def send_signal(self, signum):
        if self.running:
            self.process.send_signal(signum)

    def stop(self, signum=signal.SIGTERM, timeout=15):
        """Signal the process and wait; SIGKILL it after timeout seconds."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def wait_for_port(port, processes, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if not process.running:
                raise RuntimeError(
                    "%s exited with %s:\n%s"
                    % (process.name, process.process.returncode, process.tail())
                )
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("Nothing listens on port %d after %ss." % (port, timeout))


class Stack:
    """
    One setup: a front server on a port, optional workers, optional Redis.

    front(port) and worker(n) return the argv of a process; env(redis_url)
    its environment. Workers are numbered so drills can add and remove them.
    """

    def __init__(
        self,
        key,
        name,
        front,
        env,
        worker=None,
        workers=0,
        redis=False,
        count_redis=True,
        fronts=1,
        description="",
    ):
        self.key = key
        self.name = name
        self.description = description
        self._front = front
        self._env = env
        self._worker = worker
        self.initial_workers = workers
        self.initial_fronts = fronts
        self.uses_redis = redis
        self.count_redis = count_redis
        self.redis = None
        self.fronts = []
        self.workers = []
        self.ports = []
        self.logdir = None
        self._worker_count = 0

    @property
    def port(self):
        return self.ports[0]

    def url(self, path="/", front=0):
        return "http://127.0.0.1:%d%s" % (self.ports[front], path)

    def env(self):
        return self._env(self.redis.url if self.redis else None)

    def start(self):
        self.logdir = tempfile.mkdtemp(prefix="bench-%s-" % self.key)
        if self.uses_redis:
            self.redis = RedisServer().start()
        for _ in range(self.initial_workers):
            self.add_worker()
        for _ in range(self.initial_fronts):
            self.add_front()
        return self

    def add_front(self):
        port = free_port()
        number = len(self.fronts)
        process = Process(
            "front%d" % number, self._front(port), self.env(), self.logdir
        ).start()
        self.fronts.append(process)
        self.ports.append(port)
        wait_for_port(port, [process, *self.workers])
        return process

    def restart_front(self, number):
        """Start front server number again on its port."""
        port = self.ports[number]
        process = Process(
            "front%d" % number, self._front(port), self.env(), self.logdir
        ).start()
        self.fronts[number] = process
        wait_for_port(port, [process])
        return process

    def add_worker(self):
        self._worker_count += 1
        process = Process(
            "worker%d" % self._worker_count,
            self._worker(self._worker_count),
            self.env(),
            self.logdir,
        ).start()
        self.workers.append(process)
        return process

    def processes(self):
        return [p for p in [*self.fronts, *self.workers] if p.running]

    def pids(self, with_redis=True):
        pids = children_of([p.pid for p in self.processes()])
        if (
            with_redis
            and self.count_redis
            and self.redis is not None
            and self.redis.running
        ):
            pids.append(self.redis.process.pid)
        return pids

    def cpu_seconds(self, with_redis=True):
        return cpu_seconds(self.pids(with_redis))

    def rss(self):
        """Return the RSS of the Python processes (redis-server excluded)."""
        return sum(rss_bytes(pid) for pid in self.pids(with_redis=False))

    def commands(self):
        lines = []
        if self.redis is not None:
            lines.append(
                "redis-server --port %d --save '' --appendonly no" % self.redis.port
            )
        for process in [*self.fronts, *self.workers]:
            argv = [
                os.path.relpath(a, REPO) if a.startswith(REPO) else a
                for a in process.argv
            ]
            argv[0] = os.path.basename(argv[0])
            extra = " ".join(
                "%s=%s" % (k, v)
                for k, v in sorted(process.env.items())
                if k.startswith("BENCH_") and k != "BENCH_REDIS_URL"
            )
            lines.append((extra + " " if extra else "") + " ".join(argv))
        return lines

    def stop(self):
        for process in [*self.fronts, *self.workers]:
            process.stop()
        if self.redis is not None:
            self.redis.cleanup()
        if self.logdir:
            shutil.rmtree(self.logdir, ignore_errors=True)


# The setups. Ports are free loopback ports; Redis servers are private.


def _env(fork=False, peer=False, tree=None, **extra):
    def make(redis_url):
        options = dict(extra)
        if fork:
            options["BENCH_FORK"] = "1"
        if peer:
            options["BENCH_PEER"] = "1"
        if redis_url:
            options["BENCH_REDIS_URL"] = redis_url
        return environment(tree, **options)

    return make


def gunicorn(workers):
    def argv(port):
        return [
            os.path.join(BIN, "gunicorn"),
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--bind",
            "127.0.0.1:%d" % port,
            "--log-level",
            "warning",
            "benchproject.wsgi:application",
        ]

    return argv


def uvicorn(app, workers=1):
    """uvicorn serving app; workers > 1 adds --workers (one socket, shared)."""

    def argv(port):
        extra = ["--workers", str(workers)] if workers > 1 else []
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
            *extra,
            app,
        ]

    return argv


def daphne(app):
    def argv(port):
        return [
            os.path.join(BIN, "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "-v",
            "0",
            app,
        ]

    return argv


def runstack(threads):
    def argv(port):
        return manage(
            "runstack",
            "--bind",
            "127.0.0.1:%d" % port,
            "--workers",
            str(threads),
            "--no-access-log",
            "-v",
            "0",
        )

    return argv


def runworker(threads):
    def argv(number):
        return manage("runworker", "--threads", str(threads), "-v", "0")

    return argv


def floor_worker(number):
    return [sys.executable, "-m", "benchproject.floor"]


def channels_runworker(number):
    return manage("runworker", "bench-http", "-v", "0")


def setups(workers=1, threads=4, stack_threads=4, scaled=2):
    """
    Return the benchmark setups, row 1 first. Rows 1b and 5b run rows 1 and
    5 with scaled processes serving Django (row 5b: scaled runworker
    processes sharing threads between them): one per core of this machine.
    """
    return [
        Stack(
            "1",
            "gunicorn sync + WSGIHandler (stock)",
            gunicorn(1),
            _env(),
            description="gunicorn, 1 sync worker; project without django_fork",
        ),
        Stack(
            "1b",
            "gunicorn sync x%d + WSGIHandler (stock)" % scaled,
            gunicorn(scaled),
            _env(),
            description="row 1 with %d sync workers" % scaled,
        ),
        Stack(
            "2a",
            "uvicorn + ASGIHandler (stock)",
            uvicorn("benchproject.asgi_stock:application"),
            _env(),
            description="uvicorn (its default: httptools and uvloop when "
            "installed), 1 process; stock ASGIHandler",
        ),
        Stack(
            "2b",
            "daphne + ASGIHandler (stock)",
            daphne("benchproject.asgi_stock:application"),
            _env(),
            description="daphne, 1 process; stock ASGIHandler",
        ),
        Stack(
            "3",
            "gunicorn sync + branch WSGI",
            gunicorn(1),
            _env(fork=True),
            description="gunicorn, 1 sync worker; django_fork in INSTALLED_APPS",
        ),
        Stack(
            "4",
            "runstack (in-memory)",
            runstack(stack_threads),
            _env(fork=True),
            description="manage.py runstack --workers %d: uvicorn interface and "
            "worker threads in one process, in-memory layer" % stack_threads,
        ),
        Stack(
            "5",
            "uvicorn interface + runworker/Redis",
            uvicorn("benchproject.asgi_interface:application"),
            _env(fork=True),
            worker=runworker(threads),
            workers=workers,
            redis=True,
            description="uvicorn hosting get_interface_application(), %d "
            "runworker process(es) with --threads %d, RedisChannelLayer on a "
            "private redis-server" % (workers, threads),
        ),
        Stack(
            "5b",
            "row 5 with %d runworker processes" % scaled,
            uvicorn("benchproject.asgi_interface:application"),
            _env(fork=True),
            worker=runworker(max(1, threads // scaled)),
            workers=scaled,
            redis=True,
            description="row 5 with %d runworker processes with --threads %d "
            "(the same threads in all)" % (scaled, max(1, threads // scaled)),
        ),
        Stack(
            "5f",
            "floor of row 5: same hops, bare",
            uvicorn("benchproject.floor:application"),
            _env(),
            worker=floor_worker,
            workers=1,
            redis=True,
            description="what row 5's processes and hops cost with nothing "
            "else: a bare ASGI app doing RPUSH/BLPOP with redis-py in "
            "uvicorn, one single-threaded worker doing BLPOP -> Django's "
            "WSGIHandler -> RPUSH (benchproject/floor.py); no schema, "
            "capacity, chunking, timeouts or error handling",
        ),
        Stack(
            "6a",
            "peer: Channels 4.3 in-process",
            daphne("benchproject.peer:inprocess_application"),
            _env(peer=True),
            redis=True,
            count_redis=False,
            description="daphne + Channels ProtocolTypeRouter -> Django "
            "ASGIHandler; channels_redis configured, not on the HTTP path "
            "(how Channels 4 serves HTTP)",
        ),
        Stack(
            "6b",
            "peer: Channels 4.3 over channels_redis",
            daphne("benchproject.peer:application"),
            _env(peer=True),
            worker=channels_runworker,
            workers=workers,
            redis=True,
            description="daphne + AsyncHttpConsumer -> channels_redis 4.3 -> "
            "%d 'runworker bench-http' process(es), SyncConsumer running "
            "Django's sync handler (the channel path's design, built on "
            "Channels 4)" % workers,
        ),
    ]


def baseline_setups(tree, workers=1, threads=4, stack_threads=4, scaled=2):
    """
    Return rows 4, 5 and 5b running the django_fork of another checkout,
    tree (e.g. `git archive <commit> | tar -x -C DIR`), as rows 4~, 5~ and
    5b~.
    """
    result = []
    for stack in setups(workers, threads, stack_threads, scaled):
        if stack.key not in ("4", "5", "5b"):
            continue
        stack.key += "~"
        stack.name += " (baseline)"
        stack.description += "; django_fork from %s" % tree
        stack._env = _env(fork=True, tree=os.path.abspath(tree))
        result.append(stack)
    return result


def by_key(**options):
    """Return the setups of setups(**options) by their row key."""
    return {stack.key: stack for stack in setups(**options)}
