import os
import subprocess
import sys

from django.core.checks import run_checks
from django.test import SimpleTestCase, override_settings

from django_fork.core.checks import channels as checks

INMEMORY = "django_fork.channels.layers.inmemory.InMemoryChannelLayer"
REDIS = "django_fork.channels.layers.redis.RedisChannelLayer"


def layers(**config):
    return {"default": config}


class CheckMixin:
    check = None

    def assertChecks(self, *ids):
        """The check reports exactly the given ids, in order."""
        messages = type(self).check()
        self.assertEqual([m.id for m in messages], list(ids), messages)
        return messages


class ChannelLayersCheckTests(CheckMixin, SimpleTestCase):
    check = staticmethod(checks.check_channel_layers)

    def test_default_is_silent(self):
        self.assertChecks()

    @override_settings(CHANNEL_LAYERS=layers(BACKEND=INMEMORY))
    def test_inmemory_is_silent(self):
        self.assertChecks()

    @override_settings(
        CHANNEL_LAYERS={
            "default": {"BACKEND": REDIS, "LOCATION": "redis://127.0.0.1:6390/0"},
            "tls": {"BACKEND": REDIS, "LOCATION": "rediss://u:p@redis.example:6380"},
            "sharded": {
                "BACKEND": REDIS,
                "LOCATION": ["redis://a:1/0", "unix:///run/redis.sock?db=2"],
                "OPTIONS": {"capacity": 200, "expiry": 30, "socket_timeout": 2.5},
            },
        }
    )
    def test_good_redis_layers_are_silent(self):
        self.assertChecks()

    @override_settings(CHANNEL_LAYERS={"other": {"BACKEND": INMEMORY}})
    def test_no_default_alias(self):
        (error,) = self.assertChecks("channels.E001")
        self.assertIn("'other'", error.msg)
        self.assertTrue(error.hint)

    @override_settings(CHANNEL_LAYERS=["default"])
    def test_not_a_dict(self):
        self.assertChecks("channels.E001")

    @override_settings(CHANNEL_LAYERS=layers(LOCATION="redis://127.0.0.1:6390/0"))
    def test_missing_backend(self):
        (error,) = self.assertChecks("channels.E002")
        self.assertIn("redis://127.0.0.1:6390/0", error.msg)

    @override_settings(
        CHANNEL_LAYERS=layers(
            BACKEND=REDIS, CONFIG={"hosts": [("127.0.0.1", 6390)]}, TIMEOUT=5
        )
    )
    def test_unknown_keys(self):
        """Channels' CONFIG would be ignored: the layer would use 6379."""
        (error,) = self.assertChecks("channels.E012")
        self.assertIn("CONFIG, TIMEOUT", error.msg)
        self.assertIn("CONFIG is OPTIONS here", error.hint)

    @override_settings(CHANNEL_LAYERS=layers(BACKEND="channels.layers.NoSuchLayer"))
    def test_unimportable_backend(self):
        (error,) = self.assertChecks("channels.E003")
        self.assertIn("'channels.layers.NoSuchLayer'", error.msg)
        self.assertIn("RedisChannelLayer", error.hint)

    @override_settings(CHANNEL_LAYERS=layers(BACKEND="django.core.cache.caches"))
    def test_backend_not_a_layer_class(self):
        self.assertChecks("channels.E003")

    def test_bad_locations(self):
        for location, problem in [
            ("http://127.0.0.1:6379/0", "scheme 'http'"),
            ("redis://127.0.0.1:port/0", "port"),
            ("redis://127.0.0.1:99999/0", "port"),
            ("", "is empty"),
            ([], "is empty"),
            ("redis:///0", "no host"),
            (["redis://a:1/0", "http://b:2/0"], "'http://b:2/0'"),
        ]:
            with self.subTest(location=location):
                with override_settings(
                    CHANNEL_LAYERS=layers(BACKEND=REDIS, LOCATION=location)
                ):
                    (error,) = self.assertChecks("channels.E004")
                self.assertIn(problem, error.msg)
                self.assertIn("redis://127.0.0.1:6379/0", error.hint)

    def test_bad_sizes_and_timeouts(self):
        for options in [
            {"capacity": "100"},
            {"capacity": -1},
            {"capacity": 0},
            {"capacity": True},
            {"expiry": "60"},
            {"group_expiry": -5},
            {"socket_timeout": None},
        ]:
            with self.subTest(options=options):
                with override_settings(
                    CHANNEL_LAYERS=layers(BACKEND=REDIS, OPTIONS=options)
                ):
                    (error,) = self.assertChecks("channels.E005")
                self.assertIn(repr(next(iter(options.values()))), error.msg)

    @override_settings(
        CHANNEL_LAYERS=layers(
            BACKEND=INMEMORY, OPTIONS={"channel_capacity": {"http.request": "many"}}
        )
    )
    def test_bad_channel_capacity(self):
        (error,) = self.assertChecks("channels.E005")
        self.assertIn(
            "['http.request'] must be a positive integer, not 'many'", error.msg
        )

    @override_settings(CHANNEL_LAYERS=layers(BACKEND=INMEMORY, OPTIONS=[1]))
    def test_options_not_a_dict(self):
        self.assertChecks("channels.E005")

    @override_settings(CHANNEL_LAYERS=layers(BACKEND=INMEMORY, OPTIONS={"capcity": 5}))
    def test_options_refused_by_backend(self):
        (error,) = self.assertChecks("channels.E006")
        self.assertIn("capcity", error.msg)

    @override_settings(CHANNEL_LAYERS=layers(BACKEND=REDIS, OPTIONS={"prefix": "a:b"}))
    def test_value_refused_by_backend(self):
        self.assertChecks("channels.E006")


class ChannelRoutingCheckTests(CheckMixin, SimpleTestCase):
    check = staticmethod(checks.check_channel_routing)

    def test_good_routing_is_silent(self):
        for routing in ["check_tests.routing", {"thumbnails": print}, {}, None]:
            with self.subTest(routing=routing):
                with override_settings(CHANNEL_ROUTING=routing):
                    self.assertChecks()

    def test_bad_routing(self):
        for routing in [
            "check_tests.no_such_routing",
            "check_tests.routing.nothing",
            {"thumbnails": "check_tests.routing.missing"},
            {"thumbnails": 42},
            42,
        ]:
            with self.subTest(routing=routing):
                with override_settings(CHANNEL_ROUTING=routing):
                    (error,) = self.assertChecks("channels.E007")
                self.assertIn(repr(routing), error.msg)


class ChannelSettingsCheckTests(CheckMixin, SimpleTestCase):
    check = staticmethod(checks.check_channel_settings)

    @override_settings(
        CHANNEL_HTTP_TIMEOUT=30,
        CHANNEL_WEBSOCKET_ACK_TIMEOUT=2.5,
        CHANNEL_WEBSOCKET_IDLE_TIMEOUT=None,
        CHANNEL_CHUNK_SIZE=65536,
        CHANNEL_WEBSOCKET_MAX_FRAME_SIZE=1024,
        CHANNEL_MAX_REQUEST_BODY_SIZE=None,
        CHANNEL_WEBSOCKET_ALLOWED_ORIGINS=["https://example.com"],
    )
    def test_good_settings_are_silent(self):
        self.assertChecks()

    def test_unset_settings_are_silent(self):
        self.assertChecks()

    def test_bad_values(self):
        for name, value, id_ in [
            ("CHANNEL_HTTP_TIMEOUT", "60", "channels.E008"),
            ("CHANNEL_HTTP_TIMEOUT", -1, "channels.E008"),
            ("CHANNEL_HTTP_TIMEOUT", None, "channels.E008"),
            ("CHANNEL_WEBSOCKET_ACK_TIMEOUT", 0, "channels.E008"),
            ("CHANNEL_WEBSOCKET_IDLE_TIMEOUT", "never", "channels.E008"),
            ("CHANNEL_CHUNK_SIZE", "256k", "channels.E009"),
            ("CHANNEL_CHUNK_SIZE", 0.5, "channels.E009"),
            ("CHANNEL_WEBSOCKET_MAX_FRAME_SIZE", -1, "channels.E009"),
            ("CHANNEL_MAX_REQUEST_BODY_SIZE", "10MB", "channels.E009"),
            ("CHANNEL_WEBSOCKET_ALLOWED_ORIGINS", "https://a.example", "channels.E010"),
            ("CHANNEL_WEBSOCKET_ALLOWED_ORIGINS", [None], "channels.E010"),
        ]:
            with self.subTest(name=name, value=value):
                with override_settings(**{name: value}):
                    (error,) = self.assertChecks(id_)
                self.assertIn(name, error.msg)
                self.assertIn(repr(value), error.msg)


class SharedSessionsCheckTests(CheckMixin, SimpleTestCase):
    check = staticmethod(checks.check_shared_sessions)
    locmem = {"default": {"BACKEND": checks.LOCAL_MEMORY_CACHE}}
    redis = layers(BACKEND=REDIS, LOCATION="redis://127.0.0.1:6390/0")

    @override_settings(
        CHANNEL_LAYERS=redis,
        CACHES=locmem,
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
    )
    def test_local_cache_sessions_on_shared_layer(self):
        (warning,) = self.assertChecks("channels.W001")
        self.assertIn("django.contrib.sessions.backends.cache", warning.msg)

    def test_silent(self):
        for overrides in [
            # In-memory layer: one process.
            {
                "CACHES": self.locmem,
                "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
            },
            # Database sessions.
            {
                "CHANNEL_LAYERS": self.redis,
                "SESSION_ENGINE": "django.contrib.sessions.backends.db",
            },
            # A shared cache.
            {
                "CHANNEL_LAYERS": self.redis,
                "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
                "CACHES": {
                    "default": {
                        "BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": "redis://127.0.0.1:6390/1",
                    }
                },
            },
        ]:
            with self.subTest(overrides=overrides):
                with override_settings(**overrides):
                    self.assertChecks()


class RegistrationTests(SimpleTestCase):
    @override_settings(CHANNEL_HTTP_TIMEOUT="soon")
    def test_registered_under_the_channels_tag(self):
        """The checks run with every command's checks, tagged "channels"."""
        for tags in [None, [checks.TAG]]:
            with self.subTest(tags=tags):
                ids = [m.id for m in run_checks(tags=tags)]
                self.assertIn("channels.E008", ids)


class StartupTests(SimpleTestCase):
    """Start-up turns the same mistakes into lines of text, not tracebacks."""

    def run_python(self, *args):
        tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]),
            DJANGO_SETTINGS_MODULE="check_tests.bad_settings",
        )
        return subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    def test_exit_on_errors_prints_one_line(self):
        """A mistake is one line on stderr and exit status 1."""
        result = self.run_python(
            "-c",
            "import django; django.setup();"
            "from django_fork.core.checks.channels import exit_on_errors;"
            "exit_on_errors()",
        )
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn("channels.E004", lines[0])
        self.assertIn("'http://127.0.0.1:6379/0'", lines[0])

    def test_commands_report_the_check(self):
        for command in ["runworker", "runstack", "check"]:
            with self.subTest(command=command):
                result = self.run_python("-m", "django", command)
                self.assertEqual(result.returncode, 1, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                self.assertIn("(channels.E004)", result.stderr)
                self.assertIn("'http://127.0.0.1:6379/0'", result.stderr)

    def run_uvicorn(self, settings_module):
        tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]),
            DJANGO_SETTINGS_MODULE=settings_module,
        )
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "django_fork.channels.interface:get_interface_application",
                "--port",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    def test_uvicorn_reports_a_bad_layer_in_one_line(self):
        result = self.run_uvicorn("check_tests.bad_settings")
        self.assertNotEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertIn("channels.E004", result.stderr)
        self.assertIn("'http://127.0.0.1:6379/0'", result.stderr)

    def test_uvicorn_refuses_the_inmemory_layer_in_one_line(self):
        result = self.run_uvicorn("check_tests.inmemory_settings")
        self.assertNotEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertIn("the 'default' layer is in-memory", result.stderr)
