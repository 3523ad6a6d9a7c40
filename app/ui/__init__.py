"""The web dashboard at ``/ui``: server-rendered pages over the JSON API.

Every page and button goes through the ``/api/v1`` view functions with the
token the user logged in with (:func:`app.ui.session.api`), so the dashboard
shows and does exactly what that token could through the API, no more.
The token lives in the signed, HttpOnly, SameSite=Strict session cookie
(:mod:`app.ui.session`); that cookie authenticates only ``/ui``.
"""

from __future__ import annotations

from flask import Blueprint, Flask


def init_app(app: Flask) -> None:
    """Register the dashboard on ``app`` and set up its session cookie.

    A blueprint per app: each one is set up before it is registered.
    """
    from app.ui import pages, session

    bp = Blueprint(
        "ui",
        __name__,
        url_prefix="/ui",
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    session.init_app(app)
    pages.register(bp)
    session.register(bp)
    app.register_blueprint(bp)
