"""wheelbarrow: carry compiled wheels from a hermetic builder container to a slim runtime image."""

from __future__ import annotations

__version__ = "0.1.0"

from ._config import Config, load_config
from ._log import Log
from ._pipeline import BUILD, IMAGE, PLAN, VERIFY, Run, execute
from .errors import WheelbarrowError

__all__ = [
    "BUILD",
    "IMAGE",
    "PLAN",
    "VERIFY",
    "Config",
    "Log",
    "Run",
    "WheelbarrowError",
    "__version__",
    "execute",
    "load_config",
]
