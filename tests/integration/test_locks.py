"""The other two lock formats, end to end: a hashed requirements file and a PEP 751 pylock.toml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import PROJECTS, Runner, copy_project, run_installed, uv


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
    output = run_installed(project / "wheelhouse", "pylock", "import pylock_app; print(pylock_app.GREETING)")
    assert output.strip().endswith("carried")


def test_uv_lock_read_through_uv(wheelbarrow: Runner, tmp_path: Path) -> None:
    """uv.lock, made here by the real uv: exported by uv itself, groups mapped, staleness checked by uv."""
    project = copy_project(PROJECTS / "uv-app", tmp_path / "uv-app")
    uv(project, "lock")
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    assert built(project) == (
        "uv",
        {"uv_app-1.0-py3-none-any.whl": "built", "six-1.16.0-py2.py3-none-any.whl": "index"},
    )
    with_dev = wheelbarrow("build", "--project", str(project), "-C", "groups=main,dev")
    assert with_dev.returncode == 0, with_dev.output[-3000:]
    assert "iniconfig-2.0.0-py3-none-any.whl" in built(project)[1]
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six==1.16.0"', '"six==1.16.0", "idna"'))
    stale = wheelbarrow("build", "--project", str(project))
    assert stale.returncode == 4, stale.output[-3000:]
    assert "ERROR: uv.lock is stale or invalid" in stale.output
    assert "TIP: Run 'uv lock'" in stale.output


def test_a_stale_requirements_export_is_refused(wheelbarrow: Runner, tmp_path: Path) -> None:
    """A hashed requirements file that no longer satisfies [project] dependencies is a stale lock (4)."""
    project = copy_project(PROJECTS / "req-app", tmp_path / "req-app")
    before = sorted(p.name for p in project.iterdir())
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six==1.16.0"', '"six==1.16.0", "attrs>=23"'))
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 4, out.output[-3000:]
    assert "ERROR: requirements.txt is stale: pyproject.toml requires attrs>=23 is not in it" in out.output
    assert sorted(p.name for p in project.iterdir()) == before  # nothing written


def test_pylock_exported_by_uv(wheelbarrow: Runner, tmp_path: Path) -> None:
    """uv's PEP 751 export, read with packaging.pylock: the groups it was exported with, nothing else."""
    project = copy_project(PROJECTS / "uv-app", tmp_path / "uv-pylock")
    uv(project, "lock")
    uv(project, "export", "--format", "pylock.toml", "--no-dev", "--no-emit-project", "-o", "pylock.toml")
    (project / "uv.lock").unlink()  # the pylock is the lock now
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    assert built(project) == (
        "pylock",
        {"uv_app-1.0-py3-none-any.whl": "built", "six-1.16.0-py2.py3-none-any.whl": "index"},
    )
    asked = wheelbarrow("plan", "--project", str(project), "-C", "groups=main,dev")
    assert asked.returncode == 4, asked.output[-2000:]
    assert "Undeclared dependency groups: dev" in asked.output
    assert "TIP: The lock declares the dependency groups: none." in asked.output
