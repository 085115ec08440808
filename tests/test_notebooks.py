"""The four Colab notebooks: committed clean, sharing one setup (mGPT/notebook.py), calling only commands
that exist, and running end to end.

The slow tests execute them in order the way "Run all" does, with SASOKE_NOTEBOOK_QUICK=1 (the small
synthetic sample, a few epochs):
- in local mode, everything written under a temporary SASOKE_NOTEBOOK_WORKDIR;
- in Colab mode, with stand-ins for what lies outside the repository (tests/colab_stand_ins: Drive, pip,
  gdown, the Hugging Face hub, TensorBoard) and a temporary folder as /content: the setup cell clones the
  working tree, notebook 1 downloads and unpacks the fixtures, and notebook 3 runs a second time in a
  fresh runtime, resuming from last.ckpt on Drive.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from mGPT import notebook as nb
from mGPT.config import load_config

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["1_setup_and_data_prep.ipynb", "2_train_tokenizer.ipynb", "3_train_soke.ipynb",
             "4_inference.ipynb"]
BADGE_URL = "https://colab.research.google.com/github/SaSOKE-team/SaSOKE/blob/main/notebooks/{name}"
GITHUB_URL = "https://github.com/SaSOKE-team/SaSOKE.git"
STAND_INS = REPO / "tests" / "colab_stand_ins"
SOKE_DRIVE_IDS = {  # SPEC 7: the public Drive ids of SOKE's README
    "smplx_zip": "1YIXddvvBJPQVRuKON2Xc9EEDXikRTteo", "mean": "1NH-eVtS0nNjMjCwae-A1ii5sxj44C3bo",
    "std": "1FHHWS0GPM2s6S2PB2JHv4ufdEbzezuKW", "tokenizer": "18HdPeXwz4O6LY4FZMC5BZ9rja4pcUTFk"}
MBART_HUB_ID = "facebook/mbart-large-cc25"


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
    assert f'REPO_URL = "{GITHUB_URL}"' in config  # users clone the real repository unless they edit it
    assert "import google.colab" in setup and '"clone"' in setup and '"pull", "--ff-only"' in setup
    assert "from mGPT.notebook import setup" in setup and "setup(DRIVE_ROOT)" in setup


def test_the_four_setup_cells_are_one_short_cell() -> None:
    # A fix to the setup lands in mGPT/notebook.py; the cell only gets the code and calls it.
    setups = {name: code_cells(read_notebook(name))[1] for name in NOTEBOOKS}
    assert len(set(setups.values())) == 1, "the setup cells differ: keep them identical, code goes in the module"
    setup = setups[NOTEBOOKS[0]]
    assert len(setup.splitlines()) <= 30 and "def " not in setup
    # the cell honours the same stand-in for /content as the module
    assert '"SASOKE_CONTENT_DIR"' in setup and '"SASOKE_CONTENT_DIR"' in (REPO / "mGPT/notebook.py").read_text()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_code_is_plain_python_without_shell_magics(name: str) -> None:
    # `!cmd` ignores failures, so "Run all" would go on after a failed step; every step goes through run().
    for source in code_cells(read_notebook(name)):
        ast.parse(source)
        for line in source.splitlines():
            assert not line.lstrip().startswith(("!", "%")), f"{name}: magic line {line!r}"


def test_notebooks_leave_the_layout_names_to_the_project() -> None:
    # paths the project defines once (cache folder, split CSV, evaluation folder) are not spelled again
    sources = "\n".join(source for name in NOTEBOOKS for source in code_cells(read_notebook(name)))
    for spelled in ('"_cache"', '"test_rank_0"', "re_aligned", '["body", "lhand", "rhand"]'):
        assert spelled not in sources


def test_every_called_script_and_module_exists() -> None:
    sources = [source for name in NOTEBOOKS for source in code_cells(read_notebook(name))]
    sources.append((REPO / "mGPT" / "notebook.py").read_text())
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


# ---- mGPT.notebook ---------------------------------------------------------------------------------------


def test_notebook_module_imports_only_the_standard_library() -> None:
    # In Colab it is imported before setup() installs the packages (omegaconf, lightning, ...).
    code = ("import sys; import mGPT.notebook; "
            "print(sorted({name.split('.')[0] for name in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    loaded = set(ast.literal_eval(result.stdout))
    assert "mGPT" in loaded
    assert loaded.isdisjoint({"torch", "numpy", "pandas", "omegaconf", "transformers", "gdown", "huggingface_hub"})


def test_colab_paths_follow_the_drive_layout_and_the_content_stand_in(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SASOKE_CONTENT_DIR", raising=False)
    assert nb.on_content("/content/drive/MyDrive/SOKE_data") == Path("/content/drive/MyDrive/SOKE_data")
    monkeypatch.setenv("SASOKE_CONTENT_DIR", str(tmp_path))
    assert nb.on_content("/content/drive/MyDrive/x") == tmp_path / "drive" / "MyDrive" / "x"
    assert nb.on_content("/mnt/elsewhere") == Path("/mnt/elsewhere")  # only Colab's /content moves

    drive = tmp_path / "drive" / "MyDrive" / "SOKE_data"
    paths = nb.colab_paths("/content/drive/MyDrive/SOKE_data")
    assert paths.data_root == drive / "data" / "Isharah"
    assert paths.cache_dir == drive / "data" / "Isharah" / "_cache"
    assert paths.mbart_full == drive / "deps" / "mbart-large-cc25"
    assert paths.mbart_path == drive / "deps" / "mbart-large-cc25-ar"
    assert paths.smplx_file == drive / "deps" / "smpl_models" / "smplx" / "SMPLX_NEUTRAL.npz"
    assert (paths.stats_dir, paths.checkpoints) == (drive / "smpl-x", drive / "checkpoints")
    assert paths.folder_exp == drive / "experiments" / "mgpt"
    assert paths.folder_results == drive / "results" / "mgpt"


@pytest.mark.parametrize("colab", [True, False])
def test_notebook_configs_load_with_the_common_overrides(tmp_path: Path, colab: bool) -> None:
    # SOKE's configs in Colab: the Colab-mode run (QUICK) uses the demo configs, so they are checked here
    paths = nb.colab_paths(tmp_path / "SOKE_data") if colab else nb.local_paths(tmp_path, small=True)
    runtime = nb.Runtime(in_colab=colab, quick=False, repo=REPO, paths=paths, gpu=None)
    assert runtime.backend == "skeleton"  # no SMPL-X files yet
    names = runtime.notebook_names()
    assert names["DATA_ROOT"] == paths.data_root and names["run"] is nb.run
    for cfg_name in (paths.tokenizer_cfg, paths.generator_cfg):
        cfg = load_config(REPO / cfg_name, runtime.common_overrides)
        assert Path(cfg.DATASET.DATA_ROOT) == paths.data_root and Path(cfg.FOLDER_EXP) == paths.folder_exp
        assert Path(cfg.LM.MBART_PATH) == paths.mbart_path and cfg.KINEMATICS.BACKEND == "skeleton"
    assert (REPO / paths.tokenizer_cfg).parent.name == ("configs" if colab else "demo")
    assert nb.colab_paths(tmp_path, small=True).generator_cfg == nb.local_paths(tmp_path).generator_cfg


def test_config_overrides_drop_unset_values() -> None:
    assert nb.config_overrides({"TRAIN.BATCH_SIZE": 8, "PRECISION": None, "NAME": "x"}) == [
        "TRAIN.BATCH_SIZE=8", "NAME=x"]


def test_run_streams_output_and_stops_on_failure(capsys: pytest.CaptureFixture) -> None:
    nb.run([sys.executable, "-c", "print('مرحبا')"])
    assert "مرحبا" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match=r"exit code 3 from: .*\n\.\.\.the reason"):
        nb.run([sys.executable, "-c", "import sys; print('the reason'); sys.exit(3)"])


def fake_gdown(files: dict[str, bytes], calls: list[str]) -> SimpleNamespace:
    """gdown.download(id=..., output=...): writes files[id]; an unknown id writes nothing, like a quota error."""

    def download(id: str, output: str, quiet: bool = False) -> str:
        calls.append(id)
        if id in files:
            Path(output).write_bytes(files[id])
        return output

    return SimpleNamespace(download=download)


def test_fetch_from_drive_downloads_once_through_a_part_file(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "gdown", fake_gdown({"good": b"weights"}, calls))
    dest = tmp_path / "checkpoints" / "vae" / "tokenizer.ckpt"
    nb.fetch_from_drive("good", dest)
    nb.fetch_from_drive("good", dest)  # already there: not downloaded again
    assert dest.read_bytes() == b"weights" and calls == ["good"]
    with pytest.raises(RuntimeError, match=r"Drive file bad failed .* put it at .*std\.pt"):
        nb.fetch_from_drive("bad", tmp_path / "std.pt")
    assert not (tmp_path / "std.pt").exists()


def zip_of(path: Path, files: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path.read_bytes()


@pytest.mark.parametrize("layout", ["soke", "bare"])
def test_install_smplx_unpacks_the_zip_into_smplx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  layout: str) -> None:
    if layout == "soke":  # SOKE's zip: smpl_models/{smpl,smplh,smplx,mano}/ (README: unzip into deps/smpl_models)
        files = {"smpl_models/smplx/SMPLX_NEUTRAL.npz": b"npz", "smpl_models/smplx/SMPLX_to_J14.pkl": b"j14",
                 "smpl_models/mano/MANO_RIGHT.pkl": b"mano", "__MACOSX/smpl_models/smplx/SMPLX_NEUTRAL.npz": b""}
    else:  # a zip of the model files alone
        files = {"models/SMPLX_NEUTRAL.npz": b"npz", "models/SMPLX_to_J14.pkl": b"j14"}
    monkeypatch.setenv("SASOKE_CONTENT_DIR", str(tmp_path / "content"))
    (tmp_path / "content").mkdir()
    archive = zip_of(tmp_path / "fixture.zip", files)
    monkeypatch.setitem(sys.modules, "gdown", fake_gdown({"zip-id": archive}, []))
    dest = tmp_path / "drive" / "deps" / "smpl_models"
    nb.install_smplx("zip-id", dest)
    assert (dest / "smplx" / "SMPLX_NEUTRAL.npz").read_bytes() == b"npz"
    assert (dest / "smplx" / "SMPLX_to_J14.pkl").read_bytes() == b"j14"
    assert (dest / "mano" / "MANO_RIGHT.pkl").is_file() == (layout == "soke")
    assert not (tmp_path / "content" / "smpl_models_unzipped").exists()  # the runtime's disk is freed


def test_install_smplx_without_the_model_file_names_the_archive(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SASOKE_CONTENT_DIR", str(tmp_path))
    archive = zip_of(tmp_path / "fixture.zip", {"smpl_models/smpl/SMPL_NEUTRAL.pkl": b"smpl"})
    monkeypatch.setitem(sys.modules, "gdown", fake_gdown({"zip-id": archive}, []))
    with pytest.raises(RuntimeError, match=r"smpl_models\.zip holds no SMPLX_NEUTRAL\.npz; put .*smplx/"):
        nb.install_smplx("zip-id", tmp_path / "deps" / "smpl_models")


def test_fetch_mbart_takes_safetensors_and_the_tokenizer_once(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    hub = SimpleNamespace(
        list_repo_files=lambda repo_id: ["config.json", "model.safetensors", "pytorch_model.bin",
                                         "sentencepiece.bpe.model", "flax_model.msgpack"],
        snapshot_download=lambda repo_id, local_dir, allow_patterns: calls.append((repo_id, allow_patterns)))
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    nb.fetch_mbart(MBART_HUB_ID, tmp_path)
    (repo_id, patterns), = calls
    assert repo_id == MBART_HUB_ID and "model.safetensors" in patterns and "pytorch_model.bin" not in patterns
    assert {"config.json", "sentencepiece.bpe.model"} <= set(patterns)
    for name in ("config.json", "model.safetensors", "sentencepiece.bpe.model"):
        (tmp_path / name).write_text("x")
    nb.fetch_mbart(MBART_HUB_ID, tmp_path)
    assert len(calls) == 1


# ---- running them ----------------------------------------------------------------------------------------


def write_kernel(jupyter_dir: Path, argv: list[str], env: dict[str, str] | None = None) -> None:
    """A kernelspec of our own, first on JUPYTER_PATH, so the kernel is this interpreter (this venv),
    whatever "python3" kernel the machine or user has installed."""
    kernel_dir = jupyter_dir / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    spec = {"argv": [*argv, "-f", "{connection_file}"], "display_name": "SaSOKE test kernel", "language": "python"}
    if env:
        spec["env"] = env
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))


def execute(name: str, cwd: Path, executed_copy: Path) -> nbformat.NotebookNode:
    """Run all cells of notebooks/<name>, failing the test at the first failing cell."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = read_notebook(name)
    client = NotebookClient(notebook, kernel_name="python3", timeout=1200, resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{name} failed:\n{err}")
    finally:
        nbformat.write(notebook, executed_copy)  # to look at when something is off
    return notebook


def output_text(notebook: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)


@pytest.mark.slow
def test_notebooks_run_in_order_in_quick_local_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_kernel(tmp_path / "jupyter", [sys.executable, "-m", "ipykernel_launcher"])
    work = tmp_path / "work"
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("SASOKE_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("SASOKE_NOTEBOOK_WORKDIR", str(work))

    for name in NOTEBOOKS:
        execute(name, REPO, tmp_path / name)

    tokenizer = work / "results" / "mgpt" / "demo_deto" / "test_rank_0"
    generator = work / "results" / "mgpt" / "demo_soke" / "test_rank_0"
    assert json.loads((tokenizer / "test_summary.json").read_text())["stage"] == "vae"
    assert json.loads((generator / "test_summary.json").read_text())["stage"] == "lm"
    assert len(list((generator / "videos").glob("*.mp4"))) == 4
    assert (work / "results" / "mgpt" / "demo_soke" / "generate" / "free_text.mp4").stat().st_size > 0
    assert not (REPO / "data" / "sample_small").exists(), "QUICK mode wrote into the repository"


def git_snapshot(dest: Path) -> str:
    """The working tree (tracked and new files, as CI or a developer has it) committed into a repository
    of its own: the URL the Colab-mode setup cell clones instead of GitHub."""
    listed = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() and not source.is_symlink():  # not .venv, a link to the environment
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = ["git", "-C", dest, "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot of the working tree"], check=True)
    return dest.as_uri()


def colab_fixtures(folder: Path, small_sample: Path, tiny_mbart: Path) -> None:
    """What the stand-in Drive and hub serve: SOKE's four files and the "full" mBART."""
    from test_deto import write_soke_files
    from test_kinematics import write_fake_smplx

    from mGPT.kinematics import build_kinematics

    drive = folder / "drive"
    drive.mkdir(parents=True)
    soke = folder / "soke"
    soke.mkdir()
    write_soke_files(soke, width=32)  # SOKE's checkpoint layout at width 32, with SOKE's 179-dim mean/std
    for key, file_name in (("mean", "mean.pt"), ("std", "std.pt"), ("tokenizer", "tokenizer.ckpt")):
        shutil.copyfile(soke / file_name, drive / SOKE_DRIVE_IDS[key])
    models = folder / "smpl_models"
    write_fake_smplx(models / "smplx", build_kinematics("skeleton"))
    files = {"smpl_models/smplx/SMPLX_NEUTRAL.npz": (models / "smplx" / "SMPLX_NEUTRAL.npz").read_bytes(),
             "smpl_models/smplx/SMPLX_to_J14.pkl": b"unused", "smpl_models/mano/MANO_RIGHT.pkl": b"unused",
             "smpl_models/smpl/SMPL_NEUTRAL.pkl": b"unused"}
    zip_of(drive / SOKE_DRIVE_IDS["smplx_zip"], files)  # laid out like SOKE's zip
    shutil.copytree(tiny_mbart, folder / "hub" / MBART_HUB_ID)


def read_lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.suffix == ".jsonl" else \
        path.read_text().splitlines()


@pytest.mark.slow
def test_notebooks_run_in_colab_mode_with_stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   small_sample: Path, tiny_mbart: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("the Colab setup cell clones the code: needs a git checkout")
    real_content = Path("/content")
    content_existed = real_content.exists()
    content, my_drive, record, fixtures = (tmp_path / name for name in ("content", "MyDrive", "record", "fixtures"))
    for folder in (content, record):
        folder.mkdir()
    # the user's upload: the Isharah folder on Drive, without a cache (notebook 1 builds it)
    shutil.copytree(small_sample, my_drive / "SOKE_data" / "data" / "Isharah", ignore=shutil.ignore_patterns("_cache"))
    colab_fixtures(fixtures, small_sample, tiny_mbart)
    origin = git_snapshot(tmp_path / "origin")
    write_kernel(tmp_path / "jupyter", [sys.executable, str(STAND_INS / "kernel.py")], env={
        "PYTHONPATH": str(STAND_INS),  # google.colab, pip; not this checkout: the code comes from the clone
        "SASOKE_CONTENT_DIR": str(content), "SASOKE_REPO_URL": origin, "SASOKE_NOTEBOOK_QUICK": "1",
        "FAKE_COLAB_MYDRIVE": str(my_drive), "FAKE_COLAB_FIXTURES": str(fixtures), "FAKE_COLAB_RECORD": str(record),
        "TENSORBOARD_BINARY": str(STAND_INS / "tensorboard"),
        "PATH": f"{STAND_INS / 'bin'}{os.pathsep}{os.environ['PATH']}"})  # apt-get
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))

    runs = {}
    for name in NOTEBOOKS[:3]:
        runs[name] = execute(name, content, tmp_path / name)
    # a new runtime: /content and the installed packages are gone, Drive is kept; run notebook 3 again as it is
    shutil.rmtree(content)
    content.mkdir()
    (record / "editable.txt").unlink()
    resumed = execute(NOTEBOOKS[2], content, tmp_path / f"resumed_{NOTEBOOKS[2]}")
    runs[NOTEBOOKS[3]] = execute(NOTEBOOKS[3], content, tmp_path / NOTEBOOKS[3])

    assert (content / "drive" / "MyDrive").resolve() == my_drive.resolve()
    drive = content / "drive" / "MyDrive" / "SOKE_data"  # as the notebooks name it: through the mount
    clone = content / "SaSOKE"
    assert (clone / ".git").is_dir() and (clone / "mGPT" / "notebook.py").is_file()
    assert f"Colab mode (QUICK), code in {clone}" in output_text(runs[NOTEBOOKS[3]])
    installs = read_lines(record / "pip.jsonl")
    assert installs == [["install", "-q", "-r", str(clone / "requirements_colab.txt")],
                        ["install", "-q", "-e", str(clone)]] * 5  # each setup cell, five runs
    downloads = read_lines(record / "downloads.jsonl")
    assert sorted(entry["id"] for entry in downloads if entry["library"] == "gdown") == sorted(SOKE_DRIVE_IDS.values())
    hub, = (entry for entry in downloads if entry["library"] == "huggingface_hub")
    assert hub["repo_id"] == MBART_HUB_ID and hub["local_dir"] == str(drive / "deps" / "mbart-large-cc25")
    assert {"config.json", "model.safetensors", "sentencepiece.bpe.model"} <= set(hub["copied"])

    # notebook 1: the assets in Drive's layout, the cache, the Arabic mBART pruned from the "full" one
    assert (drive / "deps" / "smpl_models" / "smplx" / "SMPLX_NEUTRAL.npz").is_file()
    assert (drive / "deps" / "smpl_models" / "mano" / "MANO_RIGHT.pkl").is_file()
    assert (drive / "smpl-x" / "mean.pt").is_file() and (drive / "checkpoints" / "vae" / "tokenizer.ckpt").is_file()
    assert (drive / "data" / "Isharah" / "_cache" / "stats.npz").is_file()
    assert (drive / "deps" / "mbart-large-cc25-ar" / "vocab_map.npy").is_file()
    assert "missing required items" not in output_text(runs[NOTEBOOKS[0]])
    # notebook 2 trained and tested our tokenizer (Option B) with the SMPL-X files from the zip
    results = drive / "results" / "mgpt"
    tokenizer = json.loads((results / "deto_isharah" / "test_rank_0" / "test_summary.json").read_text())
    assert tokenizer["stage"] == "vae" and tokenizer["kinematics_backend"] == "smplx"
    # notebook 3 trained the generator over SOKE's tokenizer (Option A, the Colab default) ...
    exp = drive / "experiments" / "mgpt" / "soke_isharah"
    trained = load_config(exp / "config.yaml")
    assert Path(trained.TRAIN.PRETRAINED_VAE) == drive / "checkpoints" / "vae" / "tokenizer.ckpt"
    assert Path(trained.DATASET.MEAN_PATH) == drive / "smpl-x" / "mean.pt"
    assert Path(trained.LM.MBART_PATH) == drive / "deps" / "mbart-large-cc25-ar"
    # ... and, in a new runtime, resumed from its last.ckpt on Drive
    assert f"resuming from {exp / 'checkpoints' / 'last.ckpt'}" in output_text(resumed)
    assert "resuming from" not in output_text(runs[NOTEBOOKS[2]])
    logdirs = read_lines(record / "tensorboard.txt")
    expected = [drive / "experiments" / "mgpt" / name / "logs" for name in ("deto_isharah", "soke_isharah")]
    assert [logdirs[i + 1] for i, arg in enumerate(logdirs) if arg == "--logdir"] == [
        str(expected[0]), str(expected[1]), str(expected[1])]
    # notebook 4: scores, videos and the free-text video, on Drive
    generator = json.loads((results / "soke_isharah" / "test_rank_0" / "test_summary.json").read_text())
    assert generator["stage"] == "lm" and generator["kinematics_backend"] == "smplx"
    assert len(list((results / "soke_isharah" / "test_rank_0" / "videos").glob("*.mp4"))) == 4
    assert (results / "soke_isharah" / "generate" / "free_text.mp4").stat().st_size > 0
    assert real_content.exists() == content_existed, "Colab mode wrote to the real /content"
    assert not (REPO / "data" / "Isharah").exists() and not (REPO / "experiments" / "mgpt" / "soke_isharah").exists()
