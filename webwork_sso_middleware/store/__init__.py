"""The SQLAlchemy member store: the only part of the package that talks SQL."""

from .db import Database

__all__ = ["Database"]
