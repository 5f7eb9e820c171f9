"""Bearer-token authentication for the site's API."""
from ninja.security import HttpBearer

from . import services


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>`, for scripts; tokens come from `manage.py token_create`."""

    def authenticate(self, request, token):
        user = services.api_token_authenticate(key=token)
        if user is not None:
            request.user = user
        return user
