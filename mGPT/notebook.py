"""What the four notebooks share: where they run, where everything is, and how they run a command.

Each notebook's setup cell first gets the code (in Colab: clones it into /content/SaSOKE, or pulls the
clone), because this module is part of it, and then calls

    globals().update(setup(DRIVE_ROOT).notebook_names())

which mounts Drive and installs the packages in Colab, chooses the paths below, moves into the checkout and
defines the notebook's names: run, config_overrides, IN_COLAB, QUICK, REPO, DATA_ROOT, CACHE_DIR, DEPS,
STATS_DIR, CHECKPOINTS, MBART_PATH, MBART_FULL, SMPLX_DIR, SMPLX_FILE, FOLDER_EXP, FOLDER_RESULTS,
TOKENIZER_CFG, GENERATOR_CFG, GPU, BACKEND, COMMON_OVERRIDES.

Colab mode: data, downloads, experiments and results on Drive (DRIVE_ROOT), so a new runtime resumes.
Local mode: this checkout, the synthetic sample, a tiny offline mBART and the CPU-sized demo configs.

Only the standard library is imported at module level: in Colab this module is imported before setup()
installs the packages. Environment switches, for CI:
    SASOKE_NOTEBOOK_QUICK=1      the demo configs (CPU-sized, also in Colab) and 2-3 epochs; locally the
                                 small synthetic sample
    SASOKE_NOTEBOOK_WORKDIR=DIR  local mode writes data, deps, experiments and results under DIR
    SASOKE_CONTENT_DIR=DIR       stands for Colab's /content (the Colab-mode test runs in a temp folder)
    SASOKE_REPO_URL=URL          what the setup cell clones instead of the config cell's REPO_URL
"""

from __future__ import annotations

import codecs
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mGPT.layout import default_cache_dir

COLAB_CONTENT = Path("/content")
MBART_FULL_FOLDER = "mbart-large-cc25"
MBART_FILES = ("config.json", "sentencepiece.bpe.model", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json")
REPO = Path(__file__).resolve().parents[1]  # the checkout this module belongs to
SOKE_CONFIGS = ("configs/deto.yaml", "configs/soke.yaml")  # SOKE's numbers: tokenizer, generator (GPU)
DEMO_CONFIGS = ("configs/demo/deto.yaml", "configs/demo/soke.yaml")  # the same, sized for a CPU


def in_colab() -> bool:
    try:
        import google.colab  # noqa: F401  (importable only inside Colab)
    except ImportError:
        return False
    return True


def quick() -> bool:
    return os.environ.get("SASOKE_NOTEBOOK_QUICK") == "1"


def content_dir() -> Path:
    """Colab's /content (local disk of the runtime, lost on disconnect), or SASOKE_CONTENT_DIR."""
    return Path(os.environ.get("SASOKE_CONTENT_DIR") or COLAB_CONTENT)


def on_content(path: str | Path) -> Path:
    """A path written for Colab (/content/drive/MyDrive/...) inside content_dir()."""
    path = Path(path)
    if path.is_relative_to(COLAB_CONTENT):
        return content_dir() / path.relative_to(COLAB_CONTENT)
    return path


def run(cmd: Sequence[object], cwd: str | Path | None = None) -> None:
    """Run a command, stream its output into the cell, and stop "Run all" when it fails."""
    cmd = [str(part) for part in cmd]
    print("$", " ".join(cmd), flush=True)
    # TTY_COMPATIBLE=0: Rich progress bars would redraw with cursor moves that a notebook cannot show,
    # adding lines at every refresh; training progress is followed in TensorBoard instead.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TTY_COMPATIBLE": "0"}
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # Arabic may split across chunks
    tail = ""
    for chunk in iter(lambda: process.stdout.read1(4096), b""):
        text = decoder.decode(chunk)
        sys.stdout.write(text)
        sys.stdout.flush()
        tail = (tail + text)[-3000:]
    if process.wait() != 0:  # the end of the output names the reason, keep it in the error
        raise RuntimeError(f"exit code {process.returncode} from: {' '.join(cmd)}\n...{tail}")


def config_overrides(values: dict[str, object]) -> list[str]:
    """{"TRAIN.BATCH_SIZE": 8, ...} -> ["TRAIN.BATCH_SIZE=8", ...]; None keeps the config file's value."""
    return [f"{key}={value}" for key, value in values.items() if value is not None]


@dataclass(frozen=True)
class Paths:
    """Where one runtime keeps its data, downloads, configs and outputs."""

    data_root: Path  # the Isharah layout: {train,val,test,dictionary}/
    deps: Path  # mBART folders, smpl_models/
    stats_dir: Path  # SOKE's mean.pt / std.pt (Option A)
    checkpoints: Path  # SOKE's vae/tokenizer.ckpt (Option A)
    outputs: Path  # experiments/ and results/
    mbart_path: Path  # the mBART that training reads
    tokenizer_cfg: str
    generator_cfg: str

    @property
    def cache_dir(self) -> Path:
        return default_cache_dir(self.data_root)

    @property
    def mbart_full(self) -> Path:
        """The full mBART-large-cc25, downloaded once and pruned into mbart_path (Colab only)."""
        return self.deps / MBART_FULL_FOLDER

    @property
    def smplx_dir(self) -> Path:
        return self.deps / "smpl_models"

    @property
    def smplx_file(self) -> Path:
        return self.smplx_dir / "smplx" / "SMPLX_NEUTRAL.npz"

    @property
    def folder_exp(self) -> Path:
        return self.outputs / "experiments" / "mgpt"

    @property
    def folder_results(self) -> Path:
        return self.outputs / "results" / "mgpt"


def colab_paths(drive_root: str | Path, small: bool = False) -> Paths:
    """Everything on Drive: a disconnected runtime loses nothing. `small`: the demo configs (CI on a CPU)."""
    drive = on_content(drive_root)
    tokenizer_cfg, generator_cfg = DEMO_CONFIGS if small else SOKE_CONFIGS
    return Paths(data_root=drive / "data" / "Isharah", deps=drive / "deps", stats_dir=drive / "smpl-x",
                 checkpoints=drive / "checkpoints", outputs=drive, mbart_path=drive / "deps" / "mbart-large-cc25-ar",
                 tokenizer_cfg=tokenizer_cfg, generator_cfg=generator_cfg)


def local_paths(work: Path, small: bool = False) -> Paths:
    """Everything under `work` (the checkout, or SASOKE_NOTEBOOK_WORKDIR); the sample is generated there."""
    deps = work / "deps"
    tokenizer_cfg, generator_cfg = DEMO_CONFIGS
    return Paths(data_root=work / "data" / ("sample_small" if small else "sample"), deps=deps,
                 stats_dir=deps / "smpl-x", checkpoints=deps / "checkpoints", outputs=work,
                 mbart_path=deps / "mbart-tiny", tokenizer_cfg=tokenizer_cfg, generator_cfg=generator_cfg)


@dataclass(frozen=True)
class Runtime:
    in_colab: bool
    quick: bool
    repo: Path
    paths: Paths
    gpu: str | None  # the GPU's name, None on a CPU

    @property
    def backend(self) -> str:
        """The skeleton avatar needs no licensed files; with the SMPL-X files the full body model is used."""
        return "smplx" if self.paths.smplx_file.is_file() else "skeleton"

    @property
    def common_overrides(self) -> list[str]:
        """The config keys every train.py / test.py / script call of the notebooks sets."""
        paths = self.paths
        return config_overrides({
            "FOLDER_EXP": paths.folder_exp, "FOLDER_RESULTS": paths.folder_results,
            "DATASET.DATA_ROOT": paths.data_root, "LM.MBART_PATH": paths.mbart_path,
            "KINEMATICS.BACKEND": self.backend, "KINEMATICS.SMPLX_DIR": paths.smplx_dir,
        })

    def notebook_names(self) -> dict[str, object]:
        """The names the notebooks' cells use, for globals().update(...)."""
        paths = self.paths
        return {
            "run": run, "config_overrides": config_overrides, "IN_COLAB": self.in_colab, "QUICK": self.quick,
            "REPO": self.repo, "DATA_ROOT": paths.data_root, "CACHE_DIR": paths.cache_dir, "DEPS": paths.deps,
            "STATS_DIR": paths.stats_dir, "CHECKPOINTS": paths.checkpoints, "MBART_PATH": paths.mbart_path,
            "MBART_FULL": paths.mbart_full, "SMPLX_DIR": paths.smplx_dir, "SMPLX_FILE": paths.smplx_file,
            "FOLDER_EXP": paths.folder_exp, "FOLDER_RESULTS": paths.folder_results,
            "TOKENIZER_CFG": paths.tokenizer_cfg, "GENERATOR_CFG": paths.generator_cfg, "GPU": self.gpu,
            "BACKEND": self.backend, "COMMON_OVERRIDES": self.common_overrides,
        }


def install_packages(repo: Path) -> None:
    """Colab brings torch and the scientific stack; the rest comes from requirements_colab.txt."""
    run([sys.executable, "-m", "pip", "install", "-q", "-r", repo / "requirements_colab.txt"])
    run([sys.executable, "-m", "pip", "install", "-q", "-e", repo])


def setup(drive_root: str | Path) -> Runtime:
    """Mount Drive and install the packages (Colab), choose the paths, and move into the checkout.

    The checkout is the one this module was imported from: in Colab the setup cell's clone, locally the
    repository Jupyter was started in. train.py, test.py and the configs are found relative to it.
    """
    colab = in_colab()
    if colab:
        from google.colab import drive

        drive.mount(str(content_dir() / "drive"))
        install_packages(REPO)
        paths = colab_paths(drive_root, small=quick())
    else:
        work = Path(os.environ.get("SASOKE_NOTEBOOK_WORKDIR") or REPO).resolve()
        paths = local_paths(work, small=quick())
    os.chdir(REPO)
    import torch  # Colab ships it; imported after the installation like everything else

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    runtime = Runtime(in_colab=colab, quick=quick(), repo=REPO, paths=paths, gpu=gpu)
    print(f"{'Colab' if colab else 'local'} mode{' (QUICK)' if runtime.quick else ''}, code in {REPO}")
    print(f"data {paths.data_root}\noutputs {paths.outputs}\nGPU {gpu or 'none'}, avatar backend {runtime.backend}")
    return runtime


# ---- downloads (notebook 1, Colab) ----------------------------------------------------------------------


def fetch_from_drive(file_id: str, dest: Path) -> None:
    """Download a public Google Drive file to `dest` unless it is there; `.part` until complete."""
    if dest.is_file():
        print(f"already there: {dest}")
        return
    import gdown

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    gdown.download(id=file_id, output=str(partial), quiet=False)
    if not partial.is_file() or partial.stat().st_size == 0:
        raise RuntimeError(f"download of Drive file {file_id} failed (quota or permission); "
                           f"download it by hand and put it at {dest}")
    partial.rename(dest)


def install_smplx(file_id: str, dest_dir: Path) -> None:
    """SOKE's zip of the human models (smpl_models/{smpl,smplh,smplx,mano}/) -> dest_dir/smplx/SMPLX_NEUTRAL.npz.

    The zip is downloaded and unpacked on the runtime's local disk, then copied to Drive: unpacking
    thousands of small writes straight onto Drive is slow.
    """
    archive = content_dir() / "smpl_models.zip"
    fetch_from_drive(file_id, archive)
    unpacked = content_dir() / "smpl_models_unzipped"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    found = sorted(path for path in unpacked.rglob("SMPLX_NEUTRAL.npz") if "__MACOSX" not in path.parts)
    if not found:
        raise RuntimeError(f"{archive} holds no SMPLX_NEUTRAL.npz; put the SMPL-X files in {dest_dir}/smplx/")
    model_folder = found[0].parent
    if model_folder.name == "smplx":  # keep the MANO / FLAME files that sit next to smplx/
        shutil.copytree(model_folder.parent, dest_dir, dirs_exist_ok=True)
    else:
        shutil.copytree(model_folder, dest_dir / "smplx", dirs_exist_ok=True)
    shutil.rmtree(unpacked)


def fetch_mbart(hub_id: str, dest: Path) -> None:
    """Config, weights and sentencepiece model of the full mBART-large-cc25 from the Hugging Face hub, once."""
    have_weights = (dest / "model.safetensors").is_file() or (dest / "pytorch_model.bin").is_file()
    if have_weights and (dest / "config.json").is_file() and (dest / "sentencepiece.bpe.model").is_file():
        print(f"already there: {dest}")
        return
    import huggingface_hub

    files = set(huggingface_hub.list_repo_files(hub_id))
    weights = "model.safetensors" if "model.safetensors" in files else "pytorch_model.bin"
    huggingface_hub.snapshot_download(hub_id, local_dir=dest, allow_patterns=[*MBART_FILES, weights])
