#!/usr/bin/env python3
"""Mutation testing of one module: would any test fail if a check were deleted or inverted?

A script, not a test (too slow for CI). It parses the module, makes small mutants of it (a
comparison flipped, an operand of ``and`` dropped, a ``raise`` deleted, ...), and runs each one
against only the tests that cover its lines, found once with coverage.py (one dynamic context per
test). The mutants are written into scratch copies of the tree, never into the source, and git is
never called. See benchmarks/README.md.

    python benchmarks/mutation.py webwork_sso_middleware/sessions/manager.py --tests tests/sessions
"""

from __future__ import annotations

import argparse
import ast
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_FILE = Path(__file__).with_name("mutation_allowed.toml")
# What a mutant's run needs besides the module: the package, the tests and pytest's settings.
COPIED = ("webwork_sso_middleware", "tests", "examples", "contrib", "pyproject.toml", "setup.cfg")
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
LOGGERS = {"log", "logger", "logging", "_log"}
NO_MUTATE = "pragma: no mutate"
OPERATORS = (
    "compare",
    "boolean",
    "drop-operand",
    "not",
    "constant",
    "number",
    "string",
    "arithmetic",
    "delete",
    "if-body",
    "keyword",
)
FLIPPED = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
# Replacements made of these bind tighter than any operator: no parentheses needed around them.
ATOMS = (ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.Call)


# -- making mutants ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mutant:
    number: int
    operator: str
    line: int
    original: str  # the source lines it changes, whitespace collapsed
    mutated: str  # the same lines in the mutant
    lines: frozenset[int]  # whose covering tests run against it
    source: bytes  # the whole mutated module

    def key(self, module: str) -> tuple[str, str, str, str]:
        return module, self.operator, self.original, self.mutated


@dataclasses.dataclass(frozen=True)
class _Edit:
    operator: str
    node: ast.AST  # whose source span is replaced
    text: str
    lines: frozenset[int]


class _Mutator(ast.NodeVisitor):
    """Collects edits; skips docstrings, log calls, annotations and ``if TYPE_CHECKING``."""

    def __init__(self, source_lines: Sequence[str], line_ranges: Sequence[tuple[int, int]]) -> None:
        self.edits: list[_Edit] = []
        self._source_lines = source_lines
        self._ranges = line_ranges
        self._statement_lines: frozenset[int] = frozenset()

    # where to look

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            self._statement_lines = frozenset({node.lineno})
        super().visit(node)

    def _body(self, statements: list[ast.stmt]) -> None:
        for index, statement in enumerate(statements):
            if index == 0 and _is_docstring(statement):
                continue
            self.visit(statement)

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for child in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(child)
        self._body(node.body)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if child is not None:
                self.visit(child)
        self._body(node.body)  # node.returns and each arg's annotation: never

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.body)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        pass  # f-strings are messages

    def visit_Assign(self, node: ast.Assign) -> None:
        if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if _is_log_call(node.value):
            return
        if isinstance(node.value, ast.Call):
            self._edit("delete", node, "pass")
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        only = node.body[0] if len(node.body) == 1 else None
        deleted_anyway = isinstance(only, (ast.Raise, ast.Return, ast.Continue, ast.Break)) or (
            isinstance(only, ast.Expr) and isinstance(only.value, ast.Call)
        )
        if not deleted_anyway and not isinstance(only, ast.Pass):
            first, last = node.body[0], node.body[-1]
            span = ast.Pass(
                lineno=first.lineno,
                col_offset=first.col_offset,
                end_lineno=last.end_lineno,
                end_col_offset=last.end_col_offset,
            )
            self._edit(
                "if-body", span, "pass", lines=range(first.lineno, (last.end_lineno or 0) + 1)
            )
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._edit("delete", node, "pass")
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        self._edit("delete", node, "pass")
        self.generic_visit(node)

    def visit_Continue(self, node: ast.Continue) -> None:
        self._edit("delete", node, "pass")

    def visit_Break(self, node: ast.Break) -> None:
        self._edit("delete", node, "pass")

    # what to change

    def visit_Compare(self, node: ast.Compare) -> None:
        for index, op in enumerate(node.ops):
            if type(op) in FLIPPED:
                ops = [*node.ops]
                ops[index] = FLIPPED[type(op)]()
                self._replace("compare", node, ast.Compare(node.left, ops, node.comparators))
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._replace("boolean", node, ast.BoolOp(other, node.values))
        for index in range(len(node.values)):  # a condition deleted from the chain
            rest = node.values[:index] + node.values[index + 1 :]
            self._replace(
                "drop-operand", node, rest[0] if len(rest) == 1 else ast.BoolOp(node.op, rest)
            )
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._replace("not", node, node.operand)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        swapped = {ast.Add: ast.Sub, ast.Sub: ast.Add}.get(type(node.op))
        if swapped is not None and not _is_text(node.left) and not _is_text(node.right):
            # "a" - "b" is no mutant: it only fails to run (concatenation is never subtraction)
            self._replace("arithmetic", node, ast.BinOp(node.left, swapped(), node.right))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _is_log_call(node):
            return
        for index, keyword in enumerate(node.keywords):
            if keyword.arg is not None:
                rest = node.keywords[:index] + node.keywords[index + 1 :]
                self._replace("keyword", node, ast.Call(node.func, node.args, rest))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self._replace("constant", node, ast.Constant(not value))
        elif isinstance(value, (int, float)):
            self._replace("number", node, ast.Constant(value + 1))
            self._replace("number", node, ast.Constant(value - 1))
        elif isinstance(value, str) and value:
            self._replace("string", node, ast.Constant(""))

    # helpers

    def _replace(self, operator: str, node: ast.AST, new: ast.AST) -> None:
        text = ast.unparse(new)
        negative = isinstance(new, ast.Constant) and text.startswith("-")
        if not isinstance(new, ATOMS) or negative:
            text = f"({text})"
        self._edit(operator, node, text)

    def _edit(self, operator: str, node: Any, text: str, lines: range | None = None) -> None:
        span = range(node.lineno, node.end_lineno + 1)
        if self._ranges and not any(
            first <= node.lineno and node.end_lineno <= last for first, last in self._ranges
        ):
            return
        if any(NO_MUTATE in self._source_lines[n - 1] for n in span):
            return
        self.edits.append(
            _Edit(operator, node, text, frozenset(lines or span) | self._statement_lines)
        )


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))
    )


def _is_log_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    owner = node.func.value
    return node.func.attr in LOG_METHODS and isinstance(owner, ast.Name) and owner.id in LOGGERS


def make_mutants(
    source: bytes, line_ranges: Sequence[tuple[int, int]] = (), operators: Sequence[str] = OPERATORS
) -> list[Mutant]:
    """Every mutant of ``source`` that compiles and differs from it, in source order."""
    tree = ast.parse(source)
    lines = source.split(b"\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    mutator = _Mutator(source.decode("utf-8").split("\n"), line_ranges)
    mutator.visit(tree)
    original_dump = ast.dump(tree)
    seen: set[bytes] = set()
    mutants: list[Mutant] = []
    edits = sorted(mutator.edits, key=lambda e: (e.node.lineno, e.node.col_offset))  # type: ignore[attr-defined]
    for edit in edits:
        if edit.operator not in operators:
            continue
        node: Any = edit.node
        begin = starts[node.lineno - 1] + node.col_offset  # col offsets count UTF-8 bytes
        end = starts[node.end_lineno - 1] + node.end_col_offset
        mutated = source[:begin] + edit.text.encode("utf-8") + source[end:]
        try:
            if mutated in seen or ast.dump(ast.parse(mutated)) == original_dump:
                continue
            compile(mutated, "<mutant>", "exec")
        except SyntaxError:
            continue
        seen.add(mutated)
        new_lines = mutated.split(b"\n")
        mutants.append(
            Mutant(
                number=len(mutants) + 1,
                operator=edit.operator,
                line=node.lineno,
                original=_collapse(lines[node.lineno - 1 : node.end_lineno]),
                mutated=_collapse(new_lines[node.lineno - 1 : node.lineno]),
                lines=edit.lines,
                source=mutated,
            )
        )
    return mutants


def module_readers(source: bytes) -> dict[int, frozenset[int]]:
    """For each line run when the module is imported and defining names (a module-level or
    class-level assignment, a decorator, a ``def`` line with its defaults): the lines elsewhere
    in the module that read those names, directly or through other definitions.

    Coverage cannot tell which tests such a line matters to: it runs once, in whichever test
    first imported the module."""
    tree = ast.parse(source)
    loads: dict[str, set[int]] = collections.defaultdict(set)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            loads[node.id].add(node.lineno)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            loads[node.attr].add(node.lineno)  # a class attribute or method, read as x.name
    definitions: list[tuple[set[int], set[str]]] = []  # import-time lines, the names they define
    owners: list[tuple[range, set[str]]] = []  # whole statements, for following readers

    def header(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[int]:
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        return set(range(first, node.body[0].lineno))

    def define(statement: ast.stmt, names: set[str]) -> None:
        if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            found = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            definitions.append(
                (set(range(statement.lineno, (statement.end_lineno or 0) + 1)), found | names)
            )
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            definitions.append((header(statement), {statement.name} | names))
        elif isinstance(statement, ast.ClassDef):
            definitions.append((header(statement), {statement.name} | names))
            for inner in statement.body:
                define(inner, {statement.name})

    for statement in tree.body:
        define(statement, set())
        named = {getattr(statement, "name", "")} | next(
            (d[1] for d in definitions if statement.lineno in d[0]), set()
        )
        owners.append((range(statement.lineno, (statement.end_lineno or 0) + 1), named - {""}))

    readers: dict[int, frozenset[int]] = {}
    for lines, names in definitions:
        found: set[int] = set()
        pending, seen = list(names), set(names)
        while pending:
            for line in loads[pending.pop()]:
                found.add(line)
                # Read by another definition (a constant built from it, a function): what
                # reads that one may read this one's value too.
                for span, defined in owners:
                    if line in span:
                        for name in defined - seen:
                            seen.add(name)
                            pending.append(name)
        for line in lines:
            readers[line] = frozenset(found - lines)
    return readers


def _collapse(lines: Sequence[bytes]) -> str:
    return " ".join(b" ".join(lines).decode("utf-8").split())


# -- which tests cover which line -------------------------------------------------------------


def _collect(data_file: str, package: str, report: str, pytest_args: list[str]) -> int:
    """In a child process: run the tests once under coverage, one dynamic context per test."""
    import coverage
    import pytest

    cov = coverage.Coverage(data_file=data_file, include=[f"{package}/*"])
    durations: dict[str, float] = collections.defaultdict(float)
    failed: list[str] = []

    class ContextPerTest:
        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_setup(self, item: pytest.Item) -> None:
            cov.switch_context(item.nodeid)

        @pytest.hookimpl(trylast=True)
        def pytest_runtest_logfinish(self, nodeid: str) -> None:
            cov.switch_context("")

        def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
            durations[report.nodeid] += report.duration
            if report.failed:
                failed.append(report.nodeid)

    cov.start()  # before pytest imports the package, so import-time lines count too
    try:
        code = pytest.main(
            [*pytest_args, "-p", "no:cacheprovider", "-q"], plugins=[ContextPerTest()]
        )
    finally:
        cov.stop()
        cov.save()
    Path(report).write_text(
        json.dumps({"durations": durations, "failed": failed, "exit": int(code)})
    )
    return 0


@dataclasses.dataclass
class Coverage:
    tests_by_line: dict[int, set[str]]
    durations: dict[str, float]
    failed: list[str]
    own_tests: tuple[str, ...] = ()  # node id prefixes of the tests aimed at this module

    def tests_for(self, lines: frozenset[int], readers: frozenset[int] = frozenset()) -> list[str]:
        """The covering tests, fastest first. A line run at import time (a module-level
        constant, query or decorator) counts as covered by the tests that run the lines reading
        what it defines too (``readers``); when neither names a test, by every test that runs
        any of the module's code."""
        found: set[str] = set()
        for line in lines:
            found |= self.tests_by_line.get(line, set())
        for line in readers:
            found |= self.tests_by_line.get(line, set())
        if readers:  # and the tests aimed at the module, which may read what it defines directly
            found |= {test for test in self.durations if test.startswith(self.own_tests or ("\0",))}
        if "" in found and not found - {""}:
            found = set().union(*self.tests_by_line.values())
        found -= {"", *self.failed}
        # The module's own test module first (its tests aim at this code), then fastest first.
        return sorted(
            found,
            key=lambda test: (
                not test.startswith(self.own_tests or ("\0",)),
                self.durations.get(test, 0.0),
                test,
            ),
        )


def collect_coverage(
    copy: Path, module: str, tests: Sequence[str], prefer: Sequence[str] = ()
) -> Coverage:
    """Which tests cover which line of ``module``; measured for the whole package at once and
    cached under ``.mutation-cache/`` by the tests named and the tree's contents, so the next
    module of the same run (or of a rerun after editing only the allowed list) reuses it."""
    cache = ROOT / ".mutation-cache" / f"{_tree_digest(tests)}.json"
    if not cache.exists():
        data_file = copy / ".mutation-coverage"
        report = copy / ".mutation-tests.json"
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--_collect",
                str(data_file),
                str(copy / "webwork_sso_middleware"),
                str(report),
                "--",
                *tests,
                "--basetemp",
                str(copy / "tmp"),
            ],
            cwd=copy,
            env=_child_env(copy),
            check=True,
        )
        import coverage

        data = coverage.CoverageData(str(data_file))
        data.read()
        lines: dict[str, dict[int, list[str]]] = {}
        for measured in data.measured_files():
            relative = Path(measured).resolve().relative_to(copy.resolve()).as_posix()
            lines[relative] = {n: sorted(c) for n, c in data.contexts_by_lineno(measured).items()}
        cache.parent.mkdir(exist_ok=True)
        cache.write_text(json.dumps({**json.loads(report.read_text()), "lines": lines}))
    document = json.loads(cache.read_text())
    by_line = {int(n): set(c) for n, c in document["lines"].get(module, {}).items()}
    return Coverage(
        by_line,
        document["durations"],
        document["failed"],
        own_tests=tuple(f"{path}::" for path in (prefer or aimed_tests(module))),
    )


def _tree_digest(tests: Sequence[str]) -> str:
    digest = hashlib.sha256(
        json.dumps([list(tests), os.environ.get("WEBWORK_SSO_TEST_DATABASE_URL")]).encode()
    )
    for name in COPIED:
        for path in sorted((ROOT / name).rglob("*") if (ROOT / name).is_dir() else [ROOT / name]):
            if path.is_file() and path.suffix in (".py", ".cfg", ".toml", ".json", ".xml", ".pem"):
                digest.update(
                    path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes()
                )
    return digest.hexdigest()[:16]


# -- the fork server --------------------------------------------------------------------------

# Imported once by each worker's server, so a mutant's run starts from a fork instead of a new
# interpreter (about 1 s of imports saved per mutant). Never the package under test: each fork
# imports it, mutated, from its worker's copy.
PRELOADED = (
    "pytest",
    "_pytest.python",
    "_pytest.fixtures",
    "_pytest.assertion.rewrite",
    "coverage",
    "saml2",
    "saml2.client",
    "saml2.server",
    "saml2.config",
    "saml2.sigver",
    "saml2.metadata",
    "saml2.mdstore",
    "saml2.response",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "psycopg",
    "lxml.etree",
    "xmlsec",
    "werkzeug",
    "werkzeug.serving",
    "werkzeug.test",
    "webob",
    "webtest",
    "waitress",
    "itsdangerous",
    "cryptography.x509",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "dns.resolver",
    "dns.message",
    "dns.query",
    "requests",
    "selenium.webdriver",
    "hypothesis",
)


def _fork_server() -> int:
    """In a worker's server process: fork once per request and answer with the exit status.

    Requests and answers are JSON lines on stdin and stdout. Single-threaded, so a fork never
    inherits a lock held by another thread. The fork runs in its own session (its pid is its
    process group), so a timeout kills it and every server its tests started."""
    import importlib
    import warnings

    warnings.simplefilter("ignore")
    for name in PRELOADED:
        # An optional package missing (or failing to import): a fork imports it itself, if asked.
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    warnings.resetwarnings()
    requests = sys.stdin.buffer
    answers = os.dup(sys.stdout.fileno())
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the fork: becomes one pytest run
            os.setsid()
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.close(answers)
            import pytest

            code = 3
            try:
                code = int(pytest.main(request["args"]))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.write(answers, (json.dumps({"pid": pid}) + "\n").encode())
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        os.write(answers, (json.dumps({"exit": code}) + "\n").encode())
    return 0


class ForkServer:
    """A worker's server process (see ``_fork_server``), started in the worker's copy."""

    def __init__(self, copy: Path) -> None:
        self.copy = copy
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--_forkserver"],
            cwd=copy,
            env=_child_env(copy),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self.answers: queue.Queue[dict[str, int]] = queue.Queue()
        self.pid: int | None = None  # the fork running now
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(json.loads(line))

    def run(self, args: list[str], log: Path, timeout: float) -> int | None:
        """pytest's exit code, or None after the timeout (the fork's session is killed) or
        when the server was closed."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps({"args": args, "log": str(log)}) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):  # closed: the run is stopping
            return None
        answer = self.answers.get(timeout=120)
        if "pid" not in answer:
            return None
        self.pid = answer["pid"]
        try:
            return self.answers.get(timeout=timeout).get("exit")
        except queue.Empty:
            self.kill_run()
            with contextlib.suppress(queue.Empty):
                self.answers.get(timeout=30)  # the server reaped it
            return None
        finally:
            self.pid = None

    def kill_run(self) -> None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def close(self) -> None:
        self.kill_run()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.answers.put({})  # wakes a thread waiting for an answer that will never come


# -- running mutants --------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    mutant: Mutant
    status: str  # killed, timeout, survived, uncovered, error
    tests: int  # how many covering tests were selected
    killed_by: str | None
    seconds: float
    allowed: str | None = None  # the reason it is listed as unable to change behaviour


class Workers:
    """Scratch copies of the tree, one per worker, each with its fork server; each mutant is
    written into a copy and run by a fork of that copy's server."""

    def __init__(self, count: int, module: str, directory: Path) -> None:
        self.module = module
        self.directory = directory
        self.idle: queue.Queue[tuple[Path, ForkServer]] = queue.Queue()
        self.servers: list[ForkServer] = []
        self._lock = threading.Lock()
        self.stopping = False
        for number in range(count):
            copy = directory / f"worker{number}"
            copy.mkdir()
            for name in COPIED:
                source = ROOT / name
                if source.is_dir():
                    shutil.copytree(
                        source,
                        copy / name,
                        ignore=shutil.ignore_patterns(
                            "__pycache__", "*.pyc", ".pytest_cache", "*.egg-info"
                        ),
                    )
                elif source.exists():
                    shutil.copy2(source, copy / name)
            server = ForkServer(copy)
            self.servers.append(server)
            self.idle.put((copy, server))
        self.base_mtime = int((ROOT / module).stat().st_mtime)

    def first_copy(self) -> Path:
        return self.directory / "worker0"

    def run(self, mutant: Mutant, tests: list[str], timeout: float) -> Result:
        if not tests:
            return Result(mutant, "uncovered", 0, None, 0.0)
        copy, server = self.idle.get()
        try:
            target = copy / self.module
            target.write_bytes(mutant.source)
            # A distinct mtime per mutant: Python never reuses another mutant's cached bytecode.
            stamp = self.base_mtime + 10 * mutant.number
            os.utime(target, (stamp, stamp))
            return self._pytest(copy, server, mutant, tests, timeout)
        finally:
            self.idle.put((copy, server))

    def _pytest(
        self, copy: Path, server: ForkServer, mutant: Mutant, tests: list[str], timeout: float
    ) -> Result:
        args = [
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-header",
            "-rfE",
            "--basetemp",
            str(copy / "tmp"),
            *tests,
        ]
        log = copy / ".mutant.log"
        started = time.monotonic()
        if self.stopping:
            return Result(mutant, "error", len(tests), None, 0.0)
        code = server.run(args, log, timeout)
        seconds = time.monotonic() - started
        if self.stopping:
            return Result(mutant, "error", len(tests), None, seconds)
        output = log.read_text(errors="replace") if log.exists() else ""
        if code is None:
            return Result(mutant, "timeout", len(tests), None, seconds)
        if code == 0:
            return Result(mutant, "survived", len(tests), None, seconds)
        if code in (1, 2):  # a test failed, or the mutant broke collection
            failed = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
            return Result(
                mutant, "killed", len(tests), failed.group(1) if failed else "collection", seconds
            )
        if code in (3, 4) and (
            "ImportError while loading conftest" in output or "INTERNALERROR" in output
        ):
            return Result(mutant, "killed", len(tests), "import", seconds)  # nothing can run
        if self.stopping:
            return Result(mutant, "error", len(tests), None, seconds)
        print(f"mutant {mutant.number}: pytest exited {code}\n{output[-2000:]}", file=sys.stderr)
        return Result(mutant, "error", len(tests), None, seconds)

    def stop(self) -> None:
        self.stopping = True
        for server in self.servers:
            server.close()


def _child_env(copy: Path) -> dict[str, str]:
    # The copy first on the path: its package wins over the editable install of the real tree.
    return {**os.environ, "PYTHONPATH": str(copy), "PYTHONHASHSEED": "0"}


# -- the allowed survivors and the report -----------------------------------------------------


def load_allowed(path: Path) -> dict[tuple[str, str, str, str], str]:
    if not path.exists():
        return {}
    entries = tomllib.loads(path.read_text()).get("allowed", [])
    return {
        (
            e["module"],
            e["operator"],
            " ".join(e["original"].split()),
            " ".join(e["mutated"].split()),
        ): e["reason"]
        for e in entries
    }


def summary(module: str, results: list[Result], earlier_kills: int = 0) -> dict[str, Any]:
    """The figures; ``earlier_kills``: mutants killed in the run --survivors-of named."""
    counts = collections.Counter(r.status for r in results)
    killed = counts["killed"] + counts["timeout"] + earlier_kills
    allowed = sum(1 for r in results if r.allowed and r.status in ("survived", "uncovered"))
    total = len(results) + earlier_kills
    return {
        "module": module,
        "mutants": total,
        "killed": killed,
        "timeouts": counts["timeout"],
        "survived": counts["survived"],
        "uncovered": counts["uncovered"],
        "errors": counts["error"],
        "allowed": allowed,
        "score": round(killed / total, 4) if total else None,
        "score_without_allowed": round(killed / (total - allowed), 4) if total > allowed else None,
    }


def print_report(module: str, results: list[Result], seconds: float, earlier_kills: int) -> None:
    figures = summary(module, results, earlier_kills)
    survivors = [r for r in results if r.status in ("survived", "uncovered", "error")]
    print(f"\nsurvivors ({len(survivors)}):")
    for r in survivors:
        mark = f"   [allowed: {r.allowed}]" if r.allowed else ""
        state = "" if r.status == "survived" else f" ({r.status})"
        print(
            f"  {module}:{r.mutant.line}  {r.mutant.operator}{state}{mark}\n"
            f"      - {r.mutant.original}\n      + {r.mutant.mutated}"
        )
    run = [r for r in results if r.status not in ("uncovered",)]
    mean = sum(r.seconds for r in run) / len(run) if run else 0.0
    print(
        f"\n{module}: {figures['mutants']} mutants, {figures['killed']} killed "
        f"({figures['timeouts']} by timeout), {figures['survived']} survived, "
        f"{figures['uncovered']} not covered, {figures['errors']} errors; "
        f"{earlier_kills} of the kills from the earlier run; "
        f"{figures['allowed']} of the survivors allowed"
    )
    score = figures["score"] or 0.0
    print(
        f"score {score:.1%} (without the allowed ones: "
        f"{(figures['score_without_allowed'] or 0.0):.1%}); {seconds:.0f} s, "
        f"{mean:.1f} s per mutant run"
    )


def to_json(
    module: str, tests: Sequence[str], results: list[Result], seconds: float, earlier_kills: int
) -> dict[str, Any]:
    return {
        **summary(module, results, earlier_kills),
        "tests": list(tests),
        "seconds": round(seconds, 1),
        "earlier_kills": earlier_kills,
        "results": [
            {
                "line": r.mutant.line,
                "operator": r.mutant.operator,
                "status": r.status,
                "original": r.mutant.original,
                "mutated": r.mutant.mutated,
                "allowed": r.allowed,
                "tests_run": r.tests,
                "killed_by": r.killed_by,
                "seconds": round(r.seconds, 2),
            }
            for r in results
        ],
    }


# -- the command ------------------------------------------------------------------------------


def parse_target(target: str) -> tuple[str, list[tuple[int, int]]]:
    """``path.py`` or ``path.py:38-46,197-243``: the module and its line ranges (none: all)."""
    path, _, lines = target.partition(":")
    module = Path(path).resolve().relative_to(ROOT).as_posix()
    ranges = []
    for part in filter(None, lines.split(",")):
        first, _, last = part.partition("-")
        ranges.append((int(first), int(last or first)))
    return module, ranges


def default_tests(module: str) -> list[str]:
    """The test module that mirrors this one (tests/ mirrors the package)."""
    parts = Path(module).with_suffix("").parts[1:]
    mirror = Path("tests", *parts[:-1], f"test_{parts[-1]}.py")
    return [mirror.as_posix()] if (ROOT / mirror).exists() else ["tests"]


def aimed_tests(module: str) -> list[str]:
    """The test modules aimed at this one: its mirror, else those that import it by name."""
    mirror = default_tests(module)
    if mirror != ["tests"]:
        return mirror
    stem = Path(module).stem
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("test_*.py")
        if re.search(rf"\b{re.escape(stem)}\b", path.read_text(errors="replace"))
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--_forkserver"]:
        return _fork_server()
    if args[:1] == ["--_collect"]:
        data_file, module_file, report, _, *pytest_args = args[1:]
        return _collect(data_file, module_file, report, pytest_args)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "target", help="the module, optionally with line ranges: path.py:120-180,200-210"
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        help="test paths whose coverage selects the tests "
        "for each mutant (default: the module's own test module)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument(
        "--prefer",
        nargs="+",
        default=[],
        metavar="TESTS",
        help="test modules aimed at this module, run first for each mutant "
        "(default: its mirror test module, else those naming it)",
    )
    parser.add_argument(
        "--max-tests",
        type=int,
        default=0,
        metavar="N",
        help="run at most N of a mutant's covering tests (its module's own test "
        "module first, then the fastest): a quick first pass; rerun its "
        "survivors without a limit (--survivors-of) for the verdict",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="like --max-tests, but stop adding covering tests once their "
        "unmutated time reaches S seconds (the module's own tests come "
        "first, so fast unit tests all run)",
    )
    parser.add_argument("--timeout-base", type=float, default=20.0)
    parser.add_argument(
        "--timeout-factor",
        type=float,
        default=3.0,
        help="a mutant's timeout: base + factor * its tests' time unmutated",
    )
    parser.add_argument("--operators", default=",".join(OPERATORS))
    parser.add_argument("--allowed", type=Path, default=ALLOWED_FILE)
    parser.add_argument("--json", type=Path, help="write every result and the score here")
    parser.add_argument(
        "--survivors-of",
        type=Path,
        metavar="JSON",
        help="run only the mutants that survived in this earlier --json report "
        "(after adding tests: kills cannot be undone by new tests)",
    )
    parser.add_argument(
        "--skip-allowed",
        action="store_true",
        help="do not run the mutants listed in the allowed file (they are "
        "reported as allowed survivors)",
    )
    parser.add_argument("--list", action="store_true", help="print the mutants; run nothing")
    options = parser.parse_args(args)

    # Ctrl-C, and SIGTERM too, end the run with a report of what finished (a shell starting
    # this in the background would otherwise leave SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    module, line_ranges = parse_target(options.target)
    original = (ROOT / module).read_bytes()
    mutants = make_mutants(original, line_ranges, options.operators.split(","))
    print(f"{module}: {len(mutants)} mutants", file=sys.stderr)
    earlier_kills = 0
    carried: list[dict[str, Any]] = []
    if options.survivors_of:
        earlier = json.loads(options.survivors_of.read_text())["results"]
        # Identical lines make identical keys (two "return None"): the n-th of each key matches.
        earlier_keys = _numbered(
            [(module, r["operator"], r["original"], r["mutated"]) for r in earlier]
        )
        killed = {
            key
            for key, r in zip(earlier_keys, earlier, strict=True)
            if r["status"] in ("killed", "timeout")
        }
        # Carried into this run's --json, so a chain of --survivors-of runs keeps every kill
        # (of the mutants this source still has).
        current = set(_numbered([m.key(module) for m in mutants]))
        carried = [
            r
            for key, r in zip(earlier_keys, earlier, strict=True)
            if r["status"] in ("killed", "timeout") and key in current
        ]
        # Mutants the earlier run did not have (another range, an edited line) run too.
        survivors = [
            m
            for m, key in zip(mutants, _numbered([m.key(module) for m in mutants]), strict=True)
            if key not in killed
        ]
        earlier_kills = len(mutants) - len(survivors)
        mutants = survivors
        print(f"{len(mutants)} of them were not killed in {options.survivors_of}", file=sys.stderr)
    if options.list:
        for m in mutants:
            print(f"{m.line:5} {m.operator:12} {m.original}\n{'':18} {m.mutated}")
        return 0
    tests = options.tests or default_tests(module)
    allowed = load_allowed(options.allowed)
    started = time.monotonic()
    results: list[Result] = []
    if options.skip_allowed:  # listed as unable to change behaviour: reported, not run again
        results = [Result(m, "survived", 0, None, 0.0) for m in mutants if m.key(module) in allowed]
        mutants = [m for m in mutants if m.key(module) not in allowed]
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        workers = Workers(max(1, options.jobs), module, Path(scratch))
        try:
            _run_all(workers, module, mutants, tests, options, results)
        except KeyboardInterrupt:
            # The report below covers the mutants that finished; the source was never written.
            print(f"\ninterrupted after {len(results)} of {len(mutants)} mutants", file=sys.stderr)
        finally:
            workers.stop()
    assert (ROOT / module).read_bytes() == original, "the source changed during the run"
    for result in results:
        result.allowed = allowed.get(result.mutant.key(module))
    seconds = time.monotonic() - started
    print_report(module, results, seconds, earlier_kills)
    if options.json:
        document = to_json(module, tests, results, seconds, earlier_kills)
        document["results"] = [*carried, *document["results"]]
        options.json.write_text(json.dumps(document, indent=1) + "\n")
    return 1 if any(r.status == "error" for r in results) else 0


def _numbered(keys: Sequence[tuple[str, ...]]) -> list[tuple[tuple[str, ...], int]]:
    seen: collections.Counter[tuple[str, ...]] = collections.Counter()
    numbered = []
    for key in keys:
        numbered.append((key, seen[key]))
        seen[key] += 1
    return numbered


def _run_all(
    workers: Workers,
    module: str,
    mutants: list[Mutant],
    tests: list[str],
    options: argparse.Namespace,
    results: list[Result],
) -> None:
    """Appends each mutant's result to ``results`` as it finishes (in order)."""
    began = time.monotonic()
    coverage = collect_coverage(workers.first_copy(), module, tests, options.prefer)
    print(
        f"coverage: {len(set().union(*coverage.tests_by_line.values()) - {''})} tests cover "
        f"{len(coverage.tests_by_line)} lines, in {time.monotonic() - began:.0f} s",
        file=sys.stderr,
    )
    if coverage.failed:
        print(f"these tests fail unmutated and are left out: {coverage.failed}", file=sys.stderr)

    readers = module_readers((ROOT / module).read_bytes())

    def one(mutant: Mutant) -> Result:
        selected = coverage.tests_for(
            mutant.lines,
            frozenset().union(*(readers.get(line, frozenset()) for line in mutant.lines)),
        )
        if options.max_tests:
            selected = selected[: options.max_tests]
        if options.max_seconds:
            spent, kept = 0.0, list[str]()
            for test in selected:  # always at least one
                if kept and spent + coverage.durations.get(test, 0.0) > options.max_seconds:
                    break
                kept.append(test)
                spent += coverage.durations.get(test, 0.0)
            selected = kept
        budget = options.timeout_base + options.timeout_factor * sum(
            coverage.durations.get(t, 0.0) for t in selected
        )
        return workers.run(mutant, selected, budget)

    pool = ThreadPoolExecutor(max_workers=max(1, options.jobs))
    try:
        for done, result in enumerate(pool.map(one, mutants), start=1):
            results.append(result)
            if result.status in ("survived", "uncovered", "error"):  # now, not only at the end
                print(
                    f"\r{result.status}: line {result.mutant.line} {result.mutant.operator}: "
                    f"{result.mutant.mutated[:100]}",
                    file=sys.stderr,
                )
            print(
                f"\r{done}/{len(mutants)} mutants, "
                f"{sum(r.status in ('killed', 'timeout') for r in results)} killed",
                end="",
                file=sys.stderr,
                flush=True,
            )
    except BaseException:
        workers.stop()  # Ctrl-C: kill the running tests, start no more
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    print(file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
