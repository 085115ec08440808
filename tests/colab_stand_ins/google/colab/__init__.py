"""Stand-in for Colab's google.colab package (its submodule drive), for the Colab-mode notebook test."""
