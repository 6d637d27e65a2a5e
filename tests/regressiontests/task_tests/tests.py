"""Background work on named channels: send_task() and the task backend."""

import asyncio
import datetime
import logging
import time

import django
from django.db import transaction
from django.test import SimpleTestCase, TestCase, override_settings
from django.utils import timezone

from django_fork.channels.background import asend_task, send_task
from django_fork.channels.exceptions import ChannelFull, ChannelFullTimeout
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.layers.inmemory import InMemoryChannelLayer
from django_fork.channels.task_backend import (
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
)
from django_fork.channels.worker import Worker

from . import tasks

IN_MEMORY = "django_fork.channels.layers.inmemory.InMemoryChannelLayer"
LAYERS = {"default": {"BACKEND": IN_MEMORY}}
TASKS = {
    "default": {
        "BACKEND": "django_fork.channels.task_backend.ChannelTaskBackend",
        "QUEUES": ["default", "images"],
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
#: The logger of the tasks framework's signal receivers: Django's own from
#: 6.0, the django-tasks backport's on 5.2.
FRAMEWORK_LOGGER = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"


class NoStoreLayer(InMemoryChannelLayer):
    """A layer without the "store" extension."""

    extensions = [e for e in InMemoryChannelLayer.extensions if e != "store"]


class running_worker:
    def __init__(self, threads=2, **options):
        options.setdefault("routes", {})
        self.worker = Worker(get_channel_layer(), threads=threads, **options)

    async def __aenter__(self):
        self.task = asyncio.ensure_future(self.worker.run())
        return self.worker

    async def __aexit__(self, *exc_info):
        self.worker.stop()
        await asyncio.wait_for(self.task, 10)


async def wait_finished(result, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await result.arefresh()
        if result.is_finished:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("Task %s did not finish: %s" % (result.id, result.status))


@override_settings(CHANNEL_LAYERS=LAYERS, TASKS=TASKS, CACHES=CACHES)
class ChannelTaskBackendTests(SimpleTestCase):
    def setUp(self):
        tasks.calls.clear()

    async def test_enqueue_runs_on_a_worker(self):
        """enqueue() sends a message a worker runs; the result is stored."""
        resize = tasks.resize.using(queue_name="images")
        result = await asyncio.to_thread(resize.enqueue, 3, 4)
        self.assertEqual(result.status, TaskResultStatus.READY)
        stats = await get_channel_layer().stats(["tasks.images"])
        self.assertEqual(stats["tasks.images"]["depth"], 1)
        async with running_worker():
            await wait_finished(result)
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, {"area": 12})
        self.assertEqual(tasks.calls, [("resize", 3, 4)])
        self.assertEqual(result.attempts, 1)

    async def test_async_task_and_context(self):
        shout = await asyncio.to_thread(tasks.shout.enqueue, "hi")
        attempt = await asyncio.to_thread(tasks.attempt.enqueue)
        async with running_worker():
            await wait_finished(shout)
            await wait_finished(attempt)
        self.assertEqual(shout.return_value, "HI")
        self.assertEqual(attempt.return_value, 1)

    async def test_failed_task(self):
        result = await asyncio.to_thread(tasks.broken.enqueue)
        # The framework's own task_finished receiver logs it, traceback
        # included.
        with self.assertLogs(FRAMEWORK_LOGGER, logging.ERROR) as logs:
            async with running_worker():
                await wait_finished(result)
        self.assertIn("task bug", logs.output[0])
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertEqual(result.errors[0].exception_class, ValueError)
        self.assertIn("task bug", result.errors[0].traceback)

    async def test_run_after_is_not_early(self):
        run_after = timezone.now() + datetime.timedelta(seconds=0.5)
        result = await asyncio.to_thread(
            tasks.resize.using(run_after=run_after).enqueue, 1, 1
        )
        async with running_worker():
            await wait_finished(result)
        self.assertGreaterEqual(result.started_at, run_after)

    def test_redelivered_task_counts_its_attempts(self):
        """
        A task.run message delivered again (at-least-once channels, after a
        worker died) runs as the next attempt of the same result.
        """
        result = tasks.attempt.enqueue()
        message = get_channel_layer().receive_sync("tasks.default")
        backend = task_backends["default"]
        backend.run(message)
        first = backend.get_result(result.id)
        backend.run(message)
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.attempts, 2)
        self.assertEqual(result.return_value, 2)
        self.assertEqual(result.started_at, first.started_at)
        self.assertGreater(result.last_attempted_at, first.last_attempted_at)

    def test_result_of_unknown_id(self):
        with self.assertRaises(TaskResultDoesNotExist):
            task_backends["default"].get_result("missing")

    def test_check_needs_a_layer_with_a_store(self):
        no_store = {"default": {"BACKEND": "task_tests.tests.NoStoreLayer"}}
        with override_settings(CHANNEL_LAYERS=no_store):
            errors = list(task_backends["default"].check())
        self.assertEqual([e.id for e in errors], ["channels.E011"])
        self.assertIn("has no 'store' extension", errors[0].msg)
        with_cache = {"default": {**TASKS["default"], "OPTIONS": {"cache": "default"}}}
        with override_settings(CHANNEL_LAYERS=no_store, TASKS=with_cache):
            self.assertEqual(list(task_backends["default"].check()), [])

    async def test_only_channels_pool(self):
        """A --only-channels "tasks.*" worker runs tasks and no views."""
        async with running_worker(only_channels=["tasks.*"]) as worker:
            self.assertEqual(worker.channels, ["tasks.default", "tasks.images"])
            resize = tasks.resize.using(queue_name="images")
            result = await asyncio.to_thread(resize.enqueue, 2, 2)
            await wait_finished(result)
        self.assertEqual(result.return_value, {"area": 4})


@override_settings(CHANNEL_LAYERS=LAYERS)
class SendTaskTests(TestCase):
    def test_send_on_commit(self):
        """With on_commit, the message leaves when the transaction commits."""
        layer = get_channel_layer()
        with self.captureOnCommitCallbacks(execute=True):
            with transaction.atomic():
                send_task("thumbnails", {"type": "t", "n": 1}, on_commit=True)
                self.assertEqual(
                    layer.stats_sync(["thumbnails"])["thumbnails"]["depth"], 0
                )
        self.assertEqual(layer.receive_sync("thumbnails")["n"], 1)

    def test_rolled_back_send_never_happens(self):
        layer = get_channel_layer()
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            try:
                with transaction.atomic():
                    send_task("thumbnails", {"type": "t"}, on_commit=True)
                    raise RuntimeError
            except RuntimeError:
                pass
        self.assertEqual(callbacks, [])
        self.assertEqual(layer.stats_sync(["thumbnails"])["thumbnails"]["depth"], 0)

    def test_delayed_send(self):
        layer = get_channel_layer()
        start = time.monotonic()
        send_task("later", {"type": "t"}, delay=0.3)
        layer.receive_sync("later")
        self.assertGreaterEqual(time.monotonic() - start, 0.3)

    def test_invalid_channel_fails_in_the_view(self):
        with self.assertRaisesMessage(ValueError, "is invalid"):
            send_task("not valid", {"type": "t"}, on_commit=True)


def small_layers(capacity):
    return {"default": {"BACKEND": IN_MEMORY, "OPTIONS": {"capacity": capacity}}}


def stalled_tasks(enqueue_timeout):
    """TASKS with a backend "stalled" whose channels no worker serves."""
    return {
        **TASKS,
        "stalled": {
            "BACKEND": "django_fork.channels.task_backend.ChannelTaskBackend",
            "OPTIONS": {
                "channel_prefix": "stalled",
                "enqueue_timeout": enqueue_timeout,
            },
        },
    }


def enqueue_burst(count):
    """Enqueue count resize tasks from this thread; return their results."""
    return [tasks.resize.enqueue(n, 2) for n in range(count)]


def wait_all_finished(results, timeout=60):
    """Refresh results until each has finished; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    pending = list(results)
    while pending:
        if time.monotonic() > deadline:
            raise AssertionError(
                "%d of %d tasks did not finish, e.g. %s: %s"
                % (len(pending), len(results), pending[0].id, pending[0].status)
            )
        for result in pending:
            result.refresh()
        pending = [result for result in pending if not result.is_finished]
        if pending:
            time.sleep(0.05)


class EnqueueBurstMixin:
    """A burst of enqueues far beyond the task channel's capacity."""

    capacity = 10
    burst = 2000

    def setUp(self):
        super().setUp()
        tasks.calls.clear()

    def stored_results(self, prefix):
        """Return how many results of backend prefix the store holds."""
        raise NotImplementedError

    def assertBurstRan(self, results):
        wait_all_finished(results)
        self.assertEqual(
            {result.status for result in results}, {TaskResultStatus.SUCCESSFUL}
        )
        self.assertEqual(
            [result.return_value["area"] for result in results],
            [n * 2 for n in range(self.burst)],
        )
        self.assertEqual(self.stored_results("default"), self.burst)

    def test_still_full_queue_raises_and_stores_nothing(self):
        """
        An enqueue that finds the queue full for all of enqueue_timeout raises
        ChannelFullTimeout, and leaves no result behind.
        """
        backend = task_backends["stalled"]
        stalled = tasks.resize.using(backend="stalled")
        enqueued = [stalled.enqueue(n, 1) for n in range(self.capacity)]
        started = time.monotonic()
        with self.assertRaisesMessage(
            ChannelFullTimeout,
            "'stalled.default' stayed full (capacity %d) for 0.3" % self.capacity,
        ) as caught:
            stalled.enqueue(99, 1)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertIsInstance(caught.exception, ChannelFull)
        self.assertEqual(self.stored_results("stalled"), self.capacity)
        self.assertEqual(
            {backend.get_result(r.id).status for r in enqueued},
            {TaskResultStatus.READY},
        )


@override_settings(
    CHANNEL_LAYERS=small_layers(EnqueueBurstMixin.capacity),
    TASKS=stalled_tasks(0.3),
    CACHES=CACHES,
)
class InMemoryEnqueueBurstTests(EnqueueBurstMixin, SimpleTestCase):
    def stored_results(self, prefix):
        layer = get_channel_layer()
        with layer._lock:
            return sum(
                1 for key in layer._stored if key.startswith("tasks.%s." % prefix)
            )

    async def test_burst_with_two_workers(self):
        """
        2,000 enqueues into a channel of capacity 10, with two workers
        running: none fails, every task runs once, one result each.
        """
        async with running_worker(threads=1), running_worker(threads=1):
            results = await asyncio.to_thread(enqueue_burst, self.burst)
            await asyncio.to_thread(self.assertBurstRan, results)
        self.assertEqual(len(tasks.calls), self.burst)

    async def test_async_send_waits_for_room(self):
        """asend_task() with a timeout waits while the channel is full."""
        layer = get_channel_layer()
        for n in range(self.capacity):
            await layer.send("waiting", {"type": "t", "n": n})
        with self.assertRaises(ChannelFull):
            await asend_task("waiting", {"type": "t", "n": -1})

        async def drain():
            await asyncio.sleep(0.1)
            return await layer.receive("waiting")

        drained = asyncio.ensure_future(drain())
        await asend_task("waiting", {"type": "t", "n": 10}, timeout=5)
        self.assertEqual((await drained)["n"], 0)
        with self.assertRaises(ChannelFullTimeout):
            await asend_task("waiting", {"type": "t", "n": 11}, timeout=0.1)
