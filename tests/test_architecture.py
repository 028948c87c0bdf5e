"""The package's shape (ARCHITECTURE.md), checked: imports point down, no cycles, no import-time
side effects on the host.

Imports are read with ``ast``, not by importing: every ``import`` and ``from ... import`` of the
package, absolute or relative, at module level, in functions (lazy imports are dependencies too)
and under ``if TYPE_CHECKING:``. Type-only imports count for both rules: with ``from __future__
import annotations`` they cannot crash, but a module that names another's types still knows it,
and leaving them out is exactly how a cycle hides (scim/app.py <-> users.py is one).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import webwork_sso_middleware

PACKAGE = "webwork_sso_middleware"
PACKAGE_DIR = Path(webwork_sso_middleware.__file__).parent
ROOT = "(root)"  # the package's own __init__.py: public names only

# Packages (first level under webwork_sso_middleware), from the top down. A package may import
# its own modules and any package of a lower layer; never one of a higher layer, nor a sibling
# of its own layer (except ALLOWED_SIBLINGS).
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        # Entry points: the CLI and the framework integrations wrap everything else.
        {"cli", "integrations"},
        # What the CLI starts: the demo site (devserver), and the public names (__init__.py), which
        # the CLI reads __version__ from.
        {"devserver", ROOT},
        # Mounting and identity injection.
        {"middleware"},
        # One room per protocol or page; none knows another.
        {"admin", "saml", "scim", "devidp"},
        # What protocols share: the member lifecycle, sessions, IdP metadata, the SP's keys, and
        # the host's lifecycle-event feed (events: recorded by the store, read and delivered
        # here, so the middleware and the CLI reach it and no protocol needs it), and the
        # audit log's export (read by the CLI and the settings page's download).
        {"members", "sessions", "idp_metadata", "sp_keys", "events", "audit_export"},
        # The only place that writes SQL.
        {"store"},
        # Options declared once: validating them needs the domain and path rules below.
        {"config"},
        # How option values are read from text and checked: what config's declarations name.
        {"option_values"},
        # Rules and helpers that know no other part of the package: email domains (domains),
        # protected path patterns (protected_paths), the member as the host sees it (identity),
        # absolute URLs (urls), request bodies (bodies), security headers (page_headers), logging
        # (logs), the one serializer per signed purpose (signing), how groups combine and give
        # roles (roles), which assertion attribute holds what (attribute_map), and the
        # Prometheus metrics every protocol counts into (metrics).
        {
            "metrics",
            "roles",
            "attribute_map",
            "domains",
            "protected_paths",
            "identity",
            "urls",
            "bodies",
            "page_headers",
            "logs",
            "signing",
        },
        # Name normalisation, which domains and identity build on.
        {"names"},
        # The one exception tree, under everything.
        {"errors"},
    )
)

# Sibling imports that are part of the design, module to module, each with its reason.
ALLOWED_SIBLINGS: Mapping[tuple[str, str], str] = {
    # The development IdP builds its pysaml2 Server with the SP's own set-up (make_server: the
    # in-process crypto backend, no xmlsec1), so it signs exactly as the SP verifies. That is
    # pysaml2 plumbing, not SP logic: devidp may use it and nothing else of saml.
    ("devidp.protocol", "saml.entities"): "the dev IdP shares the SP's pysaml2 set-up",
    # Likewise it encrypts assertions with the code the SP decrypts with (XML Encryption).
    ("devidp.protocol", "saml.encrypting"): "the dev IdP encrypts as the SP decrypts",
}


# -- reading the imports -------------------------------------------------------------------------


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    return {module_name(path, package_dir): path for path in sorted(package_dir.rglob("*.py"))}


def imports_of(
    name: str, source: str, modules: frozenset[str] | set[str], is_package: bool = False
) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import of the package in ``source``.

    ``from X import y`` imports the module ``X.y`` when there is one (``from .. import names``
    is the module names.py, not the package's __init__), else the module ``X``.
    """
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.partition(".")[0] == PACKAGE:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.partition(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield (submodule if submodule in modules else target), node.lineno


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, dict[str, int]]:
    """importer -> {imported: first line}, for the package's own modules."""
    modules = package_modules(package_dir)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for target, line in imports_of(
            name,
            path.read_text(encoding="utf-8"),
            set(modules),
            is_package=path.name == "__init__.py",
        ):
            if target != name or path.name != "__init__.py":  # a package naming itself: no edge
                edges.setdefault(target, line)
    return graph


def strongly_connected(graph: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Module -> the number of its strongly connected component (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph.get(start, {})))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph.get(target, {}))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    number = len(set(component.values()))
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component[member] = number
                        if member == node:
                            break
    return component


def short(module: str) -> str:
    return module.removeprefix(PACKAGE).removeprefix(".") or ROOT


def package_of(module: str) -> str:
    return short(module).split(".")[0]


def violations(graph: Mapping[str, Mapping[str, int]]) -> dict[tuple[str, str, str], str]:
    """(importer, imported, rule) -> the message saying what is wrong."""
    layer_of = {package: number for number, layer in enumerate(LAYERS) for package in layer}
    component = strongly_connected(graph)
    found: dict[tuple[str, str, str], str] = {}
    for importer, targets in graph.items():
        for imported, line in targets.items():
            where = f"{short(importer)} imports {short(imported)} (line {line})"
            if component[importer] == component[imported]:
                found[short(importer), short(imported), "cycle"] = (
                    f"{where}, which imports it back: no import cycles"
                )
            mine, theirs = package_of(importer), package_of(imported)
            if mine == theirs:
                continue
            if layer_of[theirs] < layer_of[mine]:
                found[short(importer), short(imported), "layer"] = (
                    f"{where}: {theirs} is in a higher layer than {mine}; imports point down"
                )
            elif (
                layer_of[theirs] == layer_of[mine]
                and (short(importer), short(imported)) not in ALLOWED_SIBLINGS
            ):
                found[short(importer), short(imported), "layer"] = (
                    f"{where}: {mine} and {theirs} are siblings in one layer, and siblings do"
                    " not import each other"
                )
    return found


# -- the rules ------------------------------------------------------------------------------------


def test_every_package_has_a_layer() -> None:
    placed = {package for layer in LAYERS for package in layer}
    packages = {package_of(module) for module in package_modules()}
    assert packages - placed == set(), "place these packages in LAYERS (tests/test_architecture.py)"
    assert placed - packages == set(), "LAYERS names packages that do not exist"


def test_imports_point_down_and_never_close_a_cycle() -> None:
    unexpected = [message for _key, message in sorted(violations(import_graph()).items())]
    assert unexpected == [], "\n".join(unexpected)


def test_the_store_knows_nothing_of_saml_or_idp_metadata() -> None:
    # Said by the layers already; spelled out because it is the point of idp_metadata.
    graph = import_graph()
    upward = sorted(
        (short(importer), short(imported))
        for importer, targets in graph.items()
        if package_of(importer) == "store"
        for imported in targets
        if package_of(imported) in {"saml", "idp_metadata"}
    )
    assert upward == []


# -- the reader itself ---------------------------------------------------------------------------

MODULES = {
    f"{PACKAGE}.{name}"
    for name in (
        "names",
        "errors",
        "saml",
        "saml.app",
        "saml.acs",
        "store",
        "store.db",
        "store.models",
    )
}


@pytest.mark.parametrize(
    ("module", "is_package", "source", "expected"),
    [
        ("saml.app", False, "from .. import names", ["names"]),  # the module, not the root package
        ("saml.app", False, "from .. import __version__", [ROOT]),
        ("saml.app", False, "from ..store import db, Database", ["store.db", "store"]),
        ("saml.app", False, "from . import acs", ["saml.acs"]),
        ("saml.app", False, "from .acs import decode", ["saml.acs"]),
        ("saml", True, "from .app import x", ["saml.app"]),  # relative to the package itself
        ("saml.app", False, "import webwork_sso_middleware.store.models as m", ["store.models"]),
        ("saml.app", False, "import os\nfrom lxml import etree", []),
        ("saml.app", False, "def f():\n    from ..errors import E", ["errors"]),  # lazy: counts
        ("saml.app", False, "if TYPE_CHECKING:\n    from ..store.db import Database", ["store.db"]),
    ],
)
def test_imports_are_read_as_python_resolves_them(
    module: str, is_package: bool, source: str, expected: list[str]
) -> None:
    found = imports_of(f"{PACKAGE}.{module}", source, MODULES, is_package=is_package)
    assert [short(name) for name, _ in found] == expected


def test_a_cycle_and_an_upward_import_are_named(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE
    for name, source in {
        "__init__.py": "",
        "errors.py": "from .store import db\n",  # upward, and the start of a cycle
        "store/__init__.py": "",
        "store/db.py": "from ..errors import E\n",
        "scim/__init__.py": "",
        "scim/app.py": "from ..saml import acs\n",  # a sibling
        "saml/__init__.py": "",
        "saml/acs.py": "",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)

    found = violations(import_graph(package))

    assert set(found) == {
        ("errors", "store.db", "cycle"),
        ("store.db", "errors", "cycle"),
        ("errors", "store.db", "layer"),
        ("scim.app", "saml.acs", "layer"),
    }
    assert (
        "errors imports store.db (line 1): store is in a higher layer than errors"
        in (found["errors", "store.db", "layer"])
    )


# -- no import-time side effects -----------------------------------------------------------------

# Run in a fresh interpreter: what this process imported already would hide any effect.
IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys, warnings
# Dependencies' own filters are theirs, and a host has them with pysaml2 alone (requests and
# urllib3 add some at import): import them first, so only ours can change what is compared.
import requests
before = [repr(f) for f in warnings.filters]
import webwork_sso_middleware as package
names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
         if ".migrations" not in m.name  # Alembic's scripts, run only by Alembic
         and not m.name.endswith(".django_auth")]  # needs configured Django settings
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": len(names), "same": before == [repr(f) for f in warnings.filters],
                  "after": [repr(f) for f in warnings.filters]}))
"""


def test_importing_the_package_leaves_the_hosts_warnings_filters_alone() -> None:
    # -W always: a warning any import lets out reaches stderr, where the CLI's one-line error
    # contract would break.
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", IMPORT_EVERYTHING],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE_DIR.parent,
    )
    outcome = json.loads(result.stdout)
    assert outcome["imported"] > 50
    assert outcome["same"], outcome["after"]
    assert "CFB has been moved" not in result.stderr
