"""
Transport equivalence: every case of cases.py reaches the view as the same
request, and the client as the same response, through stock WSGIHandler,
stock ASGIHandler and the channel path.

The channel path must match WSGIHandler everywhere but in WSGI_DIFFERENCES.
Where ASGIRequest maps the scope with ChannelRequest's rules (ScopeRequest),
the channel path matches ASGIHandler everywhere; where ASGIRequest keeps its
own copy of them (Django 5.2), everywhere but in ASGI_DIFFERENCES_EVERYWHERE
and KNOWN_DIFFERENCES. The lists are checked both ways: a listed difference
that disappears fails as surely as an unlisted one that appears.
docs/ref/transport-differences.txt explains each of them.
"""

import os
import traceback

from django.core.handlers.asgi import ASGIRequest
from django.test import SimpleTestCase, override_settings

from django_fork.http.transport import ScopeRequest

from .cases import CASES
from .transports import TRANSPORTS, run_everywhere

MIDDLEWARE = [
    # The middleware of a project made by startproject.
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

DOCS = os.path.join(
    os.path.dirname(__file__),
    "..",
    "..",
    "..",
    "docs",
    "ref",
    "transport-differences.txt",
)

#: Whether ASGIRequest and ChannelRequest share one mapping of the scope.
#: Django 5.2's ASGIRequest has its own, which differs in the ways below.
ASGI_SHARES_SCOPE_MAPPING = issubclass(ASGIRequest, ScopeRequest)

# Why the channel path differs from Django 5.2's ASGIHandler. The channel
# path follows WSGIHandler in each of these; see
# docs/ref/transport-differences.txt.

SERVER_PROTOCOL = (
    "ASGIRequest does not define SERVER_PROTOCOL; WSGI servers and "
    "ChannelRequest set it from the HTTP version."
)
REMOTE_PORT = (
    "ASGIRequest gives REMOTE_PORT as the int of the scope's client; WSGI "
    "servers and ChannelRequest give a string, as CGI variables are."
)
INVALID_UTF8_PATH = (
    "The ASGI server decodes the path as UTF-8 with errors replaced, so "
    "ASGIRequest sees U+FFFD; WSGIHandler re-percent-encodes the bytes that "
    "are not UTF-8, and so does ChannelRequest, which decodes raw_path."
)
QUERY_CHARSET = (
    "ASGIRequest decodes the query string as UTF-8 before parsing; "
    "WSGIRequest and ChannelRequest parse its bytes with request.encoding, "
    "which a charset in Content-Type sets."
)
RAW_QUERY_STRING = (
    "ASGIRequest decodes QUERY_STRING as UTF-8 and so do get_full_path() "
    "and build_absolute_uri(); WSGI servers and ChannelRequest decode it as "
    "latin-1 (PEP 3333), which these methods then re-encode as UTF-8. GET "
    "is the same on all three."
)
RAW_QUERY_INVALID = (
    "ASGIRequest decodes the query string as strict UTF-8 and answers 400 "
    "when it is not; WSGIRequest and ChannelRequest decode it as latin-1 and "
    "parse it with errors replaced."
)
COOKIE_CRUMBS = (
    "Two Cookie headers: WSGI servers join every repeated header with "
    "commas, so the first header's last cookie swallows the second header "
    "(b is '2,c=3'); ASGIRequest on Django 5.2 does the same, while the "
    "shared scope mapping joins Cookie headers with '; ' (RFC 9113 section "
    "8.2.3, as HTTP/2 servers split one Cookie header into several), as "
    "Django 6.1's ASGIRequest does."
)
FORCE_SCRIPT_NAME_PATH = (
    "ASGIRequest takes request.path from the scope's path as is, without "
    "FORCE_SCRIPT_NAME; WSGIRequest and ChannelRequest build it from "
    "SCRIPT_NAME and PATH_INFO."
)
FORCE_SCRIPT_NAME_STRIPPED = (
    "ASGIRequest strips FORCE_SCRIPT_NAME, not root_path, from the path, "
    "so PATH_INFO keeps the mount point and no URL pattern matches; the WSGI "
    "server and ChannelRequest strip root_path."
)
FORCE_SCRIPT_NAME_EMPTY = (
    'ASGIRequest ignores a FORCE_SCRIPT_NAME of "" (it tests truth); '
    "WSGIRequest and ChannelRequest test for None, so an empty setting "
    "replaces the mount point."
)

#: Fields in which ASGIHandler differs from the channel path in every case
#: where a view runs.
ASGI_DIFFERENCES_EVERYWHERE = {
    "observation.META.SERVER_PROTOCOL": SERVER_PROTOCOL,
    "observation.META.REMOTE_PORT": REMOTE_PORT,
}

#: Case name -> field -> why ASGIHandler differs from the channel path.
KNOWN_DIFFERENCES = {
    "path_invalid_utf8": {
        "observation.path": INVALID_UTF8_PATH,
        "observation.path_info": INVALID_UTF8_PATH,
        "observation.META.PATH_INFO": INVALID_UTF8_PATH,
        "observation.full_path": INVALID_UTF8_PATH,
        "observation.absolute_uri": INVALID_UTF8_PATH,
        "observation.kwargs": INVALID_UTF8_PATH,
    },
    "query_charset_from_content_type": {"observation.GET": QUERY_CHARSET},
    "query_raw_utf8": {
        "observation.META.QUERY_STRING": RAW_QUERY_STRING,
        "observation.full_path": RAW_QUERY_STRING,
        "observation.absolute_uri": RAW_QUERY_STRING,
    },
    "query_raw_invalid_utf8": {
        "status": RAW_QUERY_INVALID,
        "headers": RAW_QUERY_INVALID,
        "body": RAW_QUERY_INVALID,
        "observation": RAW_QUERY_INVALID,
    },
    "cookies_two_headers": {
        "observation.COOKIES": COOKIE_CRUMBS,
        "observation.META.HTTP_COOKIE": COOKIE_CRUMBS,
        "observation.headers": COOKIE_CRUMBS,
    },
    "force_script_name": {
        "observation.path": FORCE_SCRIPT_NAME_PATH,
        "observation.full_path": FORCE_SCRIPT_NAME_PATH,
        "observation.absolute_uri": FORCE_SCRIPT_NAME_PATH,
    },
    "force_script_name_over_root_path": {
        "status": FORCE_SCRIPT_NAME_STRIPPED,
        "headers": FORCE_SCRIPT_NAME_STRIPPED,
        "body": FORCE_SCRIPT_NAME_STRIPPED,
        "observation": FORCE_SCRIPT_NAME_STRIPPED,
    },
    "force_script_name_empty": {
        "observation.path": FORCE_SCRIPT_NAME_EMPTY,
        "observation.full_path": FORCE_SCRIPT_NAME_EMPTY,
        "observation.absolute_uri": FORCE_SCRIPT_NAME_EMPTY,
        "observation.script_prefix": FORCE_SCRIPT_NAME_EMPTY,
        "observation.META.SCRIPT_NAME": FORCE_SCRIPT_NAME_EMPTY,
    },
}

#: Case name -> field -> why WSGIHandler differs from the channel path.
WSGI_DIFFERENCES = {
    "cookies_two_headers": {
        "observation.COOKIES": COOKIE_CRUMBS,
        "observation.META.HTTP_COOKIE": COOKIE_CRUMBS,
        "observation.headers": COOKIE_CRUMBS,
    },
    "body_chunked_transfer_encoding": {
        "observation.body": (
            "WSGIRequest reads at most CONTENT_LENGTH bytes of wsgi.input and "
            "reads nothing without it, even when the server decoded a chunked "
            "body (wsgi.input_terminated); ASGIRequest and ChannelRequest "
            "read the body the server delivered."
        ),
    },
}


def flatten(result):
    """
    Return a Result as {field: value}: status, headers, body, observation
    ("recorded" or None), each key of the observation as observation.KEY and
    each META key as observation.META.KEY.
    """
    fields = {
        "status": result.status,
        "headers": result.headers,
        "body": result.body,
        "observation": None if result.observation is None else "recorded",
    }
    for key, value in (result.observation or {}).items():
        if key == "META":
            for name, meta_value in value.items():
                fields["observation.META." + name] = meta_value
        else:
            fields["observation." + key] = value
    return fields


def differences(result, other):
    """
    Return {field: (value, other value)} for the fields that differ; when a
    view ran for only one of the two, the observation differs as a whole.
    """
    fields, other_fields = flatten(result), flatten(other)
    missing = object()
    found = {}
    for key in fields.keys() | other_fields.keys():
        value = fields.get(key, missing)
        other_value = other_fields.get(key, missing)
        if value != other_value or type(value) is not type(other_value):
            found[key] = (
                "<missing>" if value is missing else value,
                "<missing>" if other_value is missing else other_value,
            )
    if "observation" in found:
        found = {
            key: values
            for key, values in found.items()
            if not key.startswith("observation.")
        }
    return found


def expected_asgi_differences(case, channel_result):
    if ASGI_SHARES_SCOPE_MAPPING:
        return {}
    expected = dict(KNOWN_DIFFERENCES.get(case.name, {}))
    if channel_result.observation is not None and "observation" not in expected:
        expected.update(ASGI_DIFFERENCES_EVERYWHERE)
    return expected


def describe(found):
    return "\n".join(
        "  %s: channel %s, other %s" % (key, _short(mine), _short(theirs))
        for key, (mine, theirs) in sorted(found.items())
    )


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


@override_settings(
    ROOT_URLCONF="transport_equivalence.urls",
    ALLOWED_HOSTS=["*"],
    DEBUG=False,
    MIDDLEWARE=MIDDLEWARE,
)
class TransportEquivalenceTests(SimpleTestCase):
    """The channel path serves requests as WSGIHandler and ASGIHandler do."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Each case runs once through each transport; the tests below look at
        # the results from different sides.
        cls.results = {}
        for case in CASES:
            with override_settings(**case.settings):
                cls.results[case.name] = run_everywhere(case)

    def result(self, case, transport):
        result = self.results[case.name][transport]
        if isinstance(result, Exception):
            self.fail(
                "%s raised:\n%s"
                % (transport, "".join(traceback.format_exception(result)))
            )
        return result

    def test_corpus_size(self):
        """The corpus has at least 40 cases, each with its own name."""
        names = [case.name for case in CASES]
        self.assertGreaterEqual(len(names), 40)
        self.assertEqual(len(names), len(set(names)))

    def test_status_and_view(self):
        """
        The channel path and WSGIHandler answer the expected status.

        The view that ran is the one the case names (none for 404, 403).
        """
        for case in CASES:
            for transport in ("wsgi", "channel"):
                with self.subTest(case=case.name, transport=transport):
                    result = self.result(case, transport)
                    self.assertEqual(result.status, case.status)
                    view = result.observation and result.observation["view"]
                    self.assertEqual(view, case.view)

    def test_channel_matches_wsgi(self):
        """
        The channel path gives what WSGIHandler gives.

        The view sees the same request, the client gets the same response.
        """
        for case in CASES:
            with self.subTest(case=case.name):
                found = differences(
                    self.result(case, "channel"), self.result(case, "wsgi")
                )
                expected = WSGI_DIFFERENCES.get(case.name, {})
                self.assertEqual(
                    sorted(found),
                    sorted(expected),
                    "Differences from WSGIHandler:\n%s" % describe(found),
                )

    def test_channel_matches_asgi_but_known_differences(self):
        """
        The channel path gives what ASGIHandler gives but known differences.

        Each known difference is asserted to exist where ASGIRequest has its
        own mapping of the scope, and to be gone where it shares
        ChannelRequest's.
        """
        for case in CASES:
            with self.subTest(case=case.name):
                channel = self.result(case, "channel")
                found = differences(channel, self.result(case, "asgi"))
                expected = expected_asgi_differences(case, channel)
                self.assertEqual(
                    sorted(found),
                    sorted(expected),
                    "Differences from ASGIHandler:\n%s" % describe(found),
                )

    def test_known_differences_name_real_cases(self):
        """The lists of differences name only cases of the corpus."""
        names = {case.name for case in CASES}
        self.assertLessEqual(KNOWN_DIFFERENCES.keys(), names)
        self.assertLessEqual(WSGI_DIFFERENCES.keys(), names)
        self.assertEqual(set(TRANSPORTS), {"wsgi", "asgi", "channel"})

    def test_known_differences_are_documented(self):
        """docs/ref/transport-differences.txt names every known difference."""
        with open(DOCS, encoding="utf-8") as docs:
            text = docs.read()
        documented = {*KNOWN_DIFFERENCES, *WSGI_DIFFERENCES}
        documented.update(
            field.rsplit(".", 1)[-1] for field in ASGI_DIFFERENCES_EVERYWHERE
        )
        for name in sorted(documented):
            with self.subTest(name=name):
                self.assertIn("``%s``" % name, text)
