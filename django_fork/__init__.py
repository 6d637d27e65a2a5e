"""
django_fork: channels as the base layer of Django 5.2, beside an untouched
WSGI path.
"""

__version__ = "0.1.0"
