"""The tree shows the pipeline: docs/architecture.md lists clue's layers, lowest first, and the imports allowed to
reach up; this walks every import in clue/ against that table, so the documented layering and the code cannot drift
apart. It also checks that the architecture table (the one layout table: the README and CONTRIBUTING.md point to it)
names every package and top-level module, that clue/ keeps at most 12 top-level modules, and that every file the
docs name exists."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLUE = ROOT / "clue"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"

Layers = dict[str, int]


def documented_layers(text: str) -> Layers:
    """`| 3 | `clue.records`, `clue.baseline` | ... |` rows of the architecture table: module prefix -> layer."""
    layers: Layers = {}
    for number, modules in re.findall(r"^\| (\d+) \| ((?:`clue[\w.]*`(?:, )?)+) \|", text, re.M):
        for module in re.findall(r"`(clue[\w.]*)`", modules):
            layers[module] = int(number)
    return layers


def allowed_upward(text: str) -> set[tuple[str, str]]:
    """`- `importer` → `imported`: reason` bullets."""
    return set(re.findall(r"^- `(clue[\w.]*)` → `(clue[\w.]*)`:", text, re.M))


def layer_of(module: str, layers: Layers) -> int:
    """The layer of the longest documented prefix of `module`."""
    matches = [p for p in layers if module == p or module.startswith(p + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no layer of docs/architecture.md")
    return layers[max(matches, key=len)]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package_root: Path) -> Iterator[tuple[str, int]]:
    """Every clue module `path` imports, at module level, in functions or under TYPE_CHECKING alike."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("clue"):
            if node.module == "clue":
                yield from ((f"clue.{alias.name}", node.lineno) for alias in node.names)
            else:
                yield node.module, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import (clue imports by absolute name)")
        elif isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "clue")


def upward_imports(package_root: Path, layers: Layers) -> list[tuple[str, str, str]]:
    """(importer, imported, where) for each import from a lower layer to a higher one."""
    found = []
    for path in sorted((package_root / "clue").rglob("*.py")):
        importer = module_name(path, package_root)
        for imported, line in imports(path, package_root):
            if layer_of(imported, layers) > layer_of(importer, layers):
                found.append((importer, imported, f"{path.relative_to(package_root)}:{line}"))
    return found


def test_no_import_reaches_from_a_lower_layer_up_to_a_higher_one() -> None:
    text = ARCHITECTURE.read_text()
    layers, allowed = documented_layers(text), allowed_upward(text)
    assert len(layers) >= 12, f"the layer table of docs/architecture.md was not found: {layers}"
    found = upward_imports(ROOT, layers)
    unlisted = [f"{where}: {a} -> {b}" for a, b, where in found if (a, b) not in allowed]
    assert not unlisted, "imports from a lower layer up to a higher one, not listed in docs/architecture.md:\n" + (
        "\n".join(unlisted)
    )
    stale = allowed - {(a, b) for a, b, _ in found}
    assert not stale, f"docs/architecture.md allows upward imports the code no longer has: {sorted(stale)}"


def test_the_scan_finds_an_upward_import(tmp_path: Path) -> None:
    """The scan itself: a statistics module importing the run package is caught, a downward import is not."""
    (tmp_path / "clue" / "statistics").mkdir(parents=True)
    (tmp_path / "clue" / "statistics" / "paired.py").write_text("def f() -> None:\n    from clue.run import gate\n")
    (tmp_path / "clue" / "run").mkdir()
    (tmp_path / "clue" / "run" / "gate.py").write_text("from clue.statistics import paired\n")
    layers = documented_layers(ARCHITECTURE.read_text())
    assert upward_imports(tmp_path, layers) == [("clue.statistics.paired", "clue.run", "clue/statistics/paired.py:2")]


def top_level() -> list[str]:
    """clue's packages and top-level modules, as dotted names."""
    names = [f"clue.{p.stem}" for p in CLUE.glob("*.py") if p.stem != "__init__"]
    names += [f"clue.{p.name}" for p in CLUE.iterdir() if (p / "__init__.py").is_file()]
    return sorted(names)


def test_clue_keeps_at_most_twelve_top_level_modules() -> None:
    modules = [p.name for p in CLUE.glob("*.py")]
    assert len(modules) <= 12, f"{len(modules)} top-level modules in clue/: {sorted(modules)}"


def test_the_layout_table_names_every_package_and_module() -> None:
    named = set(documented_layers(ARCHITECTURE.read_text()))
    missing = [m for m in top_level() if m not in named]
    assert not missing, f"docs/architecture.md's layout table does not name {missing}"


def test_every_path_the_docs_name_exists() -> None:
    """A file moved in the tree must not leave the docs pointing at where it was (README, CONTRIBUTING.md, docs/,
    the code's own comments and docstrings, the tests', tiers', studies' and benchmarks')."""
    texts = [README, ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md"), ROOT / "pyproject.toml"]
    for folder in ("clue", "tests", "tiers", "studies", "benchmarks"):
        texts += [*(ROOT / folder).rglob("*.py")]
    pattern = r"(?<![\w/.-])(?:clue|tests|tiers|studies|benchmarks)/[\w/-]+\.(?:py|md|xsd)"
    named = {(path, found) for path in texts for found in re.findall(pattern, path.read_text())}
    missing = sorted(f"{path.relative_to(ROOT)}: {found}" for path, found in named if not (ROOT / found).is_file())
    assert not missing, "\n".join(missing)
