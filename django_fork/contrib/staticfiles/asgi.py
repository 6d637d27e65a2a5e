"""
Serve STATIC_ROOT from the interface server, with no worker hop.

StaticRootApplication wraps an ASGI application (the interface
application): a GET or HEAD under STATIC_URL that names a file in
STATIC_ROOT (as collectstatic left it) is answered from the event loop, and
everything else goes to the wrapped application. It is meant for
production, unlike django.contrib.staticfiles' handlers, which find files
through the finders for development:

* ETag and Last-Modified, with 304 answers to If-None-Match and
  If-Modified-Since;
* single byte ranges (206, or 416 when unsatisfiable; several ranges are
  answered with the whole file, as RFC 9110 allows);
* precompressed files: "app.css.br" or "app.css.gz" beside "app.css" is sent
  to a client that accepts that encoding, with Vary: Accept-Encoding;
* files are read in a thread, CHUNK_SIZE bytes at a time, and never outside
  STATIC_ROOT.
"""

import asyncio
import email.utils
import mimetypes
import os
import posixpath
import re
import stat

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["StaticRootApplication"]

CHUNK_SIZE = 64 * 1024
# Preferred first.
ENCODINGS = [("br", ".br"), ("gzip", ".gz")]
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class StaticRootApplication:
    def __init__(self, application, root=None, url=None):
        self.application = application
        root = root if root is not None else settings.STATIC_ROOT
        url = url if url is not None else settings.STATIC_URL
        if not root:
            raise ImproperlyConfigured(
                "Serving static files from the interface needs STATIC_ROOT, "
                "filled by 'manage.py collectstatic'."
            )
        if not url or "://" in url:
            raise ImproperlyConfigured(
                "Serving static files from the interface needs a local "
                "STATIC_URL such as '/static/', not %r." % (url,)
            )
        self.root = os.path.realpath(root)
        self.prefix = "/" + url.strip("/") + "/"

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith(self.prefix)
        ):
            found = await asyncio.to_thread(self.find, scope)
            if found is not None:
                return await self.serve(scope, send, *found)
        return await self.application(scope, receive, send)

    def find(self, scope):
        """
        Return (path, path of the file to send, its stat result, its
        content encoding or None), or None when there is no such file.
        """
        # An ASGI path is already percent-decoded.
        name = posixpath.normpath(scope["path"][len(self.prefix) :])
        if name.startswith("..") or name.startswith("/") or "\0" in name:
            return None
        path = os.path.realpath(os.path.join(self.root, name))
        if not path.startswith(self.root + os.sep):
            return None
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        accepted = accepted_encodings(scope)
        for encoding, suffix in ENCODINGS:
            if encoding in accepted:
                try:
                    compressed = os.stat(path + suffix)
                except OSError:
                    continue
                if stat.S_ISREG(compressed.st_mode):
                    return path, path + suffix, compressed, encoding
        return path, path, info, None

    async def serve(self, scope, send, path, source, info, encoding):
        etag = '"%x-%x%s"' % (
            int(info.st_mtime * 1000000),
            info.st_size,
            "-" + encoding if encoding else "",
        )
        last_modified = email.utils.formatdate(info.st_mtime, usegmt=True)
        content_type, _ = mimetypes.guess_type(path)
        headers = [
            (b"content-type", (content_type or "application/octet-stream").encode()),
            (b"etag", etag.encode()),
            (b"last-modified", last_modified.encode()),
            (b"accept-ranges", b"bytes"),
            (b"vary", b"Accept-Encoding"),
        ]
        if encoding:
            headers.append((b"content-encoding", encoding.encode()))
        request = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
        }
        if not_modified(request, etag, info.st_mtime):
            await send(
                {"type": "http.response.start", "status": 304, "headers": headers}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        status, start, length = 200, 0, info.st_size
        byte_range = request.get("range")
        if byte_range and request.get("if-range", etag) in (etag, last_modified):
            parsed = parse_range(byte_range, info.st_size)
            if parsed is False:
                headers.append((b"content-range", b"bytes */%d" % info.st_size))
                await send(
                    {"type": "http.response.start", "status": 416, "headers": headers}
                )
                await send({"type": "http.response.body", "body": b""})
                return
            if parsed is not None:
                start, end = parsed
                status, length = 206, end - start + 1
                headers.append(
                    (b"content-range", b"bytes %d-%d/%d" % (start, end, info.st_size))
                )
        headers.append((b"content-length", b"%d" % length))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        if scope["method"] == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        with open(source, "rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK_SIZE, remaining))
                if not chunk:
                    # The file shrank under us: end the body short.
                    break
                remaining -= len(chunk)
                await send(
                    {
                        "type": "http.response.body",
                        "body": chunk,
                        "more_body": remaining > 0,
                    }
                )
        if remaining > 0:
            await send({"type": "http.response.body", "body": b""})


def accepted_encodings(scope):
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            encodings = set()
            for item in value.decode("latin-1").split(","):
                coding, _, params = item.strip().partition(";")
                if params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00"):
                    encodings.add(coding.strip().lower())
            return encodings
    return set()


def not_modified(request, etag, mtime):
    """Return whether the request's validators match (RFC 9110, 13.1)."""
    if "if-none-match" in request:
        tags = [t.strip() for t in request["if-none-match"].split(",")]
        return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)
    since = request.get("if-modified-since")
    if since:
        try:
            parsed = email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, OverflowError):
            return False
        return int(mtime) <= parsed
    return False


def parse_range(value, size):
    """
    Return (first, last) byte of a single range, None to send the whole
    file (several ranges, or a header this does not understand), or False
    when the range cannot be satisfied.
    """
    match = RANGE_RE.match(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        # The last N bytes.
        length = int(last)
        if length == 0 or size == 0:
            return False
        return max(size - length, 0), size - 1
    first = int(first)
    last = int(last) if last else size - 1
    if first >= size or last < first:
        return False
    return first, min(last, size - 1)
