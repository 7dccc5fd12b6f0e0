"""Projects of other shapes than the example: all pure Python, and a project with its own C extension."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import PROJECTS, Runner, copy_project, sh


def test_a_wheelhouse_of_pure_python_wheels_passes_verify(wheelbarrow: Runner, tmp_path: Path) -> None:
    """No extension module anywhere: the image still builds and every check passes (it used to fail on
    "0 modules")."""
    project = copy_project(PROJECTS / "req-app", tmp_path / "req-app")
    assert wheelbarrow("build", "--project", str(project)).returncode == 0
    tag = "req-app:pure-test"
    try:
        out = wheelbarrow("image", "--project", str(project), "--image-tag", tag, "--json")
        assert out.returncode == 0, out.output[-3000:]
        assert "0 modules, 0 shared objects (every wheel is pure Python)" in out.output
        report = json.loads(out.output[out.output.index("\n{\n") :])  # stdout, after the log lines
        assert all(check["ok"] for check in report["checks"])
        assert len(report["checks"]) == 9
    finally:
        sh(["docker", "rmi", "-f", tag], check=False)


def test_a_project_with_its_own_extension_is_built_with_cibuildwheel(wheelbarrow: Runner, tmp_path: Path) -> None:
    """A setuptools project with a C extension: built from a staged copy by cibuildwheel, offline, repaired."""
    project = copy_project(PROJECTS / "ext-app", tmp_path / "ext-app")
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text())
    (wheel,) = manifest["wheels"]
    assert wheel["name"] == "ext-app"
    assert wheel["origin"] == "built"
    assert "manylinux" in wheel["platform_tag"]  # repaired by auditwheel: it links nothing but libc
    assert wheel["file"].startswith("ext_app-1.0-cp311-cp311-manylinux")
