"""The package's layers, read from the sources with ``ast``: who imports whom, file sizes, one definition.

Bottom up: the shared modules at the top of ``edgeseg/`` → ``edgeseg.tflite`` (the file
format) → model, data, train, convert, verify → device, demo → cli. The runtime, what
a device runs, rests on the shared modules, ``edgeseg.tflite`` and the data readers only.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EDGESEG = REPO / "edgeseg"
GENERATED = {EDGESEG / "tflite" / "_metadata_schema.py"}  # flatc output, not written by hand
MAX_LINES = 400
# The shared base: modules at the top of edgeseg/ that every layer may use.
SHARED = {"edgeseg", "edgeseg.errors", "edgeseg.config", "edgeseg.preprocess", "edgeseg.labels",
          "edgeseg.atomic", "edgeseg.sizes", "edgeseg.deps", "edgeseg.plots"}
ABOVE_RUNTIME = ("convert", "model", "train", "verify", "cli", "device", "demo")


def sources(root: Path = EDGESEG) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if p not in GENERATED)


def edgeseg_imports(path: Path) -> set[str]:
    """Every edgeseg module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "edgeseg":  # from edgeseg import x: x may be a module
                found |= {f"edgeseg.{a.name}" for a in node.names if a.name != "__version__"}
    return {n for n in found if n == "edgeseg" or n.startswith("edgeseg.")}


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_runtime_imports_nothing_of_convert_model_train_verify_or_cli() -> None:
    files = sources(EDGESEG / "runtime")
    assert len(files) >= 10
    bad = {rel(p): sorted(n for n in edgeseg_imports(p) if n.split(".")[1] in ABOVE_RUNTIME)
           for p in files}
    assert not {k: v for k, v in bad.items() if v}


def test_tflite_package_imports_only_the_shared_base() -> None:
    files = sources(EDGESEG / "tflite")
    assert {p.name for p in files} >= {"flatbuffer.py", "metadata.py", "description.py"}
    bad = {rel(p): sorted(n for n in edgeseg_imports(p)
                          if n not in SHARED and not n.startswith("edgeseg.tflite"))
           for p in files}
    assert not {k: v for k, v in bad.items() if v}


def test_shared_base_imports_no_package() -> None:
    top = [p for p in EDGESEG.glob("*.py") if p.name != "__init__.py"]
    assert {f"edgeseg.{p.stem}" for p in top} <= SHARED, "a new top-level module: add it to a package"
    bad = {rel(p): sorted(edgeseg_imports(p) - SHARED) for p in top}
    assert not {k: v for k, v in bad.items() if v}


@pytest.mark.parametrize("root", ["edgeseg", "tests", "benchmarks"])
def test_no_hand_written_module_over_400_lines(root: str) -> None:
    long = {rel(p): n for p in sources(REPO / root)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split by responsibility: {long}"


def test_a_constant_is_defined_in_one_module() -> None:
    """A module-level constant with the same name and value in two modules is a copy."""
    where: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in sources():
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            for t in targets:
                if isinstance(t, ast.Name) and t.id.lstrip("_").isupper():
                    where[(t.id, ast.dump(value))].append(rel(p))
    copies = {name: files for (name, _), files in where.items() if len(files) > 1}
    assert not copies


def _used_names(tree: ast.AST, source: str) -> set[str]:
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    # Quoted annotations ("Table") and names in __all__ are strings.
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            used |= set(re.findall(r"[A-Za-z_]\w*", n.value))
    return used


def test_no_module_re_exports_what_it_imports() -> None:
    """Compatibility shims (``from x import y  # noqa: F401``, ``__all__`` of imported names)
    are gone: a name is imported where it is used, from the module that defines it.
    Package ``__init__`` files are the packages' public faces and may re-export."""
    shims: dict[str, list[str]] = {}
    for p in sources():
        if p.name == "__init__.py":
            continue
        text = p.read_text()
        tree = ast.parse(text)
        imported = [a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom)
                    and (node.module or "").startswith("edgeseg") for a in node.names]
        exported: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                    for t in node.targets):
                exported = {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant)}
        body = ast.Module(body=[n for n in tree.body if not isinstance(n, ast.ImportFrom)],
                          type_ignores=[])
        used = {n.id for n in ast.walk(body) if isinstance(n, ast.Name)}
        quoted = _used_names(body, text) - exported
        unused = [n for n in imported if n not in used and n not in quoted or n in exported]
        if unused:
            shims[rel(p)] = unused
    assert not shims


def test_no_package_imports_another_packages_private_names() -> None:
    """Packages talk through public functions (compare calls convert.layer_errors, not the
    converter's internals); ``_name`` stays inside its package."""
    private = {}
    for p in sources():
        here = ".".join(p.relative_to(REPO).with_suffix("").parts[:2])
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgeseg."):
                there = ".".join(node.module.split(".")[:2])
                names = [a.name for a in node.names if a.name.startswith("_")]
                if names and there != here:
                    private[rel(p)] = (node.module, names)
    assert not private
