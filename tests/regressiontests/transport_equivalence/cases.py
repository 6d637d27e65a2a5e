"""
The request corpus: what a client sends, once, for every transport.

A case is the request as an HTTP server receives it off the wire: the
request target split into path and query (raw bytes, as on the wire), the
header pairs in order, the body, and the mount point the server is
configured with (root_path, SCRIPT_NAME). transports.py turns a case into a
WSGI environ and an ASGI scope the way real servers do.
"""

from dataclasses import dataclass, field

#: Small enough that a few kilobytes of body or response make several
#: messages on the channel path.
SMALL_CHUNK = 1024
#: Above the channel transport's default chunk size (256 KiB).
LARGE = 300 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    #: URL name of the view that runs and records an observation, or None
    #: when no view runs (404, CSRF failure).
    view: str | None
    method: str = "GET"
    #: The path of the request target below the mount point, raw.
    path: bytes = b"/observe/"
    query: bytes = b""
    headers: tuple = ()
    body: bytes = b""
    #: Settings overridden while the case runs.
    settings: dict = field(default_factory=dict)
    #: Where the server mounts the application (ASGI root_path, SCRIPT_NAME).
    root_path: str = ""
    scheme: str = "http"
    #: Body bytes per message on the channel path (None: the default).
    chunk_size: int | None = None
    #: Send the body with Transfer-Encoding: chunked, no Content-Length.
    chunked: bool = False
    #: The status every transport must answer.
    status: int = 200

    def request_headers(self):
        """
        Return the header pairs as sent: a Host header first unless the case
        has one, then the case's headers, then the framing header a client
        adds for the body.
        """
        headers = list(self.headers)
        names = {name.lower() for name, _ in headers}
        if b"host" not in names:
            headers.insert(0, (b"Host", b"testserver"))
        if self.chunked:
            headers.append((b"Transfer-Encoding", b"chunked"))
        elif self.body or self.method in ("POST", "PUT", "PATCH"):
            headers.append((b"Content-Length", str(len(self.body)).encode()))
        return headers


BOUNDARY = "equivalence-7d3f1a"


def multipart(parts, boundary=BOUNDARY):
    """
    Return (Content-Type header value, body) of a multipart/form-data body.
    Each part is (field name, filename or None, content type or None, data);
    a filename may be bytes, sent as is.
    """
    body = b""
    for name, filename, content_type, data in parts:
        disposition = b'form-data; name="%s"' % name.encode()
        if filename is not None:
            if isinstance(filename, str):
                filename = filename.encode()
            disposition += b'; filename="%s"' % filename
        body += b"--%s\r\n" % boundary.encode()
        body += b"Content-Disposition: %s\r\n" % disposition
        if content_type:
            body += b"Content-Type: %s\r\n" % content_type.encode()
        body += b"\r\n" + data + b"\r\n"
    body += b"--%s--\r\n" % boundary.encode()
    return ("multipart/form-data; boundary=%s" % boundary).encode(), body


def pattern(size, seed=0):
    """Return size bytes of a deterministic, non-repeating-looking pattern."""
    block = bytes((seed + i * 7) % 256 for i in range(256))
    return (block * (size // 256 + 1))[:size]


FORM = (b"Content-Type", b"application/x-www-form-urlencoded")

_UPLOAD_CT, _UPLOAD_BODY = multipart(
    [
        ("title", None, None, "Caf\u00e9 r\u00e9sum\u00e9".encode()),
        ("tags", None, None, b"a"),
        ("tags", None, None, b"b"),
        ("docs", "notes.txt", "text/plain", b"first file\n"),
        ("docs", "r\u00e9sum\u00e9 final.pdf", "application/pdf", pattern(700, 1)),
        ("image", "pixel.png", "image/png", pattern(67, 2)),
        ("empty", "empty.bin", "application/octet-stream", b""),
    ]
)
_BIG_UPLOAD_CT, _BIG_UPLOAD_BODY = multipart(
    [
        ("comment", None, None, b"above FILE_UPLOAD_MAX_MEMORY_SIZE"),
        ("big", "big.bin", "application/octet-stream", pattern(10 * 1024, 3)),
        ("small", "small.txt", "text/plain; charset=utf-8", b"tiny"),
    ]
)
_ODD_UPLOAD_CT, _ODD_UPLOAD_BODY = multipart(
    [
        ("path", "../../etc/passwd", "text/plain", b"traversal"),
        ("latin", b"caf\xe9.txt", "text/plain", b"latin-1 filename"),
        ("noct", "plain.dat", None, b"no content type"),
    ]
)

CASES = [
    # The request line: paths and query strings.
    Case("get", "observe"),
    Case("index", "index", path=b"/"),
    Case("query_repeated_keys", "observe", query=b"b=1&a=x&b=2&b=3"),
    Case(
        "query_percent_encoded",
        "observe",
        query=b"q=a%20b%2Bc&amp=%26%3D&plus=a+b&empty=&novalue&semi=a;b",
    ),
    Case(
        "query_non_ascii",
        "observe",
        query=b"name=caf%C3%A9&city=%E6%9D%B1%E4%BA%AC&snow=%E2%98%83",
    ),
    Case("query_invalid_utf8", "observe", query=b"q=caf%E9&r=%FF%FE&ok=1"),
    # h11 (uvicorn) refuses a target that is not visible ASCII, but other
    # servers (wsgiref, Daphne) pass such bytes through in the query string.
    Case("query_raw_utf8", "observe", query="q=caf\u00e9&s=\u2603".encode()),
    Case("query_raw_invalid_utf8", "observe", query=b"q=caf\xe9&ok=1"),
    Case(
        "query_charset_from_content_type",
        "observe",
        query=b"q=caf%E9",
        headers=((b"Content-Type", b"text/plain; charset=iso-8859-1"),),
    ),
    Case("path_percent_encoded", "observe", path=b"/observe/a%20b/c%2Fd/%25"),
    Case("path_non_ascii", "observe", path=b"/observe/caf%C3%A9/%E2%98%83"),
    Case("path_invalid_utf8", "observe", path=b"/observe/caf%E9/%FF"),
    Case("path_double_slashes", "observe", path=b"//observe//double//"),
    Case("path_dot_segments", "observe", path=b"/observe/./a/../b"),
    Case("path_encoded_delimiters", "observe", path=b"/observe/a%3Fb%23c%3B"),
    # Headers.
    Case(
        "headers_repeated",
        "observe",
        headers=(
            (b"X-Repeated", b"one"),
            (b"Accept", b"text/html"),
            (b"X-Repeated", b"two, three"),
            (b"Accept", b"application/json;q=0.9"),
        ),
    ),
    Case(
        "cookies",
        "observe",
        headers=((b"Cookie", b'a=1; b=two words; c="quoted"; empty=; d=caf%C3%A9'),),
    ),
    Case(
        "cookies_two_headers",
        "observe",
        headers=((b"Cookie", b"a=1; b=2"), (b"Cookie", b"c=3")),
    ),
    Case(
        "header_with_underscore",
        "observe",
        headers=((b"X_Forwarded_For", b"spoofed"), (b"X-Forwarded-For", b"real")),
    ),
    Case(
        "header_latin1_value",
        "observe",
        headers=((b"X-Latin", b"caf\xe9"), (b"User-Agent", b"equivalence/1.0")),
    ),
    Case("host_with_port", "observe", headers=((b"Host", b"testserver:8080"),)),
    Case(
        "forwarded_host_and_proto",
        "observe",
        headers=(
            (b"X-Forwarded-Host", b"example.com"),
            (b"X-Forwarded-Proto", b"https"),
        ),
        settings={
            "USE_X_FORWARDED_HOST": True,
            "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        },
    ),
    Case("https", "observe", scheme="https"),
    # Methods.
    Case("head", "observe", method="HEAD"),
    Case("head_large_response", "big", method="HEAD", path=b"/big/"),
    Case("options_function_view", "observe", method="OPTIONS"),
    Case("options_class_view", "cbv", method="OPTIONS", path=b"/cbv/"),
    Case(
        "method_not_allowed",
        "cbv",
        method="PUT",
        path=b"/cbv/",
        body=b"x",
        status=405,
    ),
    Case(
        "put_text",
        "raw",
        method="PUT",
        path=b"/raw/",
        headers=((b"Content-Type", b"text/plain; charset=utf-8"),),
        body="\u00e9t\u00e9 \u2603\n".encode(),
    ),
    Case(
        "patch_json",
        "json",
        method="PATCH",
        path=b"/json/",
        headers=((b"Content-Type", b"application/merge-patch+json"),),
        body=b'{"op": "replace", "value": [1, 2.5, null]}',
    ),
    Case("delete", "observe", method="DELETE"),
    Case(
        "delete_with_body",
        "raw",
        method="DELETE",
        path=b"/raw/",
        body=b"why not",
    ),
    # Bodies.
    Case(
        "form_urlencoded",
        "observe",
        method="POST",
        headers=(FORM,),
        body=b"a=1&b=2&b=3&name=caf%C3%A9&space=a+b&bad=%E9",
    ),
    Case(
        # Django 5.2 refuses form data that is not UTF-8 (BadRequest).
        "form_latin1_charset",
        "observe",
        method="POST",
        headers=(
            (b"Content-Type", b"application/x-www-form-urlencoded; charset=latin-1"),
        ),
        body=b"name=caf%E9",
        status=400,
    ),
    Case(
        "form_too_many_fields",
        "observe",
        method="POST",
        headers=(FORM,),
        body=b"&".join(b"f%d=%d" % (i, i) for i in range(10)),
        settings={"DATA_UPLOAD_MAX_NUMBER_FIELDS": 5},
        status=400,
    ),
    Case(
        "form_oversized",
        "observe",
        method="POST",
        headers=(FORM,),
        body=b"a=" + b"x" * 2048,
        settings={"DATA_UPLOAD_MAX_MEMORY_SIZE": 1024},
        status=400,
    ),
    Case(
        "body_oversized_raw",
        "raw",
        method="POST",
        path=b"/raw/",
        headers=((b"Content-Type", b"application/octet-stream"),),
        body=pattern(4096),
        settings={"DATA_UPLOAD_MAX_MEMORY_SIZE": 1024},
        chunk_size=SMALL_CHUNK,
        status=400,
    ),
    Case("post_empty", "observe", method="POST"),
    Case("post_empty_form", "observe", method="POST", headers=(FORM,)),
    Case(
        "post_json",
        "json",
        method="POST",
        path=b"/json/",
        headers=((b"Content-Type", b"application/json"),),
        body='{"name": "caf\u00e9", "n": 1, "list": [true, false]}'.encode(),
    ),
    Case(
        "multipart_files",
        "observe",
        method="POST",
        headers=((b"Content-Type", _UPLOAD_CT),),
        body=_UPLOAD_BODY,
    ),
    Case(
        "multipart_odd_filenames",
        "observe",
        method="POST",
        headers=((b"Content-Type", _ODD_UPLOAD_CT),),
        body=_ODD_UPLOAD_BODY,
    ),
    Case(
        "multipart_above_file_upload_max",
        "observe",
        method="POST",
        headers=((b"Content-Type", _BIG_UPLOAD_CT),),
        body=_BIG_UPLOAD_BODY,
        settings={"FILE_UPLOAD_MAX_MEMORY_SIZE": 2048},
        chunk_size=SMALL_CHUNK,
    ),
    Case(
        "multipart_body_read_first",
        "raw",
        method="POST",
        path=b"/raw/",
        headers=((b"Content-Type", _UPLOAD_CT),),
        body=_UPLOAD_BODY,
        chunk_size=SMALL_CHUNK,
    ),
    Case(
        "multipart_malformed",
        "observe",
        method="POST",
        headers=(
            (b"Content-Type", b"multipart/form-data; boundary=" + BOUNDARY.encode()),
        ),
        body=b"--%s\r\nno headers, no end" % BOUNDARY.encode(),
    ),
    Case(
        "body_several_chunks",
        "raw",
        method="POST",
        path=b"/raw/",
        headers=((b"Content-Type", b"application/octet-stream"),),
        body=pattern(10 * 1024 + 17, 4),
        chunk_size=SMALL_CHUNK,
    ),
    Case(
        "body_above_file_upload_max",
        "raw",
        method="POST",
        path=b"/raw/",
        headers=((b"Content-Type", b"application/octet-stream"),),
        body=pattern(4 * 1024, 5),
        settings={"FILE_UPLOAD_MAX_MEMORY_SIZE": 1024},
        chunk_size=SMALL_CHUNK,
    ),
    Case(
        "body_above_default_chunk_size",
        "raw",
        method="POST",
        path=b"/raw/",
        headers=((b"Content-Type", b"application/octet-stream"),),
        body=pattern(LARGE, 6),
    ),
    Case(
        "body_chunked_transfer_encoding",
        "raw",
        method="POST",
        path=b"/raw/",
        headers=((b"Content-Type", b"text/plain"),),
        body=pattern(3000, 7),
        chunked=True,
        chunk_size=SMALL_CHUNK,
    ),
    Case(
        "async_view_form",
        "async",
        method="POST",
        path=b"/async/",
        headers=(FORM,),
        body=b"a=1&b=%E2%98%83",
    ),
    Case(
        "csrf_rejected",
        None,
        method="POST",
        path=b"/protected/",
        headers=(FORM,),
        body=b"a=1",
        status=403,
    ),
    # Mount points.
    Case("root_path", "observe", path=b"/observe/x", root_path="/app"),
    Case("root_path_index", "index", path=b"/", root_path="/app"),
    Case(
        "root_path_redirect",
        "redirect",
        path=b"/redirect/",
        root_path="/app",
        status=302,
    ),
    Case(
        "force_script_name",
        "observe",
        settings={"FORCE_SCRIPT_NAME": "/forced"},
    ),
    Case(
        "force_script_name_over_root_path",
        "observe",
        root_path="/app",
        settings={"FORCE_SCRIPT_NAME": "/forced"},
    ),
    Case(
        "force_script_name_empty",
        "observe",
        root_path="/app",
        settings={"FORCE_SCRIPT_NAME": ""},
    ),
    # Responses.
    Case("stream", "stream", path=b"/stream/"),
    Case(
        "stream_several_chunks",
        "stream",
        path=b"/stream/",
        query=b"part=3000&count=4",
        chunk_size=SMALL_CHUNK,
    ),
    Case("stream_async", "astream", path=b"/astream/"),
    Case("file_response", "file", path=b"/file/", query=b"size=1000"),
    Case(
        "file_response_attachment",
        "file",
        path=b"/file/",
        query=b"size=5000&attachment=1",
        chunk_size=SMALL_CHUNK,
    ),
    Case("file_response_large", "file", path=b"/file/", query=b"size=%d" % LARGE),
    Case("set_cookies", "cookies", path=b"/cookies/"),
    Case("redirect", "redirect", path=b"/redirect/", status=302),
    Case(
        "redirect_absolute",
        "redirect",
        path=b"/redirect/",
        query=b"absolute=1",
        headers=((b"Host", b"example.com:8000"),),
        status=302,
    ),
    Case("append_slash_redirect", None, path=b"/observe", query=b"x=1", status=301),
    Case("not_found", None, path=b"/nowhere/caf%C3%A9", status=404),
    Case("server_error", "error", path=b"/error/", status=500),
    Case("large_response", "big", path=b"/big/", query=b"size=%d" % LARGE),
    Case(
        "response_several_chunks",
        "big",
        path=b"/big/",
        query=b"size=5000",
        chunk_size=SMALL_CHUNK,
    ),
    Case("unicode_response", "unicode", path=b"/unicode/"),
]
