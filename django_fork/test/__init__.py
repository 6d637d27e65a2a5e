"""
Testing tools for the channel path.

The names below are re-exported lazily: the app's ready() imports
django_fork.test.signals on every start, and a project served over WSGI must
not import any channel code for it.
"""

from importlib import import_module

__all__ = [
    "AsyncChannelClient",
    "ChannelAssertions",
    "ChannelClient",
    "ChannelDiscoverRunner",
    "ChannelSimpleTestCase",
    "ChannelTestCase",
    "ChannelTestMixin",
    "ChannelTransactionTestCase",
    "WebsocketTestClient",
]

_MODULES = {
    "AsyncChannelClient": "django_fork.test.client",
    "ChannelAssertions": "django_fork.test.testcases",
    "ChannelClient": "django_fork.test.client",
    "ChannelDiscoverRunner": "django_fork.test.runner",
    "ChannelSimpleTestCase": "django_fork.test.testcases",
    "ChannelTestCase": "django_fork.test.testcases",
    "ChannelTestMixin": "django_fork.test.testcases",
    "ChannelTransactionTestCase": "django_fork.test.testcases",
    "WebsocketTestClient": "django_fork.test.websocket",
}


def __getattr__(name):
    try:
        module = _MODULES[name]
    except KeyError:
        raise AttributeError(
            "module %r has no attribute %r" % (__name__, name)
        ) from None
    return getattr(import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
