"""
A tasks backend that runs tasks on channel workers.

On Django 6.0 and later it is a backend of Django's own tasks framework
(django.tasks, the TASKS setting); on Django 5.2, of the django-tasks
package, the backport of that framework. Either way::

    TASKS = {
        "default": {
            "BACKEND": "django_fork.channels.task_backend.ChannelTaskBackend",
            "QUEUES": ["default", "images"],
            "OPTIONS": {"layer": "default"},
        }
    }

``task.enqueue()`` sends a task.run message to the channel "tasks.<queue>"
that carries the whole task; a worker runs it and stores the result where
``get_result()`` finds it: in the channel layer's "store" (the Redis layer
keeps it in its Redis, on its own connections), or in the Django cache that
the "cache" option names. Workers serve the task channels of every
ChannelTaskBackend in TASKS by themselves; ``runworker --only-channels
"tasks.*"`` makes a pool that runs nothing else.

Priorities fall into a few bands (DEFAULT_PRIORITY_BANDS, or the
"priority_bands" option), each a channel of the queue: "tasks.<queue>" for
the default priority's band, "tasks.<queue>.priority<lowest>" for the
others. A worker receives from its channels highest band first, and the
layer's receive_any() takes from the first channel in that order that has a
message waiting: a waiting task of a higher band runs before any of a lower
one, and tasks of one band run in the order enqueued. Bands, not one
channel per priority: every channel is a key in each of a worker's
receives, and a few of them keep that cheap.

A full task channel makes enqueue() wait for room, for up to
"enqueue_timeout" seconds (30 by default), then raise ChannelFullTimeout; a
task whose enqueue failed leaves no result behind. Tasks with run_after are
delivered then, through the layer's "delay" extension. Delivery follows the
task channel's semantics in the layer: with the Redis layer's at_least_once
option for "tasks.*", a task whose worker died runs again on another worker.

Results cost one store operation per change of state: the enqueue adds the
READY result once the message is sent (unless a worker already stored a
later state), the worker swaps in RUNNING (learning the attempts before
it) and sets the outcome. The worker never reads the result back before
running: the message holds what it needs.
"""

import datetime
from traceback import format_exception

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string

try:
    # Django 6.0+: the tasks framework is Django's own.
    from django.tasks import (
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        DEFAULT_TASK_PRIORITY,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        TaskError,
    )
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:
    # Django 5.2: the django-tasks backport.
    from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import (
        DEFAULT_TASK_PRIORITY,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        TaskError,
    )
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

from django_fork.channels.background import send_task
from django_fork.channels.layers import channel_layers

__all__ = ["DEFAULT_PRIORITY_BANDS", "ChannelTaskBackend", "get_task_routes"]

#: The lowest priority of each priority band: tasks of one band share a
#: channel, FIFO, and a worker takes the bands highest first. The default
#: priority has a band of its own, so any other priority runs before or
#: after it; 51 and above is urgent, -51 and below is background work.
DEFAULT_PRIORITY_BANDS = (51, 1, 0, -50, -100)


def _random_id():
    return get_random_string(32)


def _class_path(cls):
    return "%s.%s" % (cls.__module__, cls.__qualname__)


def _iso(value):
    return value.isoformat() if value is not None else None


def _datetime(value):
    return datetime.datetime.fromisoformat(value) if value is not None else None


class LayerResults:
    """Results in the channel layer's "store" extension."""

    def __init__(self, layer_alias):
        self.layer_alias = layer_alias

    @property
    def layer(self):
        # Looked up each time: CHANNEL_LAYERS may change under tests.
        return channel_layers[self.layer_alias]

    def check(self):
        if not self.layer.has_extension("store"):
            yield checks.Error(
                "Task results are kept in the channel layer's store, and layer "
                "%r (%s) has no 'store' extension."
                % (self.layer_alias, type(self.layer).__name__),
                hint="Name a shared cache in the backend's 'cache' option.",
                id="channels.E011",
            )

    def add(self, key, data, timeout):
        return self.layer.store_add_sync(key, data, timeout)

    def swap(self, key, data, timeout):
        return self.layer.store_swap_sync(key, data, timeout)

    def set(self, key, data, timeout):
        self.layer.store_set_sync(key, data, timeout)

    def get(self, key):
        return self.layer.store_get_sync(key)


class CacheResults:
    """Results in a Django cache (every operation is one cache call)."""

    def __init__(self, cache_alias):
        self.cache_alias = cache_alias

    @property
    def cache(self):
        from django.core.cache import caches

        return caches[self.cache_alias]

    def check(self):
        self.cache
        return []

    def add(self, key, data, timeout):
        return self.cache.add(key, data, timeout)

    def swap(self, key, data, timeout):
        cache = self.cache
        previous = cache.get(key)
        cache.set(key, data, timeout)
        return previous

    def set(self, key, data, timeout):
        self.cache.set(key, data, timeout)

    def get(self, key):
        return self.cache.get(key)


class ChannelTaskBackend(BaseTaskBackend):
    """
    Run tasks on channel workers. OPTIONS:

    - layer: the CHANNEL_LAYERS alias tasks travel on (default "default").
    - cache: a CACHES alias to keep results in; by default they are kept in
      the layer's store (its "store" extension).
    - result_ttl: seconds a result is kept (default a week).
    - enqueue_timeout: seconds enqueue() waits for room on a full task
      channel before it raises ChannelFullTimeout (default 30).
    - channel_prefix: the task channels' prefix (default "tasks").
    - priority_bands: the lowest priority of each band, each band a channel
      of its own (default DEFAULT_PRIORITY_BANDS); the lowest band also
      takes the priorities below it.
    """

    supports_async_task = True
    supports_get_result = True
    supports_defer = True
    supports_priority = True

    def __init__(self, alias, params):
        super().__init__(alias, params)
        self.layer_alias = self.options.get("layer", "default")
        self.cache_alias = self.options.get("cache")
        if self.cache_alias is None:
            self.results = LayerResults(self.layer_alias)
        else:
            self.results = CacheResults(self.cache_alias)
        self.result_ttl = self.options.get("result_ttl", 7 * 86400)
        self.enqueue_timeout = self.options.get("enqueue_timeout", 30)
        self.channel_prefix = self.options.get("channel_prefix", "tasks")
        self.priority_bands = self._priority_bands(
            self.options.get("priority_bands", DEFAULT_PRIORITY_BANDS)
        )
        self._default_band = self._band(DEFAULT_TASK_PRIORITY)
        self.worker_id = _random_id()

    def _priority_bands(self, bands):
        """Return bands checked and sorted, the highest first."""
        bands = sorted(set(bands), reverse=True)
        if not bands or any(
            isinstance(band, bool)
            or not isinstance(band, int)
            or not TASK_MIN_PRIORITY <= band <= TASK_MAX_PRIORITY
            for band in bands
        ):
            raise ImproperlyConfigured(
                "The priority_bands of task backend %r must be whole numbers "
                "between %d and %d, at least one."
                % (self.alias, TASK_MIN_PRIORITY, TASK_MAX_PRIORITY)
            )
        return bands

    def _band(self, priority):
        """
        Return the band of priority: the lowest priority of its band (the
        lowest band for a priority below every band).
        """
        if (
            not TASK_MIN_PRIORITY <= priority <= TASK_MAX_PRIORITY
            or int(priority) != priority
        ):
            # As the framework's validate_task() says it.
            raise InvalidTask(
                "priority must be a whole number between %d and %d."
                % (TASK_MIN_PRIORITY, TASK_MAX_PRIORITY)
            )
        for band in self.priority_bands:
            if priority >= band:
                return band
        return self.priority_bands[-1]

    def channel_for(self, queue_name, priority=DEFAULT_TASK_PRIORITY):
        """
        Return the channel of queue_name's tasks of priority:
        "<prefix>.<queue>" for the band of the default priority, and
        "<prefix>.<queue>.priority<band>" for the others.
        """
        channel = "%s.%s" % (self.channel_prefix, queue_name)
        band = self._band(priority)
        if band != self._default_band:
            channel = "%s.priority%d" % (channel, band)
        return channel

    def channels_for(self, queue_name):
        """
        Return the channels of queue_name's tasks, the highest band first:
        the order a worker receives from them, and what to ask the layer's
        stats() for the queue's backlog.
        """
        return [self.channel_for(queue_name, band) for band in self.priority_bands]

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        result = TaskResult(
            task=task,
            id=_random_id(),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=normalize_json(args),
            kwargs=normalize_json(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        delay = None
        if task.run_after is not None:
            delay = max(0.0, (task.run_after - timezone.now()).total_seconds())
        data = self._data(result)
        # Sent first: an enqueue that fails (a queue still full after
        # enqueue_timeout, an unreachable layer) stores nothing. The READY
        # result is only added, so it never hides the RUNNING or finished
        # result of a worker that was quicker.
        send_task(
            self.channel_for(task.queue_name, task.priority),
            {"type": "task.run", "backend": self.alias, "id": result.id, **data},
            delay=delay,
            layer=self.layer_alias,
            timeout=self.enqueue_timeout,
        )
        self.results.add(self._key(result.id), data, self.result_ttl)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id):
        data = self.results.get(self._key(result_id))
        if data is None:
            raise TaskResultDoesNotExist(result_id)
        return self._result(result_id, data)

    def run(self, message):
        """Run a task.run message (the consumer of the task channels)."""
        result = self._result(message["id"], message)
        task = result.task
        now = timezone.now()
        object.__setattr__(result, "status", TaskResultStatus.RUNNING)
        object.__setattr__(result, "started_at", now)
        object.__setattr__(result, "last_attempted_at", now)
        result.worker_ids.append(self.worker_id)
        key = self._key(result.id)
        previous = self.results.swap(key, self._data(result), self.result_ttl)
        if previous is not None and previous.get("worker_ids"):
            # Delivered again (at-least-once channels): earlier attempts
            # count, and the task started with the first of them.
            result.worker_ids[:0] = previous["worker_ids"]
            object.__setattr__(
                result, "started_at", _datetime(previous["started_at"]) or now
            )
            result.errors[:0] = [TaskError(**e) for e in previous["errors"]]
            self.results.set(key, self._data(result), self.result_ttl)
        task_started.send(type(self), task_result=result)
        try:
            args = result.args
            if task.takes_context:
                args = [TaskContext(task_result=result), *args]
            func = task.func
            if iscoroutinefunction(func):
                value = async_to_sync(func)(*args, **result.kwargs)
            else:
                value = func(*args, **result.kwargs)
        except Exception as e:
            result.errors.append(
                TaskError(
                    exception_class_path=_class_path(type(e)),
                    traceback="".join(format_exception(e)),
                )
            )
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
            # Inside the except clause: the framework's task_finished
            # receiver logs a failed task with its traceback.
            self._finish(key, result)
        else:
            object.__setattr__(result, "_return_value", normalize_json(value))
            object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
            self._finish(key, result)

    def _finish(self, key, result):
        object.__setattr__(result, "finished_at", timezone.now())
        self.results.set(key, self._data(result), self.result_ttl)
        task_finished.send(type(self), task_result=result)

    def check(self, **kwargs):
        yield from super().check(**kwargs)
        channel_layers[self.layer_alias]
        yield from self.results.check()

    def _key(self, result_id):
        return "tasks.%s.%s" % (self.alias, result_id)

    def _data(self, result):
        """Return result as a dict of message values."""
        return {
            "task": result.task.module_path,
            "queue_name": result.task.queue_name,
            "priority": result.task.priority,
            "run_after": _iso(result.task.run_after),
            "status": str(result.status),
            "enqueued_at": _iso(result.enqueued_at),
            "started_at": _iso(result.started_at),
            "last_attempted_at": _iso(result.last_attempted_at),
            "finished_at": _iso(result.finished_at),
            "args": result.args,
            "kwargs": result.kwargs,
            "errors": [
                {
                    "exception_class_path": e.exception_class_path,
                    "traceback": e.traceback,
                }
                for e in result.errors
            ],
            "worker_ids": result.worker_ids,
            "return_value": result._return_value,
        }

    def _result(self, result_id, data):
        """Return the TaskResult that data (from _data()) describes."""
        changes = {
            "queue_name": data["queue_name"],
            "priority": data["priority"],
            "backend": self.alias,
        }
        run_after = _datetime(data.get("run_after"))
        if run_after is not None:
            changes["run_after"] = run_after
        task = import_string(data["task"]).using(**changes)
        result = TaskResult(
            task=task,
            id=result_id,
            status=TaskResultStatus(data["status"]),
            enqueued_at=_datetime(data["enqueued_at"]),
            started_at=_datetime(data["started_at"]),
            last_attempted_at=_datetime(data["last_attempted_at"]),
            finished_at=_datetime(data["finished_at"]),
            args=data["args"],
            kwargs=data["kwargs"],
            backend=self.alias,
            errors=[TaskError(**error) for error in data["errors"]],
            worker_ids=list(data["worker_ids"]),
        )
        object.__setattr__(result, "_return_value", data["return_value"])
        return result


def get_task_routes():
    """
    Return {task channel: consumer} of every ChannelTaskBackend in TASKS,
    in the order a worker receives from them: the channels of higher
    priority bands first, then by alias and queue name.
    """
    channels = []
    try:
        aliases = list(task_backends)
    except Exception:
        return {}
    for alias in aliases:
        backend = task_backends[alias]
        if isinstance(backend, ChannelTaskBackend):
            for queue_name in sorted(backend.queues):
                for band in backend.priority_bands:
                    channel = backend.channel_for(queue_name, band)
                    channels.append((band, channel, backend.run))
    # Stable: within a band, the alias and queue order stays.
    channels.sort(key=lambda entry: entry[0], reverse=True)
    return {channel: consumer for _, channel, consumer in channels}
