#!/usr/bin/env python
"""
Run the django_fork test suite.

Test apps live in tests/regressiontests/<app_label>/ and import as top-level
packages. Examples:

    ./runtests.py
    ./runtests.py layers_tests handlers_tests --parallel 2
    ./runtests.py layers_tests.tests.InMemoryChannelLayerTests.test_send
    ./runtests.py -k send --coverage
    ./runtests.py --channels transport_equivalence

The last line of the output is always "N passed, N failed" (", N skipped"
follows when tests were skipped); the exit status is 1 when a test failed or
when no test ran.
"""

import argparse
import multiprocessing
import os
import sys
import traceback

import django
from django.test.runner import (
    DiscoverRunner,
    ParallelTestSuite,
    get_max_test_processes,
    parallel_type,
)

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.join(REPO_ROOT, "tests", "regressiontests")
COVERAGE_CONFIG = os.path.join(REPO_ROOT, "pyproject.toml")
COVERAGE_DATA_FILE = os.path.join(REPO_ROOT, ".coverage")

ALWAYS_INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_fork",
]

ALWAYS_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]


def get_test_apps():
    """Return the sorted labels of the test apps in tests/regressiontests."""
    apps = []
    for name in os.listdir(TESTS_DIR):
        path = os.path.join(TESTS_DIR, name)
        if (
            name.isidentifier()
            and not name.startswith("_")
            and os.path.isfile(os.path.join(path, "__init__.py"))
        ):
            apps.append(name)
    return sorted(apps)


def normalize_label(label):
    """
    Turn a path such as tests/regressiontests/layers_tests/tests.py into the
    dotted label layers_tests.tests; return other labels unchanged.
    """
    path = os.path.abspath(label)
    if not os.path.exists(path) or not path.startswith(TESTS_DIR + os.sep):
        return label
    if path.endswith(".py"):
        path = path[:-3]
    return os.path.relpath(path, TESTS_DIR).replace(os.sep, ".")


def setup_paths():
    # The repository root comes first so that the working tree's django_fork
    # wins over any installed copy; test apps import as top-level packages.
    for path in (TESTS_DIR, REPO_ROOT):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def get_settings(test_apps):
    return {
        "DEBUG": False,
        "SECRET_KEY": "django_fork-tests-secret-key-not-for-production",
        "ALLOWED_HOSTS": ["*"],
        "DATABASES": {
            # SQLite runs test databases in memory.
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        },
        "INSTALLED_APPS": ALWAYS_INSTALLED_APPS + list(test_apps),
        "MIDDLEWARE": ALWAYS_MIDDLEWARE,
        "ROOT_URLCONF": "urls",
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [],
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ],
                },
            }
        ],
        "USE_TZ": True,
        "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
        "STATIC_URL": "/static/",
        # MD5 keeps tests that create users fast.
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
        # Keep Django's default logging, but tests that check 4xx responses
        # shouldn't print a warning each.
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {"django.request": {"level": "ERROR"}},
        },
    }


def configure(settings_module, test_apps):
    """
    Configure settings for the given test apps.

    ParallelTestSuite also calls this in each worker before django.setup()
    when multiprocessing spawns workers instead of forking them, hence only
    picklable arguments.
    """
    from django.conf import settings

    setup_paths()
    if settings_module:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
        installed = list(settings.INSTALLED_APPS)
        settings.INSTALLED_APPS = installed + [
            app for app in test_apps if app not in installed
        ]
    elif not settings.configured:
        settings.configure(**get_settings(test_apps))


class RuntestsParallelTestSuite(ParallelTestSuite):
    process_setup = configure


class RuntestsRunner(DiscoverRunner):
    parallel_test_suite = RuntestsParallelTestSuite

    def __init__(self, *args, process_setup_args=(), channels=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.process_setup_args = process_setup_args
        self.channels = channels
        self.result = None

    def build_suite(self, *args, **kwargs):
        suite = super().build_suite(*args, **kwargs)
        if self.channels:
            # Imported here, not at the top: coverage starts after this
            # module's imports and must see django_fork's.
            from django_fork.test.runner import use_channel_clients

            use_channel_clients(suite)
        if isinstance(suite, ParallelTestSuite):
            suite.process_setup_args = self.process_setup_args
        return suite

    def suite_result(self, suite, result, **kwargs):
        self.result = result
        return super().suite_result(suite, result, **kwargs)


def count_results(result):
    """
    Return (passed, failed, skipped) for a unittest result.

    failed counts failures, errors and unexpected successes, the way unittest
    reports them: a test with three failing subtests counts three times.
    Expected failures count as passed. A test counts as passed when it ran and
    has no failure, error, unexpected success or skip recorded against it.
    """
    if result is None:
        return 0, 0, 0
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    not_passed = set()
    for outcomes in (result.failures, result.errors, result.skipped):
        for test, _ in outcomes:
            not_passed.add(_test_id(test))
    for test in result.unexpectedSuccesses:
        not_passed.add(_test_id(test))
    passed = max(0, result.testsRun - len(not_passed))
    return passed, failed, skipped


def _test_id(test):
    # A failing subtest is recorded as a _SubTest; count its test once.
    test = getattr(test, "test_case", test)
    try:
        return test.id()
    except Exception:
        return repr(test)


def start_coverage():
    try:
        import coverage
    except ImportError:
        sys.exit("--coverage needs coverage: pip install -e '.[test]'")
    # Subprocesses started by tests (servers, workers) pick these up through
    # the .pth file that coverage installs, and write their own data files
    # beside the main one.
    os.environ["COVERAGE_PROCESS_START"] = COVERAGE_CONFIG
    os.environ["COVERAGE_FILE"] = COVERAGE_DATA_FILE
    cov = coverage.Coverage(
        data_file=COVERAGE_DATA_FILE,
        config_file=COVERAGE_CONFIG,
        source=["django_fork"],
        branch=True,
        concurrency=["thread", "multiprocessing"],
        # Parallel runner workers and subprocesses write data files of their
        # own; every process suffixes its file and stop_coverage() combines.
        data_suffix=True,
    )
    cov.erase()
    cov.start()
    return cov


def stop_coverage(cov):
    import coverage

    cov.stop()
    cov.save()
    # A fresh object combines every process's file into .coverage itself, the
    # way "coverage combine" does, so that "coverage html" works afterwards.
    combined = coverage.Coverage(
        data_file=COVERAGE_DATA_FILE, config_file=COVERAGE_CONFIG
    )
    print(flush=True)
    try:
        combined.combine()
        combined.save()
        combined.report(file=sys.stdout)
    except Exception as exc:  # coverage.exceptions.NoDataError and friends.
        print(f"Coverage report failed: {exc}")


def get_parser():
    parser = argparse.ArgumentParser(description="Run the django_fork test suite.")
    parser.add_argument(
        "labels",
        nargs="*",
        metavar="label",
        help=(
            "Test app labels (layers_tests), dotted test paths "
            "(layers_tests.tests.SomeTests.test_method) or paths under "
            "tests/regressiontests. Default: every test app."
        ),
    )
    parser.add_argument(
        "-v",
        "--verbosity",
        default=1,
        type=int,
        choices=[0, 1, 2, 3],
        help="Verbosity level; 0=minimal output, 1=normal, 2=all output.",
    )
    parser.add_argument(
        "--parallel",
        nargs="?",
        const="auto",
        default=1,
        type=parallel_type,
        metavar="N",
        help=(
            "Run tests using up to N parallel processes (default 1). Use 'auto' "
            "for one process per core."
        ),
    )
    parser.add_argument(
        "--failfast",
        action="store_true",
        help="Stop running the test suite after the first failed test.",
    )
    parser.add_argument(
        "-k",
        action="append",
        dest="test_name_patterns",
        help=(
            "Only run test methods and classes matching the test name pattern. "
            "Same as unittest -k option. Can be used multiple times."
        ),
    )
    parser.add_argument(
        "--settings",
        help=(
            "Python path to a settings module, e.g. myproject.settings. Test "
            "apps are added to its INSTALLED_APPS. Default: built-in settings."
        ),
    )
    parser.add_argument(
        "--channels",
        action="store_true",
        help=(
            "Send the requests of every test client (Client, AsyncClient, "
            "their subclasses) over the channel path, as "
            "django_fork.test.runner.ChannelDiscoverRunner does."
        ),
    )
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="Measure the coverage of django_fork and print a report.",
    )
    parser.add_argument(
        "--timing",
        action="store_true",
        help="Output timings, including database set up and total run time.",
    )
    parser.add_argument(
        "--tag",
        dest="tags",
        action="append",
        help="Run only tests with the specified tags. Can be used multiple times.",
    )
    parser.add_argument(
        "--exclude-tag",
        dest="exclude_tags",
        action="append",
        help="Do not run tests with the specified tag. Can be used multiple times.",
    )
    parser.add_argument(
        "-b",
        "--buffer",
        action="store_true",
        help="Discard output of passing tests.",
    )
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="Sort test suites and test cases in opposite order to debug "
        "test side effects not apparent with normal execution lineup.",
    )
    parser.add_argument(
        "--shuffle",
        nargs="?",
        default=False,
        type=int,
        metavar="SEED",
        help="Shuffle the order of test cases to help check that tests are "
        "properly isolated.",
    )
    return parser


def run_tests(options, labels, test_apps, parallel):
    """
    Run the tests; return the unittest result (None if the run crashed before
    it had one) and whether the run crashed.
    """
    cov = start_coverage() if options.coverage else None
    result = None
    crashed = False
    try:
        configure(options.settings, test_apps)
        django.setup()
        runner = RuntestsRunner(
            verbosity=options.verbosity,
            interactive=False,
            failfast=options.failfast,
            parallel=parallel,
            tags=options.tags,
            exclude_tags=options.exclude_tags,
            test_name_patterns=options.test_name_patterns,
            buffer=options.buffer,
            reverse=options.reverse,
            shuffle=options.shuffle,
            timing=options.timing,
            process_setup_args=(options.settings, test_apps),
            channels=options.channels,
        )
        runner.run_tests(labels)
        result = runner.result
    except Exception:
        # A crash outside the tests (system checks, database setup, the
        # parallel runner) still has to end with the summary line.
        traceback.print_exc()
        crashed = True
    finally:
        if cov is not None:
            stop_coverage(cov)
    return result, crashed


def main(argv=None):
    parser = get_parser()
    options = parser.parse_args(argv)

    all_apps = get_test_apps()
    labels = [normalize_label(label) for label in options.labels]
    unknown = sorted({label.split(".")[0] for label in labels} - set(all_apps))
    if unknown:
        parser.error(
            "unknown test app(s): %s (test apps are the packages in %s)"
            % (", ".join(unknown), os.path.relpath(TESTS_DIR))
        )
    if labels:
        test_apps = sorted({label.split(".")[0] for label in labels})
    else:
        test_apps = labels = all_apps

    parallel = options.parallel
    if parallel in {0, "auto"}:
        parallel = get_max_test_processes()
    if parallel > 1 and multiprocessing.get_start_method() not in {"fork", "spawn"}:
        # Django's parallel runner supports only these two; Python 3.14
        # defaults to forkserver on Linux.
        multiprocessing.set_start_method("spawn", force=True)

    if test_apps:
        result, crashed = run_tests(options, labels, test_apps, parallel)
    else:
        # DiscoverRunner would discover tests from the current directory.
        print(
            "No test apps: a test app is a package in %s." % os.path.relpath(TESTS_DIR),
            file=sys.stderr,
        )
        result, crashed = None, False

    passed, failed, skipped = count_results(result)
    if crashed:
        failed += 1
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    sys.stderr.flush()
    print(summary, flush=True)
    # No test at all is a failure too: a broken discovery mustn't look green.
    tests_run = result.testsRun if result is not None else 0
    return 1 if failed or not tests_run else 0


if __name__ == "__main__":
    sys.exit(main())
