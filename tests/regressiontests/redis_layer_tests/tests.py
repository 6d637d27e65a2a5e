import itertools

from django.test import SimpleTestCase
from layers_tests.contract import ChannelLayerContractTests

from django_fork.channels.layers.redis import RedisChannelLayer

from .utils import RedisServersMixin


class BLPOPRedisChannelLayer(RedisChannelLayer):
    """The layer as it runs on Redis before 7.0, which has no BLMPOP."""

    def _use_blmpop(self, version):
        return False


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


class BLPOPRedisChannelLayerTests(RedisContractMixin, SimpleTestCase):
    """The contract with BLPOP and batch pops, as before Redis 7.0."""

    layer_class = BLPOPRedisChannelLayer


class ShardedRedisChannelLayerTests(RedisContractMixin, SimpleTestCase):
    """The contract on three Redis shards."""

    servers = 3

    def channels_kept_together(self, layer, count):
        """Return count channel names whose home is one shard."""
        names = ("together.%d" % n for n in itertools.count())
        home = layer._home("together.0")
        return list(
            itertools.islice((n for n in names if layer._home(n) is home), count)
        )
