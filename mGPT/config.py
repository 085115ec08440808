"""Configs: configs/default.yaml (every key) <- assets.yaml <- BASE chain <- the stage file <- overrides.

A key that default.yaml does not have, or a value of the wrong type, is a ConfigError naming the key
and the file it came from, so a typo in a Colab cell fails at once instead of being ignored.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from mGPT.errors import CheckpointError, ConfigError
from mGPT.layout import CODES_FILE, DICTIONARY_FILE, PART_DIMS, default_cache_dir

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
VQ_PARTS = ("BODY", "LHAND", "RHAND")
# Keys that older versions had, so their experiments/<NAME>/config.yaml (which notebook 4 reads back) holds
# them: dropped from files with a warning; on the command line they are unknown keys like any other.
RETIRED_KEYS = ("BASELINE", *(f"VQ.{part}.NFEATS" for part in VQ_PARTS))
STAGES = ("vae", "lm", "slt")  # tokenizer, generator, back-translation evaluator
# Monitored values where higher is better (best.ckpt keeps the highest); every other one, the lowest.
# Stage 2's back-translation scores (TRAIN.BACK_TRANSLATION): val/BT_BLEU1..4, val/BT_chrF, val/BT_ROUGE_L.
BACK_TRANSLATION_PREFIX = "val/BT_"
SCORE_MONITORS = ("val/BLEU", "val/chrF", "val/ROUGE", BACK_TRANSLATION_PREFIX)


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml errors come in many types; all mean the same to the user
        raise ConfigError(f"cannot parse config file {path}: {err}") from err
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(cfg).__name__}")
    return cfg


def _resolve_base(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, DictConfig]]:
    """The file and the files it extends through BASE, base first."""
    if path in seen:
        raise ConfigError(f"BASE loop in configs: {' -> '.join(str(p) for p in (*seen, path))}")
    cfg = _read_yaml(path)
    base = cfg.get("BASE")
    chain = []
    if base:
        base_path = Path(base)
        if not base_path.is_absolute():
            base_path = (CONFIG_DIR / base_path) if (CONFIG_DIR / base_path).is_file() else path.parent / base
        chain = _resolve_base(base_path.resolve(), (*seen, path))
    return [*chain, (path, cfg)]


def _drop_retired(layer: DictConfig, source: str) -> None:
    for dotted in RETIRED_KEYS:
        parent, _, key = dotted.rpartition(".")
        node = OmegaConf.select(layer, parent) if parent else layer
        if isinstance(node, DictConfig) and key in node:
            warnings.warn(f"config key {dotted} in {source} is no longer used (an older SaSOKE wrote it); "
                          "ignoring it", stacklevel=3)
            del node[key]


def _check_against(schema: DictConfig, layer: DictConfig, source: str, prefix: str = "") -> None:
    """Every key of `layer` must exist in `schema`, with a compatible type."""
    for key in layer:
        dotted = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(f"{prefix}{k}" for k in schema)
            raise ConfigError(f"unknown config key {dotted} in {source}. Known keys here: {known}")
        default, value = schema[key], layer[key]
        if isinstance(default, DictConfig):
            if not isinstance(value, DictConfig):
                raise ConfigError(f"config key {dotted} in {source} must be a mapping, got {value!r}")
            _check_against(default, value, source, dotted + ".")
            continue
        if default is None or value is None:
            continue
        if isinstance(default, ListConfig) != isinstance(value, ListConfig):
            raise ConfigError(f"config key {dotted} in {source} must be a list like {default!r}: {value!r}")
        if not _same_kind(default, value):
            raise ConfigError(
                f"config key {dotted} in {source} has the wrong type: expected "
                f"{type(default).__name__} (like {default!r}), got {value!r}"
            )


def _same_kind(default: object, value: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def _schema() -> DictConfig:
    """configs/default.yaml with the VQ parts of configs/vq/: every key, with its default."""
    schema = _read_yaml(CONFIG_DIR / "default.yaml")
    for part in VQ_PARTS:
        schema.VQ[part] = _read_yaml(CONFIG_DIR / "vq" / f"{part.lower()}.yaml")
    return schema


def default_config(saved: dict, source: str = "a saved config") -> DictConfig:
    """A resolved config saved by a run (a checkpoint's) over the defaults: keys added since it was saved get
    their defaults, retired ones are dropped with a warning, unknown ones are an error."""
    schema = _schema()
    layer = OmegaConf.create(saved)
    _drop_retired(layer, source)
    _check_against(schema, layer, source)
    return OmegaConf.merge(schema, layer)


def load_config(cfg_path: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """Compose the config for `cfg_path`; `overrides` are dotted `KEY.SUB=value` strings."""
    schema = _schema()
    cfg = schema.copy()
    layers = [(CONFIG_DIR / "assets.yaml", _read_yaml(CONFIG_DIR / "assets.yaml"))]
    layers += _resolve_base(Path(cfg_path).resolve())
    for overrides_item in overrides or []:
        if "=" not in overrides_item:
            raise ConfigError(f"override {overrides_item!r} must look like KEY.SUB=value")
    try:
        dotlist = OmegaConf.from_dotlist(list(overrides or []))
    except Exception as err:
        raise ConfigError(f"cannot parse overrides {overrides}: {err}") from err
    layers.append(("the command line", dotlist))
    for source, layer in layers:
        if isinstance(source, Path):
            _drop_retired(layer, str(source))
        _check_against(schema, layer, str(source))
        cfg = OmegaConf.merge(cfg, layer)
    cfg.BASE = None
    if cfg.STAGE not in STAGES:
        raise ConfigError(f"STAGE must be one of {', '.join(STAGES)}, got {cfg.STAGE!r} (from {cfg_path})")
    if cfg.STAGE == "lm":
        _check_generation_schedule(cfg, cfg_path)
    return cfg


def monitors_generation(cfg: DictConfig) -> bool:
    """True when best.ckpt is judged by a stage 2 generation metric (val/DTW_*, or the back-translation scores
    val/BT_*), logged only on generation epochs."""
    return cfg.STAGE == "lm" and cfg.TRAIN.MONITOR.startswith(("val/DTW", BACK_TRANSLATION_PREFIX))


def monitor_mode(cfg: DictConfig) -> str:
    """"max" when TRAIN.MONITOR is a translation score (stage slt: val/BLEU4; stage 2: val/BT_BLEU4), else "min"
    (losses, errors)."""
    return "max" if cfg.TRAIN.MONITOR.startswith(SCORE_MONITORS) else "min"


def _check_generation_schedule(cfg: DictConfig, cfg_path: str | Path) -> None:
    """Generation validation runs inside validation epochs, so its period must be a multiple of theirs."""
    train = cfg.TRAIN
    every, val_every = train.GEN_VAL_EVERY_N_EPOCHS, train.VAL_EVERY_N_EPOCHS
    if every > 0 and every % val_every != 0:
        raise ConfigError(
            f"TRAIN.GEN_VAL_EVERY_N_EPOCHS={every} must be a multiple of TRAIN.VAL_EVERY_N_EPOCHS={val_every} "
            f"(from {cfg_path}): generation validation only runs in epochs that validate"
        )
    if train.MONITOR.startswith(BACK_TRANSLATION_PREFIX) and not train.BACK_TRANSLATION:
        raise ConfigError(
            f"TRAIN.MONITOR={train.MONITOR} is a back-translation score, but TRAIN.BACK_TRANSLATION names no "
            f"evaluator (from {cfg_path}); set TRAIN.BACK_TRANSLATION=<stage slt checkpoint> (train one with "
            "train.py --cfg configs/slt.yaml) or monitor val/DTW_MPJPE_mean"
        )
    if monitors_generation(cfg) and every <= 0:
        raise ConfigError(
            f"TRAIN.MONITOR={train.MONITOR} is a generation metric, but TRAIN.GEN_VAL_EVERY_N_EPOCHS={every} "
            f"switches generation validation off (from {cfg_path}); set it above 0 or monitor val/loss"
        )


def vq_kwargs(cfg: DictConfig) -> dict[str, dict[str, int | float]]:
    """VQ.BODY/LHAND/RHAND as the keyword arguments of one VQVAE each (body, lhand, rhand); the number of
    input features is the part's size in the 133-dim feature, which no config can change."""
    return {part.lower(): {"nfeats": PART_DIMS[part.lower()], **{k.lower(): v for k, v in cfg.VQ[part].items()}}
            for part in VQ_PARTS}


def exp_dir(cfg: DictConfig) -> Path:
    return Path(cfg.FOLDER_EXP) / cfg.NAME


def results_dir(cfg: DictConfig) -> Path:
    return Path(cfg.FOLDER_RESULTS) / cfg.NAME


def evaluation_dir(cfg: DictConfig) -> Path:
    """Where test.py and the scoring scripts write (SOKE's folder name, kept for its users)."""
    return results_dir(cfg) / "test_rank_0"


def cache_dir(cfg: DictConfig) -> Path:
    return Path(cfg.DATASET.CACHE_DIR) if cfg.DATASET.CACHE_DIR else default_cache_dir(cfg.DATASET.DATA_ROOT)


def codes_path(cfg: DictConfig) -> Path:
    return Path(cfg.DATASET.CODES_PATH) if cfg.DATASET.CODES_PATH else cache_dir(cfg) / CODES_FILE


def dictionary_path(cfg: DictConfig) -> Path:
    if cfg.DATASET.DICTIONARY_PATH:
        return Path(cfg.DATASET.DICTIONARY_PATH)
    return cache_dir(cfg) / DICTIONARY_FILE


def checkpoint_path(cfg: DictConfig) -> Path:
    """TEST.CHECKPOINT, or the experiment's best.ckpt."""
    path = Path(cfg.TEST.CHECKPOINT) if cfg.TEST.CHECKPOINT else exp_dir(cfg) / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}. Train first (python train.py --cfg ...) "
                              "or set TEST.CHECKPOINT=<path>.")
    return path


def parse_args(description: str, argv: list[str] | None = None) -> DictConfig:
    """`--cfg FILE` plus dotted overrides, the command line of train.py, test.py and the scripts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg", required=True, help="stage config, e.g. configs/deto.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. TRAIN.BATCH_SIZE=8")
    args = parser.parse_args(argv)
    return load_config(args.cfg, args.overrides)
