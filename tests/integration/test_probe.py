"""The probe's import child on this host (no engine needed): a module that hangs or ends the process
gives an answer, never a hang or a lie."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wheelbarrow import _probe


@pytest.fixture
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    (site,) = root.glob("lib/python3*/site-packages")
    (site / "hangs.py").write_text("import time\ntime.sleep(60)\n")
    (site / "quits.py").write_text("import os\nos._exit(3)\n")
    (site / "fails.py").write_text("raise ImportError('libpq.so.5: cannot open shared object file')\n")
    (site / "exits.py").write_text("raise SystemExit(2)\n")
    monkeypatch.setattr(_probe, "VENV", root)
    monkeypatch.setattr(_probe, "IMPORT_SECONDS", 3)
    return root


def test_each_import_failure_is_named(venv: Path) -> None:
    failed, libssl, stuck = _probe.imports(["fails", "exits", "json"])
    assert stuck == ""
    assert failed == {"fails": "ImportError: libpq.so.5: cannot open shared object file", "exits": "SystemExit: 2"}
    assert libssl is not None
    assert len(libssl) == 1  # ssl was imported last, in the same child


@pytest.mark.parametrize(
    ("module", "said"),
    [("hangs", "did not finish in 3 s"), ("quits", "ended with exit 3")],
)
def test_an_import_that_hangs_or_ends_the_process_is_an_answer(venv: Path, module: str, said: str) -> None:
    failed, libssl, stuck = _probe.imports(["json", module])
    assert (failed, libssl) == ({}, None)
    assert said in stuck
    assert _probe.site_packages() == next(venv.glob("lib/python3*/site-packages"))
