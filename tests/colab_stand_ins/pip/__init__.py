"""Stand-in for pip in the Colab-mode notebook test: `python -m pip install` is checked and recorded."""
