"""A minimal Django project behind SSOMiddleware (see ../README.md)."""
