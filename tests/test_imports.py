"""Import hygiene of the package, checked on the source with ``ast`` (nothing is imported).

1. The graph of intra-package imports has no cycles. Every import counts, also those inside functions; only those
   under ``if TYPE_CHECKING:`` do not. ``from .pkg import name`` is an edge to the submodule ``pkg.name`` when that
   file exists, else to ``pkg`` (its ``__init__``). A package's ``__init__`` importing its submodules is fine, but a
   submodule importing its own package's ``__init__`` (``from . import name`` in ``pkg/x.py``, with ``pkg/__init__``
   importing ``x``) is a cycle.
2. No private name crosses modules: no ``from M import _name`` (``_name`` not a module) with ``M`` another module of
   the package. Private *modules* (``from .. import _core``, ``from . import _common``) and the public names defined
   in them are fine.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fastinterp"


def extension_modules(package: Path) -> set[str]:
    """Compiled modules of ``package`` that have no ``.py`` file: built files and stubs in the tree, plus the
    ``pybind11_add_module`` / ``nanobind_add_module`` targets of a ``CMakeLists.txt`` next to the package."""
    found = set()
    for f in package.rglob("*"):
        if f.suffix in (".so", ".pyd", ".pyi"):
            rel = f.relative_to(package.parent).with_name(f.name.split(".")[0])
            found.add(".".join(rel.parts))
    cmake = package.parent / "CMakeLists.txt"
    if cmake.exists():
        for name in re.findall(r"(?:pybind11|nanobind)_add_module\(\s*(\w+)", cmake.read_text()):
            found.add(f"{package.name}.{name}")
    return found


def _modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file under ``package``."""
    mods = {}
    for f in sorted(package.rglob("*.py")):
        parts = f.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """All import statements, at any depth, except those in the body of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _from_base(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The absolute name of the module ``from <base> import ...`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module
    parts = module.split(".") if is_package else module.split(".")[:-1]
    up = node.level - 1
    if up > len(parts) - 1:
        return None  # beyond the top-level package
    parts = parts[: len(parts) - up]
    return ".".join([*parts, node.module] if node.module else parts)


class _Package:
    def __init__(self, package: Path, extensions: set[str] | None = None) -> None:
        self.root = package.name
        self.base_dir = package.parent
        self.files = _modules(package)
        self.known = set(self.files) | (extension_modules(package) if extensions is None else set(extensions))

    def inside(self, name: str | None) -> bool:
        return name is not None and (name == self.root or name.startswith(self.root + "."))

    def nearest(self, name: str) -> str | None:
        """``name`` or its longest prefix that is a module of the package."""
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            cand = ".".join(parts[:k])
            if cand in self.known:
                return cand
        return None

    def where(self, path: Path, line: int) -> str:
        return f"{path.relative_to(self.base_dir).as_posix()}:{line}"

    def statements(self) -> Iterator[tuple[str, Path, ast.Import | ast.ImportFrom, str | None]]:
        """(importing module, its file, the statement, the absolute base module for ``from`` imports)."""
        for mod, path in self.files.items():
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            is_pkg = path.name == "__init__.py"
            for node in _imports(tree):
                base = _from_base(mod, is_pkg, node) if isinstance(node, ast.ImportFrom) else None
                yield mod, path, node, base


def import_graph(package: Path, extensions: set[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """module -> {imported module -> ["file:line", ...]} over the package's ``.py`` modules (no self-edges)."""
    pkg = _Package(package, extensions)
    graph: dict[str, dict[str, list[str]]] = {m: {} for m in pkg.files}
    for mod, path, node, base in pkg.statements():
        targets = []
        if isinstance(node, ast.Import):
            targets = [pkg.nearest(a.name) for a in node.names if pkg.inside(a.name)]
        elif pkg.inside(base):
            assert base is not None
            for a in node.names:
                sub = f"{base}.{a.name}"
                targets.append(sub if sub in pkg.known else pkg.nearest(base))
        for t in targets:
            if t is not None and t != mod and t in pkg.files:  # compiled modules have no imports of ours
                graph[mod].setdefault(t, []).append(pkg.where(path, node.lineno))
    return graph


def _strongly_connected(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def _shortest_cycle(graph: dict[str, dict[str, list[str]]], start: str, comp: set[str]) -> list[str]:
    """The shortest cycle ``start -> ... -> start`` inside the component ``comp`` (BFS)."""
    prev: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v]):
            if w not in comp:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if w not in seen:
                seen.add(w)
                prev[w] = v
                queue.append(w)
    raise AssertionError(f"{start} is on no cycle of its component")  # pragma: no cover


def import_cycles(package: Path, extensions: set[str] | None = None) -> list[str]:
    """Readable import cycles: per strongly connected component, the shortest cycle through each of its modules
    (duplicates dropped), every edge with the ``file:line`` of its import."""
    graph = import_graph(package, extensions)
    reports = []
    for comp in _strongly_connected(graph):
        cycles: list[list[str]] = []
        seen: set[tuple[str, ...]] = set()
        for m in comp:
            cyc = _shortest_cycle(graph, m, set(comp))
            body = cyc[:-1]
            k = body.index(min(body))
            key = tuple(body[k:] + body[:k])
            if key not in seen:
                seen.add(key)
                cycles.append([*key, key[0]])
        lines = [f"import cycle among {len(comp)} modules: {', '.join(comp)}"]
        for cyc in cycles:
            steps = [cyc[0]] + [f"{b}  ({graph[a][b][0]})" for a, b in zip(cyc, cyc[1:], strict=False)]
            lines.append("    " + "\n      -> ".join(steps))
        reports.append("\n".join(lines))
    return reports


def private_imports(package: Path, extensions: set[str] | None = None) -> list[str]:
    """``file:line name`` for every ``from M import _name`` with ``M`` another module of the package and ``_name``
    a private (single leading underscore, not dunder) name that is not a module."""
    pkg = _Package(package, extensions)
    bad = []
    for mod, path, node, base in pkg.statements():
        if not isinstance(node, ast.ImportFrom) or not pkg.inside(base) or base == mod:
            continue
        for a in node.names:
            private = a.name.startswith("_") and not (a.name.startswith("__") and a.name.endswith("__"))
            if private and f"{base}.{a.name}" not in pkg.known:
                bad.append(f"{pkg.where(path, node.lineno)} {a.name}  (from {base})")
    return sorted(bad, key=lambda s: (s.split(":")[0], int(s.split(":")[1].split()[0])))


# ----------------------------------------------------------------------------------------------------------- tests


def test_no_import_cycles():
    cycles = import_cycles(PACKAGE)
    assert not cycles, "intra-package import cycles:\n" + "\n".join(cycles)


def test_no_private_names_imported_across_modules():
    bad = private_imports(PACKAGE)
    assert not bad, "private names imported from other fastinterp modules:\n" + "\n".join(bad)


def test_the_extension_module_is_known():
    # `from .. import _core` must read as a private module, not as a private name
    assert "fastinterp._core" in extension_modules(PACKAGE)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)


def test_checkers_report_cycles_and_private_imports(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from . import a, sub\nfrom .c import C\nVERSION = '1'\n",
            # a <-> b, the back edge inside a function
            "pkg/a.py": "from .b import thing\n",
            "pkg/b.py": "thing = 1\n\ndef f():\n    from .a import other\n    return other\n",
            # a submodule importing its own package's __init__
            "pkg/sub/__init__.py": "from .x import X\nfrom .y import Y\n",
            "pkg/sub/x.py": "from . import helper\nX = 1\n",
            "pkg/sub/y.py": "from .. import c\nY = 1\n",  # `c` is a submodule: an edge to pkg.c, not to pkg
            "pkg/sub/z.py": "from .. import VERSION\n",  # a name: an edge to pkg (no cycle, nothing imports z)
            # only under TYPE_CHECKING: no cycle
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import D\nC = 1\n",
            "pkg/d.py": "from .c import C\nD = 1\n",
            # absolute imports: f <-> g
            "pkg/f.py": "import pkg.g\n",
            "pkg/g.py": "from pkg import f\n",
            # private modules and their public names are fine; private names are not
            "pkg/_priv.py": "def public():\n    pass\n\ndef _hidden():\n    pass\n",
            "pkg/e.py": (
                "from ._priv import public\n"
                "from . import _priv, _core\n"
                "from ._priv import _hidden\n"
                "def g():\n"
                "    from pkg.b import _secret as s\n"
                "    from .c import __doc__\n"
            ),
        },
    )
    root = tmp_path / "pkg"
    ext = {"pkg._core"}

    graph = import_graph(root, ext)
    assert set(graph["pkg.sub.y"]) == {"pkg.c"}
    assert set(graph["pkg.sub.z"]) == {"pkg"}
    assert set(graph["pkg.sub.x"]) == {"pkg.sub"}
    assert "pkg.d" not in graph["pkg.c"]
    assert set(graph["pkg.e"]) == {"pkg._priv", "pkg.b", "pkg.c"}  # _core is compiled: no edge

    comps = _strongly_connected(graph)
    assert comps == [["pkg.a", "pkg.b"], ["pkg.f", "pkg.g"], ["pkg.sub", "pkg.sub.x"]]
    report = "\n".join(import_cycles(root, ext))
    assert "pkg.sub\n      -> pkg.sub.x  (pkg/sub/__init__.py:1)\n      -> pkg.sub  (pkg/sub/x.py:1)" in report
    assert "pkg.a\n      -> pkg.b  (pkg/a.py:1)\n      -> pkg.a  (pkg/b.py:4)" in report
    assert "pkg/f.py:1" in report and "pkg/g.py:1" in report

    assert private_imports(root, ext) == ["pkg/e.py:3 _hidden  (from pkg._priv)", "pkg/e.py:5 _secret  (from pkg.b)"]

    # the checks pass once the package is clean
    for rel in ("b.py", "sub/x.py", "g.py"):
        (root / rel).write_text("thing = 1\nX = 1\n")
    (root / "e.py").write_text("from ._priv import public\nfrom . import _priv, _core\n")
    assert import_cycles(root, ext) == [] and private_imports(root, ext) == []
