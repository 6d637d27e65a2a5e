"""The wire formats of message bodies: pure functions, no layer."""

import base64
import json

from django.test import SimpleTestCase

from django_fork.channels.exceptions import InvalidMessage
from django_fork.channels.layers.serializers import (
    DecodeError,
    JSONSerializer,
    MsgpackSerializer,
    get_serializer,
)


class SerializerTests(SimpleTestCase):
    message = {
        "type": "t",
        "bytes": b"\x00\xff",
        "$money": ["$1", {"$bytes": "not bytes", "$$": 1}],
        "nested": {"b": [b"", 1.5, None, True]},
    }

    def test_round_trips(self):
        for name in ["msgpack", "json"]:
            for keys in [None, ["k1"]]:
                with self.subTest(serializer=name, encrypted=bool(keys)):
                    serializer = get_serializer(name, keys)
                    data = serializer.dumps(self.message)
                    self.assertEqual(serializer.loads(data), self.message)

    def test_json_wire_format(self):
        """JSON carries bytes as {"$bytes": base64}; "$" keys get a "$"."""
        data = json.loads(JSONSerializer().dumps(self.message))
        self.assertEqual(
            data["bytes"], {"$bytes": base64.b64encode(b"\x00\xff").decode()}
        )
        self.assertEqual(data["$$money"][1], {"$$bytes": "not bytes", "$$$": 1})

    def test_json_refuses_nan(self):
        with self.assertRaises(InvalidMessage):
            JSONSerializer().dumps({"type": "t", "x": float("nan")})

    def test_msgpack_refuses_huge_ints(self):
        with self.assertRaises(InvalidMessage):
            MsgpackSerializer().dumps({"type": "t", "x": 2**70})

    def test_invalid_messages(self):
        for name in ["msgpack", "json"]:
            serializer = get_serializer(name)
            for message in [[], {1: 2}, {"x": {1, 2}}, {"x": [object()]}]:
                with self.subTest(serializer=name, message=message):
                    with self.assertRaises(InvalidMessage):
                        serializer.dumps(message)

    def test_key_rotation(self):
        """The first key encrypts, every key decrypts."""
        old = get_serializer("msgpack", ["old"])
        rotated = get_serializer("msgpack", ["new", "old"])
        new = get_serializer("msgpack", ["new"])
        data = old.dumps({"type": "t"})
        self.assertEqual(rotated.loads(data), {"type": "t"})
        with self.assertRaises(DecodeError):
            new.loads(data)
        self.assertEqual(new.loads(rotated.dumps({"type": "t"})), {"type": "t"})

    def test_unknown_serializer(self):
        with self.assertRaisesMessage(ValueError, "'yaml'"):
            get_serializer("yaml")
