"""Token authentication for integrators: ``Authorization: Bearer <key>`` or ``Token <key>``.

Bearer comes first in the settings so 401 answers carry ``WWW-Authenticate: Bearer``
(what OAuth-style DICOMweb clients expect). A malformed or unknown token is a 401 —
including dicomweb-client's ``Bearer None`` when no token was configured.
"""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication as _DrfTokenAuthentication


class TokenAuthentication(_DrfTokenAuthentication):
    keyword = "Token"


class BearerTokenAuthentication(_DrfTokenAuthentication):
    keyword = "Bearer"

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="archway"'
