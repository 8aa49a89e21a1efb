"""The architecture, executable: one table says what each package or top-level module of
``uws_adapter`` may import of the others; every module is checked against it (imports inside
functions included; imports under ``if TYPE_CHECKING:`` are for the type checker only and are
not counted), the module import graph has no cycle, and the architecture page of the manual
shows the same table."""

from __future__ import annotations

import ast
import importlib
import re
import warnings
from pathlib import Path
from typing import Dict, FrozenSet, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "uws_adapter"
ANY = frozenset({"*"})


def _units(*names: str) -> FrozenSet[str]:
    return frozenset(names)


#: Unit (a package or a top-level module of uws_adapter) -> the units it may import.
#: ``__init__`` is the lazy public API; ``*`` means any unit.
MAY_IMPORT: Dict[str, FrozenSet[str]] = {
    "errors": _units(),
    "forksafe": _units(),
    "metrics": _units("forksafe", "runfiles"),
    "runfiles": _units(),
    "localfiles": _units(),
    "waits": _units("errors"),
    "model": _units("errors", "localfiles"),
    "wire": _units("model"),
    "xmlsafe": _units("errors"),
    "jsonsafe": _units("errors"),
    "logs": _units("errors"),
    "redaction": _units("errors", "localfiles", "model", "xmlsafe"),
    "edge": _units("xmlsafe"),
    "callbacks": _units("errors", "jsonsafe", "model", "wire", "xmlsafe"),
    "soap": _units("edge", "errors", "model", "wire", "xmlsafe"),
    "store": _units("errors", "logs", "model", "redaction", "waits"),
    "provisioning": _units(
        "errors", "jsonsafe", "logs", "metrics", "model", "redaction", "store", "waits", "wire", "xmlsafe"
    ),
    "rest": _units("errors", "jsonsafe", "model", "provisioning", "store", "wire"),
    "uws": _units("errors", "forksafe", "model", "provisioning", "soap", "store", "wire", "xmlsafe"),
    "receiver": _units(
        "callbacks",
        "edge",
        "errors",
        "logs",
        "metrics",
        "model",
        "redaction",
        "settings",
        "store",
        "waits",
        "wire",
        "xmlsafe",
    ),
    "serving": _units("edge", "errors", "jsonsafe", "logs", "metrics", "receiver", "settings"),
    "emulator": _units(
        "callbacks",
        "edge",
        "errors",
        "jsonsafe",
        "model",
        "provisioning",
        "redaction",
        "rest",
        "serving",
        "soap",
        "wire",
        "xmlsafe",
    ),
    "bridge": _units(
        "callbacks",
        "edge",
        "errors",
        "jsonsafe",
        "metrics",
        "model",
        "provisioning",
        "receiver",
        "redaction",
        "rest",
        "serving",
        "soap",
        "store",
        "waits",
        "wire",
        "xmlsafe",
    ),
    "settings": _units(
        "callbacks",
        "emulator",
        "errors",
        "localfiles",
        "model",
        "provisioning",
        "redaction",
        "soap",
        "store",
        "waits",
        "wire",
        "xmlsafe",
    ),
    "config": _units("errors", "provisioning", "rest", "settings", "store", "uws", "wire"),
    "netcheck": _units("errors", "provisioning", "redaction"),
    "wsdldiff": _units("errors", "localfiles", "netcheck", "provisioning", "redaction", "soap", "wire", "xmlsafe"),
    "doctor": _units("config", "errors", "netcheck", "redaction", "rest", "store", "wire", "wsdldiff"),
    "tracking": _units("model", "store"),
    "demo": _units("emulator", "model", "provisioning", "receiver", "rest", "serving", "store", "tracking", "uws"),
    "cli": ANY,
    "__init__": ANY,
    "__main__": _units("cli"),
    "wsgi": _units("receiver"),
    "receiver_async": _units("receiver"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: Dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _type_checking_only(tree: ast.AST) -> Set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    skipped: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _imports(module: str) -> Iterator[Tuple[str, int]]:
    """The modules of ours that ``module`` imports (anywhere in it), with the line."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    skipped = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "uws_adapter":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "uws_adapter":
            assert node.level == 0, f"{module}: relative import (the package uses absolute imports)"
            submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
            # ``from uws_adapter import metrics`` imports the submodule, not the whole public API.
            if len(submodules) < len(node.names):
                yield node.module, node.lineno
            for name in submodules:
                yield name, node.lineno


GRAPH: Dict[str, Set[str]] = {
    module: {name for name, _ in _imports(module) if name in MODULES and name != module} for module in MODULES
}


def test_every_unit_is_in_the_table() -> None:
    assert sorted({_unit(m) for m in MODULES} - set(MAY_IMPORT) - {"wsdl"}) == []
    assert sorted(set(MAY_IMPORT) - {_unit(m) for m in MODULES}) == []


@pytest.mark.parametrize("unit", sorted(MAY_IMPORT))
def test_each_unit_imports_only_what_the_table_allows(unit: str) -> None:
    allowed = MAY_IMPORT[unit]
    if allowed == ANY:
        return
    offending = [
        f"{module}:{line} imports {name}"
        for module in MODULES
        if _unit(module) == unit
        for name, line in _imports(module)
        if _unit(name) != unit and _unit(name) not in allowed
    ]
    assert offending == []


def _cycles() -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = 0
    for root in GRAPH:
        if root in index:
            continue
        work: List[Tuple[str, Iterator[str]]] = [(root, iter(sorted(GRAPH[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_module_import_graph_has_no_cycle() -> None:
    assert _cycles() == []


def _documented_table() -> Dict[str, FrozenSet[str]]:
    """The architecture table of the manual: rows ``| `unit` | ... | may import |``."""
    page = ROOT / "docs" / "architecture.md"
    text = page.read_text() if page.exists() else (ROOT / "README.md").read_text()
    rows: Dict[str, FrozenSet[str]] = {}
    for line in text.splitlines():
        match = re.match(r"\| `([a-z_]+)(?:/|\.py)?` \|[^|]*\| (.*) \|$", line)
        if match and match.group(1) in MAY_IMPORT:
            named = re.findall(r"`([a-z_]+)(?:/|\.py)?`", match.group(2).split(";")[0])
            rows[match.group(1)] = ANY if "everything" in match.group(2) else frozenset(named)
    return rows


def test_the_manual_shows_the_same_table() -> None:
    documented = _documented_table()
    expected = {unit: allowed for unit, allowed in MAY_IMPORT.items() if unit not in ("__init__", "__main__")}
    assert {u: sorted(a) for u, a in documented.items()} == {u: sorted(a) for u, a in expected.items()}


def _public_names(module: str) -> Optional[FrozenSet[str]]:
    """A module's ``__all__`` (None when it declares none); the compatibility modules' warnings muted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        names = getattr(importlib.import_module(module), "__all__", None)
    return None if names is None else frozenset(names)


def test_one_rule_for_all() -> None:
    """Every package declares ``__all__``; every name in an ``__all__`` exists; and another unit
    imports from a module that declares ``__all__`` only the names listed there (or submodules)."""
    offending = []
    for module, path in MODULES.items():
        if path.name == "__main__.py":
            continue  # running it is its whole job
        public = _public_names(module)
        if path.name == "__init__.py" and public is None:
            offending.append(f"{module}: a package without __all__")
        for name in sorted(public or ()):
            if not hasattr(importlib.import_module(module), name):
                offending.append(f"{module}.__all__ names {name}, which it does not define")
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.ImportFrom) and node.module in MODULES and _unit(node.module) != _unit(module)
            ):
                continue
            listed = _public_names(node.module)
            for alias in node.names:
                if listed is not None and alias.name not in listed and f"{node.module}.{alias.name}" not in MODULES:
                    offending.append(f"{module}:{node.lineno} imports {alias.name}, not in {node.module}.__all__")
    assert offending == []
