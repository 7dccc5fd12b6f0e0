"""Configuration, declared once and read once.

Each option is declared in :data:`OPTIONS` with its default. Values come from
``[tool.wheelbarrow]`` in the project's pyproject.toml, then ``WHEELBARROW_*``
environment variables, then the command line; later sources win. The result is
a frozen :class:`Config`; nothing else in wheelbarrow reads pyproject.toml's
``[tool.wheelbarrow]`` table or the environment.
"""

from __future__ import annotations

import difflib
import os
import pwd
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from packaging.utils import canonicalize_name

from . import _shapes
from ._guard import check_location
from ._shapes import image_name_for
from .errors import ConfigError

_ASCII_NUMBER = re.compile(r"[0-9]{1,6}")

ProjectBuild = Literal["auto", "pure", "platform"]
RepairPolicy = Literal["exclude-base", "vendor-all"]
ImageBuilder = Literal["auto", "buildkit", "legacy"]
EngineName = Literal["docker", "podman"]

#: glibc of each Debian suite wheelbarrow can bootstrap; it bounds the wheels
#: that fit the runtime image.
DEBIAN_GLIBC = {"bullseye": "2.31", "bookworm": "2.36", "trixie": "2.41"}
DEBIAN_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}


@dataclass(frozen=True)
class Option:
    key: str
    kind: Literal["str", "path", "list", "argv", "bool", "choice"]
    default: str | tuple[str, ...]
    help: str
    choices: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return "WHEELBARROW_" + self.key.upper().replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("python", "str", "3.11", "CPython version the wheels are built for (X.Y)."),
    Option("groups", "list", ("main",), "Poetry dependency groups to include."),
    Option(
        "build-from-source",
        "list",
        (),
        "Locked packages built from their sdist even if a wheel exists.",
    ),
    Option(
        "builder-base",
        "str",
        "manylinux_2_28",
        "Builder base image: a reference, or a manylinux policy name that "
        "cibuildwheel pins (manylinux_2_28, manylinux_2_34 ...).",
    ),
    Option(
        "debian-suite",
        "choice",
        "",
        "Bootstrap local bases from this Debian suite when a base cannot be pulled.",
        choices=("", *DEBIAN_GLIBC),
    ),
    Option("debian-mirror", "str", "", "Debian mirror for bootstrap (default: the host's apt mirror)."),
    Option("system-packages", "list", (), "System packages the builder needs (e.g. libpq-dev)."),
    Option("wheelhouse", "path", "wheelhouse", "Output directory, relative to the project."),
    Option("lock", "path", "", "Lock file: poetry.lock, pylock.toml or a hashed requirements file."),
    Option(
        "cache-dir",
        "path",
        "",
        "Where fetched artifacts are cached by sha256 (default: $XDG_CACHE_HOME/wheelbarrow or ~/.cache/wheelbarrow).",
    ),
    Option("jobs", "str", "", "How many builds run at once, each in its own container (default: the number of cores)."),
    Option("engine", "choice", "docker", "Container engine CLI (docker or podman).", choices=get_args(EngineName)),
    Option(
        "project-build",
        "choice",
        "auto",
        "How the project's own wheel is built: pure (python -m build in the builder) "
        "or platform (cibuildwheel + auditwheel).",
        choices=get_args(ProjectBuild),
    ),
    Option(
        "glibc",
        "str",
        "",
        "Highest glibc of the target (default: from debian-suite, else the manylinux policy).",
    ),
    Option(
        "runtime-base",
        "str",
        "python:3.11-slim",
        "Runtime base image: the wheelhouse is repaired for it and installed into it "
        "(bootstrapped from debian-suite when it cannot be pulled).",
    ),
    Option(
        "repair-policy",
        "choice",
        "exclude-base",
        "exclude-base: libraries that must be single in a process (libssl, libcrypto) are not grafted when the "
        "runtime base provides them; vendor-all: graft everything auditwheel finds.",
        choices=get_args(RepairPolicy),
    ),
    Option(
        "runtime-dockerfile", "path", "", "The runtime Dockerfile (default: wheelbarrow's docker/runtime.Dockerfile)."
    ),
    Option(
        "repair-plat",
        "str",
        "",
        "The manylinux policy auditwheel must reach (e.g. manylinux_2_28_x86_64; default: the best it can).",
    ),
    Option("dist-dir", "path", "dist", "Where publish writes the CI artifacts, relative to the project."),
    Option("image-tag", "str", "", "Tag of the runtime image (default: <project>:<version>)."),
    Option("command", "argv", (), "The image's command (e.g. gunicorn --bind 0.0.0.0:8000 app:app)."),
    Option("port", "str", "", "The port the image exposes."),
    Option("keep-pip", "bool", "false", "Keep pip and setuptools in the runtime venv (they are not needed to run)."),
    Option(
        "image-builder",
        "choice",
        "auto",
        "buildkit or legacy docker builder for the runtime image (auto: BuildKit when the client has it).",
        choices=get_args(ImageBuilder),
    ),
)

_BY_KEY = {o.key: o for o in OPTIONS}


@dataclass(frozen=True)
class Config:
    project_dir: Path
    project_name: str
    project_version: str
    python: str
    groups: tuple[str, ...]
    build_from_source: tuple[str, ...]
    builder_base: str
    debian_suite: str
    debian_mirror: str
    system_packages: tuple[str, ...]
    wheelhouse: Path
    lock: Path | None
    cache_dir: Path
    jobs: int
    engine: EngineName
    project_build: ProjectBuild
    glibc: str
    runtime_base: str
    repair_policy: RepairPolicy
    repair_plat: str
    dist_dir: Path
    runtime_dockerfile: Path | None
    image_tag: str
    command: tuple[str, ...]
    port: str
    keep_pip: bool
    image_builder: ImageBuilder

    @property
    def python_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def glibc_tuple(self) -> tuple[int, int]:
        major, minor = self.glibc.split(".")
        return int(major), int(minor)


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, list(_BY_KEY), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _coerce(option: Option, value: object, source: str) -> str | tuple[str, ...]:
    if option.kind == "bool":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        msg = f"{source}: '{option.key}' must be true or false, not {value!r}"
        raise ConfigError(msg, tip=f"Write it as {option.key} = true (or false).")
    if option.kind == "argv" and isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as err:
            msg = f"{source}: '{option.key}' is not a valid command line: {err}"
            raise ConfigError(msg, tip=f'Write it as a list: {option.key} = ["prog", "arg"].') from err
    if option.kind in ("list", "argv"):
        if isinstance(value, str):
            return tuple(v for v in re.split(r"[,\s]+", value) if v)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        msg = f"{source}: '{option.key}' must be a list of strings, not {type(value).__name__}"
        raise ConfigError(msg, tip=f'Write it as {option.key} = ["a", "b"].')
    if not isinstance(value, str):
        msg = f"{source}: '{option.key}' must be a string, not {type(value).__name__}"
        raise ConfigError(msg, tip=f'Write it as {option.key} = "...".')
    if "\0" in value:
        msg = f"{source}: '{option.key}' contains a NUL character"
        raise ConfigError(msg, tip=f"Fix the value of {option.key}.")
    if option.kind == "path" and not value.strip():
        msg = f"{source}: '{option.key}' is empty; an empty path would mean the project directory itself"
        raise ConfigError(msg, tip=f"Give {option.key} a value, or unset it to use the default.")
    if option.kind == "choice" and value not in option.choices:
        allowed = ", ".join(repr(c) for c in option.choices)
        msg = f"{source}: '{option.key}' is {value!r}, which is not one of {allowed}"
        raise ConfigError(msg, tip=f"Set {option.key} to one of {allowed}.")
    return value


_BOOLS = {"true": "true", "1": "true", "yes": "true", "false": "false", "0": "false", "no": "false"}


def _check_keys(keys: object, source: str) -> None:
    for key in keys:  # type: ignore[attr-defined]
        if key not in _BY_KEY:
            msg = f"{source}: unknown key '{key}'.{_did_you_mean(str(key))}"
            raise ConfigError(msg, tip="See the configuration reference in the README.")


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


def _read_pyproject(project_dir: Path) -> dict[str, object]:
    path = project_dir / "pyproject.toml"
    try:
        data = _shapes.read_file(path, ConfigError, tip="pyproject.toml must be a regular file you can read.")
    except (FileNotFoundError, NotADirectoryError) as err:
        msg = f"no pyproject.toml in {project_dir}"
        raise ConfigError(msg, tip="Run wheelbarrow from the project's directory or pass --project.") from err
    return _shapes.toml(data, str(path), ConfigError, tip="Fix the syntax error it names.")


def _name_and_version(data: Mapping[str, object], path: Path) -> tuple[str, str]:
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    for table in (data.get("project"), poetry):
        if isinstance(table, dict) and isinstance(table.get("name"), str):
            version = table.get("version")
            if not isinstance(version, str):
                msg = f"{path}: the project has no static version"
                raise ConfigError(msg, tip="Set [project] version; wheelbarrow records it in the manifest.")
            _shapes.name(table["name"], f"{path}: [project] name", ConfigError, tip="Fix the project's name.")
            tip = "Set a PEP 440 version, e.g. 1.0.0."
            return table["name"], _shapes.version(version, f"{path}: [project] version", ConfigError, tip=tip)
    msg = f"{path}: no [project] name"
    raise ConfigError(msg, tip="Add a [project] table with name and version.")


def load_config(
    project_dir: Path,
    *,
    environ: Mapping[str, str],
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Read pyproject.toml, then the environment, then ``overrides`` (the CLI)."""
    project_dir = project_directory(project_dir)
    data = _read_pyproject(project_dir)
    name, version = _name_and_version(data, project_dir / "pyproject.toml")
    tool = data.get("tool", {})
    table = tool.get("wheelbarrow", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        msg = "pyproject.toml: [tool.wheelbarrow] must be a table"
        raise ConfigError(msg, tip="Write it as a [tool.wheelbarrow] section.")
    _check_keys(table, "[tool.wheelbarrow]")
    values: dict[str, str | tuple[str, ...]] = {o.key: o.default for o in OPTIONS}
    for key, value in table.items():
        values[key] = _coerce(_BY_KEY[key], value, "[tool.wheelbarrow]")
    known_env = {o.env: o for o in OPTIONS}
    for env_key, env_value in environ.items():
        if env_key.startswith("WHEELBARROW_") and env_key not in known_env:
            close = difflib.get_close_matches(env_key, list(known_env), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            msg = f"environment: unknown variable {env_key}.{hint}"
            raise ConfigError(msg, tip="Unset it or fix its name.")
        if env_key in known_env:
            option = known_env[env_key]
            values[option.key] = _coerce(option, env_value, f"environment {env_key}")
    for key, value in (overrides or {}).items():
        if key not in _BY_KEY:
            msg = f"command line: unknown option '{key}'.{_did_you_mean(key)}"
            raise ConfigError(msg, tip="Run 'wheelbarrow build --help' for the options.")
        values[key] = _coerce(_BY_KEY[key], value, "command line")
    return _finish(project_dir, name, version, values, environ)


def _default_cache(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/wheelbarrow`` (an absolute one: the XDG spec ignores a relative value), else the
    user's home's ``.cache/wheelbarrow`` (from the password database when ``HOME`` is empty or relative)."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "wheelbarrow"
    home = environ.get("HOME", "")
    if not home or not Path(home).is_absolute():
        home = pwd.getpwuid(os.getuid()).pw_dir
    return Path(home) / ".cache" / "wheelbarrow"


def _inside(project_dir: Path, value: str, key: str) -> Path:
    """A file the config names (the lock, the runtime Dockerfile): inside the project, symlinks resolved."""
    path = (project_dir / value).resolve()
    if path != project_dir and project_dir not in path.parents:
        msg = f"{key} is {value}, which is outside the project ({project_dir})"
        raise ConfigError(msg, tip=f"Name a file inside the project for {key}, relative to it.")
    return path


def _finish(
    project_dir: Path,
    name: str,
    version: str,
    v: Mapping[str, str | tuple[str, ...]],
    environ: Mapping[str, str],
) -> Config:
    def s(key: str) -> str:
        value = v[key]
        assert isinstance(value, str)
        return value

    def t(key: str) -> tuple[str, ...]:
        value = v[key]
        assert isinstance(value, tuple)
        return value

    python = s("python")
    if not re.fullmatch(r"3\.\d{1,2}", python):
        msg = f"python is {python!r}, expected a CPython version such as '3.11'"
        raise ConfigError(msg, tip='Set python = "3.11" in [tool.wheelbarrow].')
    suite = s("debian-suite")
    if suite and DEBIAN_PYTHON[suite] != python:
        msg = f"debian-suite {suite!r} ships CPython {DEBIAN_PYTHON[suite]}, not {python}"
        raise ConfigError(msg, tip=f'Set python = "{DEBIAN_PYTHON[suite]}" or pick another suite.')
    glibc = s("glibc") or _default_glibc(suite, s("builder-base"))
    if not re.fullmatch(r"2\.\d+", glibc):
        msg = f"glibc is {glibc!r}, expected a version such as '2.36'"
        raise ConfigError(msg, tip='Set glibc = "2.36" in [tool.wheelbarrow].')
    project_build = s("project-build")
    assert project_build in get_args(ProjectBuild)
    lock = s("lock")
    port = s("port")
    if port and not (_ASCII_NUMBER.fullmatch(port) and 0 < int(port) < 65536):
        msg = f"port is {port!r}, expected a TCP port number"
        raise ConfigError(msg, tip='Set port = "8000" in [tool.wheelbarrow].')
    dockerfile = s("runtime-dockerfile")
    jobs = s("jobs") or str(os.cpu_count() or 1)
    if not _ASCII_NUMBER.fullmatch(jobs) or not 1 <= int(jobs) <= 256:
        msg = f"jobs is {jobs!r}, expected a whole number from 1 to 256"
        raise ConfigError(msg, tip="Pass --jobs 2, or leave it out to use every core.")
    cache_dir = Path(s("cache-dir")).expanduser() if s("cache-dir") else _default_cache(environ)
    cache_dir = project_dir / cache_dir  # relative to the project, like every other path setting
    wheelhouse = Path(os.path.normpath(project_dir / s("wheelhouse")))
    dist_dir = Path(os.path.normpath(project_dir / s("dist-dir")))
    check_location(wheelhouse, "wheelhouse", "wheelhouse", (project_dir, cache_dir))
    check_location(dist_dir, "dist/ directory", "dist-dir", (project_dir, cache_dir, wheelhouse))
    check_location(cache_dir, "cache", "cache-dir", (project_dir,))
    for key in ("builder-base", "runtime-base"):  # they reach the engine's command line: never an option
        _shapes.image_reference(s(key), key, ConfigError, tip=f'Set {key} to an image, e.g. "python:3.11-slim".')
    image_tag = s("image-tag") or image_name_for(name, version)
    _shapes.image_reference(image_tag, "image-tag", ConfigError, tip='Set image-tag = "name:tag" (lower case).')
    return Config(
        project_dir=project_dir,
        project_name=name,
        project_version=version,
        python=python,
        groups=t("groups"),
        build_from_source=tuple(canonicalize_name(n) for n in t("build-from-source")),
        builder_base=s("builder-base"),
        debian_suite=suite,
        debian_mirror=s("debian-mirror"),
        system_packages=t("system-packages"),
        wheelhouse=wheelhouse,
        lock=_inside(project_dir, lock, "lock") if lock else None,
        cache_dir=cache_dir,
        jobs=int(jobs),
        engine=s("engine"),  # type: ignore[arg-type]
        project_build=project_build,  # type: ignore[arg-type]
        glibc=glibc,
        runtime_base=s("runtime-base"),
        repair_policy=s("repair-policy"),  # type: ignore[arg-type]
        repair_plat=s("repair-plat"),
        dist_dir=dist_dir,
        runtime_dockerfile=_inside(project_dir, dockerfile, "runtime-dockerfile") if dockerfile else None,
        image_tag=image_tag,
        command=t("command"),
        port=port,
        keep_pip=s("keep-pip") == "true",
        image_builder=s("image-builder"),  # type: ignore[arg-type]
    )


def _default_glibc(suite: str, builder_base: str) -> str:
    if suite:
        return DEBIAN_GLIBC[suite]
    found = re.search(r"manylinux_(\d+)_(\d+)", builder_base)
    if found:
        return f"{found[1]}.{found[2]}"
    return "2.28"
