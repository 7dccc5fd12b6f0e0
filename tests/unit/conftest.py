"""Unit tests run in seconds with no docker and no network: any subprocess fails loudly."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from wheelbarrow import _wheelhouse
from wheelbarrow._config import load_config
from wheelbarrow._lock import Lock, LockedFile, LockedPackage
from wheelbarrow._log import Log
from wheelbarrow._manifest import BuilderInfo, FileRef, LockInfo, Manifest, Project, RuntimeBase, Target, WheelEntry
from wheelbarrow._plan import BuildPlan, make_plan
from wheelbarrow._wheelhouse import entry_for


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


def sample_manifest(*wheels: WheelEntry, **changes: object) -> Manifest:
    """A manifest with plausible sections around ``wheels``; ``changes`` replace any section."""
    manifest = Manifest(
        project=Project("demo", "1"),
        target=Target("3.11", "cp311", "x86_64", "2.36"),
        lock=LockInfo("poetry.lock", "poetry", "0" * 64),
        runtime_base=RuntimeBase(
            "localhost/wheelbarrow/runtime-base:bookworm", "sha256:1", "exclude-base", ("libssl.so.3",)
        ),
        builder=BuilderInfo("b", "sha256:0", "localhost/wheelbarrow/builder-base:bookworm"),
        source_date_epoch=315532800,
        build_requirements=(FileRef("setuptools-1-py3-none-any.whl", "0" * 64),),
        wheels=wheels,
    )
    return dataclasses.replace(manifest, **changes)  # type: ignore[arg-type]


def quiet() -> Log:
    return Log(sink=lambda _line: None)


def demo_plan(tmp_path: Path) -> BuildPlan:
    project = write_project(tmp_path, 'debian-suite = "bookworm"\nsystem-packages = ["libpq-dev"]')
    config = load_config(project, environ={})
    sdist = LockedFile("psycopg2-2.9.13.tar.gz", "1" * 64)
    package = LockedPackage(canonicalize_name("psycopg2"), "2.9.13", (sdist.sha256,), (sdist,))
    lock = Lock(project / "poetry.lock", "poetry", (package,))
    return make_plan(config, lock, machine="x86_64")


def make_wheelhouse(root: Path) -> Path:
    wheelhouse = root / "wheelhouse"
    sources = root / "src"
    sources.mkdir(parents=True)
    entries = []
    for name in ("a", "b"):
        path = sources / f"{name}-1-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{name}/__init__.py", name)
        entries.append((path, entry_for(path, name, "1", "index", "any")))
    manifest = sample_manifest(*(e for _, e in entries))
    with _wheelhouse.staging(wheelhouse) as stage:
        _wheelhouse.fill(stage, entries, manifest)
        _wheelhouse.swap_in(stage, wheelhouse)
    return wheelhouse


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` with its contents (files) or kind: to prove nothing changed."""
    out: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(Path(folder) / name, root)] = "dir"
        for name in files:
            path = Path(folder) / name
            out[os.path.relpath(path, root)] = path.read_bytes() if path.is_file() else "special"
    return out


#: PEP 508 environment markers as the probe reports them for a CPython 3.11 image on x86_64 Linux.
ENVIRONMENT = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.2",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_release": "6.1.0",
    "platform_system": "Linux",
    "platform_version": "#1 SMP",
    "python_full_version": "3.11.2",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "sys_platform": "linux",
}
