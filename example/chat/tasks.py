"""A background task, run by a channel worker rather than in the view."""

from django_tasks import task

from django_fork.channels.layers import get_channel_layer

from .consumers import room_group


@task()
def announce(room, text):
    """Broadcast an announcement to a room."""
    get_channel_layer().group_send_sync(
        room_group(room), {"type": "websocket.send", "text": "* %s" % text}
    )
    return len(text)
