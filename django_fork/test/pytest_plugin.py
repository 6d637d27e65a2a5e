"""
A pytest plugin for projects on channels, tested with pytest-django.

The "pytest11" entry point of the django-fork package registers it, so it
loads in every pytest run where django-fork is installed; it changes nothing
until asked:

* --channels sends the requests of every test client of the run over the
  channel path (the switch of django_fork.test.transport), as the test
  runner's --channels does;
* @pytest.mark.channels does the same for one test, and
  @pytest.mark.channels(False) keeps one test's clients off it under
  --channels; layer="alias" names the layer the requests travel;
* the fixtures channel_client and async_channel_client (ChannelClient and
  AsyncChannelClient), websocket_client (opens a WebsocketTestClient),
  channel_layer (the "default" layer of a set of layers of the test's own)
  and channel_messages (assertMessageSent() and friends on them).
"""

import pytest

_BACKENDS = ("inmemory", "redis")


def pytest_addoption(parser):
    group = parser.getgroup("channels", "django_fork channels")
    group.addoption(
        "--channels",
        action="store_true",
        default=False,
        help="Send the requests of every test client over the channel path.",
    )
    group.addoption(
        "--channel-layer-backend",
        choices=_BACKENDS,
        default="inmemory",
        help=(
            "The backend of the channel_layer fixture's layers: in memory "
            "(default), or Redis on a private redis-server."
        ),
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "channels(enabled=True, *, layer='default'): send the test clients' "
        "requests over the channel path (or not, with False).",
    )
    config.addinivalue_line(
        "markers",
        "channel_layer_backend(name): 'inmemory' or 'redis', the backend of "
        "the channel_layer fixture's layers for one test.",
    )


def _django_ready(request):
    """Let pytest-django set up the test environment first, if it runs."""
    if request.config.pluginmanager.hasplugin("django"):
        request.getfixturevalue("django_test_environment")


@pytest.fixture(autouse=True, scope="session")
def _channel_transport_for_the_run(request):
    if not request.config.getoption("channels"):
        yield
        return
    _django_ready(request)
    from django_fork.test.transport import enable_channel_transport

    undo = enable_channel_transport()
    try:
        yield
    finally:
        undo()


@pytest.fixture(autouse=True)
def _channel_transport_for_a_test(request):
    marker = request.node.get_closest_marker("channels")
    if marker is None:
        yield
        return
    _django_ready(request)
    from django_fork.test.transport import channel_clients

    with channel_clients(*marker.args, **marker.kwargs):
        yield


@pytest.fixture
def channel_client():
    """A ChannelClient: Client over the channel path."""
    from django_fork.test.client import ChannelClient

    return ChannelClient()


@pytest.fixture
def async_channel_client():
    """An AsyncChannelClient: AsyncClient over the channel path."""
    from django_fork.test.client import AsyncChannelClient

    return AsyncChannelClient()


@pytest.fixture
def websocket_client(async_channel_client):
    """
    Return a function that makes a WebsocketTestClient for a path (and its
    keyword arguments); its handshake carries async_channel_client's cookies
    unless given client= or cookies=.
    """
    from django_fork.test.websocket import WebsocketTestClient

    def connect(path, **kwargs):
        if "cookies" not in kwargs:
            kwargs.setdefault("client", async_channel_client)
        return WebsocketTestClient(path, **kwargs)

    return connect


@pytest.fixture
def channel_layer(request):
    """
    Give the test a layer of its own for every alias of CHANNEL_LAYERS (see
    ChannelTestMixin); return the "default" one. The backend is the
    channel_layer_backend marker's, else --channel-layer-backend's.
    """
    marker = request.node.get_closest_marker("channel_layer_backend")
    backend = (
        marker.args[0] if marker else request.config.getoption("channel_layer_backend")
    )
    _django_ready(request)
    from django.test.utils import override_settings

    from django_fork.channels.layers import channel_layers
    from django_fork.test import signals  # NOQA: resets layers on setting_changed.
    from django_fork.test.testcases import (
        close_channel_layers,
        isolated_channel_layers,
    )

    override = override_settings(CHANNEL_LAYERS=isolated_channel_layers(backend))
    override.enable()
    try:
        yield channel_layers["default"]
        close_channel_layers(backend)
    finally:
        override.disable()


@pytest.fixture
def channel_messages(channel_layer):
    """
    assertMessageSent(), assertNothingSent(), get_messages(), watch_group()
    and consume() (see ChannelTestMixin) on the test's layers; a failed
    assertion raises AssertionError.
    """
    from django_fork.test.testcases import ChannelAssertions

    class ChannelMessages(ChannelAssertions):
        def fail(self, msg=None):
            raise AssertionError(msg)

    return ChannelMessages()
