"""
The transport-neutral part of building a request.

A server hands Django a request in its own form: a WSGI environ, an ASGI
scope, a channel message. Each request class below HttpRequest maps that
input onto META, the path and the body stream; everything that does not
depend on the transport lives here, once: the split of the path into
SCRIPT_NAME and PATH_INFO, META from header pairs, and GET, POST, FILES and
COOKIES, which read META with PEP 3333's rules (values are latin-1 text that
stands for the bytes received).

ScopeRequest maps an ASGI HTTP scope. ASGIRequest and the channel path's
ChannelRequest are both built on it: an http.request message is a scope plus
a reply channel.
"""

from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http.cookie import parse_cookie
from django.http.request import HttpRequest, QueryDict
from django.utils.encoding import repercent_broken_unicode
from django.utils.functional import cached_property


class TransportRequest(HttpRequest):
    """
    A request built from what a server received.

    Subclasses set META (PEP 3333 keys: latin-1 text for the bytes
    received), method and _stream, call _set_path() and
    _set_content_type_params(), and do not call HttpRequest.__init__().
    """

    _post_parse_error = False
    _read_started = False
    resolver_match = None

    def _set_path(self, script_name, path_info):
        """
        Set the request's path from its mount point (SCRIPT_NAME) and the
        path below it (PATH_INFO, "/" when empty).
        """
        self.script_name = script_name
        self.path_info = path_info
        # Replace only the first slash: http://test/something and
        # http://test//something are different paths (RFC 3986).
        self.path = "%s/%s" % (script_name.rstrip("/"), path_info.replace("/", "", 1))
        self.META["SCRIPT_NAME"] = script_name
        self.META["PATH_INFO"] = path_info

    @cached_property
    def GET(self):
        # The raw query string's bytes, parsed with the request's encoding.
        raw_query_string = self.META.get("QUERY_STRING", "").encode("iso-8859-1")
        return QueryDict(raw_query_string, encoding=self._encoding)

    def _get_post(self):
        if not hasattr(self, "_post"):
            self._load_post_and_files()
        return self._post

    def _set_post(self, post):
        self._post = post

    POST = property(_get_post, _set_post)

    @property
    def FILES(self):
        if not hasattr(self, "_files"):
            self._load_post_and_files()
        return self._files

    @cached_property
    def COOKIES(self):
        raw_cookie = self.META.get("HTTP_COOKIE", "").encode("iso-8859-1")
        return parse_cookie(raw_cookie.decode(errors="replace"))


def headers_to_meta(headers):
    """
    Return the META entries for a list of (name, value) header pairs, as
    bytes, the way WSGI servers build them.

    Content-Length and Content-Type become CONTENT_LENGTH and CONTENT_TYPE,
    other headers HTTP_* keys. A header repeated is joined with commas,
    except Cookie, whose crumbs (HTTP/2 and HTTP/3 split one Cookie header
    into several) are joined with "; " as RFC 9113 section 8.2.3 says, each
    without the trailing semicolon that some clients send.
    Names with underscores are dropped: they would be ambiguous with the
    hyphens that become underscores, which allows spoofing.
    """
    meta = {}
    for name, value in headers:
        name = name.decode("latin1").lower()
        if "_" in name:
            continue
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = value.decode("latin1")
        if key == "HTTP_COOKIE":
            value = value.rstrip("; ")
            if key in meta:
                value = meta[key] + "; " + value
        elif key in meta:
            value = meta[key] + "," + value
        meta[key] = value
    return meta


def scope_script_name(scope):
    """
    Return the script name of an ASGI scope: FORCE_SCRIPT_NAME when set
    (to anything, "" included), else the scope's root_path.
    """
    if settings.FORCE_SCRIPT_NAME is not None:
        return settings.FORCE_SCRIPT_NAME
    return scope.get("root_path", "") or ""


def scope_path(scope):
    """
    Return the full path of an ASGI scope as a str.

    The server decodes path as UTF-8 with errors replaced. When raw_path is
    the same path as received, decode it as WSGIRequest decodes PATH_INFO
    instead: bytes that are not UTF-8 stay percent-encoded rather than
    becoming U+FFFD. A path that differs (rewritten by an ASGI middleware)
    is taken as it is.
    """
    path = scope["path"]
    raw_path = scope.get("raw_path")
    if raw_path:
        received = unquote_to_bytes(raw_path)
        if received.decode(errors="replace") == path:
            return repercent_broken_unicode(received).decode()
    return path


def _is_under(path, mount):
    """Return whether mount is a whole leading segment of path."""
    mount = mount.rstrip("/")
    return bool(mount) and (path == mount or path.startswith(mount + "/"))


def scope_path_info(path, script_name, root_path):
    """
    Return PATH_INFO: path below the mount point, as a WSGI server splits
    it, "/" when nothing is left.

    The mount point is the server's root_path. A server that has none may
    still pass the prefix of FORCE_SCRIPT_NAME in the path (a proxy that
    does not strip it); then script_name is the mount point. Either is
    stripped only when it is a whole leading segment of the path.
    """
    mount = root_path or script_name
    if _is_under(path, mount):
        path = path[len(mount.rstrip("/")) :]
    return path or "/"


class ScopeRequest(TransportRequest):
    """A request built from an ASGI HTTP scope and a file of its body."""

    def __init__(self, scope, body_file):
        self.scope = scope
        self.method = scope["method"].upper()
        query_string = scope.get("query_string", b"")
        if isinstance(query_string, str):
            query_string = query_string.encode()
        self.META = {
            "REQUEST_METHOD": self.method,
            # As WSGI servers do (PEP 3333): the raw query string's bytes as
            # latin-1 text. GET decodes them with the request's encoding.
            "QUERY_STRING": query_string.decode("latin1"),
            "SERVER_NAME": "unknown",
            "SERVER_PORT": "0",
            # WSGI-expecting code will need these for a while.
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        if scope.get("http_version"):
            self.META["SERVER_PROTOCOL"] = "HTTP/" + scope["http_version"]
        if scope.get("client"):
            host, port = scope["client"][:2]
            self.META["REMOTE_ADDR"] = self.META["REMOTE_HOST"] = host
            # A string, as for every other CGI variable.
            self.META["REMOTE_PORT"] = str(port)
        if scope.get("server"):
            self.META["SERVER_NAME"] = scope["server"][0]
            self.META["SERVER_PORT"] = str(scope["server"][1])
        self.META.update(headers_to_meta(scope.get("headers", [])))
        path = scope_path(scope)
        script_name = scope_script_name(scope)
        root_path = scope.get("root_path")
        self._set_path(script_name, scope_path_info(path, script_name, root_path))
        if root_path and not _is_under(path, root_path):
            # The server sent a path outside its mount point: nothing was
            # stripped from it, so request.path is that path, not the mount
            # point put before it.
            self.path = path
        self._set_content_type_params(self.META)
        # The server delivered the whole body: read it to its end.
        self._stream = body_file

    def _get_scheme(self):
        return self.scope.get("scheme") or super()._get_scheme()

    def close(self):
        super().close()
        self._stream.close()
