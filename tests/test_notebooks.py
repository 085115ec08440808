"""The four Colab notebooks: committed clean, calling only commands that exist, and running end to end.

The slow test executes them in order the way "Run all" does, in local mode with SASOKE_NOTEBOOK_QUICK=1
(the small synthetic sample, a few epochs) and everything written under a temporary SASOKE_NOTEBOOK_WORKDIR.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["1_setup_and_data_prep.ipynb", "2_train_tokenizer.ipynb", "3_train_soke.ipynb",
             "4_inference.ipynb"]
BADGE_URL = "https://colab.research.google.com/github/SaSOKE-team/SaSOKE/blob/main/notebooks/{name}"


def read_notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "notebooks" / name, as_version=nbformat.NO_CONVERT)


def code_cells(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def commands_called(sources: list[str]) -> tuple[set[str], set[str]]:
    """Scripts (string literals ending in .py) and modules (the literal after "-m" in a list) named."""
    scripts, modules = set(), set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
                scripts.add(node.value)
            if isinstance(node, ast.List | ast.Tuple):
                values = [elt.value if isinstance(elt, ast.Constant) else None for elt in node.elts]
                modules.update(values[i + 1] for i, value in enumerate(values[:-1])
                               if value == "-m" and isinstance(values[i + 1], str))
    return scripts, modules


def module_exists(module: str) -> bool:
    """A module of this repository must be a file here; anything else (pip) must be importable."""
    if module.split(".")[0] == "mGPT":
        path = REPO.joinpath(*module.split("."))
        return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_valid_v4_without_outputs(name: str) -> None:
    notebook = read_notebook(name)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: cell {cell.id} was committed with outputs; clear them"
            assert cell.execution_count is None, f"{name}: cell {cell.id} has an execution count; clear it"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_starts_with_badge_then_config_then_setup(name: str) -> None:
    notebook = read_notebook(name)
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert f"]({BADGE_URL.format(name=name)})" in first.source
    assert "colab-badge.svg" in first.source
    config, setup = code_cells(notebook)[:2]
    assert 'DRIVE_ROOT = "/content/drive/MyDrive/SOKE_data"' in config
    assert "import google.colab" in setup and "def run(" in setup
    assert "SASOKE_NOTEBOOK_QUICK" in setup and "SASOKE_NOTEBOOK_WORKDIR" in setup


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_code_is_plain_python_without_shell_magics(name: str) -> None:
    # `!cmd` ignores failures, so "Run all" would go on after a failed step; every step goes through run().
    for source in code_cells(read_notebook(name)):
        ast.parse(source)
        for line in source.splitlines():
            assert not line.lstrip().startswith(("!", "%")), f"{name}: magic line {line!r}"


def test_every_called_script_and_module_exists() -> None:
    sources = [source for name in NOTEBOOKS for source in code_cells(read_notebook(name))]
    scripts, modules = commands_called(sources)
    assert {"train.py", "test.py", "scripts/get_motion_code.py", "scripts/build_dictionary.py",
            "scripts/prepare_mbart.py", "scripts/make_tiny_mbart.py"} <= scripts
    assert {"mGPT.data.synthetic", "mGPT.data.prepare", "mGPT.generate", "pip"} <= modules
    missing = sorted(s for s in scripts if not (REPO / s).is_file())
    missing += sorted(m for m in modules if not module_exists(m))
    assert missing == [], f"the notebooks call commands that do not exist: {missing}"


def test_command_finder_sees_scripts_and_modules() -> None:
    scripts, modules = commands_called(['run([sys.executable, "scripts/nope.py", "-m"])',
                                        'run([sys.executable, "-m", "mGPT.nope", "--out", "x"])'])
    assert scripts == {"scripts/nope.py"} and modules == {"mGPT.nope"}
    assert not module_exists("mGPT.nope") and module_exists("mGPT.generate") and module_exists("pip")


@pytest.mark.slow
def test_notebooks_run_in_order_in_quick_local_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    # A kernelspec of our own, first on JUPYTER_PATH, so the kernel is this interpreter (this venv),
    # whatever "python3" kernel the machine or user has installed.
    kernel_dir = tmp_path / "jupyter" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "SaSOKE test kernel", "language": "python"}))
    work = tmp_path / "work"
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("SASOKE_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("SASOKE_NOTEBOOK_WORKDIR", str(work))

    for name in NOTEBOOKS:
        notebook = read_notebook(name)
        client = NotebookClient(notebook, kernel_name="python3", timeout=1200,
                                resources={"metadata": {"path": str(REPO)}})
        try:
            client.execute()
        except CellExecutionError as err:
            pytest.fail(f"{name} failed:\n{err}")
        nbformat.write(notebook, tmp_path / name)  # executed copy, to look at when something is off

    tokenizer = work / "results" / "mgpt" / "demo_deto" / "test_rank_0"
    generator = work / "results" / "mgpt" / "demo_soke" / "test_rank_0"
    assert json.loads((tokenizer / "test_summary.json").read_text())["stage"] == "vae"
    assert json.loads((generator / "test_summary.json").read_text())["stage"] == "lm"
    assert len(list((generator / "videos").glob("*.mp4"))) == 4
    assert (work / "results" / "mgpt" / "demo_soke" / "generate" / "free_text.mp4").stat().st_size > 0
    assert not (REPO / "data" / "sample_small").exists(), "QUICK mode wrote into the repository"
