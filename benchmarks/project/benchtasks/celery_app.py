"""
The Celery 5.7 side of the task benchmark: the same no-op task, with a Redis
broker and a Redis result backend (results are stored, as ChannelTaskBackend
stores them), both on BENCH_REDIS_URL.
"""

import os

from benchtasks.records import record_start
from celery import Celery

app = Celery(
    "benchtasks",
    broker=os.environ.get("BENCH_REDIS_URL"),
    backend=os.environ.get("BENCH_REDIS_URL"),
)
app.conf.update(
    worker_hijack_root_logger=False,
    worker_log_color=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


@app.task(name="benchtasks.noop")
def noop(enqueued_at):
    record_start(enqueued_at)
