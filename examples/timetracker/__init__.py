"""The example time tracker: a plain WSGI app that ``webwork-sso serve`` wraps in SSOMiddleware."""

from __future__ import annotations

from .app import TimeTracker, create_app

__all__ = ["TimeTracker", "create_app"]
