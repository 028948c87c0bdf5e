"""examples/django_site: its wsgi.py and manage.py, run the way the README says.

In subprocesses: Django's settings are configured once per process, and
tests/integrations/test_django.py configures them its own way in the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parents[2] / "examples" / "django_site"

# Import wsgi.py as a WSGI server would (before Django is set up), create Django's tables, then
# serve requests through WebTest.
SMOKE = """
import json
from sso_demo.wsgi import application
from django.core.management import call_command
import webtest

call_command("migrate", verbosity=0, interactive=False)
app = webtest.TestApp(application)
index = app.get("/")
account = app.get("/account", headers={"Accept": "text/html"})
forged = app.get("/", extra_environ={"REMOTE_USER": "alice@acme.example"})
print(json.dumps({"index": index.text, "account_status": account.status_int,
                  "account_location": account.headers.get("Location"),
                  "forged": forged.text}))
application.close()
"""


def run(args: list[str], tmp_path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WEBWORK_SSO_DATABASE_URL": database_url,
        "WEBWORK_SSO_SECRET_KEY": "example-test-key-padded-to-thirty-two-bytes-at-least",
        "DJANGO_DATABASE_PATH": str(tmp_path / "django_site.db"),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        args, cwd=SITE, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_an_anonymous_visitor_sees_a_sign_in_link(tmp_path: Path, database_url: str) -> None:
    result = run([sys.executable, "-c", SMOKE], tmp_path, database_url)

    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout.strip().splitlines()[-1])
    assert '<a href="/saml/login">Sign in with SSO</a>' in page["index"]
    assert page["forged"] == page["index"]  # an upstream's REMOTE_USER signs nobody in
    assert page["account_status"] == 302
    assert page["account_location"] == "/saml/login?next=/account"


def test_manage_py_runs_django_checks(tmp_path: Path, database_url: str) -> None:
    result = run([sys.executable, "manage.py", "check"], tmp_path, database_url)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
