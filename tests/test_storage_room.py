"""The storage package (claude_keys/db/) is one room: the only place that imports a
database driver, names a vendor or speaks a vendor's own SQL; and no module of the
package is part of an import circle. Read from the source, so it fails the moment a
change lets a dialect leak above the room."""
import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_backend

PACKAGE = Path(__file__).resolve().parent.parent / "claude_keys"
ROOM = PACKAGE / "db"
SCRATCH: set = set()  # modules above the room allowed a private SQLite file of their own: none
DRIVERS = {"sqlite3", "psycopg", "psycopg_pool"}
VENDOR_MODULES = {"sqlite", "postgres"}  # claude_keys.db's backends: only the room picks one
DIALECT_NAMES = {"sqlite", "postgres", "postgresql"}
# SQL only one of the two backends speaks.
VENDOR_SQL = re.compile(r"\bPRAGMA\b|\bpg_[a-z_]+\(|\bpg_(tables|class|namespace)\b|\bsqlite_(master|schema)\b"
                        r"|\bON COMMIT\b|\binformation_schema\b|::(bigint|text|int)\b|\bto_regclass\b"
                        r"|\bclock_timestamp\b|\bCOPY \w+ \(|\bBEGIN IMMEDIATE\b|\bbulk_mode\b")


def _outside_the_room():
    return [p for p in PACKAGE.rglob("*.py") if ROOM not in p.parents]


def _docstrings(tree) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _leaks(path: Path, text: str | None = None) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
            found += [f"{where} imports {n}" for n in names if n in DRIVERS and path not in SCRATCH]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in DRIVERS and path not in SCRATCH:
                found.append(f"{where} imports {module}")
            if module.split(".")[-1] in VENDOR_MODULES or (
                    module.endswith("db") and any(a.name in VENDOR_MODULES for a in node.names)):
                found.append(f"{where} imports a backend of claude_keys.db directly")
        elif isinstance(node, ast.Attribute) and node.attr == "dialect":
            found.append(f"{where} asks which database is in use (.dialect)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value.strip().lower() in DIALECT_NAMES:
                found.append(f"{where} names a dialect: {node.value!r}")
            elif path not in SCRATCH and VENDOR_SQL.search(node.value):
                found.append(f"{where} holds vendor-only SQL: {VENDOR_SQL.search(node.value).group()!r}")
    return found


def test_no_driver_vendor_or_dialect_outside_the_storage_package():
    leaks = [leak for path in _outside_the_room() for leak in _leaks(path)]
    assert leaks == []


def test_the_check_finds_what_it_looks_for():
    """The check itself: each kind of leak, in a module above the room, is found."""
    planted = ('import sqlite3\nfrom .db import postgres\n'
               'def f(conn):\n    """PRAGMA in a docstring is prose."""\n'
               '    if conn.dialect == "postgres":\n'
               '        conn.execute("PRAGMA user_version")\n'
               '    conn.execute("CREATE TEMP TABLE t (x int) ON COMMIT DROP")\n')
    leaks = _leaks(PACKAGE / "planted.py", planted)
    assert len(leaks) == 6, leaks  # sqlite3, the backend, .dialect, 'postgres', PRAGMA, ON COMMIT


def _import_graph() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports (at any depth of
    the code: a lazy import inside a function is an arrow too)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        arrows = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                target = node.module or "" if not node.level else ".".join(
                    base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    arrows.add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                arrows.update(a.name for a in node.names)
        graph[name] = {a for a in arrows if a in modules and a != name}
    return graph


def _circles(graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_no_import_circles():
    assert _circles(_import_graph()) == []


def test_the_room_imports_nothing_above_it():
    """claude_keys.db may use the package's leaf modules (errors, values), nothing else."""
    graph = _import_graph()
    above = {f"{m} -> {a}" for m, arrows in graph.items() if m.startswith("claude_keys.db")
             for a in arrows if not a.startswith("claude_keys.db") and a not in (
                 "claude_keys.errors", "claude_keys.values")}
    assert above == set()
    leaves = {a for m in ("claude_keys.errors", "claude_keys.values") for a in graph[m]}
    assert leaves <= {"claude_keys.errors"}
