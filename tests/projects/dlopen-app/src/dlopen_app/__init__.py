"""A package whose extension needs libzstd.so.1 at import time, loaded by name (no DT_NEEDED entry)."""

from dlopen_app._zstd import version

__all__ = ["version"]
