"""Stand-in for google.colab.drive: mount() links the folder $FAKE_COLAB_MYDRIVE as <mountpoint>/MyDrive."""

from __future__ import annotations

import os
from pathlib import Path


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    link = Path(mountpoint) / "MyDrive"
    if link.is_symlink() and not force_remount:
        print(f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, call "
              "drive.mount(\"/content/drive\", force_remount=True).")
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(Path(os.environ["FAKE_COLAB_MYDRIVE"]), target_is_directory=True)
    print(f"Mounted at {mountpoint}")
