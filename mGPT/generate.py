"""Arabic text in, SMPL-X signing out, from a trained stage 2 checkpoint.

    python -m mGPT.generate --cfg configs/soke.yaml --text "أنا أذهب إلى المدرسة" [--out DIR] [--video out.mp4]

From Python (a web app, a notebook): `module, dictionary = load_generator(cfg)` once, then
`codes, params = text_to_sign(module, checked_text(text), dictionary)` per sentence.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import DictConfig

from mGPT.config import load_config
from mGPT.data.arabic import is_arabic
from mGPT.data.dictionary import SignDictionary
from mGPT.data.features import smplx_params_dict
from mGPT.errors import SaSOKEError, run_cli
from mGPT.files import writable_dir
from mGPT.models.checkpoints import trained_checkpoint

if TYPE_CHECKING:  # imported when used: a bad --text or config is answered before transformers loads
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


def load_generator(cfg: DictConfig) -> tuple[GeneratorModule, SignDictionary | None]:
    """The trained generator of a stage 2 config (TEST.CHECKPOINT or best.ckpt), in eval mode, and its
    retrieval dictionary (None with LM.RETRIEVAL off)."""
    from mGPT.models.datamodule import load_dictionary
    from mGPT.models.lm_module import GeneratorModule

    module = GeneratorModule.from_checkpoint(trained_checkpoint(cfg), cfg)
    return module, load_dictionary(cfg, module.fingerprint)


@torch.no_grad()
def text_to_sign(module: GeneratorModule, text: str,
                 dictionary: SignDictionary | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One sentence (pass it through `checked_text` first) -> its codes (N, 3) [body, lhand, rhand] and
    SMPL-X parameters (4N, 179), with the module's decoding settings (TEST.*) and the dictionary's keywords."""
    lm = module.cfg.LM
    keywords = [dictionary.keywords_for(text, lm.MAX_KEYWORDS, lm.MAX_TRIPLETS)] if dictionary else None
    codes, params = module.generate_smplx([text], keywords)
    return codes[0].cpu().numpy(), params[0]


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
    if cfg.STAGE != "lm":
        raise SaSOKEError(f"{args.cfg} is a stage '{cfg.STAGE}' config; text-to-sign needs the stage 'lm' config")
    torch.set_grad_enabled(False)
    module, dictionary = load_generator(cfg)
    _, params = text_to_sign(module, text, dictionary)

    out = writable_dir(args.out, "output")
    stem = re.sub(r"\W+", "_", args.text.strip())[:40].strip("_") or "sign"
    path = out / f"{stem}.pkl"
    with open(path, "wb") as f:
        pickle.dump({"text": args.text, **smplx_params_dict(params)}, f)
    print(f"{len(params)} frames ({len(params) / module.fps:.1f} s at {module.fps:g} fps) of SMPL-X parameters: "
          f"{path}")
    if args.video:
        from mGPT.render.video import render_video

        video = render_video(params, Path(args.video), kinematics=module.kinematics, caption=args.text,
                             fps=module.fps, avatar=cfg.RENDER.AVATAR, size=tuple(cfg.RENDER.SIZE),
                             view=cfg.RENDER.VIEW)  # fps: the rate the checkpoint was trained at
        print(f"video: {video}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
