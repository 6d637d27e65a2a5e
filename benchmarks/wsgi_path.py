"""
What the raw WSGI path pays for django_fork: stock Django 5.2.19 against the
same project with "django_fork" in INSTALLED_APPS, and against the branch
(Django 5.2.19 with the patch series applied, in ./branch, made by
"make branch"), whose WSGIRequest and WSGIHandler are rebuilt on the
transport-neutral request base and lifecycle.

All run the stock project of tests/regressiontests/wsgi_path_tests through
its wsgi.py (a session-using view, the default middleware), called directly
with a prepared environ so that only Django's request handling is measured.
The branch runs in ./branch/.venv, the others in this interpreter; both are
the same Python. Without ./branch the branch's row is left out.

Two measures, side by side in one run:
- wall time per request: interleaved rounds in fresh interpreters, medians;
- instructions per request under valgrind's callgrind (when valgrind is
  installed): repeatable on a noisy machine. Startup is cancelled out by
  running N and 2N requests and taking the difference.

Usage: python benchmarks/wsgi_path.py [--rounds 7] [--requests 20000]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROJECT = os.path.join(
    REPO, "tests", "regressiontests", "wsgi_path_tests", "stock_project"
)

PROBE = r"""
import io, sys, time
from stockproject.wsgi import application

environ = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1",
    "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
    "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
    "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
}

def start_response(status, headers):
    pass

def run(n):
    for _ in range(n):
        env = dict(environ, **{"wsgi.input": io.BytesIO()})
        response = application(env, start_response)
        b"".join(response)
        response.close()

n = int(sys.argv[1])
run(200)  # warm up
start = time.perf_counter()
run(n)
print((time.perf_counter() - start) / n * 1e6)
"""

BRANCH_PYTHON = os.path.join(REPO, "branch", ".venv", "bin", "python")
BRANCH_SETUP = "branch (patch series)"

# (name, environment, interpreter): the branch's interpreter imports Django
# from ./branch.
SETUPS = [
    ("stock Django 5.2.19", {}, sys.executable),
    ("with django_fork app", {"WITH_DJANGO_FORK_APP": "1"}, sys.executable),
    (BRANCH_SETUP, {}, BRANCH_PYTHON),
]


def available_setups():
    return [setup for setup in SETUPS if os.path.exists(setup[2])]


def environment(extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WITH_DJANGO_FORK_APP", "DJANGO_SETTINGS_MODULE")
    }
    env["PYTHONPATH"] = os.pathsep.join([PROJECT, REPO])
    env["DJANGO_SETTINGS_MODULE"] = "stockproject.settings"
    env.update(extra)
    return env


def wall_time(extra, requests, python=sys.executable):
    output = subprocess.run(
        [python, "-c", PROBE, str(requests)],
        env=environment(extra),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(output)


def instructions(extra, requests, python=sys.executable):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=" + out,
                python,
                "-c",
                PROBE,
                str(requests),
            ],
            env=environment({**extra, "PYTHONHASHSEED": "0"}),
            capture_output=True,
            check=True,
        )
        with open(out) as f:
            return int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--callgrind-requests", type=int, default=300)
    args = parser.parse_args()

    setups = available_setups()
    times = {name: [] for name, _, _ in setups}
    for _ in range(args.rounds):
        for name, extra, python in setups:
            times[name].append(wall_time(extra, args.requests, python))
    per_request = {}
    if shutil.which("valgrind"):
        n = args.callgrind_requests
        for name, extra, python in setups:
            per_request[name] = (
                instructions(extra, 2 * n, python) - instructions(extra, n, python)
            ) / n

    base_name = setups[0][0]
    base_time = statistics.median(times[base_name])
    print(
        "%-24s %14s %8s %16s %8s"
        % ("setup", "µs/request p50", "ratio", "instr./request", "ratio")
    )
    for name, _, _ in setups:
        median = statistics.median(times[name])
        row = "%-24s %14.1f %8.3f" % (name, median, median / base_time)
        if per_request:
            row += " %16.0f %8.4f" % (
                per_request[name],
                per_request[name] / per_request[base_name],
            )
        print(row)
    print(
        "(%d interleaved rounds of %d requests; callgrind: %s)"
        % (
            args.rounds,
            args.requests,
            (
                "%d vs %d requests"
                % (args.callgrind_requests, 2 * args.callgrind_requests)
                if per_request
                else "valgrind not installed"
            ),
        )
    )


if __name__ == "__main__":
    main()
