"""The SQLAlchemy member store: the only part of the package that talks SQL."""

from .db import Database, UnitOfWork

__all__ = ["Database", "UnitOfWork"]
