"""WhiteNoise in the workers serves the admin's CSS under runstack."""

import unittest

from django.test import SimpleTestCase

from .test_static import AdminProjectMixin

try:
    import whitenoise
except ImportError:  # pragma: no cover
    whitenoise = None


@unittest.skipIf(whitenoise is None, "whitenoise is not installed.")
class RunstackWhiteNoiseTests(AdminProjectMixin, SimpleTestCase):
    extra_settings = (
        'MIDDLEWARE.insert(0, "whitenoise.middleware.WhiteNoiseMiddleware")\n'
    )
    runstack_args = []
