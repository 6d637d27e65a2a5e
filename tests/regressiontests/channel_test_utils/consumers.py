"""Consumers that the tests route to channels with CHANNEL_ROUTING."""

from .models import Note

handled = []


def make_thumbnail(message):
    """A sync consumer: it runs in the test's thread and sees its rows."""
    handled.append(message)
    Note.objects.create(text="thumbnail of %s" % message["name"])


async def async_consumer(message):
    handled.append(message)


def failing_consumer(message):
    raise ValueError("consumer failed on %s" % message["type"])


channel_routes = {
    "thumbnails": make_thumbnail,
    "async-work": async_consumer,
    "failing": failing_consumer,
}
