"""A project whose only channel layer is in-memory: no worker can share it."""

SECRET_KEY = "check-tests"
INSTALLED_APPS = ["django_fork"]
DATABASES = {}
USE_TZ = True
