"""Bad input and broken engines end with a clear error, and nothing is lost."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from tests.integration.conftest import PROJECTS, Build, Runner, copy_project, leftover_containers, run_id_of


def digest_tree(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def assert_clean_error(output: str, cause: str, fix: str) -> None:
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("ERROR: ")]
    tips = [line for line in output.splitlines() if line.startswith("TIP: ")]
    assert len(errors) == 1, output[-3000:]
    assert cause in output.split("ERROR: ", 1)[1], output[-3000:]
    assert len(tips) == 1
    assert fix in tips[0]


def test_engine_stopped_leaves_the_wheelhouse(wheelbarrow: Runner, example_build: Build) -> None:
    before = digest_tree(example_build.wheelhouse)
    out = wheelbarrow("build", "--project", str(example_build.project), env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert out.returncode == 6
    assert_clean_error(out.output, "the docker engine is not running", "DOCKER_HOST")
    assert digest_tree(example_build.wheelhouse) == before


def test_no_engine_binary(wheelbarrow: Runner, example_build: Build, tmp_path: Path) -> None:
    out = wheelbarrow("build", "--project", str(example_build.project), env={"PATH": str(tmp_path)})
    assert out.returncode == 6
    assert_clean_error(out.output, "no container engine", "Install Docker")


def test_the_engine_is_docker_or_podman_never_another_program(wheelbarrow: Runner, example_build: Build) -> None:
    """A config value never names a program to run: `engine = "sh"` would run the project's file `version`."""
    for value in ("sh", "python3", "./docker", "no-such-engine"):
        out = wheelbarrow("build", "--project", str(example_build.project), "-C", f"engine={value}")
        assert out.returncode == 2
        assert_clean_error(out.output, "'engine' is", "Set engine to one of 'docker', 'podman'")


def edited_copy(example_build: Build, dest: Path, old: str, new: str) -> Path:
    """A copy of the example project whose pyproject.toml has ``old`` replaced by ``new``."""
    project = copy_project(example_build.project, dest)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert old in text
    pyproject.write_text(text.replace(old, new))
    return project


def test_stale_lock(wheelbarrow: Runner, example_build: Build, tmp_path: Path) -> None:
    project = edited_copy(example_build, tmp_path / "stale", '"gunicorn>=23,<24",', '"gunicorn>=23,<24",\n    "six",')
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 4
    assert_clean_error(out.output, "poetry.lock is stale", "poetry lock")
    assert not (project / "wheelhouse").exists() or digest_tree(project / "wheelhouse") == digest_tree(
        example_build.wheelhouse
    )


def test_hash_mismatch_from_the_index(wheelbarrow: Runner, tmp_path: Path) -> None:
    project = copy_project(PROJECTS / "bad-hash", tmp_path / "bad-hash")
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 5
    assert_clean_error(out.output, "sha256 is not the locked one", "re-lock")
    assert not (project / "wheelhouse").exists()


def test_missing_system_package_shows_the_compiler_and_the_key(
    wheelbarrow: Runner, example_build: Build, tmp_path: Path
) -> None:
    project = edited_copy(
        example_build, tmp_path / "nolibpq", 'system-packages = ["libpq-dev"]', "system-packages = []"
    )
    shutil.copytree(example_build.wheelhouse, project / "wheelhouse")  # a previous good run
    before = digest_tree(project / "wheelhouse")
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 8
    assert_clean_error(out.output, "compiling psycopg2==2.9.13 from psycopg2-2.9.13.tar.gz failed", "system-packages")
    assert "pg_config executable not found" in out.output.split("ERROR: ", 1)[1]
    assert digest_tree(project / "wheelhouse") == before
    assert leftover_containers(run_id_of(out.output)) == []  # this run's: another may share the engine


def test_unknown_key(wheelbarrow: Runner, example_build: Build, tmp_path: Path) -> None:
    project = edited_copy(example_build, tmp_path / "typo", "system-packages =", "system-package =")
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 2
    assert_clean_error(out.output, "Did you mean 'system-packages'?", "configuration reference")


def test_every_failed_build_is_named_with_its_cause(wheelbarrow: Runner, tmp_path: Path) -> None:
    """Two sdists that cannot compile (no system packages): one run names both, each with its own cause,
    also with -q; one after the other (jobs = 1), so the first failure did not stop the second build."""
    project = copy_project(PROJECTS / "two-failing", tmp_path / "two-failing")
    out = wheelbarrow("build", "-q", "--project", str(project))
    assert out.returncode == 8, out.output[-4000:]
    error = out.output.split("ERROR: ", 1)[1]
    assert error.startswith("2 builds failed:")
    assert "[mysqlclient] compiling mysqlclient==2.3.2 from mysqlclient-2.3.2.tar.gz failed" in error
    assert "Exception: Can not find valid pkg-config name." in error
    assert "[psycopg2] compiling psycopg2==2.9.13 from psycopg2-2.9.13.tar.gz failed" in error
    assert "pg_config executable not found" in error
    assert "manylinux-interpreters" not in error
    assert error.count("TIP: ") == 1
    assert not (project / "wheelhouse").exists()
    assert leftover_containers(run_id_of(out.output)) == []  # this run's: another may share the engine
