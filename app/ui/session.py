"""Dashboard login: a reference to the token in the session cookie, CSRF, and calls into the API.

The cookie is signed, not encrypted, so it never holds the token itself: it holds
the token's name and an HMAC of the token's digest under the session secret. A
stolen cookie reveals no secret, and a token rotated or removed ends its
sessions. The session secret is ``HERALD_UI_SECRET``, else an HMAC of the configured
tokens' digests, so every gunicorn process of one deployment agrees on it. The
cookie is HttpOnly, SameSite=Strict, scoped to ``/ui`` and Secure when the
request came over https. Nothing under ``/api/v1`` reads it: the API only
knows bearer tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response as BaseResponse

from app.api import PREFIX
from app.api.common import IN_PROCESS_TOKEN
from app.auth import holds
from app.errors import Unauthorized
from app.state import state
from workflows.settings import ApiToken

SECRET_ENV = "HERALD_UI_SECRET"


class _UiSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, limited to ``/ui`` and Secure exactly when the request is https."""

    def get_cookie_path(self, app: Flask) -> str:
        return "/ui"

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True


def init_app(app: Flask) -> None:
    """Give ``app`` its session secret and the dashboard's cookie rules."""
    app.secret_key = session_secret(app)
    app.session_interface = _UiSessions()


def session_secret(app: Flask) -> str:
    """``HERALD_UI_SECRET``, else derived from the tokens (random if there are none)."""
    given = os.environ.get(SECRET_ENV, "").strip()
    if given:
        return given
    tokens = state_of(app).tokens
    if not len(tokens):
        return secrets.token_hex(32)
    material = b"".join(sorted(digest for digest, _ in tokens.entries))
    return hmac.new(b"herald-ui-session", material, hashlib.sha256).hexdigest()


def state_of(app: Flask) -> Any:
    """The :class:`~app.state.HeraldState` of ``app`` (outside a request)."""
    from app.state import EXTENSION

    return app.extensions[EXTENSION]


def csrf_token() -> str:
    """This session's CSRF token, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def check_csrf() -> None:
    """400 unless the form carries this session's CSRF token."""
    expected = session.get("csrf")
    given = request.form.get("csrf", "")
    if not expected or not hmac.compare_digest(str(expected), given):
        abort(400, "the form is stale or forged (CSRF token mismatch): reload the page")


def current_token() -> ApiToken | None:
    """The logged-in token, checked again against the configured ones (None if logged out)."""
    login = session.get("login")
    if not isinstance(login, dict):
        return None
    token = state().tokens.named(str(login.get("name", "")))
    if token is None or not hmac.compare_digest(_seal(token), str(login.get("seal", ""))):
        session.pop("login", None)
        return None
    return token


def _seal(token: ApiToken) -> str:
    """What the cookie keeps of a token's secret: an HMAC of it under the session secret."""
    key = str(current_app.secret_key).encode("utf-8")
    material = b"herald-ui-login:" + hashlib.sha256(token.secret.encode("utf-8")).digest()
    return hmac.new(key, material, hashlib.sha256).hexdigest()


def may(scope: str) -> bool:
    """Whether the logged-in token holds ``scope`` (for showing or hiding buttons)."""
    token = current_token()
    return token is not None and holds(token, scope)


def api(method: str, path: str, **options: Any) -> tuple[int, dict[str, Any]]:
    """Call ``/api/v1<path>`` in-process as the logged-in token: ``(status, JSON body)``.

    The API's own view runs, with its scopes, visibility and errors, so the
    dashboard can never see or do more than the token could.
    """
    environ = {"REMOTE_ADDR": request.remote_addr or "", IN_PROCESS_TOKEN: current_token()}
    with current_app.test_request_context(
        PREFIX + path,
        method=method,
        environ_base=environ,
        **options,
    ):
        response = current_app.full_dispatch_request()
    body = response.get_json(silent=True)
    return response.status_code, body if isinstance(body, dict) else {}


def login() -> BaseResponse | str:
    """The login form; a good token starts a fresh session, a bad one is refused."""
    if request.method == "POST":
        check_csrf()
        secret = request.form.get("token", "").strip()
        try:
            token = state().tokens.authenticate(f"Bearer {secret}")
        except Unauthorized:
            page = render_template("ui/login.html", error="That token is not valid.")
            return Response(page, status=401)
        session.clear()
        session["login"] = {"name": token.name, "seal": _seal(token)}
        csrf_token()
        return redirect(url_for("ui.events"))
    csrf_token()
    return render_template("ui/login.html", error=None)


def logout() -> BaseResponse:
    """Forget the token and the session."""
    check_csrf()
    session.clear()
    return redirect(url_for("ui.login"))


def register(bp: Blueprint) -> None:
    """Add the login and logout routes to the dashboard's blueprint."""
    bp.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", "logout", logout, methods=["POST"])
