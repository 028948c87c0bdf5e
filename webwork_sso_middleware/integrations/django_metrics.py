"""Django: a view that serves the middleware's Prometheus metrics, where ``urls.py`` puts it.

``settings.py``: ``WEBWORK_SSO = {..., "metrics": True}``; ``urls.py``::

    from django.contrib.admin.views.decorators import staff_member_required
    from webwork_sso_middleware.integrations.django_metrics import metrics_view

    urlpatterns = [..., path("metrics", metrics_view)]   # or guarded: staff_member_required(...)

The counts are the whole site's (no workspace, member or address in any label), yet they tell
how busy sign-in is: serve them only where the Prometheus server can reach them (a path the
front proxy keeps internal, or a guard of the host's own).

The view answers from the middleware that ``sso_wsgi_application`` built in this process; with
none, or with metrics off, it answers 404.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound

from ..metrics import NO_METRICS, Metrics

_metrics: Metrics = NO_METRICS


def register(metrics: Metrics) -> None:
    """Serve these metrics from now on (``sso_wsgi_application`` calls it)."""
    global _metrics
    _metrics = metrics


def metrics_view(request: HttpRequest) -> HttpResponse:
    metrics = _metrics
    if not metrics.enabled:
        return HttpResponseNotFound(
            "Metrics are off (settings.WEBWORK_SSO['metrics']).", content_type="text/plain"
        )
    body, content_type = metrics.exposition(request.headers.get("Accept"))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
