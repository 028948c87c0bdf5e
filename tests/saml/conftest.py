"""SAML fixtures: real IdPs (pysaml2 ``Server`` on our in-process crypto) served over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .idp import TestIdP


@pytest.fixture
def idp(serve: Callable[[Any], Any], tmp_path: Path) -> TestIdP:
    """An IdP at ``idp.url`` (entity ID ``idp.entity_id``), signing as ``idp.next_user``."""
    return TestIdP.start(serve, tmp_path / "idp", name="Test IdP")


@pytest.fixture
def second_idp(serve: Callable[[Any], Any], tmp_path: Path) -> TestIdP:
    """Another IdP on its own port, with its own keys: for cross-IdP (wrong issuer, wrong key) tests."""
    return TestIdP.start(serve, tmp_path / "second_idp", name="Second IdP")
