"""
Wire formats of message bodies: pure functions from a message to bytes and
back, with optional symmetric encryption. No I/O.

Two formats:

- "msgpack" (the default): MessagePack, str as str and bytes as bin.
  Integers must fit in 64 bits.
- "json": UTF-8 JSON, readable by any runtime. JSON has no bytes, so a bytes
  value is written as the one-key object {"$bytes": "<standard base64>"}. To
  keep that unambiguous, a dict key that starts with "$" is written with one
  more "$" in front ("$x" -> "$$x") and read back without it. NaN and the
  infinities are refused: JSON cannot carry them.

Both refuse what BaseChannelLayer refuses (anything but dict, list, tuple,
str, bytes, int, float, bool and None; dict keys that are not str) with
InvalidMessage, at send time. Tuples arrive as lists.

With encryption keys, the serialized body is wrapped in a Fernet token (AES
128 in CBC mode with an HMAC-SHA256, see the Fernet specification). Each key
is any string; its Fernet key is the URL-safe base64 of the SHA-256 of its
UTF-8 bytes. The first key encrypts, every key decrypts, so keys are rotated
by putting the new key first and dropping the old one once no message
encrypted with it can still be waiting.
"""

import base64
import binascii
import hashlib
import json
import math

from django_fork.channels.exceptions import InvalidMessage

__all__ = [
    "DecodeError",
    "JSONSerializer",
    "MsgpackSerializer",
    "EncryptedSerializer",
    "get_serializer",
]

_SCALARS = (str, bytes, int, float, bool, type(None))
# Exact types take the fast path; subclasses (SafeString, IntEnum) go through
# isinstance().
_EXACT_SCALARS = frozenset(_SCALARS)


class DecodeError(ValueError):
    """A body could not be decrypted or deserialized."""


def _refuse(value, where):
    raise InvalidMessage(
        "%s holds a %s; messages may hold only dict, list, str, bytes, int, "
        "float, bool and None." % (where, type(value).__name__)
    )


def _check_dict(message):
    if not isinstance(message, dict):
        raise InvalidMessage(
            "A message must be a dict, not %s." % type(message).__name__
        )


def check_message(value, where="message"):
    """Raise InvalidMessage unless value holds only allowed types."""
    kind = type(value)
    if kind in _EXACT_SCALARS:
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise InvalidMessage(
                    "Keys in %s must be str, not %s." % (where, type(key).__name__)
                )
            if type(item) not in _EXACT_SCALARS:
                check_message(item, "%s[%r]" % (where, key))
    elif kind is list or kind is tuple:
        for item in value:
            if type(item) not in _EXACT_SCALARS:
                check_message(item, "%s[]" % where)
    elif isinstance(value, _SCALARS):
        return
    elif isinstance(value, dict):
        check_message(dict(value), where)
    elif isinstance(value, (list, tuple)):
        check_message(list(value), where)
    else:
        _refuse(value, where)


class MsgpackSerializer:
    """MessagePack bodies."""

    name = "msgpack"

    def __init__(self):
        import msgpack

        self._packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
        self._unpackb = msgpack.unpackb
        self._errors = (ValueError, msgpack.ExtraData, msgpack.FormatError)

    def dumps(self, message):
        _check_dict(message)
        check_message(message)
        try:
            return self._packb(message)
        except (OverflowError, ValueError) as e:
            raise InvalidMessage(
                "The message cannot be encoded as MessagePack: %s" % e
            ) from e

    def loads(self, data):
        try:
            message = self._unpackb(data, raw=False)
        except self._errors as e:
            raise DecodeError("Not a MessagePack body: %s" % e) from e
        if type(message) is not dict:
            raise DecodeError("The body is not a MessagePack map.")
        return message


class JSONSerializer:
    """JSON bodies with bytes as {"$bytes": base64} (see the module docs)."""

    name = "json"

    def dumps(self, message):
        _check_dict(message)
        value = _to_json(message, "message")
        try:
            return json.dumps(
                value, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode()
        except ValueError as e:
            raise InvalidMessage("The message cannot be encoded as JSON: %s" % e)

    def loads(self, data):
        try:
            message = json.loads(data, object_hook=_from_json_object)
        except (ValueError, binascii.Error) as e:
            raise DecodeError("Not a JSON body: %s" % e) from e
        if type(message) is not dict:
            raise DecodeError("The body is not a JSON object.")
        return message


def _to_json(value, where):
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is bytes or isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMessage("%s is %r, which JSON cannot carry." % (where, value))
        return value
    if isinstance(value, (str, int)):
        return value
    if isinstance(value, dict):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMessage(
                    "Keys in %s must be str, not %s." % (where, type(key).__name__)
                )
            encoded["$" + key if key[:1] == "$" else key] = _to_json(
                item, "%s[%r]" % (where, key)
            )
        return encoded
    if isinstance(value, (list, tuple)):
        return [_to_json(item, "%s[]" % where) for item in value]
    _refuse(value, where)


def _from_json_object(obj):
    if len(obj) == 1 and "$bytes" in obj:
        return base64.b64decode(obj["$bytes"], validate=True)
    if any(key[:1] == "$" for key in obj):
        return {key[1:] if key[:1] == "$" else key: item for key, item in obj.items()}
    return obj


def fernet_key(key):
    """Return the Fernet key derived from a configured key (str or bytes)."""
    if isinstance(key, str):
        key = key.encode()
    return base64.urlsafe_b64encode(hashlib.sha256(key).digest())


class EncryptedSerializer:
    """Wrap another serializer's bodies in Fernet tokens."""

    def __init__(self, serializer, keys):
        try:
            from cryptography.fernet import Fernet, InvalidToken, MultiFernet
        except ImportError as e:  # pragma: no cover
            raise ImportError(
                "symmetric_encryption_keys needs the cryptography package."
            ) from e
        if isinstance(keys, (str, bytes)) or not keys:
            raise ValueError("symmetric_encryption_keys must be a non-empty list.")
        self.serializer = serializer
        self.name = serializer.name
        self._fernet = MultiFernet([Fernet(fernet_key(key)) for key in keys])
        self._invalid = InvalidToken

    def dumps(self, message):
        return self._fernet.encrypt(self.serializer.dumps(message))

    def loads(self, data):
        try:
            data = self._fernet.decrypt(data)
        except self._invalid as e:
            raise DecodeError("The body cannot be decrypted with any key.") from e
        return self.serializer.loads(data)


SERIALIZERS = {"msgpack": MsgpackSerializer, "json": JSONSerializer}


def get_serializer(name="msgpack", symmetric_encryption_keys=None):
    """Return the serializer called name, encrypting if keys are given."""
    try:
        serializer = SERIALIZERS[name]()
    except KeyError:
        raise ValueError(
            "Unknown serializer %r; choose one of %s."
            % (name, ", ".join(sorted(SERIALIZERS)))
        ) from None
    if symmetric_encryption_keys:
        serializer = EncryptedSerializer(serializer, symmetric_encryption_keys)
    return serializer
