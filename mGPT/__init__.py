"""SaSOKE: Arabic text to Saudi Sign Language, after SOKE (ICCV 2025)."""

__version__ = "0.1.0"
