"""Token authentication for integrators: ``Authorization: Bearer <key>`` or ``Token <key>``.

Bearer comes first in the settings so 401 answers carry ``WWW-Authenticate: Bearer``
(what OAuth-style DICOMweb clients expect). A malformed or unknown token is a 401 —
including dicomweb-client's ``Bearer None`` when no token was configured.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import TokenAuthentication as _DrfTokenAuthentication
from rest_framework.authtoken.models import Token

# Token -> user, kept per process for ARCHWAY_AUTH_CACHE_SECONDS: the lookup is a query on
# every request (profiled: a tenth of a small STOW's server CPU with the role lookup).
# Deleting a token or saving/deleting a user clears this process's cache at once; other
# processes see the change within that many seconds.
_cache: dict[str, tuple[float, tuple]] = {}
_cache_lock = threading.Lock()


def clear_token_cache(*args, **kwargs) -> None:
    with _cache_lock:
        _cache.clear()


for _signal in (post_save, post_delete):
    _signal.connect(clear_token_cache, sender=Token, dispatch_uid=f"archway.tokens.{id(_signal)}")
    _signal.connect(clear_token_cache, sender=get_user_model(), dispatch_uid=f"archway.users.{id(_signal)}")


class _CachedTokenAuthentication(_DrfTokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple:
        now = time.monotonic()
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        result = super().authenticate_credentials(key)  # raises AuthenticationFailed
        ttl = settings.ARCHWAY_AUTH_CACHE_SECONDS
        if ttl > 0:
            with _cache_lock:
                _cache[key] = (now + ttl, result)
        return result


class TokenAuthentication(_CachedTokenAuthentication):
    keyword = "Token"


class BearerTokenAuthentication(_CachedTokenAuthentication):
    keyword = "Bearer"

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="archway"'
