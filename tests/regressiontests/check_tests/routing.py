"""A routing module with one channel consumer, for the routing checks."""


def thumbnail(message):
    pass


channel_routes = {"thumbnails": thumbnail}
