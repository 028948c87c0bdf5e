"""The WSGI entry point: Django's application, wrapped by SSOMiddleware.

Serve it with:

    waitress-serve --port 8000 sso_demo.wsgi:application      (from examples/django_site)
    gunicorn -c ../../contrib/gunicorn.conf.py sso_demo.wsgi:application
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sso_demo.settings")

from webwork_sso_middleware.integrations.django import sso_wsgi_application

application = sso_wsgi_application()
