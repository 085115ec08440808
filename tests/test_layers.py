"""Data flows one way: no module of mGPT imports a layer above its own (README, "How it works").

Below mGPT.models, code never sees the run's config: stage boundaries are function arguments. Only a
command-line module there (one with a `main`) may read a config file, to turn it into those arguments.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Bottom to top. A module may import its own layer and the layers below it.
LAYERS = [
    ("mGPT.errors", "mGPT.files", "mGPT.layout", "mGPT.config"),
    ("mGPT.kinematics",),
    ("mGPT.data",),
    ("mGPT.archs",),
    ("mGPT.metrics",),
    ("mGPT.render",),
    ("mGPT.models",),
    ("mGPT.generate", "mGPT.app", "mGPT.notebook"),
]


def layer_of(module: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS here and to the README")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "mGPT"]


def sources() -> list[Path]:
    return sorted(p for p in (REPO / "mGPT").rglob("*.py") if module_name(p) != "mGPT")


def test_no_module_imports_a_layer_above_it() -> None:
    upward = []
    for path in sources():
        here = module_name(path)
        for line, imported in imported_modules(path):
            if layer_of(imported) > layer_of(here):
                upward.append(f"{path.relative_to(REPO)}:{line} ({here}) imports {imported}")
    assert upward == []


def test_only_the_top_layers_and_command_lines_read_the_config() -> None:
    readers = []
    for path in sources():
        here = module_name(path)
        if layer_of(here) in (0, layer_of("mGPT.models"), layer_of("mGPT.generate")):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        has_main = any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)
        if any(name == "mGPT.config" for _, name in imported_modules(path)) and not has_main:
            readers.append(here)
    assert readers == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("from mGPT.models.lm_module import GeneratorModule\nimport mGPT.config\n")
    assert [name for _, name in imported_modules(source)] == ["mGPT.models.lm_module", "mGPT.config"]
    assert layer_of("mGPT.models.lm_module") > layer_of("mGPT.data.prepare")
    assert layer_of("mGPT.data.dictionary") > layer_of("mGPT.kinematics") > layer_of("mGPT.config")


def test_every_module_has_a_layer() -> None:
    for path in sources():
        layer_of(module_name(path))
