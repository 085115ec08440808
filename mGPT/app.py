"""A web page for Arabic text -> signing avatar (Gradio), with Gradio's HTTP API at /sign.

    python -m mGPT.app --cfg configs/soke.yaml [--host 127.0.0.1] [--port 7860] [--share] [--concurrency 1]

The model loads once, at start. Each request runs `mGPT.generate`'s path (text_to_sign, save_params,
render_video), so the page, the API and the command line give the same signing for the same options.
Requests wait in Gradio's queue; `--concurrency` of them run at once. Bad text (empty, too long, not
Arabic) gets a message in the page and an error from the API; the server never stops for a request.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
from omegaconf import DictConfig

from mGPT.config import cache_dir, load_config
from mGPT.data.arabic import is_arabic
from mGPT.errors import DataError, SaSOKEError, run_cli
from mGPT.files import atomic_write_text
from mGPT.generate import load_generator, render_video, save_params, text_to_sign
from mGPT.layout import PARTS
from mGPT.models.lm_module import DECODINGS

if TYPE_CHECKING:
    from mGPT.data.dictionary import SignDictionary
    from mGPT.models.lm_module import GeneratorModule

log = logging.getLogger(__name__)

API_NAME = "sign"
MAX_EXAMPLES = 8
# Sentences for the example list when the data has no test split to take them from.
FALLBACK_EXAMPLES = ("أنا أذهب إلى المدرسة", "أين المستشفى", "شكرا لك")
CHARS_PER_TOKEN_LIMIT = 16  # text this long is refused before the tokenizer sees it, whatever it holds
KEEP_OUTPUTS_S = 3600  # a request's files stay on disk this long, for the page's downloads
RTL_CSS = "#sign-text textarea { font-size: 1.25rem; }"


class BadText(SaSOKEError):
    """Text the model should not be asked to sign; the message says what to change."""


@dataclass(frozen=True)
class SignResult:
    """What one request returns, in the order of the page's output components."""

    video: str
    params: str
    codes: str
    keywords: list[tuple[str, str]]  # (word, label) for gr.HighlightedText
    summary: str


class Signer:
    """The loaded generator and what one request does with it: check the text, sign it, write the files."""

    def __init__(self, module: GeneratorModule, dictionary: SignDictionary | None, out_dir: Path):
        self.module = module
        self.dictionary = dictionary
        self.out_dir = out_dir
        self.max_tokens = int(module.generator.max_text_tokens)
        self.fps = float(module.fps)  # the rate the checkpoint was trained at, as its videos play
        self._requests = 0
        # The mesh avatar renders through one OpenGL context per process, and an EGL context is current in
        # the thread that made it: every video is drawn on this one thread, one at a time.
        self._render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")

    def check(self, text: str | None) -> str:
        """`text` stripped, or BadText saying what is wrong with it."""
        text = (text or "").strip()
        if not text:
            raise BadText("The text is empty: type an Arabic sentence, or pick one of the examples.")
        limit_chars = CHARS_PER_TOKEN_LIMIT * self.max_tokens
        if len(text) > limit_chars:
            raise BadText(f"The text is too long: {len(text)} characters, the limit is {limit_chars}. "
                          "Shorten it to one sentence.")
        if not is_arabic(text):
            raise BadText("The text is not Arabic: the model was trained on Arabic sentences only. "
                          "Type the sentence in Arabic letters.")
        tokens = len(self.module.generator.tokenizer(text, add_special_tokens=False)["input_ids"])
        if tokens > self.max_tokens:
            raise BadText(f"The text is too long: {tokens} text tokens, the model reads at most "
                          f"{self.max_tokens} (LM.MAX_TEXT_TOKENS). Shorten it to one sentence.")
        return text

    def sign(self, text: str | None, decoding: str = "greedy", temperature: float = 1.0, top_k: int = 0,
             seed: int = 0, retrieval: bool = True) -> SignResult:
        text = self.check(text)
        sampling = decoding == "sample"
        if sampling and not temperature > 0:
            raise BadText(f"The temperature must be above 0 for sampling, got {temperature}.")
        start = time.perf_counter()
        dictionary = self.dictionary if retrieval else None
        signing = text_to_sign(self.module, text, dictionary, decoding=decoding, temperature=float(temperature),
                            top_k=int(top_k or 0), seed=int(seed or 0))
        folder = self._request_folder()
        params = save_params(folder / "signing.pkl", text, signing.params)
        codes = atomic_write_text(folder / "codes.json", json.dumps(
            {"text": text, "keywords": signing.keywords,
             **{part: signing.codes[:, i].tolist() for i, part in enumerate(PARTS)}}, ensure_ascii=False))
        video = self._render_thread.submit(render_video, self.module, signing.params, folder / "signing.mp4",
                                           caption=text).result()
        seconds = time.perf_counter() - start
        found = ", ".join(signing.keywords) if signing.keywords else "none"
        summary = (f"{len(signing.params)} frames ({len(signing.params) / self.fps:.1f} s), "
                   f"{len(signing.codes)} code steps, made in {seconds:.1f} s. Keywords: "
                   + (found if dictionary is not None else "retrieval off") + ".")
        return SignResult(str(video), str(params), str(codes), [(word, "keyword") for word in signing.keywords],
                          summary)

    def _request_folder(self) -> Path:
        """A new folder for this request's files; folders older than KEEP_OUTPUTS_S are removed."""
        for old in self.out_dir.iterdir():
            if old.is_dir() and time.time() - old.stat().st_mtime > KEEP_OUTPUTS_S:
                shutil.rmtree(old, ignore_errors=True)
        self._requests += 1
        return Path(tempfile.mkdtemp(prefix=f"{self._requests:06d}_", dir=self.out_dir))

    def handle(self, text, decoding, temperature, top_k, seed, retrieval) -> tuple:
        """The event handler: the outputs, or gr.Error with a message for the page (never a traceback)."""
        try:
            result = self.sign(text, decoding, temperature, top_k, seed, retrieval)
        except SaSOKEError as err:
            raise gr.Error(str(err), duration=None, print_exception=False) from None
        except Exception as err:  # anything else is our bug: log it whole, show the user one line
            log.exception("signing %r failed", text)
            raise gr.Error(f"Signing failed ({type(err).__name__}); the server log has the details.",
                           duration=None, print_exception=False) from None
        return result.video, result.params, result.codes, result.keywords, result.summary


def example_sentences(cfg: DictConfig, limit: int = MAX_EXAMPLES) -> tuple[list[str], str]:
    """(distinct sentences of the test split's packed cache, else FALLBACK_EXAMPLES; where they come from)."""
    from mGPT.data.prepare import load_cache

    try:
        texts = load_cache(cache_dir(cfg), cfg.TEST.SPLIT).texts
    except DataError:
        texts = []
    distinct = list(dict.fromkeys(text.strip() for text in texts if text.strip()))[:limit]
    if not distinct:
        return list(FALLBACK_EXAMPLES), "Examples"
    return distinct, f"Examples (the {cfg.TEST.SPLIT} split)"


def build_app(signer: Signer, examples: tuple[list[str], str], cfg: DictConfig) -> gr.Blocks:
    """The page: text and options on one side, the video, keywords and downloads on the other."""
    test = cfg.TEST
    with gr.Blocks(title="SaSOKE: Arabic text to Saudi Sign Language", analytics_enabled=False,
                   delete_cache=(600, KEEP_OUTPUTS_S)) as app:
        gr.Markdown("# SaSOKE: Arabic text to Saudi Sign Language\n"
                    "Type an Arabic sentence; the avatar signs it. Downloads: the SMPL-X parameters "
                    "(.pkl, one array per key) and the motion codes (.json).")
        with gr.Row():
            with gr.Column(scale=1):
                text = gr.Textbox(label="Arabic sentence", placeholder="اكتب جملة عربية", lines=2, rtl=True,
                                  text_align="right", elem_id="sign-text")
                sentences, examples_label = examples
                gr.Examples([[sentence] for sentence in sentences], inputs=[text], label=examples_label)
                with gr.Accordion("Options", open=True):
                    decoding = gr.Radio(list(DECODINGS), value=test.DECODING, label="Decoding",
                                        info=f"beam: {int(test.NUM_BEAMS)} beams (TEST.NUM_BEAMS)")
                    temperature = gr.Slider(0.05, 3.0, value=float(test.TEMPERATURE), step=0.05,
                                            label="Temperature (sampling only)")
                    top_k = gr.Slider(0, 200, value=int(test.TOP_K), step=1,
                                      label="Top-k (sampling only; 0 = all codes)")
                    seed = gr.Number(value=int(cfg.SEED), precision=0, label="Seed (sampling only)")
                    retrieval = gr.Checkbox(value=signer.dictionary is not None,
                                            interactive=signer.dictionary is not None,
                                            label="Retrieval: add the keywords' dictionary signs",
                                            info=None if signer.dictionary is not None
                                            else "This model has no sign dictionary (LM.RETRIEVAL is off).")
                button = gr.Button("Sign", variant="primary", elem_id="sign-button")
            with gr.Column(scale=1):
                video = gr.Video(label="Signing", elem_id="sign-video", interactive=False, autoplay=True,
                                 loop=True, height=420)
                keywords = gr.HighlightedText(label="Keywords found in the sign dictionary", rtl=True,
                                              show_inline_category=False, elem_id="sign-keywords")
                summary = gr.Markdown(label="summary", elem_id="sign-summary")
                with gr.Row():
                    params = gr.File(label="SMPL-X parameters (.pkl)", elem_id="sign-params")
                    codes = gr.File(label="Motion codes (.json)", elem_id="sign-codes")
        inputs = [text, decoding, temperature, top_k, seed, retrieval]
        outputs = [video, params, codes, keywords, summary]
        button.click(signer.handle, inputs, outputs, api_name=API_NAME)
        text.submit(signer.handle, inputs, outputs, api_visibility="private")
    return app


def create_app(cfg: DictConfig, cfg_path: str | Path, out_dir: Path | None = None) -> gr.Blocks:
    """Load the generator of `cfg` once and build the page around it (not launched)."""
    module, dictionary = load_generator(cfg, cfg_path)
    out_dir = Path(tempfile.mkdtemp(prefix="sasoke_app_")) if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return build_app(Signer(module, dictionary, out_dir), example_sentences(cfg), cfg)


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
           concurrency: int = 1, queue_size: int = 64, **kwargs) -> tuple:
    """Queue the app's requests (`concurrency` at once, at most `queue_size` waiting) and serve it."""
    if concurrency < 1 or queue_size < 1:
        raise SaSOKEError(f"--concurrency and --queue-size must be at least 1, got {concurrency} and {queue_size}")
    app.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    return app.launch(server_name=host, server_port=port, share=share, css=RTL_CSS, footer_links=["api"],
                      **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="the stage 2 config, e.g. experiments/mgpt/<NAME>/config.yaml")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--concurrency", type=int, default=1, help="requests that run at once; others wait")
    parser.add_argument("--queue-size", type=int, default=64, help="requests that may wait; more are refused")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. TEST.CHECKPOINT=path")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request Gradio makes to itself
    app = create_app(load_config(args.cfg, args.overrides), args.cfg)
    launch(app, args.host, args.port, args.share, args.concurrency, args.queue_size)


if __name__ == "__main__":
    sys.exit(run_cli(main))
