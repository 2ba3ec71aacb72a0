"""The imports of the ``orthogen`` package's modules, read with ``ast`` (nothing is imported).

Used by tests/test_package_layering.py (no import from a higher floor) and tests/test_bundle_metadata.py
(every package a bundle's code loads is pinned in its metadata).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "shared" / "orthogen"


def module_name(path: Path, package_dir: Path) -> str:
    """The dotted name of a module file (``orthogen/data/__init__.py`` -> ``orthogen.data``)."""
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """{dotted name: file} of every module and subpackage of the package."""
    return {module_name(path, package_dir): path for path in sorted(package_dir.rglob("*.py"))}


def _statements(tree: ast.Module, load_time_only: bool):
    """Every node of ``tree``; with ``load_time_only``, not the bodies of functions (they run when called)."""
    if not load_time_only:
        yield from ast.walk(tree)
        return
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending.extend(ast.iter_child_nodes(node))


def imported_modules(path: Path, package_dir: Path, modules: dict[str, Path], load_time_only: bool = False
                     ) -> list[tuple[int, str]]:
    """(line, absolute module name) of each import in one file, sorted, in functions too unless
    ``load_time_only`` (then only what importing the file runs).

    ``from a.b import c`` imports module ``a.b.c`` when that is a module of the package, else ``a.b``;
    relative imports are resolved against the file's own package.
    """
    name = module_name(path, package_dir)
    own_package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in _statements(ast.parse(path.read_text(), filename=str(path)), load_time_only):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                base = ".".join(own_package[: len(own_package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add((node.lineno, submodule if submodule in modules else base))
    return sorted(found)


def is_of_package(module: str, package_dir: Path = PACKAGE_DIR) -> bool:
    return module == package_dir.name or module.startswith(package_dir.name + ".")


def is_standard_library(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def third_party_loaded_by(names: set[str], package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The top-level names of the non-standard-library modules that importing the package's modules
    ``names`` loads: their own imports, their parent packages' and those of every package module they
    load, transitively (imports inside functions are not followed)."""
    modules = package_modules(package_dir)
    pending, seen, third_party = list(names), set(), set()
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for parent in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if parent in seen or parent not in modules:
                continue
            seen.add(parent)
            for _, imported in imported_modules(modules[parent], package_dir, modules, load_time_only=True):
                if is_of_package(imported, package_dir):
                    pending.append(imported)
                elif not is_standard_library(imported):
                    third_party.add(imported.split(".")[0])
    return third_party
