"""The core never imports a framework: importing the package, or any module of it outside
``integrations/``'s adapters, leaves Django, Flask and PasteDeploy unimported."""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORKS = ("django", "flask", "paste")
ADAPTERS = (
    "django",
    "django_auth",
    "django_enforcement",
    "django_metrics",
    "django_signals",
    "flask",
    "paste",
)

# Run in a fresh interpreter: this test process has imported the frameworks long ago.
# PasteDeploy's -nspkg.pth creates the empty ``paste`` namespace at start-up: count only what
# importing the package adds.
PROBE = f"""
import json, pkgutil, sys
before = set(sys.modules)
import webwork_sso_middleware
imported = ["webwork_sso_middleware"]
adapters = {tuple("webwork_sso_middleware.integrations." + name for name in ADAPTERS)!r}
for info in pkgutil.walk_packages(webwork_sso_middleware.__path__, "webwork_sso_middleware."):
    # Alembic's env.py runs a migration when imported; migration scripts are not code paths.
    if ".migrations" in info.name or info.name in adapters:
        continue
    __import__(info.name)
    imported.append(info.name)
loaded = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {FRAMEWORKS!r})
print(json.dumps({{"imported": imported, "frameworks": loaded}}))
"""


def test_no_core_module_imports_a_framework() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "webwork_sso_middleware.middleware" in report["imported"]
    assert "webwork_sso_middleware.config" in report["imported"]
    assert report["frameworks"] == []
