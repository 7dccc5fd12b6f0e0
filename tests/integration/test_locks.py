"""The other two lock formats, end to end: a hashed requirements file and a PEP 751 pylock.toml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import PROJECTS, Runner, copy_project, offline_container, sh


def built(project: Path) -> tuple[str, dict[str, str]]:
    """The lock kind the manifest records, and each wheel's origin."""
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text())
    return manifest["lock"]["kind"], {w["file"]: w["origin"] for w in manifest["wheels"]}


def test_requirements_file_with_hashes(wheelbarrow: Runner, tmp_path: Path) -> None:
    project = copy_project(PROJECTS / "req-app", tmp_path / "req-app")
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    assert built(project) == (
        "requirements",
        {"req_app-1.0-py3-none-any.whl": "built", "six-1.16.0-py2.py3-none-any.whl": "index"},
    )


def test_pylock_made_by_pip_lock(wheelbarrow: Runner, tmp_path: Path) -> None:
    project = copy_project(PROJECTS / "pylock-app", tmp_path / "pylock-app")
    locked = subprocess.run(
        [sys.executable, "-m", "pip", "lock", "-o", "pylock.toml", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    if "no such command" in locked.stderr.lower() or "unknown command" in locked.stderr.lower():
        pytest.fail(f"this pip has no 'pip lock' (pip >= 25.1 needed):\n{locked.stderr}")
    assert locked.returncode == 0, locked.stderr[-2000:]
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    assert built(project) == (
        "pylock",
        {"pylock_app-1.0-py3-none-any.whl": "built", "six-1.16.0-py2.py3-none-any.whl": "index"},
    )
    # The wheelhouse installs with no index into the runtime base.
    with offline_container("pylock") as name:
        sh(["docker", "cp", str(project / "wheelhouse"), f"{name}:/wheelhouse"])
        script = (
            "python3 -m venv /v && /v/bin/pip install -q --no-index --find-links /wheelhouse --require-hashes "
            "-r /wheelhouse/requirements.txt && /v/bin/python -c 'import pylock_app; print(pylock_app.GREETING)'"
        )
        assert sh(["docker", "exec", name, "sh", "-c", script]).output.strip().endswith("carried")
