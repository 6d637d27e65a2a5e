"""The transport-neutral request classes (django.http.transport in Django)."""

from django_fork.http.transport import ScopeRequest, TransportRequest

__all__ = ["ScopeRequest", "TransportRequest"]
