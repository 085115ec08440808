"""Colab-mode notebook test: the folders that `pip install -e` was asked for are importable, as after
a real editable install (the stand-in pip records them in $FAKE_COLAB_RECORD/editable.txt)."""

import os
import sys

_editable = os.path.join(os.environ.get("FAKE_COLAB_RECORD", ""), "editable.txt")
if os.path.isfile(_editable):
    with open(_editable) as _handle:
        sys.path.extend(line for line in _handle.read().splitlines() if line and line not in sys.path)
