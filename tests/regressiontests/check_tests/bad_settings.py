"""A project whose channel layer names an HTTP URL: one check error."""

SECRET_KEY = "check-tests"
INSTALLED_APPS = ["django_fork"]
DATABASES = {}
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "django_fork.channels.layers.redis.RedisChannelLayer",
        "LOCATION": "http://127.0.0.1:6379/0",
    }
}
