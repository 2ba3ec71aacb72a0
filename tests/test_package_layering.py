"""The package's floors, checked: no module of ``orthogen`` imports from a higher floor than its own.

The floors are read from docs/DESIGN.md's table (bottom floor first), so the doc and this test cannot drift:
a row names one or more top-level subpackages or modules of ``orthogen`` in backticks, all on that row's
floor. Every import is read with ``ast`` (absolute ``orthogen.x`` imports and relative ones, also inside
functions); importing from the same floor or a lower one is allowed.

The package's own ``orthogen/__init__.py`` runs before any of its submodules, so it is on the bottom floor:
it may import only the bottom floor, and any module may import it (``from orthogen import InputError``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from package_imports import PACKAGE_DIR, REPO, imported_modules, is_of_package, package_modules

DESIGN = REPO / "docs" / "DESIGN.md"
FLOOR_TABLE_HEADER = "| floor | subpackage / module |"


@dataclass(frozen=True)
class Floor:
    level: int  # 0 = the bottom floor
    name: str


def floors_of_design(text: str) -> dict[str, Floor]:
    """{top-level subpackage or module name: its floor} from the design's floor table (rows bottom first)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(FLOOR_TABLE_HEADER))
    rows = []
    for line in lines[start + 2:]:  # past the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")[:2]])
    floors: dict[str, Floor] = {}
    for level, (floor_name, names) in enumerate(rows):
        floor = Floor(level, floor_name)
        for name in re.findall(r"`([^`]+)`", names):
            assert name not in floors, f"docs/DESIGN.md: `{name}` is on two floors"
            floors[name] = floor
    return floors


def floor_of(module: str, floors: dict[str, Floor]) -> Floor:
    """The floor of a dotted module name: its top-level subpackage's; the package itself is the bottom floor."""
    parts = module.split(".")
    if len(parts) == 1:
        return min(floors.values(), key=lambda floor: floor.level)
    return floors[parts[1]]


def upward_imports(package_dir: Path, floors: dict[str, Floor], repo: Path) -> list[str]:
    """One line per import of a module on a higher floor than the importing file's."""
    modules = package_modules(package_dir)
    found = []
    for name, path in modules.items():
        own = floor_of(name, floors)
        for line, imported in imported_modules(path, package_dir, modules):
            if not is_of_package(imported, package_dir):
                continue
            theirs = floor_of(imported, floors)
            if theirs.level > own.level:
                found.append(f"{path.relative_to(repo)}:{line} ({own.name} floor) imports {imported} "
                             f"({theirs.name} floor, higher)")
    return found


def top_level_names(package_dir: Path) -> set[str]:
    """The package's top-level subpackages and modules, without the package's own ``__init__``."""
    return {name.split(".")[1] for name in package_modules(package_dir) if "." in name}


def test_the_floor_table_places_every_top_level_module_and_names_only_real_ones():
    floors = floors_of_design(DESIGN.read_text())
    assert top_level_names(PACKAGE_DIR) - set(floors) == set(), "modules of orthogen without a row in docs/DESIGN.md"
    assert set(floors) - top_level_names(PACKAGE_DIR) == set(), "docs/DESIGN.md names modules orthogen lacks"


def test_no_module_imports_from_a_higher_floor():
    upward = upward_imports(PACKAGE_DIR, floors_of_design(DESIGN.read_text()), REPO)
    assert not upward, "upward imports (docs/DESIGN.md, floor table):\n" + "\n".join(upward)


def write_module(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_upward_imports_are_found_when_relative_inside_functions_or_of_the_package_itself(tmp_path):
    design = ("| floor | subpackage / module | what it holds |\n|---|---|---|\n"
              "| base | `errors` | errors |\n| files | `io`, `png` | files |\n| pictures | `montage` | pictures |\n")
    package_dir = tmp_path / "orthogen"
    write_module(package_dir / "__init__.py", "from orthogen.errors import Error\nfrom orthogen import io\n")
    write_module(package_dir / "errors.py", "class Error(Exception):\n    pass\n")
    write_module(package_dir / "png.py", "from .io import reader\n")
    write_module(package_dir / "montage.py", "import orthogen.io.reader\nfrom .errors import Error\n")
    write_module(package_dir / "io" / "__init__.py", "from . import reader\n")
    write_module(package_dir / "io" / "reader.py",
                 "from orthogen import Error\nfrom orthogen.png import write\n\n"
                 "def read():\n    from ..montage import picture\n    import orthogen.montage\n")

    upward = upward_imports(package_dir, floors_of_design(design), tmp_path)

    assert upward == [
        "orthogen/__init__.py:2 (base floor) imports orthogen.io (files floor, higher)",
        "orthogen/io/reader.py:5 (files floor) imports orthogen.montage (pictures floor, higher)",
        "orthogen/io/reader.py:6 (files floor) imports orthogen.montage (pictures floor, higher)",
    ]
