"""wheelbarrow: carry compiled wheels from a hermetic builder container to a slim runtime image.

The public names are imported on first use, so ``import wheelbarrow.nox`` in a noxfile stays light (it
needs none of the pipeline) and no module of the package imports this one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from ._config import Config, load_config
    from ._log import Log
    from ._pipeline import BUILD, IMAGE, PLAN, PUBLISH, VERIFY, Run, execute
    from .errors import WheelbarrowError

_WHERE = {
    "Config": "_config",
    "load_config": "_config",
    "Log": "_log",
    "BUILD": "_pipeline",
    "IMAGE": "_pipeline",
    "PLAN": "_pipeline",
    "PUBLISH": "_pipeline",
    "VERIFY": "_pipeline",
    "Run": "_pipeline",
    "execute": "_pipeline",
    "WheelbarrowError": "errors",
}

__all__ = [
    "BUILD",
    "IMAGE",
    "PLAN",
    "PUBLISH",
    "VERIFY",
    "Config",
    "Log",
    "Run",
    "WheelbarrowError",
    "__version__",
    "execute",
    "load_config",
]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    msg = f"module 'wheelbarrow' has no attribute {name!r}"
    raise AttributeError(msg)
