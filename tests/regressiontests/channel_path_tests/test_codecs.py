"""The pure message codecs: no layer, no event loop."""

import io

from django.http import (
    FileResponse,
    HttpResponse,
    StreamingHttpResponse,
)
from django.test import SimpleTestCase

from django_fork.channels.codecs import (
    chunk_bytes,
    encode_response,
    request_message,
    response_headers,
    validate_body_message,
    validate_request_message,
)
from django_fork.channels.exceptions import InvalidMessage
from django_fork.channels.layers.base import copy_message

from .harness import http_scope


def valid_request(**changes):
    message = request_message(
        http_scope("POST", "/p/", b"a=1", [(b"x-h", b"v")]), "http.response.a!b"
    )
    message.update(changes)
    return message


class RequestCodecTests(SimpleTestCase):
    def test_request_message_from_scope(self):
        message = valid_request()
        self.assertEqual(message["type"], "http.request")
        self.assertEqual(message["version"], "1.0")
        self.assertEqual(message["reply_channel"], "http.response.a!b")
        self.assertEqual(message["headers"][-1], [b"x-h", b"v"])
        self.assertEqual(message["client"], ["127.0.0.1", 40000])
        self.assertNotIn("body_channel", message)
        self.assertIs(validate_request_message(message), message)

    def test_request_message_survives_a_wire_format(self):
        """A message is JSON-capable plus bytes: it copies unchanged."""
        message = valid_request(more_body=True, body_channel="http.request.body?x")
        self.assertEqual(copy_message(message), message)
        validate_request_message(copy_message(message))

    def test_malformed_requests(self):
        """Every malformed request is refused with a message saying why."""
        cases = {
            "no type": ({"type": "x"}, "Expected an http.request"),
            "no version": (valid_request(version=None), "'version' is a NoneType"),
            "future major": (valid_request(version="2.0"), "Unsupported"),
            "bad reply": (valid_request(reply_channel="a b"), "is invalid"),
            "reply not str": (valid_request(reply_channel=5), "'reply_channel'"),
            "bad method": (valid_request(method="GE T"), "Invalid HTTP method"),
            "empty method": (valid_request(method=""), "Invalid HTTP method"),
            "bad scheme": (valid_request(scheme="ftp"), "Invalid scheme"),
            "relative path": (valid_request(path="p"), "must start with '/'"),
            "path bytes": (valid_request(path=b"/"), "'path' is a bytes"),
            "query str": (valid_request(query_string="a=1"), "'query_string'"),
            "bad root": (valid_request(root_path="x"), "root_path"),
            "header triple": (
                valid_request(headers=[[b"a", b"b", b"c"]]),
                "two-item list",
            ),
            "header str": (valid_request(headers=[["a", "b"]]), "two-item list"),
            "header injection": (
                valid_request(headers=[[b"x", b"v\r\nSet-Cookie: evil"]]),
                "line break",
            ),
            "header name colon": (
                valid_request(headers=[[b"x:y", b"v"]]),
                "Invalid header name",
            ),
            "empty header name": (
                valid_request(headers=[[b"", b"v"]]),
                "Invalid header name",
            ),
            "client": (valid_request(client=["h"]), "'client' must be"),
            "server port": (valid_request(server=["h", "80"]), "'server' must be"),
            "body str": (valid_request(body="x"), "'body' is a str"),
            "more_body int": (valid_request(more_body=1), "'more_body' is a int"),
            "no body channel": (valid_request(more_body=True), "'body_channel'"),
        }
        for name, (message, error) in cases.items():
            with self.subTest(name):
                with self.assertRaisesMessage(InvalidMessage, error):
                    validate_request_message(message)

    def test_body_messages(self):
        chunk = {"type": "http.request.body", "body": b"x", "more_body": False}
        self.assertIs(validate_body_message(chunk, "http.request.body"), chunk)
        disconnect = {"type": "http.disconnect"}
        self.assertIs(
            validate_body_message(disconnect, "http.request.body"), disconnect
        )
        with self.assertRaisesMessage(InvalidMessage, "Expected http.request.body"):
            validate_body_message({"type": "other"}, "http.request.body")
        with self.assertRaisesMessage(InvalidMessage, "'body' is a str"):
            validate_body_message(
                {"type": "http.request.body", "body": "x", "more_body": False},
                "http.request.body",
            )


class ResponseCodecTests(SimpleTestCase):
    def test_chunk_bytes(self):
        self.assertEqual(list(chunk_bytes(b"", 3)), [(b"", True)])
        self.assertEqual(
            list(chunk_bytes(b"abcdefg", 3)),
            [(b"abc", False), (b"def", False), (b"g", True)],
        )
        self.assertEqual(list(chunk_bytes(b"abc", 3)), [(b"abc", True)])

    def test_small_response_is_one_message(self):
        response = HttpResponse("hi", status=201)
        response.set_cookie("a", "1")
        messages = list(encode_response(response, "http.response.body?x", 10))
        self.assertEqual(len(messages), 1)
        start = messages[0]
        self.assertEqual(
            (start["type"], start["status"], start["body"], start["more_body"]),
            ("http.response.start", 201, b"hi", False),
        )
        self.assertNotIn("body_channel", start)
        self.assertIn([b"Set-Cookie", b"a=1; Path=/"], start["headers"])

    def test_large_response_is_chunked(self):
        response = HttpResponse(b"x" * 25)
        messages = list(encode_response(response, "http.response.body?x", 10))
        self.assertEqual(
            [(m["type"], len(m["body"]), m["more_body"]) for m in messages],
            [
                ("http.response.start", 10, True),
                ("http.response.body", 10, True),
                ("http.response.body", 5, False),
            ],
        )
        self.assertEqual(messages[0]["body_channel"], "http.response.body?x")

    def test_streaming_response_sends_each_part(self):
        """Parts are not held back to fill a chunk: a stream may be slow."""
        response = StreamingHttpResponse(iter([b"a", b"", b"bcdefghijkl"]))
        messages = list(encode_response(response, "http.response.body?x", 5))
        self.assertEqual(messages[0]["body"], b"")
        self.assertTrue(messages[0]["more_body"])
        self.assertEqual(
            [m["body"] for m in messages[1:]], [b"a", b"bcdef", b"ghijk", b"l", b""]
        )
        self.assertEqual([m["more_body"] for m in messages[1:]], [True] * 4 + [False])

    def test_file_response(self):
        response = FileResponse(io.BytesIO(b"0123456789"), filename="f.txt")
        response.block_size = 4
        messages = list(encode_response(response, "http.response.body?x", 100))
        self.assertEqual(b"".join(m["body"] for m in messages), b"0123456789")
        headers = dict((k, v) for k, v in messages[0]["headers"])
        self.assertEqual(headers[b"Content-Length"], b"10")

    def test_response_headers_keep_case_and_latin1(self):
        response = HttpResponse()
        response["X-Custom"] = "café"
        self.assertIn(
            [b"X-Custom", "café".encode("latin1")], response_headers(response)
        )


class CopyMessageTests(SimpleTestCase):
    def test_subclasses_and_tuples_are_copied_as_plain_values(self):
        """
        A str subclass and a tuple go through the checking copy: the values
        are kept, tuples become lists.
        """
        from django.utils.safestring import mark_safe

        message = {"text": mark_safe("<b>"), "pair": (b"a", 1), "n": [{"x": None}]}
        copied = copy_message(message)
        self.assertEqual(copied, {"text": "<b>", "pair": [b"a", 1], "n": [{"x": None}]})
        self.assertIsNot(copied["n"][0], message["n"][0])

    def test_refused_value_says_where(self):
        with self.assertRaisesMessage(InvalidMessage, "message['a'][]"):
            copy_message({"a": [object()]})
