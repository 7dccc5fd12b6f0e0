"""Unit tests run in seconds with no docker and no network: any subprocess fails loudly."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def no_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        msg = f"unit tests must not start processes: {args[0] if args else kwargs}"
        raise AssertionError(msg)

    monkeypatch.setattr(subprocess, "Popen", refuse)


def write_project(
    root: Path, wheelbarrow: str = "", *, name: str = "demo", backend: str = "poetry.core.masonry.api"
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "1.0"\n\n'
        f'[build-system]\nrequires = ["poetry-core>=2"]\nbuild-backend = "{backend}"\n\n'
        f"[tool.wheelbarrow]\n{wheelbarrow}\n",
        encoding="utf-8",
    )
    return root
