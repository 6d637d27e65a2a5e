"""
A django-tasks backend that runs tasks on channel workers.

``task.enqueue()`` sends a task.run message to the channel "tasks.<queue>";
a worker runs it and stores the result where ``get_result()`` finds it (a
Django cache shared by the processes: Redis or database, not locmem, once
workers are separate processes). Workers serve the task channels of every
ChannelTaskBackend in TASKS by themselves; ``runworker --only-channels
"tasks.*"`` makes a pool that runs nothing else::

    TASKS = {
        "default": {
            "BACKEND": "django_fork.channels.task_backend.ChannelTaskBackend",
            "QUEUES": ["default", "images"],
            "OPTIONS": {"layer": "default", "cache": "default"},
        }
    }

Tasks with run_after are delivered then, through the layer's "delay"
extension. Delivery follows the task channel's semantics in the layer: with
the Redis layer's at_least_once option for "tasks.*", a task whose worker died
runs again on another worker.
"""

import datetime
import logging

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.core.cache import caches
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import task_backends
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import (
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from django_tasks.exceptions import TaskResultDoesNotExist
from django_tasks.signals import task_enqueued, task_finished, task_started
from django_tasks.utils import (
    get_exception_traceback,
    get_module_path,
    get_random_id,
    normalize_json,
)

from django_fork.channels.background import send_task
from django_fork.channels.layers import channel_layers

logger = logging.getLogger("django_fork.channels.tasks")

__all__ = ["ChannelTaskBackend", "get_task_routes"]


class ChannelTaskBackend(BaseTaskBackend):
    supports_async_task = True
    supports_get_result = True
    supports_defer = True

    def __init__(self, alias, params):
        super().__init__(alias, params)
        self.layer_alias = self.options.get("layer", "default")
        self.cache_alias = self.options.get("cache", "default")
        self.result_ttl = self.options.get("result_ttl", 7 * 86400)
        self.channel_prefix = self.options.get("channel_prefix", "tasks")
        self.worker_id = get_random_id()

    def channel_for(self, queue_name):
        return "%s.%s" % (self.channel_prefix, queue_name)

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        result = TaskResult(
            task=task,
            id=get_random_id(),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        self._store(result)
        delay = None
        if task.run_after is not None:
            delay = max(0.0, (task.run_after - timezone.now()).total_seconds())
        send_task(
            self.channel_for(task.queue_name),
            {
                "type": "task.run",
                "backend": self.alias,
                "id": result.id,
                "task": task.module_path,
                "queue_name": task.queue_name,
                "priority": task.priority,
                "args": result.args,
                "kwargs": result.kwargs,
            },
            delay=delay,
            layer=self.layer_alias,
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id):
        data = caches[self.cache_alias].get(self._key(result_id))
        if data is None:
            raise TaskResultDoesNotExist(result_id)
        task = import_string(data["task"]).using(
            queue_name=data["queue_name"], priority=data["priority"], backend=self.alias
        )
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
            worker_ids=data["worker_ids"],
        )
        object.__setattr__(result, "_return_value", data["return_value"])
        return result

    def run(self, message):
        """Run a task.run message (the consumer of the task channels)."""
        result = self.get_result(message["id"])
        task = result.task
        now = timezone.now()
        object.__setattr__(result, "status", TaskResultStatus.RUNNING)
        object.__setattr__(result, "started_at", result.started_at or now)
        object.__setattr__(result, "last_attempted_at", now)
        result.worker_ids.append(self.worker_id)
        self._store(result)
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
            object.__setattr__(result, "_return_value", normalize_json(value))
            object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
        except Exception as e:
            logger.exception("Task %s (%s) failed.", task.module_path, result.id)
            result.errors.append(
                TaskError(
                    exception_class_path=get_module_path(type(e)),
                    traceback=get_exception_traceback(e),
                )
            )
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
        object.__setattr__(result, "finished_at", timezone.now())
        self._store(result)
        task_finished.send(type(self), task_result=result)

    def check(self, **kwargs):
        yield from super().check(**kwargs)
        channel_layers[self.layer_alias]

    def _key(self, result_id):
        return "django_fork.tasks.%s.%s" % (self.alias, result_id)

    def _store(self, result):
        data = {
            "task": result.task.module_path,
            "queue_name": result.task.queue_name,
            "priority": result.task.priority,
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
        caches[self.cache_alias].set(self._key(result.id), data, self.result_ttl)


def _iso(value):
    return value.isoformat() if value is not None else None


def _datetime(value):
    return datetime.datetime.fromisoformat(value) if value is not None else None


def get_task_routes():
    """Return {task channel: consumer} of every ChannelTaskBackend in TASKS."""
    routes = {}
    try:
        aliases = list(task_backends)
    except Exception:
        return routes
    for alias in aliases:
        backend = task_backends[alias]
        if isinstance(backend, ChannelTaskBackend):
            for queue_name in sorted(backend.queues):
                routes[backend.channel_for(queue_name)] = backend.run
    return routes
