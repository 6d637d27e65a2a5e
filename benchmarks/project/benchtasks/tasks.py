"""The no-op task of the task benchmark, on ChannelTaskBackend."""

from benchtasks.records import record_start
from django_tasks import task


@task()
def noop(enqueued_at):
    record_start(enqueued_at)
