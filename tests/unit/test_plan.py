from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.unit.conftest import write_project
from wheelbarrow._config import load_config
from wheelbarrow._lock import Lock, LockedFile, LockedPackage
from wheelbarrow._plan import BuildPlan, make_plan, manylinux_platforms
from wheelbarrow.errors import ConfigError, LockError


def pkg(name: str, version: str, *filenames: str) -> LockedPackage:
    files = tuple(LockedFile(f, f"{i:064x}") for i, f in enumerate(filenames, 1))
    return LockedPackage(canonicalize_name(name), version, tuple(f.sha256 for f in files), files)


def plan_for(
    tmp_path: Path, table: str, *packages: LockedPackage, backend: str = "poetry.core.masonry.api"
) -> BuildPlan:
    config = load_config(write_project(tmp_path, table, backend=backend), environ={})
    return make_plan(config, Lock(tmp_path / "poetry.lock", "poetry", packages), machine="x86_64")


BOOKWORM = 'debian-suite = "bookworm"'


def test_build_from_source_takes_the_sdist_even_with_wheels(tmp_path: Path) -> None:
    psycopg2 = pkg("psycopg2", "2.9.13", "psycopg2-2.9.13.tar.gz", "psycopg2-2.9.13-cp311-cp311-win_amd64.whl")
    plan = plan_for(tmp_path, BOOKWORM + '\nbuild-from-source = ["psycopg2"]', psycopg2)
    (build,) = plan.sdist_builds
    assert build.file is not None
    assert build.file.filename == "psycopg2-2.9.13.tar.gz"
    assert build.hashes == (build.file.sha256,)
    assert build.reason == "build-from-source"
    assert plan.index_wheels == ()


def test_best_compatible_wheel_is_chosen(tmp_path: Path) -> None:
    package = pkg(
        "markupsafe",
        "3.0.2",
        "markupsafe-3.0.2.tar.gz",
        "MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "MarkupSafe-3.0.2-cp311-cp311-musllinux_1_2_x86_64.whl",
        "MarkupSafe-3.0.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
    )
    plan = plan_for(tmp_path, BOOKWORM, package)
    (wheel,) = plan.index_wheels
    assert wheel.file is not None
    assert wheel.file.filename == "MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert wheel.hashes == (wheel.file.sha256,)


def test_wheel_too_new_for_the_target_glibc_falls_back_to_the_sdist(tmp_path: Path) -> None:
    package = pkg("fast", "1.0", "fast-1.0.tar.gz", "fast-1.0-cp311-cp311-manylinux_2_38_x86_64.whl")
    plan = plan_for(tmp_path, BOOKWORM, package)
    (build,) = plan.sdist_builds
    assert build.reason == "no compatible wheel"


def test_pure_wheel_beats_the_sdist(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "", pkg("six", "1.16.0", "six-1.16.0.tar.gz", "six-1.16.0-py2.py3-none-any.whl"))
    assert [w.file.filename for w in plan.index_wheels if w.file] == ["six-1.16.0-py2.py3-none-any.whl"]


def test_no_wheel_and_no_sdist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="no wheel for cp311 manylinux"):
        plan_for(tmp_path, BOOKWORM, pkg("winonly", "1", "winonly-1-cp311-cp311-win_amd64.whl"))


def test_build_from_source_of_a_package_not_locked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'psycopg2', which is not in the locked runtime set"):
        plan_for(tmp_path, 'build-from-source = ["psycopg2"]', pkg("six", "1", "six-1-py3-none-any.whl"))


def test_build_from_source_without_an_sdist(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="has no sdist"):
        plan_for(tmp_path, 'build-from-source = ["six"]', pkg("six", "1", "six-1-py3-none-any.whl"))


def test_requirements_locks_leave_the_file_to_fetch(tmp_path: Path) -> None:
    package = LockedPackage(pkg("six", "1").name, "1", ("a" * 64, "b" * 64))
    plan = plan_for(tmp_path, "", package)
    (wheel,) = plan.index_wheels
    assert wheel.file is None
    assert wheel.hashes == ("a" * 64, "b" * 64)


def test_project_engine_follows_the_backend(tmp_path: Path) -> None:
    assert plan_for(tmp_path / "a", "").project.engine == "pure"
    assert plan_for(tmp_path / "b", "", backend="setuptools.build_meta").project.engine == "cibuildwheel"
    assert plan_for(tmp_path / "c", 'project-build = "pure"', backend="setuptools.build_meta").project.engine == "pure"


def test_only_a_guessed_platform_build_may_turn_out_pure(tmp_path: Path) -> None:
    """setuptools may or may not compile: auto tries cibuildwheel and takes a pure wheel as an answer; a
    project said to be "platform" that builds pure is an error, and a pure backend is never tried."""
    assert plan_for(tmp_path / "a", "", backend="setuptools.build_meta").project.either is True
    platform = plan_for(tmp_path / "b", 'project-build = "platform"', backend="setuptools.build_meta")
    assert (platform.project.engine, platform.project.either) == ("cibuildwheel", False)
    assert plan_for(tmp_path / "c", "").project.either is False


def test_plan_describes_itself(tmp_path: Path) -> None:
    psycopg2 = pkg("psycopg2", "2.9.13", "psycopg2-2.9.13.tar.gz")
    text = plan_for(tmp_path, BOOKWORM + '\nsystem-packages = ["libpq-dev"]', psycopg2).describe()
    assert "glibc <= 2.36" in text
    assert "psycopg2==2.9.13  psycopg2-2.9.13.tar.gz  [no compatible wheel]" in text
    assert "libpq-dev" in text


def test_manylinux_platforms_include_legacy_aliases() -> None:
    platforms = manylinux_platforms((2, 17), "x86_64")
    assert platforms[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert "manylinux1_x86_64" in platforms
    assert platforms[-1] == "manylinux1_x86_64"
