"""The kernel of the Colab-mode notebook test: ipykernel, with downloads served from fixture folders.

    $FAKE_COLAB_FIXTURES/drive/<Google Drive id>      the file gdown.download(id=...) fetches
    $FAKE_COLAB_FIXTURES/hub/<owner>/<name>/<files>   a Hugging Face hub repository

Every download is recorded in $FAKE_COLAB_RECORD/downloads.jsonl. An unknown id or repository fails the
way the real libraries do, so a wrong id in a notebook fails the test.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path

import gdown
import huggingface_hub

FIXTURES = Path(os.environ["FAKE_COLAB_FIXTURES"])
RECORD = Path(os.environ["FAKE_COLAB_RECORD"]) / "downloads.jsonl"


def record(**entry: object) -> None:
    with open(RECORD, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def download(url: str | None = None, output: str | None = None, quiet: bool = False, id: str | None = None,
             **kwargs: object) -> str:
    source = FIXTURES / "drive" / str(id)
    record(library="gdown", id=id, output=output)
    if url is not None or not source.is_file():
        raise gdown.exceptions.FileURLRetrievalError(f"stand-in Drive has no file {id!r} (url {url!r})")
    shutil.copyfile(source, output)
    return output


def hub_folder(repo_id: str) -> Path:
    folder = FIXTURES / "hub" / repo_id
    if not folder.is_dir():
        raise FileNotFoundError(f"stand-in hub has no repository {repo_id!r}")  # the real error is an OSError too
    return folder


def list_repo_files(repo_id: str, **kwargs: object) -> list[str]:
    return sorted(str(path.relative_to(hub_folder(repo_id))) for path in hub_folder(repo_id).rglob("*")
                  if path.is_file())


def snapshot_download(repo_id: str, *, local_dir: str | Path, allow_patterns: list[str] | None = None,
                      **kwargs: object) -> str:
    copied = []
    for name in list_repo_files(repo_id):
        if allow_patterns is None or any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
            (Path(local_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(hub_folder(repo_id) / name, Path(local_dir) / name)
            copied.append(name)
    record(library="huggingface_hub", repo_id=repo_id, local_dir=str(local_dir), allow_patterns=allow_patterns,
           copied=copied)
    return str(local_dir)


if __name__ == "__main__":
    gdown.download = download
    huggingface_hub.list_repo_files = list_repo_files
    huggingface_hub.snapshot_download = snapshot_download
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
