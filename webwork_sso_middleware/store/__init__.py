"""The SQLAlchemy member store: the only part of the package that talks SQL."""

from .db import Database, StoreSession, UnitOfWork

__all__ = ["Database", "StoreSession", "UnitOfWork"]
