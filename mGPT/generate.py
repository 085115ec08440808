"""Arabic text in, SMPL-X signing out, from a trained stage 2 checkpoint.

    python -m mGPT.generate --cfg configs/soke.yaml --text "أنا أذهب إلى المدرسة" [--out DIR] [--video out.mp4]

From Python (the web app, a notebook): `module, dictionary = load_generator(cfg)` once, then
`signing = text_to_sign(module, checked_text(text), dictionary)` per sentence; `save_params` and
`render_video` write what the command line writes.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import DictConfig

from mGPT.config import load_config
from mGPT.data.arabic import is_arabic
from mGPT.data.features import smplx_params_dict
from mGPT.errors import SaSOKEError, run_cli
from mGPT.files import atomic_write_bytes, writable_dir
from mGPT.models.checkpoints import trained_checkpoint

if TYPE_CHECKING:
    from mGPT.data.dictionary import SignDictionary
    from mGPT.models.lm_module import GeneratorModule


def checked_text(text: str) -> str:
    """`text` stripped; an error if nothing is left, a warning if it is not Arabic."""
    text = text.strip()
    if not text:
        raise SaSOKEError("the text is empty: give an Arabic sentence with --text")
    if not is_arabic(text):
        warnings.warn(f"the text {text[:40]!r} is not Arabic; the model was trained on Arabic sentences",
                      stacklevel=3)
    return text


@dataclass(frozen=True)
class Signing:
    """One sentence signed: the dictionary words retrieval added, the motion codes, the SMPL-X parameters."""

    text: str
    keywords: list[str]
    codes: np.ndarray  # (N, 3) int64, [body, lhand, rhand] per step of the tokenizer's frames per code
    params: np.ndarray  # (T, 179) float32, T = frames per code x N


def load_generator(cfg: DictConfig, cfg_path: str | Path | None = None
                   ) -> tuple[GeneratorModule, SignDictionary | None]:
    """The trained generator of the stage 2 config `cfg` (read from `cfg_path`, named in errors) in eval
    mode (TEST.CHECKPOINT or best.ckpt), and its sign dictionary when LM.RETRIEVAL is on."""
    from mGPT.models.datamodule import load_dictionary
    from mGPT.models.lm_module import GeneratorModule

    if cfg.STAGE != "lm":
        raise SaSOKEError(f"{cfg_path or 'the config'} is a stage '{cfg.STAGE}' config; text-to-sign needs the "
                          "stage 'lm' config")
    module = GeneratorModule.from_checkpoint(trained_checkpoint(cfg), cfg)
    return module, load_dictionary(cfg, module.fingerprint)


def text_to_sign(module: GeneratorModule, text: str, dictionary: SignDictionary | None, decoding: str | None = None,
              temperature: float | None = None, top_k: int | None = None, seed: int | None = None) -> Signing:
    """`text` (through `checked_text` first) -> codes and SMPL-X parameters; decoding options left None follow
    the config's TEST section.

    A seed makes sampling repeatable through a generator of its own, so concurrent requests do not share
    torch's global random state.
    """
    cfg = module.cfg.LM
    found = dictionary.keywords_for(text, cfg.MAX_KEYWORDS, cfg.MAX_TRIPLETS) if dictionary else []
    generator = None if seed is None else torch.Generator(module.device).manual_seed(int(seed))
    with torch.no_grad():
        codes, params = module.generate_smplx([text], [found] if dictionary else None, decoding=decoding,
                                              temperature=temperature, top_k=top_k, generator=generator)
    return Signing(text, [word for word, _ in found], codes[0].cpu().numpy(), params[0])


def save_params(path: str | Path, text: str, params: np.ndarray) -> Path:
    """The SMPL-X parameters (T, 179) as a pickle of {"text", one (T, size) array per SPEC 7 key}."""
    return atomic_write_bytes(path, pickle.dumps({"text": text, **smplx_params_dict(params)}))


def render_video(module: GeneratorModule, params: np.ndarray, path: str | Path, caption: str | None) -> Path:
    """The video of SMPL-X parameters (T, 179) as the config's RENDER section says, at the frame rate the
    checkpoint was trained at; .mp4 or .gif by the extension."""
    from mGPT.render import video

    cfg = module.cfg
    return video.render_video(params, Path(path), kinematics=module.kinematics, caption=caption,
                              fps=module.fps, avatar=cfg.RENDER.AVATAR, size=tuple(cfg.RENDER.SIZE),
                              view=cfg.RENDER.VIEW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="the stage 2 config the checkpoint was trained with")
    parser.add_argument("--text", required=True, help="Arabic sentence")
    parser.add_argument("--out", default="results/generate", help="folder for the .pkl (and video)")
    parser.add_argument("--video", default=None, help="also render to this .mp4 or .gif")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. TEST.CHECKPOINT=path")
    args = parser.parse_args()

    cfg = load_config(args.cfg, args.overrides)
    text = checked_text(args.text)  # before the model loads, which takes a while with the real mBART
    module, dictionary = load_generator(cfg, args.cfg)
    params = text_to_sign(module, text, dictionary).params

    out = writable_dir(args.out, "output")
    stem = re.sub(r"\W+", "_", args.text.strip())[:40].strip("_") or "sign"
    path = save_params(out / f"{stem}.pkl", args.text, params)
    print(f"{len(params)} frames ({len(params) / module.fps:.1f} s at {module.fps:g} fps) of SMPL-X parameters: "
          f"{path}")
    if args.video:
        print(f"video: {render_video(module, params, args.video, caption=args.text)}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
