import pytest

from mGPT.config import CONFIG_DIR, load_config, parse_args, vq_kwargs
from mGPT.errors import ConfigError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_stage_file_and_overrides_merge_over_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "a.yaml", "NAME: x\nTRAIN:\n  BATCH_SIZE: 4\n"),
                      ["TRAIN.LR=1e-4", "PRECISION=bf16-mixed"])
    assert (cfg.NAME, cfg.TRAIN.BATCH_SIZE, cfg.TRAIN.LR, cfg.PRECISION) == ("x", 4, 1e-4, "bf16-mixed")
    assert cfg.TRAIN.MAX_EPOCHS == 500  # untouched default
    assert cfg.VQ.BODY.CODE_NUM == 96 and cfg.VQ.LHAND.CODE_NUM == 192 and cfg.VQ.RHAND.CODE_NUM == 192


def test_vq_kwargs_are_lowercase_per_part():
    kwargs = vq_kwargs(load_config(CONFIG_DIR / "deto.yaml"))
    assert kwargs["body"] == {"nfeats": 43, "code_num": 96, "code_dim": 512, "width": 512, "down_t": 2,
                              "depth": 3, "dilation_growth": 3, "ema_decay": 0.99}
    assert kwargs["lhand"]["nfeats"] == 45 and kwargs["rhand"]["nfeats"] == 45


def test_part_sizes_are_not_config_keys():
    # they are the layout of the 133-dim feature (mGPT.layout.PART_DIMS): a key could only break them
    assert "NFEATS" not in load_config(CONFIG_DIR / "deto.yaml").VQ.BODY
    with pytest.raises(ConfigError, match="unknown config key VQ.BODY.NFEATS"):
        load_config(CONFIG_DIR / "deto.yaml", ["VQ.BODY.NFEATS=50"])


def test_a_config_saved_by_an_older_version_loads_without_its_retired_keys(tmp_path):
    saved = write(tmp_path, "config.yaml", "NAME: old\nVQ:\n  BODY:\n    NFEATS: 43\n    CODE_NUM: 64\n"
                                          "BASELINE:\n  PICKLE_LOADER: false\n")
    with pytest.warns(UserWarning) as warned:
        cfg = load_config(saved)
    assert sorted(str(w.message).split()[2] for w in warned) == ["BASELINE", "VQ.BODY.NFEATS"]
    assert cfg.NAME == "old" and cfg.VQ.BODY.CODE_NUM == 64
    assert "BASELINE" not in cfg and "NFEATS" not in cfg.VQ.BODY


def test_base_chain_applies_base_first(tmp_path):
    write(tmp_path, "base.yaml", "NAME: base\nSEED: 7\n")
    cfg = load_config(write(tmp_path, "child.yaml", "BASE: base.yaml\nNAME: child\n"))
    assert (cfg.NAME, cfg.SEED) == ("child", 7)


def test_base_loop_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "BASE: b.yaml\n")
    write(tmp_path, "b.yaml", "BASE: a.yaml\n")
    with pytest.raises(ConfigError, match="BASE loop"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("TRAIN:\n  BATCHSIZE: 3\n", [], r"unknown config key TRAIN\.BATCHSIZE in .*bad\.yaml"),
        ("", ["TRAIN.BATCH_SIZE=abc"], r"TRAIN\.BATCH_SIZE in the command line has the wrong type"),
        ("", ["TRAIN.BATCH_SIZE=0.5"], r"TRAIN\.BATCH_SIZE .*wrong type"),
        ("", ["LM.RETRIEVAL=1"], r"LM\.RETRIEVAL .*wrong type: expected bool"),
        ("", ["TRAIN.BETAS=3"], r"TRAIN\.BETAS .*must be a list"),
        ("TRAIN: 3\n", [], r"TRAIN in .*must be a mapping"),
        ("STAGE: tokenizer\n", [], r"STAGE must be one of vae, lm, slt"),
        ("", ["NOEQUALS"], r"must look like KEY\.SUB=value"),
        ("VQ:\n  BODY:\n    WIDTHS: 3\n", [], r"unknown config key VQ\.BODY\.WIDTHS"),
        ("STAGE: lm\n", ["TRAIN.VAL_EVERY_N_EPOCHS=2", "TRAIN.GEN_VAL_EVERY_N_EPOCHS=5"],
         r"GEN_VAL_EVERY_N_EPOCHS=5 must be a multiple of TRAIN\.VAL_EVERY_N_EPOCHS=2"),
        ("STAGE: lm\n", ["TRAIN.MONITOR=val/DTW_MPJPE_mean", "TRAIN.GEN_VAL_EVERY_N_EPOCHS=0"],
         r"MONITOR=val/DTW_MPJPE_mean is a generation metric.*GEN_VAL_EVERY_N_EPOCHS=0"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, "bad.yaml", text), overrides)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="cannot parse config file"):
        load_config(write(tmp_path, "broken.yaml", "NAME: [unclosed\n"))


def test_float_keys_accept_ints(tmp_path):
    assert load_config(write(tmp_path, "a.yaml", ""), ["TRAIN.LR=1"]).TRAIN.LR == 1


def test_parse_args_reads_cfg_and_overrides(tmp_path):
    cfg = parse_args("x", ["--cfg", str(write(tmp_path, "a.yaml", "NAME: y\n")), "SEED=3"])
    assert (cfg.NAME, cfg.SEED) == ("y", 3)


@pytest.mark.parametrize("name", ["deto.yaml", "soke.yaml", "demo/deto.yaml", "demo/soke.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIG_DIR / name)
    assert cfg.STAGE in ("vae", "lm")


def test_lm_tgt_lang_is_no_key(tmp_path):
    """The ar_SSL token that starts decoding has no text form: a key naming it would do nothing."""
    with pytest.raises(ConfigError, match="unknown config key LM.TGT_LANG"):
        load_config(CONFIG_DIR / "soke.yaml", ["LM.TGT_LANG=ar_SSL"])
