"""Background work on named channels: send_task() and the task backend."""

import asyncio
import datetime
import logging
import time

import django
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import SimpleTestCase, TestCase, override_settings
from django.utils import timezone

from django_fork.channels.background import asend_task, send_task
from django_fork.channels.exceptions import ChannelFull, ChannelFullTimeout
from django_fork.channels.layers import get_channel_layer
from django_fork.channels.layers.inmemory import InMemoryChannelLayer
from django_fork.channels.task_backend import (
    ChannelTaskBackend,
    InvalidTask,
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
#: The channels of TASKS in the order a worker receives from them: by
#: priority band, the highest first, then by queue.
TASK_CHANNELS = [
    "tasks.default.priority51",
    "tasks.images.priority51",
    "tasks.default.priority1",
    "tasks.images.priority1",
    "tasks.default",
    "tasks.images",
    "tasks.default.priority-50",
    "tasks.images.priority-50",
    "tasks.default.priority-100",
    "tasks.images.priority-100",
]
#: Priorities of a backlog, and the order a worker runs it in (indexes into
#: PRIORITIES): the bands highest first, each band in the order enqueued
#: (5 before 30, both of the band 1 to 50).
PRIORITIES = [0, -60, 5, 0, 100, -1, 30, 60, -100, 0]
PRIORITY_ORDER = [4, 7, 2, 6, 0, 3, 9, 5, 1, 8]
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
            self.assertEqual(worker.channels, TASK_CHANNELS)
            resize = tasks.resize.using(queue_name="images")
            result = await asyncio.to_thread(resize.enqueue, 2, 2)
            await wait_finished(result)
        self.assertEqual(result.return_value, {"area": 4})


def enqueue_priorities(priorities):
    """
    Enqueue a resize task of each priority, the nth as resize(n, 1); return
    their results.
    """
    return [
        tasks.resize.using(priority=priority).enqueue(n, 1)
        for n, priority in enumerate(priorities)
    ]


def run_order():
    """Return the n of each resize(n, 1) task that ran, in the order run."""
    return [call[1] for call in tasks.calls if call[0] == "resize"]


@override_settings(CHANNEL_LAYERS=LAYERS, TASKS=TASKS, CACHES=CACHES)
class TaskPriorityTests(SimpleTestCase):
    def setUp(self):
        tasks.calls.clear()

    def test_channels_of_priority_bands(self):
        """
        The default priority's band keeps the queue's channel; each other
        band has one of its own, named after its lowest priority.
        """
        backend = task_backends["default"]
        self.assertIs(backend.supports_priority, True)
        self.assertEqual(backend.channel_for("images"), "tasks.images")
        for priority, channel in [
            (100, "tasks.images.priority51"),
            (51, "tasks.images.priority51"),
            (50, "tasks.images.priority1"),
            (1, "tasks.images.priority1"),
            (0, "tasks.images"),
            (-1, "tasks.images.priority-50"),
            (-50, "tasks.images.priority-50"),
            (-51, "tasks.images.priority-100"),
            (-100, "tasks.images.priority-100"),
        ]:
            with self.subTest(priority=priority):
                self.assertEqual(backend.channel_for("images", priority), channel)
        self.assertEqual(
            backend.channels_for("default"),
            [c for c in TASK_CHANNELS if c.startswith("tasks.default")],
        )

    def test_priority_travels_with_the_task(self):
        """enqueue() sends to the band's channel; results keep the priority."""
        result = tasks.resize.using(priority=60).enqueue(1, 1)
        message = get_channel_layer().receive_sync("tasks.default.priority51")
        self.assertEqual(message["priority"], 60)
        self.assertEqual(result.task.priority, 60)
        backend = task_backends["default"]
        self.assertEqual(backend.get_result(result.id).task.priority, 60)
        backend.run(message)
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.task.priority, 60)

    def test_priority_out_of_range(self):
        """A priority is a whole number from -100 to 100 (as the framework)."""
        message = "priority must be a whole number between -100 and 100."
        for priority in [101, -101, 1.5]:
            with self.subTest(priority=priority):
                with self.assertRaisesMessage(InvalidTask, message):
                    tasks.resize.using(priority=priority)
                with self.assertRaisesMessage(InvalidTask, message):
                    task_backends["default"].channel_for("default", priority)

    def test_priority_bands_option(self):
        """
        The priority_bands option sets the bands; the lowest takes the
        priorities below it too.
        """
        backend = ChannelTaskBackend(
            "exact", {"OPTIONS": {"priority_bands": [0, 10, 20]}}
        )
        self.assertEqual(backend.priority_bands, [20, 10, 0])
        self.assertEqual(
            backend.channels_for("default"),
            ["tasks.default.priority20", "tasks.default.priority10", "tasks.default"],
        )
        self.assertEqual(backend.channel_for("default", -100), "tasks.default")
        self.assertEqual(backend.channel_for("default", 15), "tasks.default.priority10")
        # Without a band of its own, the default priority shares the lowest.
        high = ChannelTaskBackend("high", {"OPTIONS": {"priority_bands": [50]}})
        self.assertEqual(high.channels_for("default"), ["tasks.default"])
        for bands in [[], [101], [-101], [1.5], ["1"], [True]]:
            with self.subTest(bands=bands):
                with self.assertRaisesMessage(
                    ImproperlyConfigured, "priority_bands of task backend 'bad'"
                ):
                    ChannelTaskBackend("bad", {"OPTIONS": {"priority_bands": bands}})

    async def test_backlog_runs_by_priority(self):
        """
        A worker that finds a backlog of mixed priorities runs the tasks of
        higher bands first, and those of one band in the order enqueued.
        """
        results = await asyncio.to_thread(enqueue_priorities, PRIORITIES)
        # The load query of the queue's channels sees the whole backlog.
        channels = task_backends["default"].channels_for("default")
        stats = await get_channel_layer().stats(channels)
        self.assertEqual(
            sum(figures["depth"] for figures in stats.values()), len(PRIORITIES)
        )
        async with running_worker(threads=1):
            for result in results:
                await wait_finished(result)
        self.assertEqual(run_order(), PRIORITY_ORDER)
        self.assertEqual([result.task.priority for result in results], PRIORITIES)

    async def test_higher_priority_enqueued_later_runs_next(self):
        """
        A task enqueued while a worker works through a backlog runs before
        the backlog's tasks of lower bands.
        """
        nap = tasks.nap.using(priority=-100)
        backlog = await asyncio.to_thread(
            lambda: [nap.enqueue(0.1, n) for n in range(5)]
        )
        async with running_worker(threads=1):
            await wait_finished(backlog[0])
            urgent = tasks.nap.using(priority=100)
            await asyncio.to_thread(urgent.enqueue, 0, "urgent")
            for result in backlog:
                await wait_finished(result)
        ran = [call[1] for call in tasks.calls]
        self.assertEqual(ran[0], 0)
        self.assertLess(ran.index("urgent"), ran.index(4))

    def test_exact_bands_order_every_priority(self):
        """With a band per priority in use, every priority runs in order."""
        exact = {
            "default": {
                **TASKS["default"],
                "OPTIONS": {"priority_bands": [-100, 5, 30]},
            }
        }
        with override_settings(TASKS=exact):
            results = enqueue_priorities([5, 30, 5, 30])
            layer = get_channel_layer()
            channels = task_backends["default"].channels_for("default")
            order = []
            for _ in results:
                _, message = layer.receive_any_sync(channels, timeout=1)
                order.append(message["args"][0])
        self.assertEqual(order, [1, 3, 0, 2])


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
