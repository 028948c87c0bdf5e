"""The headless Chromium tests are opt-in (tests/conftest.py): the README's test command passes on
a machine with only Python, says what it left out, and `--browser` or the variable .ci/run sets
selects them. Checked on a pytest run of its own, collecting only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROWSER_TEST = "tests/admin/test_browser.py::test_owner_settings_in_a_real_browser"


def collect(*options: str, variable: str | None = None) -> str:
    env = {key: value for key, value in os.environ.items() if key != "WEBWORK_SSO_BROWSER_TESTS"}
    if variable is not None:
        env["WEBWORK_SSO_BROWSER_TESTS"] = variable
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *options,
            "tests/admin/test_browser.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode in (0, 5), run.stdout + run.stderr  # 5: nothing selected
    return run.stdout


def test_left_out_by_default_and_the_summary_says_how_to_run_them() -> None:
    out = collect()
    assert BROWSER_TEST not in out
    assert "1 headless Chromium test deselected (--browser or WEBWORK_SSO_BROWSER_TESTS=1" in out


@pytest.mark.parametrize(
    "options, variable",
    [(("--browser",), None), ((), "1")],
    ids=["--browser", "WEBWORK_SSO_BROWSER_TESTS=1"],
)
def test_selected_by_the_option_or_the_variable(
    options: tuple[str, ...], variable: str | None
) -> None:
    out = collect(*options, variable=variable)
    assert BROWSER_TEST in out
    assert "deselected" not in out
