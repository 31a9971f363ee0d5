"""One URL, several DRF views by HTTP method (e.g. GET retrieve vs POST store on /studies/{study})."""

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
                response = HttpResponse(status=204)
            else:
                response = JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
            response["Allow"] = allowed
            return response
        return handler(request, *args, **kwargs)

    return dispatch


@csrf_exempt
def unknown_resource(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Any path under /dicomweb/ that names no resource: a JSON 404, not Django's HTML page."""
    return JsonResponse({"detail": f"No DICOMweb resource at {request.path}."}, status=404)
