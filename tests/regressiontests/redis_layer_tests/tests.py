from django.test import SimpleTestCase
from layers_tests.contract import ChannelLayerContractTests

from .utils import RedisServersMixin


class RedisContractMixin(RedisServersMixin, ChannelLayerContractTests):
    def layer_pair(self):
        """Two layer objects, as two processes would have."""
        return self.layer(), self.layer()


class RedisChannelLayerTests(RedisContractMixin, SimpleTestCase):
    """The contract on one Redis, with the default MessagePack bodies."""


class JSONEncryptedRedisChannelLayerTests(RedisContractMixin, SimpleTestCase):
    """The contract with JSON bodies, encrypted."""

    layer_options = {
        "serializer": "json",
        "symmetric_encryption_keys": ["new secret", "old secret"],
    }


class ShardedRedisChannelLayerTests(RedisContractMixin, SimpleTestCase):
    """The contract on three Redis shards."""

    servers = 3
