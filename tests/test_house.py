"""The shape of the code, checked: arrows run one way between the rooms of ``app/``.

web → service → (bandits, stats, storage); web → reporting → stats; every room may use
``domain`` and ``settings``. The pure cores never import the web layer or a database;
the service never imports flask; nothing imports upward or in a circle; no project
import hides inside a function to dodge one. The same graph is what
``python3 ../shared/hooks/import_graph.py`` prints.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.domain.experiments import MODES as MODE_NAMES
from app.service.modes import MODES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "bandits", "stats")
#: which rooms each room may import (besides itself and the standard library / third parties)
ALLOWED = {
    "bandits": set(),
    "stats": set(),
    "app.settings": set(),
    "app.domain": {"bandits", "app.settings"},
    "app.storage": {"app.domain", "app.settings"},
    "app.service": {"app.domain", "app.storage", "bandits", "stats", "app.settings"},
    "app.reporting": {"stats", "app.domain"},
    "app.web": {"app.service", "app.reporting", "app.domain", "app.storage", "bandits", "stats", "app.settings"},
    "app": {"app.web"},
}
IMPURE = ("flask", "werkzeug", "sqlite3", "sqlite_utils", "psycopg", "psycopg_pool")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _room(module: str) -> str:
    for room in sorted(ALLOWED, key=len, reverse=True):
        if module == room or module.startswith(room + "."):
            return room
    raise AssertionError(f"{module} is in no room")


def _imports(module: str, path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module, inside a function) for every import of the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    inside = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
              and fn.name != "create_app" for node in ast.walk(fn)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES] or [base]
        else:
            continue
        found.extend((node.lineno, name, id(node) in inside) for name in names)
    return found


def _project(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_rooms_import_only_what_the_arrows_allow():
    wrong = []
    for module, path in MODULES.items():
        room = _room(module)
        for line, name, _ in _imports(module, path):
            if name.split(".")[0] in IMPURE and room in ("bandits", "stats", "app.domain", "app.service",
                                                        "app.reporting", "app.settings"):
                wrong.append(f"{module}:{line} imports {name}")
            target = _project(name)
            if target is None:
                continue
            target_room = _room(target)
            if target_room != room and target_room not in ALLOWED[room]:
                wrong.append(f"{module}:{line} ({room}) imports {target} ({target_room})")
    assert wrong == []


def test_no_project_import_inside_a_function():
    hidden = [f"{module}:{line} imports {name}" for module, path in MODULES.items()
              for line, name, inside in _imports(module, path) if inside and _project(name)]
    assert hidden == []


def test_no_import_circles():
    graph = {module: {_project(name) for _, name, _ in _imports(module, path)} - {None, module}
             for module, path in MODULES.items()}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in trail:
                cycle = trail[trail.index(nxt):]
                top = min(cycle, key=len)
                if not all(x == top or x.startswith(top + ".") for x in cycle):  # package re-exports
                    circles.append(" -> ".join(cycle + [nxt]))
            elif nxt not in done:
                visit(nxt, trail + [nxt])
        done.add(node)

    done: set[str] = set()
    for module in graph:
        if module not in done:
            visit(module, [module])
    assert circles == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    assert len(MODULES[module].read_text(encoding="utf-8").splitlines()) <= 700


def test_every_declared_mode_has_an_implementation():
    assert set(MODE_NAMES) == set(MODES)
