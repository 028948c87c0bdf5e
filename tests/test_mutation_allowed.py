"""benchmarks/mutation_allowed.toml, checked: every entry is a mutant mutation.py still makes.

An entry matches a mutant by its text (module, operator, the lines before and after), so moving
or reformatting the code it names leaves the entry matching nothing, silently: the survivor it
explained is then reported as unexplained, and nobody notices until the next mutation run. The
mutants are only made here (parsed and compiled), never run.
"""

from __future__ import annotations

import collections
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "mutation.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks its module up while building classes
    spec.loader.exec_module(module)
    return module


mutation = _load_script()
ENTRIES: list[dict[str, Any]] = tomllib.loads(mutation.ALLOWED_FILE.read_text())["allowed"]
BY_MODULE: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
for _entry in ENTRIES:
    BY_MODULE[_entry["module"]].append(_entry)


def _key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    # What mutation.py's load_allowed matches on: the texts with whitespace collapsed.
    return (
        entry["module"],
        entry["operator"],
        " ".join(entry["original"].split()),
        " ".join(entry["mutated"].split()),
    )


@pytest.mark.parametrize("module", sorted(BY_MODULE))
def test_every_allowed_survivor_is_a_mutant_of_its_module_today(module: str) -> None:
    path = ROOT / module
    assert path.is_file(), f"{module} is gone: move its entries in {mutation.ALLOWED_FILE.name}"
    entries = BY_MODULE[module]
    # Only the operators the entries name: the slow part is compiling each mutant, and a mutant
    # of one operator is never the same source as one of another, so the rest change nothing.
    operators = sorted({e["operator"] for e in entries})
    made = {m.key(module) for m in mutation.make_mutants(path.read_bytes(), (), operators)}
    stale = [e for e in entries if _key(e) not in made]
    assert not stale, (
        f"entries of {mutation.ALLOWED_FILE.name} that match no mutant of {module} (find the "
        f"same mutation with `python benchmarks/mutation.py {module} --list` and copy its "
        "texts, or delete the entry if the code is gone):\n"
        + "\n".join(f"  {e['operator']}: {e['original']}\n    -> {e['mutated']}" for e in stale)
    )
