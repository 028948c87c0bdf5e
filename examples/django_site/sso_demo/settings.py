"""Settings of the example site: Django's minimum, plus the lines SSO needs (marked "SSO:")."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Development defaults; set these from the environment anywhere real.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-example-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # SSO: log the member in from REMOTE_USER, and out again as soon as it is gone (a
    # deactivated member). Not PersistentRemoteUserMiddleware: that one keeps them logged in.
    "django.contrib.auth.middleware.RemoteUserMiddleware",
]

# SSO: REMOTE_USER is trusted only together with the active member SSOMiddleware set.
AUTHENTICATION_BACKENDS = ["webwork_sso_middleware.integrations.django.WebworkSSOBackend"]
# SSO: @login_required sends people to the "Sign in with SSO" page, which honours ?next=.
LOGIN_URL = "/saml/login"

# SSO: SSOMiddleware's keyword options. A None value falls back to WEBWORK_SSO_<OPTION>, and
# secret_key has no default: set WEBWORK_SSO_SECRET_KEY.
WEBWORK_SSO = {
    "database_url": os.environ.get(
        "WEBWORK_SSO_DATABASE_URL", f"sqlite:///{BASE_DIR / 'webwork_sso.db'}"
    ),
    "secret_key": os.environ.get("WEBWORK_SSO_SECRET_KEY"),
    "base_url": os.environ.get("WEBWORK_SSO_BASE_URL", "http://127.0.0.1:8000"),
}

ROOT_URLCONF = "sso_demo.urls"
# runserver serves this too, so the development server runs behind the middleware as well.
WSGI_APPLICATION = "sso_demo.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DATABASE_PATH", str(BASE_DIR / "django_site.db")),
    }
}

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
