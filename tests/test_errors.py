"""One exception tree: every exception the package defines derives from WebworkSSOError, so a
host can catch the package's errors in one clause."""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import pkgutil
from types import ModuleType

import webwork_sso_middleware
from webwork_sso_middleware.errors import ConfigurationError, UnknownOption, WebworkSSOError

# Deliberately outside the tree: private control flow that never leaves its module.
OUTSIDE_THE_TREE = {
    # fetch() turns it into MetadataUnavailable before returning; it only carries the detail
    # for the server log.
    "webwork_sso_middleware.idp_metadata.fetching._Refused",
}
# Modules that need a configured framework to import (Django's models need the app registry).
NOT_IMPORTED = ("webwork_sso_middleware.integrations.django_auth",)


def package_modules() -> list[ModuleType]:
    modules = [webwork_sso_middleware]
    for info in pkgutil.walk_packages(
        webwork_sso_middleware.__path__, webwork_sso_middleware.__name__ + "."
    ):
        # Alembic's env.py runs a migration when imported; migration scripts raise nothing.
        if ".migrations" in info.name or info.name in NOT_IMPORTED:
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def defined_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for module in package_modules():
        for value in vars(module).values():
            # type(value), not isinstance: Django's lazy settings object would set itself up.
            if (
                issubclass(type(value), type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{value.__qualname__}"] = value
    return found


def test_every_exception_the_package_defines_is_a_webwork_sso_error() -> None:
    exceptions = defined_exceptions()

    outside = sorted(
        name for name, cls in exceptions.items() if not issubclass(cls, WebworkSSOError)
    )
    assert outside == sorted(OUTSIDE_THE_TREE)
    # The walk finds what it should: classes from the modules that used to stand apart.
    assert {
        "webwork_sso_middleware.saml.rejection.Rejection",
        "webwork_sso_middleware.admin.links.LinkRefused",
        "webwork_sso_middleware.devidp.idp.DevIdPError",
        "webwork_sso_middleware.cli.options.CommandError",
    } <= set(exceptions)


def test_the_modules_not_imported_define_no_exception() -> None:
    # They are skipped above; a class deriving from an exception there would escape the check.
    for name in NOT_IMPORTED:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        with open(spec.origin, encoding="utf-8") as source:
            tree = ast.parse(source.read())
        bases = {
            ast.unparse(base).rsplit(".", 1)[-1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            for base in node.bases
        }
        assert not {
            base
            for base in bases
            if base.endswith(("Error", "Exception"))
            or isinstance(getattr(builtins, base, None), type)
            and issubclass(getattr(builtins, base), BaseException)
        }, name


def test_an_unknown_option_is_a_configuration_error_and_a_type_error() -> None:
    # Python raises TypeError for an unexpected keyword; SSOMiddleware(app, typo=...) still does.
    assert issubclass(UnknownOption, ConfigurationError) and issubclass(UnknownOption, TypeError)
    error = UnknownOption("databse_url", "unknown option")
    assert (error.option, error.reason) == ("databse_url", "unknown option")
