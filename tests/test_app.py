"""The web page (mGPT.app): its text checks, and a real server driven by a headless Chromium, by
gradio_client and by a small load.

The server tests start `python -m mGPT.app` on 127.0.0.1 (a free port) with the toy generator of conftest's
`chain`, generation capped at MAX_STEPS steps so that requests take seconds. Chromium is Debian's
(`apt-get install chromium chromium-driver`, as .ci/run does); nothing downloads a browser. With
SASOKE_APP_SCREENSHOT=docs/app.png the browser test also saves a screenshot of the signed page there.
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import imageio
import numpy as np
import pytest

from mGPT.app import BadText, Signer, example_sentences
from mGPT.config import load_config
from mGPT.data.features import params_dict_to_array
from mGPT.errors import DataError
from mGPT.layout import FRAME_DIMS
from tests.app_server import AppServer
from tests.tiny_chain import GENERATOR_CFG, TinyChain

MAX_STEPS = 8
SENTENCE = "أنا أذهب إلى المدرسة"
EMPTY_MESSAGE = "The text is empty"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


# --- text checks and error handling, without a model ------------------------------------------------------

@pytest.fixture(scope="module")
def text_signer(tiny_mbart: Path, tmp_path_factory: pytest.TempPathFactory) -> Signer:
    """A Signer whose model is only the tiny mBART's tokenizer, with a 40-token limit: enough for check()."""
    from transformers import MBartTokenizer

    tokenizer = MBartTokenizer.from_pretrained(tiny_mbart, local_files_only=True)
    module = SimpleNamespace(generator=SimpleNamespace(tokenizer=tokenizer, max_text_tokens=40), fps=24.0)
    return Signer(module, None, tmp_path_factory.mktemp("app_out"))


@pytest.mark.parametrize(("text", "message"), [
    ("", EMPTY_MESSAGE), ("   \n ", EMPTY_MESSAGE), (None, EMPTY_MESSAGE),
    ("good morning to you", "not Arabic"),
    (" ".join(["مدرسة"] * 60), "text tokens, the model reads at most 40"),
    ("ا" * 1000, "1000 characters, the limit is 640"),
])
def test_bad_text_gets_a_message_saying_what_to_change(text_signer: Signer, text: str | None, message: str) -> None:
    with pytest.raises(BadText, match=message):
        text_signer.check(text)


def test_arabic_text_within_the_limit_passes_stripped(text_signer: Signer) -> None:
    assert text_signer.check(f"  {SENTENCE}\n") == SENTENCE
    assert text_signer.check("أنا أذهب 3 مرات") == "أنا أذهب 3 مرات"  # digits are not letters


def test_errors_reach_the_page_as_one_message_without_a_traceback(text_signer: Signer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(gr.Error) as caught:
        text_signer.handle("", "greedy", 1.0, 0, 0, True)
    assert EMPTY_MESSAGE in caught.value.message

    def broken(*args, **kwargs):
        raise DataError("the cache at /x is stale: rebuild it")

    monkeypatch.setattr(text_signer, "sign", broken)
    with pytest.raises(gr.Error, match="rebuild it"):
        text_signer.handle(SENTENCE, "greedy", 1.0, 0, 0, True)

    def bug(*args, **kwargs):
        raise IndexError("index 7 is out of bounds for dimension 0")

    monkeypatch.setattr(text_signer, "sign", bug)
    with pytest.raises(gr.Error) as caught:
        text_signer.handle(SENTENCE, "greedy", 1.0, 0, 0, True)
    assert caught.value.message == "Signing failed (IndexError); the server log has the details."


def test_examples_come_from_the_test_split_of_the_cache(small_sample: Path, tmp_path: Path) -> None:
    from mGPT.data.prepare import load_cache

    cfg = load_config(GENERATOR_CFG, [f"DATASET.DATA_ROOT={small_sample}"])
    sentences, label = example_sentences(cfg, limit=4)
    test_texts = load_cache(small_sample / "_cache", "test").texts
    assert len(sentences) == len(set(sentences)) == 4 and set(sentences) <= set(test_texts)
    assert "test" in label
    no_cache = load_config(GENERATOR_CFG, [f"DATASET.DATA_ROOT={tmp_path}"])
    assert example_sentences(no_cache)[1] == "Examples"


# --- a real server --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(chain: TinyChain):
    args = ["--cfg", GENERATOR_CFG, *chain.generator_overrides(), f"LM.MAX_MOTION_TOKENS={MAX_STEPS}",
            "--concurrency", "2"]
    with AppServer(args) as running:
        yield running


@pytest.fixture(scope="module")
def frames_per_code(chain: TinyChain) -> int:
    from mGPT.archs.deto import load_tokenizer

    return 2 ** load_tokenizer(chain.tokenizer_ckpt).config()["body"]["down_t"]


@pytest.fixture()
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): "
                    "apt-get install chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--lang=ar"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # given paths: nothing downloaded
    yield driver
    driver.quit()


def read_params(path: str | Path) -> tuple[str, np.ndarray]:
    with open(path, "rb") as f:
        saved = pickle.load(f)
    return saved["text"], params_dict_to_array(saved)


@pytest.mark.slow
def test_page_signs_a_sentence_in_a_real_browser(server: AppServer, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url)
    box = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#sign-text textarea"))
    assert box.get_attribute("dir") == "rtl"
    box.send_keys(SENTENCE)
    browser.find_element(By.CSS_SELECTOR, "#sign-button").click()
    video = WebDriverWait(browser, 180).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#sign-video video[src]"))
    source = video.get_attribute("src")
    assert source.startswith(server.url)  # served by the app itself, over the loopback address
    downloaded = tmp_path / "page.mp4"
    with urllib.request.urlopen(source, timeout=30) as response:
        downloaded.write_bytes(response.read())
    with imageio.get_reader(downloaded, format="FFMPEG") as reader:
        frames = [frame for frame in reader]
    assert len(frames) > 0 and frames[0].ndim == 3
    # Chromium itself decodes it: metadata loaded, a duration of the frames at the data's 24 fps.
    state = WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "const v = document.querySelector('#sign-video video');"
        "return v.readyState >= 1 ? [v.duration, v.videoWidth, v.error] : null;"))
    assert state[2] is None and state[1] > 0 and state[0] == pytest.approx(len(frames) / 24, abs=0.1)
    summary = browser.find_element(By.CSS_SELECTOR, "#sign-summary").text
    assert f"{len(frames)} frames" in summary
    if os.environ.get("SASOKE_APP_SCREENSHOT"):
        browser.save_screenshot(os.environ["SASOKE_APP_SCREENSHOT"])

    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)  # clear() would not tell the page that the value changed
    browser.find_element(By.CSS_SELECTOR, "#sign-button").click()
    toast = WebDriverWait(browser, 60).until(  # the toast appears first, its text a moment later
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid='toast-text']").text)
    assert toast.startswith(EMPTY_MESSAGE)
    assert "Traceback" not in browser.page_source


@pytest.mark.slow
def test_api_returns_the_parameters_file_that_generate_makes(server: AppServer, chain: TinyChain,
                                                             frames_per_code: int) -> None:
    import json

    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from mGPT.generate import load_generator, text_to_sign

    client = Client(server.url, verbose=False)
    video, params_file, codes_file, keywords, summary = client.predict(SENTENCE, api_name="/sign")
    text, params = read_params(params_file)
    codes = json.loads(Path(codes_file).read_text(encoding="utf-8"))
    assert text == SENTENCE and params.shape[1] == FRAME_DIMS
    assert len(params) % frames_per_code == 0 and len(params) == frames_per_code * len(codes["body"])
    assert 1 <= len(codes["body"]) <= MAX_STEPS and len(codes["lhand"]) == len(codes["rhand"]) == len(codes["body"])
    assert [k["token"] for k in keywords] == codes["keywords"] and codes["keywords"]  # "مدرسه" is a sample word

    # The same path as `python -m mGPT.generate`: the same parameters, in this process.
    cfg = load_config(GENERATOR_CFG, [*chain.generator_overrides(), f"LM.MAX_MOTION_TOKENS={MAX_STEPS}"])
    module, dictionary = load_generator(cfg, GENERATOR_CFG)
    np.testing.assert_allclose(params, text_to_sign(module, SENTENCE, dictionary).params, atol=1e-5)

    # Sampling with a seed repeats itself; retrieval off finds no keywords.
    sampled = [read_params(client.predict(SENTENCE, "sample", 1.5, 0, 7, False, api_name="/sign")[1])[1]
               for _ in range(2)]
    np.testing.assert_array_equal(sampled[0], sampled[1])
    assert client.predict(SENTENCE, "greedy", 1.0, 0, 0, False, api_name="/sign")[3] == []

    for bad, message in (("", EMPTY_MESSAGE), ("hello there", "not Arabic")):
        with pytest.raises(AppError, match=message):
            client.predict(bad, api_name="/sign")
    assert read_params(client.predict(SENTENCE, api_name="/sign")[1])[0] == SENTENCE  # still serving


@pytest.mark.slow
def test_twenty_requests_from_four_clients_are_all_answered(server: AppServer, capsys) -> None:
    from gradio_client import Client

    sentences = ["أنا أذهب إلى المدرسة", "أنت يكتب كتاب", "هو يشرب ماء", "أنا يشرب", "أنت يكتب بيت"]
    requests = [sentences[i % len(sentences)] for i in range(20)]
    clients = [Client(server.url, verbose=False) for _ in range(4)]

    def send(i: int) -> tuple[str, float]:
        start = time.perf_counter()
        params_file = clients[i % 4].predict(requests[i], api_name="/sign")[1]
        return read_params(params_file)[0], time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(send, i) for i in range(len(requests))]
        done, pending = wait(futures, timeout=900)
    elapsed = time.perf_counter() - start
    assert not pending, f"{len(pending)} of {len(requests)} requests unanswered after {elapsed:.0f} s"
    answers = [future.result() for future in futures]
    assert [text for text, _ in answers] == requests  # every request got its own sentence back
    latencies = sorted(seconds for _, seconds in answers)
    with capsys.disabled():
        print(f"\napp load test: {len(requests)} requests from 4 clients in {elapsed:.1f} s, latency median "
              f"{latencies[len(latencies) // 2]:.1f} s, max {latencies[-1]:.1f} s; server peak memory "
              f"{server.peak_rss_mb():.0f} MiB")
