"""Layering (README "Code layout"): the core imports no FiftyOne and no glue, the backends no glue, the glue not the
delegated operations, the operators only the SDK and its forms' facade, the package face nothing heavy; and no two
modules of the package import each other.

Every module is found on disk, so a module added later is checked too. Imports are read from the source (all of
them, also the ones inside functions) and, for the core and the backends, checked again by importing every module in
a process where FiftyOne cannot be imported.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sampd_plugin"

#: what a core module may import from the package: the core, the typed errors, the segmenter interface
CORE_MAY_IMPORT = ("sampd_plugin.core", "sampd_plugin.errors", "sampd_plugin.backends.base")
#: what a backend may import from the package (the synthetic segmenter: the scene generator it segments)
BACKENDS_MAY_IMPORT = ("sampd_plugin.backends", "sampd_plugin.core", "sampd_plugin.errors",
                       "sampd_plugin.synthetic.scene")
#: backends that use FiftyOne when it is installed, inside a function (the model zoo's checkpoint cache)
OPTIONAL_FIFTYONE = {"sampd_plugin.backends.checkpoints"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(*layers: str) -> List[str]:
    """Every module of the package under ``sampd_plugin/<layer>/`` (the package itself included)."""
    return sorted(module_name(p) for layer in layers for p in (PACKAGE / layer).rglob("*.py"))


def imports(module: str) -> Set[str]:
    """The absolute names of everything ``module`` imports, at the top or inside functions; ``from a import b``
    counts as ``a`` and ``a.b`` (``b`` may be a module)."""
    path = ROOT / (module.replace(".", os.sep) + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", os.sep) / "__init__.py"
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def python(code: str, cwd: Path) -> str:
    """Runs ``code`` in a fresh interpreter with this checkout on the path; its stdout (it must succeed)."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def is_fiftyone(name: str) -> bool:
    return name == "fiftyone" or name.startswith("fiftyone.")


def within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def ours(name: str) -> bool:
    return within(name, ("sampd_plugin",))


@pytest.mark.parametrize("module", modules("core"))
def test_core_module_imports_no_fiftyone_and_no_glue(module):
    bad = sorted(n for n in imports(module) if is_fiftyone(n) or (ours(n) and not within(n, CORE_MAY_IMPORT)))
    assert not bad, f"{module} imports {bad}: the core may import only {CORE_MAY_IMPORT} and no FiftyOne"


@pytest.mark.parametrize("module", modules("backends"))
def test_backend_imports_no_glue(module):
    names = imports(module)
    bad = sorted(n for n in names if ours(n) and not within(n, BACKENDS_MAY_IMPORT))
    assert not bad, f"{module} imports {bad}: a backend may import only {BACKENDS_MAY_IMPORT}"
    if module not in OPTIONAL_FIFTYONE:
        assert not any(map(is_fiftyone, names)), f"{module} imports FiftyOne"


@pytest.mark.parametrize("module", modules("fo"))
def test_glue_does_not_import_the_delegated_operations(module):
    bad = sorted(n for n in imports(module) if within(n, ("sampd_plugin.ops.delegated", "sampd_plugin.benchmark")))
    assert not bad, f"{module} imports {bad}: the glue may use ops.ownership / ops.threads only"


@pytest.mark.parametrize("module", ["sampd_plugin.ops.ownership", "sampd_plugin.ops.threads", *modules("benchmark")])
def test_fiftyone_free_modules(module):
    """Ownership and threads (used by the glue and by plain worker processes) and the paper-tables CLI (it reads the
    official trees directly) import no FiftyOne."""
    bad = sorted(n for n in imports(module) if is_fiftyone(n) or n == "sampd_plugin.datasets.fiftyone_io")
    assert not bad, f"{module} imports {bad}"


def test_core_and_backends_import_where_fiftyone_is_missing(tmp_path):
    """Every core and backend module imports (and imports nothing of FiftyOne) where FiftyOne cannot be imported, as
    on a GPU machine without it; the SDK names of the package face then fail only when used."""
    code = (
        "import importlib, sys\n"
        "sys.modules['fiftyone'] = None  # `import fiftyone` raises ImportError\n"
        f"for name in {modules('core', 'backends')!r}:\n"
        "    importlib.import_module(name)\n"
        "import sampd_plugin\n"
        "assert 'track' in dir(sampd_plugin)\n"
        "try:\n"
        "    sampd_plugin.track\n"
        "except ImportError:\n"
        "    print('lazy-ok')\n"
    )
    assert python(code, tmp_path) == "lazy-ok"


def test_importing_the_package_face_imports_neither_fiftyone_nor_torch(tmp_path):
    python("import sys, sampd_plugin, sampd_plugin.datasets, sampd_plugin.core, sampd_plugin.fo, sampd_plugin.ops\n"
           "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('fiftyone', 'torch'))\n"
           "assert not heavy, heavy\n", tmp_path)


def test_operators_import_only_the_sdk_and_the_forms_facade():
    """The operators use the public SDK (``import sampd_plugin as sp``) and :mod:`sampd_plugin.fo.ui`, nothing else
    of the package; every name of both resolves."""
    allowed = {"sampd_plugin", "sampd_plugin.fo", "sampd_plugin.fo.ui"}
    for path in sorted((ROOT / "operators").glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add(node.module)
        bad = sorted(n for n in found if ours(n) and n not in allowed)
        assert not bad, f"{path.name} imports {bad}"
    import sampd_plugin as sp
    from sampd_plugin.fo import ui

    for module in (sp, ui):
        assert all(getattr(module, name) is not None for name in module.__all__)


def test_the_forms_facade_imports_neither_torch_nor_the_tracking_code(tmp_path):
    python("import sys, sampd_plugin.fo.ui\n"
           "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('sampd_plugin.core'))\n"
           "assert not heavy, heavy\n", tmp_path)


def _cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle of ``graph`` (as a path that returns to its start), else ``[]``."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_cycles():
    """No two modules of the package import each other, directly or through others (imports inside functions
    included; a package's ``__init__`` counts only for what it imports itself)."""
    names = set(modules("")) - {"sampd_plugin"}  # the face names the SDK lazily, as strings
    graph = {m: {n for n in imports(m) if n in names and n != m} for m in names}
    assert not _cycle(graph), " -> ".join(_cycle(graph))


#: the one module that reads FiftyOne's private attributes (each where FiftyOne 1.22 has no public equivalent)
FIFTYONE_PRIVATE_READER = "sampd_plugin/fo/sources.py"
#: private names that are public API nonetheless (a namedtuple's fields) or have no public accessor outside the
#: glue: the operators' context keeps the running delegated operation's id private
PRIVATE_ALLOWED = {"_fields", "_delegated_operation_id"}


def private_reads(path: Path) -> List[str]:
    """``name._attr`` reads of ``path`` (``self`` / ``cls`` excluded) and ``getattr(x, "_attr")`` calls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and str(node.args[1].value).startswith("_")):
            found.append(f"{path.name}:{node.lineno} .{node.args[1].value}")
    return [f for f in found if f.rpartition(".")[2] not in PRIVATE_ALLOWED]


def test_fiftyone_private_attributes_are_read_in_one_module():
    """The glue, the operations, the FiftyOne import / export and the operators use FiftyOne's public API; where
    FiftyOne 1.22 has none, the helpers of ``fo/sources.py`` read the private attribute (and say why)."""
    paths = [*(PACKAGE / "fo").glob("*.py"), *(PACKAGE / "ops").glob("*.py"), PACKAGE / "datasets" / "fiftyone_io.py",
             *(ROOT / "operators").glob("*.py")]
    bad = [r for p in sorted(paths) if p.relative_to(ROOT).as_posix() != FIFTYONE_PRIVATE_READER
           for r in private_reads(p)]
    assert not bad, f"private attributes read outside {FIFTYONE_PRIVATE_READER}: {bad}"
    assert private_reads(ROOT / FIFTYONE_PRIVATE_READER)  # the checker sees them where they are
