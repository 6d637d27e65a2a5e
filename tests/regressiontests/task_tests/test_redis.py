"""
Tasks over Redis: enqueued in this process, run by runworker processes.
"""

import json
import os
import subprocess
import sys
import time
from unittest import skipUnless

import redis
from django.test import SimpleTestCase, override_settings

from django_fork.channels.layers import get_channel_layer
from django_fork.channels.task_backend import TaskResultStatus
from django_fork.test.redis import RedisServer, require_redis

from . import tasks
from .tests import (
    PRIORITIES,
    PRIORITY_ORDER,
    EnqueueBurstMixin,
    enqueue_burst,
    enqueue_priorities,
    stalled_tasks,
    wait_all_finished,
)

try:
    import django.tasks as DJANGO_TASKS
except ImportError:
    # Django 5.2: the django-tasks backport serves the other tests.
    DJANGO_TASKS = None

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(TESTS))


class RedisWorkersMixin:
    """A private redis-server and two runworker processes on it."""

    workers = 2
    layer_options = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_redis()
        cls.redis = RedisServer().start()
        cls.addClassCleanup(cls.redis.stop)
        cls.redis_client = redis.Redis.from_url(cls.redis.url)
        cls.addClassCleanup(cls.redis_client.close)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([TESTS, REPO, env.get("PYTHONPATH", "")])
        env["DJANGO_SETTINGS_MODULE"] = "task_tests.worker_settings"
        env["TASK_TESTS_REDIS_URL"] = cls.redis.url
        env["TASK_TESTS_LAYER_OPTIONS"] = json.dumps(cls.layer_options)
        cls.worker_logs = []
        for _ in range(cls.workers):
            log = open(os.devnull, "wb")
            cls.addClassCleanup(log.close)
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "django",
                    "runworker",
                    "--threads",
                    "1",
                    "--only-channels",
                    "tasks.*",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            cls.addClassCleanup(cls.stop_worker, process)

    @staticmethod
    def stop_worker(process):
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    @classmethod
    def layers(cls):
        return {
            "default": {
                "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
                "LOCATION": cls.redis.url,
                "OPTIONS": cls.layer_options,
            }
        }

    def setUp(self):
        super().setUp()
        self.settings_override = override_settings(
            CHANNEL_LAYERS=self.layers(), TASKS=stalled_tasks(0.3)
        )
        self.settings_override.enable()
        self.addCleanup(self.settings_override.disable)
        self.addCleanup(get_channel_layer().close_sync)

    def stored_results(self, prefix):
        pattern = "%s:v:tasks.%s.*" % (get_channel_layer().prefix, prefix)
        return sum(1 for _ in self.redis_client.scan_iter(match=pattern, count=1000))


class RedisEnqueueBurstTests(RedisWorkersMixin, EnqueueBurstMixin, SimpleTestCase):
    layer_options = {"capacity": EnqueueBurstMixin.capacity}

    def test_burst_with_two_workers(self):
        """
        2,000 enqueues into a channel of capacity 10, with two runworker
        processes over Redis: none fails, each task runs on one of them, and
        each has one result, readable from this process.
        """
        self.redis_client.config_resetstat()
        results = enqueue_burst(self.burst)
        self.assertBurstRan(results)
        # Three writes per task (the enqueue's READY, the worker's RUNNING
        # and outcome) on connections opened once, not per operation.
        stats = self.redis_client.info("commandstats")
        self.assertEqual(stats["cmdstat_set"]["calls"], 3 * self.burst)
        connections = self.redis_client.info("stats")["total_connections_received"]
        self.assertLess(connections, 50)
        self.assertEqual({result.attempts for result in results}, {1})
        self.assertEqual(
            len({result.worker_ids[0] for result in results}), self.workers
        )


class RedisTaskPriorityTests(RedisWorkersMixin, SimpleTestCase):
    """Priorities over Redis, with one runworker process of one thread."""

    workers = 1

    def test_backlog_runs_by_priority(self):
        """
        A backlog of mixed priorities that builds up while the worker is
        busy runs the tasks of higher bands first, and those of one band in
        the order enqueued.
        """
        busy = tasks.nap.using(priority=-100).enqueue(0.5, "busy")
        wait_until_running(busy)
        results = enqueue_priorities(PRIORITIES)
        wait_all_finished([busy, *results])
        ran = sorted(range(len(results)), key=lambda n: results[n].started_at)
        self.assertEqual(ran, PRIORITY_ORDER)
        self.assertEqual([result.task.priority for result in results], PRIORITIES)


class AtLeastOnceTaskPriorityTests(RedisTaskPriorityTests):
    """The same on at-least-once task channels (Redis streams)."""

    layer_options = {"at_least_once": ["tasks.*"]}


def wait_until_running(result, timeout=10):
    deadline = time.monotonic() + timeout
    while result.status == TaskResultStatus.READY:
        if time.monotonic() > deadline:
            raise AssertionError("Task %s did not start." % result.id)
        time.sleep(0.02)
        result.refresh()


@skipUnless(DJANGO_TASKS, "Django's own tasks framework is Django 6.0+.")
class DjangoTasksFrameworkTests(RedisWorkersMixin, SimpleTestCase):
    """Tasks of django.tasks, Django's own framework, on channel workers."""

    workers = 1

    def test_enqueue_runs_on_runworker(self):
        """
        A task enqueued through django.tasks runs on a runworker process over
        Redis, and its result is readable here.
        """
        from django.tasks import TaskResultStatus

        self.assertIsInstance(tasks.resize, DJANGO_TASKS.Task)
        result = tasks.resize.enqueue(3, 4)
        self.assertIsInstance(result, DJANGO_TASKS.TaskResult)
        self.assertEqual(result.status, TaskResultStatus.READY)
        wait_all_finished([result])
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, {"area": 12})
        self.assertEqual(result.attempts, 1)
        fetched = tasks.resize.get_result(result.id)
        self.assertEqual(fetched.return_value, {"area": 12})
        self.assertEqual(fetched.finished_at, result.finished_at)

    def test_priority(self):
        """
        A django.tasks task of a priority runs on a runworker process, and
        its result keeps the priority.
        """
        urgent = tasks.resize.using(priority=100)
        self.assertIsInstance(urgent, DJANGO_TASKS.Task)
        result = urgent.enqueue(2, 3)
        wait_all_finished([result])
        self.assertEqual(result.return_value, {"area": 6})
        self.assertEqual(urgent.get_result(result.id).task.priority, 100)
