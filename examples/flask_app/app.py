"""A small Flask app behind SSOMiddleware, through the ``WebworkSSO`` extension.

Run it with:

    flask --app examples/flask_app/app.py run                 (http://127.0.0.1:5000)
    waitress-serve --port 5000 --call app:create_app          (from examples/flask_app)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, render_template_string

from webwork_sso_middleware.integrations.flask import WebworkSSO, current_identity, current_member

PAGE = """<!doctype html>
<title>Flask behind SSO</title>
<h1>Flask behind SSO</h1>
{% if member %}
  <p>Signed in as {{ member.display_name or member.user_name }} ({{ member.email }})
     in workspace {{ member.workspace }}.</p>
  <p>This app knows you as <code>{{ identity }}</code>.</p>
  <p>Groups: {{ member.groups | join(", ") or "none" }}.</p>
  <p><a href="/account">Account</a> · <a href="/saml/logout">Sign out</a></p>
{% else %}
  <p>Not signed in. <a href="/saml/login">Sign in with SSO</a></p>
{% endif %}
"""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    # SSOMiddleware's options as WEBWORK_SSO_* config keys. WEBWORK_SSO_SECRET_KEY is left to
    # the environment, which the middleware reads for any option not set here.
    app.config.update(
        WEBWORK_SSO_DATABASE_URL=os.environ.get(
            "WEBWORK_SSO_DATABASE_URL", "sqlite:///webwork_sso.db"
        ),
        WEBWORK_SSO_BASE_URL=os.environ.get("WEBWORK_SSO_BASE_URL", "http://127.0.0.1:5000"),
        # /account never reaches the app without a session: browsers are sent to sign in.
        WEBWORK_SSO_PROTECT=["/account"],
    )
    app.config.update(config or {})
    WebworkSSO(app)

    @app.get("/")
    def index() -> str:
        return render_template_string(PAGE, member=current_member(), identity=current_identity())

    @app.get("/account")
    def account() -> dict[str, Any]:
        member = current_member()
        assert member is not None  # protect= guarantees it
        # Rows a person owns would be keyed by "identity" (or by workspace and id): an email or
        # userName is whatever the member's IdP or SCIM says, another workspace's CEO's included.
        return {
            "identity": current_identity(),
            "id": member.id,
            "workspace": member.workspace,
            "user_name": member.user_name,
            "email": member.email,
            "given_name": member.given_name,
            "family_name": member.family_name,
            "groups": member.groups,
        }

    return app
