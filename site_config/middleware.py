"""Site-wide request checks and response headers."""
import json
from urllib.parse import unquote

from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_cache_control

NUL_REFUSED = "NUL characters (%00) are not allowed in addresses or query strings."


class RefuseNulMiddleware:
    """400 for a NUL character in the path or the query string: PostgreSQL cannot store or compare
    text holding one, so it could only end in a server error further in."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or "\x00" in unquote(request.META.get("QUERY_STRING", "")):
            if request.path.startswith("/api/"):
                body = json.dumps({"detail": NUL_REFUSED, "errors": []})
                return HttpResponse(body, status=400, content_type="application/json")
            return HttpResponse(NUL_REFUSED, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Permissions-Policy on every answer; `Cache-Control: no-store` on every answer to a signed-in
    user or a bearer token, so no shared or browser cache keeps someone's jobs or data."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated) or "HTTP_AUTHORIZATION" in request.META:
            patch_cache_control(response, no_store=True, private=True)
        return response
