"""The project: its directory (``--project``) and its pyproject.toml, read as untrusted input."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import _shapes
from .errors import ConfigError


def project_directory(given: Path) -> Path:
    """``--project``: the project's directory, or its pyproject.toml."""
    try:
        return _project_directory(given)
    except OSError as err:
        msg = f"--project {given}: {err.strerror or err}"
        raise ConfigError(msg, tip="Pass the project's directory (the one holding pyproject.toml).") from err


def _project_directory(given: Path) -> Path:
    path = given.resolve()
    if path.is_file() and path.name == "pyproject.toml":
        return path.parent
    if not path.is_dir():
        msg = f"--project {given}: {'no such directory' if not path.exists() else 'not a directory'}"
        raise ConfigError(msg, tip="Pass the project's directory (the one holding pyproject.toml).")
    return path


def read_pyproject(project_dir: Path) -> dict[str, object]:
    path = project_dir / "pyproject.toml"
    try:
        data = _shapes.read_file(path, ConfigError, tip="pyproject.toml must be a regular file you can read.")
    except (FileNotFoundError, NotADirectoryError) as err:
        msg = f"no pyproject.toml in {project_dir}"
        raise ConfigError(msg, tip="Run wheelbarrow from the project's directory or pass --project.") from err
    return _shapes.toml(data, str(path), ConfigError, tip="Fix the syntax error it names.")


def dynamic_fields(data: Mapping[str, object]) -> frozenset[str]:
    """The [project] fields pyproject.toml leaves to the build backend (``dynamic``)."""
    project = data.get("project")
    dynamic = project.get("dynamic", []) if isinstance(project, dict) else []
    return frozenset(d for d in dynamic if isinstance(d, str)) if isinstance(dynamic, list) else frozenset()


def name_and_version(data: Mapping[str, object], path: Path) -> tuple[str, str | None]:
    """The project's name, and its version: None when it is dynamic (setuptools-scm, hatch-vcs ...), and
    then read from the wheel the build makes."""
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    project = data.get("project")
    for table in (project, poetry):
        if isinstance(table, dict) and isinstance(table.get("name"), str):
            _shapes.name(table["name"], f"{path}: [project] name", ConfigError, tip="Fix the project's name.")
            version = table.get("version")
            if version is None and isinstance(poetry, dict) and isinstance(poetry.get("version"), str):
                version = poetry["version"]  # Poetry 2: [project] dynamic = ["version"], [tool.poetry] version
            if version is None and "version" in dynamic_fields(data):
                return table["name"], None
            if not isinstance(version, str):
                msg = f"{path}: the project has no version, static or dynamic"
                tip = 'Set [project] version, or declare it dynamic = ["version"] for your build backend.'
                raise ConfigError(msg, tip=tip)
            tip = "Set a PEP 440 version, e.g. 1.0.0."
            return table["name"], _shapes.version(version, f"{path}: [project] version", ConfigError, tip=tip)
    msg = f"{path}: no [project] name"
    raise ConfigError(msg, tip="Add a [project] table with name and version.")
