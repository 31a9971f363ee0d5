"""One URL, several DRF views by HTTP method (e.g. GET retrieve vs POST store on /studies/{study}).

Requests already run in a pool of threads (``config.handler``), so a STOW waiting for
``fsync``, the SQLite write lock or S3 holds up nothing else; the dispatch is a plain
function call. Response bodies never touch the database (``dicomweb.streams``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def by_method(**views: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    handlers = {name.upper(): view for name, view in views.items()}
    if "GET" in handlers:
        handlers.setdefault("HEAD", handlers["GET"])
    allowed = ", ".join(sorted({*handlers, "OPTIONS"}))

    @csrf_exempt
    def dispatch(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        handler = handlers.get(request.method or "")
        if handler is None:
            if request.method == "OPTIONS":
                return _capabilities_of(request, allowed)
            response = JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
            response["Allow"] = allowed
            return response
        return handler(request, *args, **kwargs)

    dispatch.handlers = handlers  # type: ignore[attr-defined]  (read by the capabilities document)
    return dispatch


def _capabilities_of(request: HttpRequest, allowed: str) -> HttpResponse:
    from dicomweb.urls import urlpatterns
    from dicomweb.views.capabilities import capabilities_response

    route = request.resolver_match.route if request.resolver_match else None
    patterns = [p for p in urlpatterns if route is not None and route.endswith(str(p.pattern))]
    return capabilities_response(request, patterns, allow=allowed)


@csrf_exempt
def service_root(request: HttpRequest) -> HttpResponse:
    """``OPTIONS /dicomweb``: the capabilities of the whole service (PS3.18 §8.9)."""
    from dicomweb.urls import urlpatterns
    from dicomweb.views.capabilities import capabilities_response

    if request.method != "OPTIONS":
        response = JsonResponse({"detail": "Use OPTIONS for the service's capabilities."}, status=405)
        response["Allow"] = "OPTIONS"
        return response
    return capabilities_response(request, urlpatterns, allow="OPTIONS")


@csrf_exempt
def unknown_resource(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Any path under /dicomweb/ that names no resource: a JSON 404, not Django's HTML page."""
    return JsonResponse({"detail": f"No DICOMweb resource at {request.path}."}, status=404)
