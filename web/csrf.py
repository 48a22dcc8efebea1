"""CSRF protection of every form: a signed double-submit token (OWASP's pattern).

A visitor gets a random value in a cookie (HttpOnly, SameSite=Strict); each form carries
that value signed with the site's secret and a time (itsdangerous). A POST counts only if
the form's token is genuine, younger than ``MAX_AGE`` and signs the cookie's value: another
site can make a browser send the cookie, but cannot read it to forge the token.

Written here, on itsdangerous, because the ASGI CSRF packages either read the token from a
header only (for pages with script, which ours have none of) or reach into Starlette's
private attributes to find it in a form.
"""

from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "samskab_csrf"
FIELD = "csrf_token"
MAX_AGE = 4 * 3600  # a form left open for an afternoon still works


class Csrf:
    def __init__(self, secret: str, *, secure: bool) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="samskab.web.csrf")
        self._secure = secure

    def token(self, request: Request) -> str:
        """The token for a form on the page being rendered (the cookie is set by
        :meth:`set_cookie` when the visitor has none yet)."""
        value = request.cookies.get(COOKIE)
        if not value or len(value) > 64:
            value = getattr(request.state, "csrf_value", None) or secrets.token_urlsafe(32)
            request.state.csrf_value = value
        return self._signer.dumps(value)

    def set_cookie(self, request: Request, response: Response) -> None:
        value = getattr(request.state, "csrf_value", None)
        if value is not None:
            response.set_cookie(
                COOKIE,
                value,
                max_age=MAX_AGE * 6,
                httponly=True,
                samesite="strict",
                secure=self._secure,
                path="/",
            )

    def valid(self, request: Request, token: object) -> bool:
        value = request.cookies.get(COOKIE)
        if not value or not isinstance(token, str) or len(token) > 512:
            return False
        try:
            signed = self._signer.loads(token, max_age=MAX_AGE)
        except BadSignature:
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed, value)
