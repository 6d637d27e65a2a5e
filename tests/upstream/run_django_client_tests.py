#!/usr/bin/env python
"""
Run Django's own test_client, test_client_regress and requests_tests apps
with every test client over the channel path.

The tests come from the source release of the installed Django (downloaded
once with pip into a cache directory, never copied into this repository) and
run under Django's own tests/runtests.py with --settings=channels_settings:
Django's SQLite settings plus TEST_RUNNER, a ChannelDiscoverRunner that also
counts which handler served each request. Examples:

    .venv/bin/python tests/upstream/run_django_client_tests.py
    .venv/bin/python tests/upstream/run_django_client_tests.py --baseline
    .venv/bin/python tests/upstream/run_django_client_tests.py --layer redis
    .venv/bin/python tests/upstream/run_django_client_tests.py test_client -v 2

--baseline also runs the apps on stock Django (channels off) to tell failures
of this machine's environment from failures of the channel path. Known
differences (docs/topics/testing-channels.txt lists them with their reasons)
are reported apart; the exit status is 1 when anything else fails, or when a
request in a test did not go over channels without being a known difference.
"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

import django

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
APPS = ["test_client", "test_client_regress", "requests_tests"]

#: Tests that fail over channels by definition: {test id: reason}.
#: docs/topics/testing-channels.txt explains each; keep the two in step.
#: None, with the overlay: the attributes a view sets on its response object
#: travel (the worker is in the test's process), and response.wsgi_request is
#: the WSGIRequest Django's ClientHandler built, with the view's state. (In
#: the patch series, where response.wsgi_request is the ChannelRequest,
#: test_client.tests.ClientTest.test_response_attached_request fails by
#: definition: it reads response.wsgi_request.environ.)
KNOWN_DIFFERENCES = {}

#: Tests that make requests that do not go over channels, by design:
#: {test id: reason}. None: the switch reaches every test client, a Client()
#: a test or a view builds included.
NOT_SWITCHED = {}


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "django_fork", "upstream-tests")


def django_tests_dir(version):
    """Return Django's tests directory, downloading the sdist if needed."""
    directory = cache_dir()
    tests = os.path.join(directory, "django-%s" % version, "tests")
    if os.path.isfile(os.path.join(tests, "runtests.py")):
        return tests
    os.makedirs(directory, exist_ok=True)
    sdist = os.path.join(directory, "django-%s.tar.gz" % version)
    if not os.path.exists(sdist):
        print("Downloading the Django %s source release..." % version, flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "Django==%s" % version,
                "-d",
                directory,
            ],
            check=True,
        )
    prefix = "django-%s/tests/" % version
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        archive.extractall(directory, members=members, filter="data")
    return tests


def run(tests_dir, settings, apps, verbosity, report_path, extra):
    """Run Django's runtests.py; return (returncode, output)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [HERE, REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    env["UPSTREAM_REQUESTS_REPORT"] = report_path
    command = [
        sys.executable,
        "runtests.py",
        "--settings=%s" % settings,
        "--parallel=1",
        "--verbosity=%d" % verbosity,
        *extra,
        *apps,
    ]
    process = subprocess.run(
        command,
        cwd=tests_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process.returncode, process.stdout


_PROBLEM_RE = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (\w+) \(([\w.]+)\)", re.M)
_RAN_RE = re.compile(r"^Ran (\d+) tests?", re.M)
_SKIPPED_RE = re.compile(r"skipped=(\d+)")


def parse(output):
    """Return (ran, skipped, {test id: kind}) from unittest's output."""
    ran = _RAN_RE.search(output)
    tail = output[ran.end() :] if ran else ""
    skipped = _SKIPPED_RE.search(tail)
    problems = {}
    for kind, method, where in _PROBLEM_RE.findall(output):
        # Python 3.11 names the test in full, earlier versions its class.
        if not where.endswith("." + method):
            where = "%s.%s" % (where, method)
        problems[where] = kind
    return (
        int(ran.group(1)) if ran else 0,
        int(skipped.group(1)) if skipped else 0,
        problems,
    )


def run_and_parse(tests_dir, settings, options, extra):
    """Run the apps; return (ran, skipped, problems, requests)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        code, output = run(
            tests_dir, settings, options.apps, options.verbosity, report.name, extra
        )
        try:
            with open(report.name) as f:
                requests = json.load(f)
        except ValueError:
            # The run crashed before its runner wrote the report.
            requests = {"totals": {}, "not_channel": {}}
    if options.verbosity > 1 or (code and not _RAN_RE.search(output)):
        print(output)
    ran, skipped, problems = parse(output)
    return ran, skipped, problems, requests


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("apps", nargs="*", default=APPS, metavar="app")
    parser.add_argument("-v", "--verbosity", type=int, default=1)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="Also run the apps on stock Django, with channels off.",
    )
    parser.add_argument(
        "--layer",
        choices=["inmemory", "redis"],
        default="inmemory",
        help=(
            "The channel layer the requests travel: in-memory (default), or "
            "Redis on a private redis-server started for the run."
        ),
    )
    parser.add_argument(
        "-k", dest="patterns", action="append", help="Passed to runtests.py."
    )
    options = parser.parse_args(argv)
    extra = []
    for pattern in options.patterns or ():
        extra += ["-k", pattern]

    version = django.get_version()
    tests_dir = django_tests_dir(version)
    print("Django %s tests: %s" % (version, tests_dir), flush=True)

    runs = [("channels", "channels_settings")]
    if options.baseline:
        runs.insert(0, ("stock", "stock_settings"))
    results = {}
    with contextlib.ExitStack() as stack:
        if options.layer == "redis":
            from django_fork.test.redis import RedisServer

            server = stack.enter_context(RedisServer())
            os.environ["UPSTREAM_REDIS_URL"] = server.url
            print("Channel layer: Redis at %s" % server.url, flush=True)
        for name, settings in runs:
            results[name] = run_and_parse(tests_dir, settings, options, extra)

    stock_problems = results["stock"][2] if options.baseline else {}
    ran, skipped, problems, requests = results["channels"]
    print()
    if options.baseline:
        s_ran, s_skipped, s_problems, s_requests = results["stock"]
        print(
            "Stock Django:  %d tests, %d failed, %d skipped; requests by handler: %s"
            % (s_ran, len(s_problems), s_skipped, s_requests["totals"])
        )
    print(
        "Over channels: %d tests, %d failed, %d skipped; requests by handler: %s"
        % (ran, len(problems), skipped, requests["totals"])
    )
    unexpected = []
    for test, kind in sorted(problems.items()):
        if test in KNOWN_DIFFERENCES:
            print("  known difference  %s: %s" % (test, KNOWN_DIFFERENCES[test]))
        elif test in stock_problems:
            print("  fails on stock too  %s (%s)" % (test, kind))
        else:
            print("  UNEXPECTED %s  %s" % (kind, test))
            unexpected.append(test)
    for test in sorted(KNOWN_DIFFERENCES):
        ran_app = test.split(".")[0] in options.apps
        if ran_app and not options.patterns and test not in problems:
            # The difference is gone: the list and the docs are stale.
            print("  UNEXPECTED pass of a known difference  %s" % test)
            unexpected.append(test)
    for test, counts in sorted(requests["not_channel"].items()):
        if test in NOT_SWITCHED:
            print("  not over channels  %s %s: %s" % (test, counts, NOT_SWITCHED[test]))
        else:
            print("  UNEXPECTED not over channels  %s %s" % (test, counts))
            unexpected.append(test)
    passed = ran - len(problems) - skipped
    known = sum(test in KNOWN_DIFFERENCES for test in problems)
    print(
        "%d passed, %d failed (%d known differences), %d skipped"
        % (passed, len(problems), known, skipped)
    )
    return 1 if unexpected or not ran else 0


if __name__ == "__main__":
    sys.exit(main())
