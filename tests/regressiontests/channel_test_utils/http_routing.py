"""A CHANNEL_ROUTING that serves http.request with a consumer of its own."""

from django_fork.channels.codecs import response_start_message
from django_fork.channels.layers import get_channel_layer


async def answer(message):
    await get_channel_layer().send(
        message["reply_channel"],
        response_start_message(
            200,
            [[b"Content-Type", b"text/plain"]],
            b"from the routed consumer",
        ),
    )


channel_routes = {"http.request": answer}
