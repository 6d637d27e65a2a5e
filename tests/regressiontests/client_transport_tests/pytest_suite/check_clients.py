"""
A REST framework's client under pytest-django, with the plugin's --channels,
its marker and its fixtures. The tests that take the run's switch expect
ChannelRequest under --channels and WSGIRequest without it.
"""

import pytest
from asgiref.sync import async_to_sync
from client_transport_tests.restish import APIClient

from django_fork.core.handlers.channel import ChannelRequest


@pytest.fixture
def expected(request):
    return "ChannelRequest" if request.config.getoption("channels") else "WSGIRequest"


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("ada")


def channel_requests(handler):
    return [r for r in handler.seen if isinstance(r, ChannelRequest)]


@pytest.mark.django_db
def test_api_client(user, expected):
    client = APIClient()
    client.force_authenticate(user)
    responses = [client.get("/whoami/") for _ in range(2)]
    served = channel_requests(client.handler)
    assert [r.data["request_class"] for r in responses] == [expected] * 2
    assert len(served) == (2 if expected == "ChannelRequest" else 0)
    # The get_response() override ran on the request the view saw.
    if served:
        assert responses[-1].data["request_id"] == id(served[-1])
    assert responses[-1].data["user"] == "ada"
    assert responses[-1].view.__name__ == "whoami"


@pytest.mark.django_db
def test_pytest_django_client(client, admin_user, expected):
    client.force_login(admin_user)
    response = client.get("/whoami/")
    assert response.data == {
        "user": "admin",
        "request_class": expected,
        "request_id": response.data["request_id"],
        "method": "GET",
        "body": "",
    }


@pytest.mark.channels
def test_marker():
    assert APIClient().get("/whoami/").data["request_class"] == "ChannelRequest"


@pytest.mark.channels(False)
def test_marker_off():
    assert APIClient().get("/whoami/").data["request_class"] == "WSGIRequest"


def test_channel_client(channel_client):
    response = channel_client.get("/flagged/")
    assert response.flag == "set by the view"
    assert isinstance(response.wsgi_request, ChannelRequest)


def test_async_channel_client(async_channel_client):
    response = async_to_sync(async_channel_client.get)("/whoami/")
    assert response.data["request_class"] == "ChannelRequest"


def test_layer_and_messages(channel_layer, channel_messages):
    channel_layer.send_sync("work", {"type": "thumbnail", "id": 1})
    message = channel_messages.assertMessageSent("work", type="thumbnail")
    assert message == {"type": "thumbnail", "id": 1}
    with pytest.raises(AssertionError, match="No message waiting on 'work'"):
        channel_messages.assertMessageSent("work", id=2)
    channel_messages.assertNothingSent("other")
    with pytest.raises(AssertionError, match="1 message"):
        channel_messages.assertNothingSent("work")


def test_layers_are_isolated(channel_messages):
    # test_layer_and_messages left a message on "work" in its own layer.
    channel_messages.assertNothingSent("work")


@pytest.mark.channel_layer_backend("redis")
def test_redis_layer(channel_layer, channel_messages):
    assert type(channel_layer).__name__ == "RedisChannelLayer"
    channel_layer.send_sync("work", {"type": "on.redis"})
    channel_messages.assertMessageSent("work", type="on.redis")


@pytest.mark.django_db(transaction=True)
def test_websocket_client(channel_layer, websocket_client):
    async def talk():
        async with websocket_client("/ws/echo/") as ws:
            await ws.send_text("hi")
            return await ws.receive_text()

    assert async_to_sync(talk)() == "echo:hi"
