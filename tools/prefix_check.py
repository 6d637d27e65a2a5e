#!/usr/bin/env python3
"""
A cheap bisect check: apply the series one patch at a time to a clone of
the base and, after each patch, import every module of Django's that the
patch adds or changes and run, with Django's tests/runtests.py, only the
test apps (or test modules of an existing app) that the patch adds, and the
test modules of the series' own apps that it changes (a patch that brings a
file's earlier form to its next one adds tests to them).

    tools/prefix_check.py [--django 6.1.3] [--from N] [--to N]

It needs ./branch/.venv (make branch) for the test requirements; the clone
is put first on sys.path, as bisect-check does. Unlike bisect-check it does
not rerun Django's own apps or earlier patches' apps after each patch: it
catches a patch that needs a later one, in minutes rather than an hour.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_patches as mp  # noqa: E402

IMPORT_CHECK = """
import importlib, sys
import django
from django.conf import settings
settings.configure()
django.setup()
for name in sys.argv[1:]:
    importlib.import_module(name)
print("imported django and %d modules" % (len(sys.argv) - 1))
"""


def patch_changes(repo):
    """(Python modules of django/, test labels) that HEAD adds or changes."""
    names = mp.git(
        repo,
        "diff",
        "--name-only",
        "--diff-filter=AM",
        "HEAD~1",
        "HEAD",
        capture=True,
    ).stdout.split()
    added = mp.git(
        repo,
        "diff",
        "--name-only",
        "--diff-filter=A",
        "HEAD~1",
        "HEAD",
        "--",
        "tests/",
        capture=True,
    ).stdout.split()
    # Test modules of the series' own apps that the patch changes.
    stock = mp.git(
        repo, "ls-tree", "-d", "--name-only", mp.DJANGO_VERSION, "tests/", capture=True
    ).stdout.split()
    changed = [
        name
        for name in mp.git(
            repo,
            "diff",
            "--name-only",
            "--diff-filter=M",
            "HEAD~1",
            "HEAD",
            "--",
            "tests/",
            capture=True,
        ).stdout.split()
        if "/".join(name.split("/")[:2]) not in stock
    ]
    modules = sorted(
        mp.module_name(n)
        for n in names
        if n.startswith("django/") and n.endswith(".py") and "/test/" not in n
    )
    # django.test's modules need a configured test environment no more
    # than the others do; they are imported too, but after the rest.
    modules += sorted(
        mp.module_name(n)
        for n in names
        if n.startswith("django/test/") and n.endswith(".py")
    )
    base = mp.run(
        [
            "git",
            "-C",
            repo,
            "ls-tree",
            "-d",
            "--name-only",
            "HEAD~1",
            "tests/",
        ],
        env=mp.git_env(),
        capture=True,
    ).stdout.split()
    labels = []
    for name in added:
        parts = name.split("/")
        if len(parts) < 3:
            continue
        app = parts[1]
        if "tests/" + app not in base:
            if (
                app not in labels
                and (Path(repo) / "tests" / app / "__init__.py").exists()
            ):
                labels.append(app)
        elif parts[2].startswith("test") and name.endswith(".py") and len(parts) == 3:
            labels.append("%s.%s" % (app, parts[2][: -len(".py")]))
    for name in changed:
        parts = name.split("/")
        if (
            len(parts) == 3
            and parts[2].startswith("test")
            and name.endswith(".py")
            and parts[1] not in labels
        ):
            labels.append("%s.%s" % (parts[1], parts[2][: -len(".py")]))
    return modules, labels


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--django", default=mp.DEFAULT_DJANGO_VERSION)
    parser.add_argument("--from", dest="first", type=int, default=1)
    parser.add_argument("--to", dest="last", type=int, default=None)
    args = parser.parse_args(argv)
    mp.select_base(args.django)
    mp.require_branch()
    patches = mp.series_files()
    repo = mp.clone_base(mp.BUILD_DIR / "prefix")
    failed = []
    env = {"PYTHONPATH": str(repo)}
    for number, patch in enumerate(patches, 1):
        if args.last is not None and number > args.last:
            break
        mp.git_am(repo, patch)
        if number < args.first:
            continue
        modules, labels = patch_changes(repo)
        result = mp.run(
            [mp.branch_python(), "-c", IMPORT_CHECK, *modules],
            cwd="/",
            env=dict(mp.os.environ, **env),
            check=False,
            capture=True,
        )
        status = result.returncode
        line = "%s: %s" % (
            patch.name,
            (result.stdout.strip() if not status else "IMPORT FAILED"),
        )
        if status:
            print(result.stderr[-3000:])
        if labels and not status:
            log_file = mp.BUILD_DIR / ("prefix-%02d.log" % number)
            status, output, elapsed = mp.runtests(
                repo, labels, env, log_file, extra_args=()
            )
            status, note = mp.judge(status, output)
            line += "; %s: %s in %.0fs%s" % (
                " ".join(labels),
                mp.summary(output),
                elapsed,
                note,
            )
            if status:
                print(output[-4000:])
        elif not labels:
            line += "; no test app of its own"
        print(("ok   " if status == 0 else "FAIL ") + line, flush=True)
        if status:
            failed.append(patch.name)
    print("prefix-check: %s" % ("FAILED: " + " ".join(failed) if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    mp.TEST_PARALLEL = "1"
    sys.exit(main())
