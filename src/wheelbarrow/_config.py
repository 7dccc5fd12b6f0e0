"""Configuration, declared once and read once.

Each option is declared once, as a field of :class:`Config` carrying its
:class:`Option` (key, kind, default, help, choices, whether it is a flag).
:data:`OPTIONS`, the ``WHEELBARROW_*`` names and the CLI's flags come from
those fields (and a test holds the README's reference to them). Values come from ``[tool.wheelbarrow]``
in the project's pyproject.toml, then ``WHEELBARROW_*`` environment variables,
then the command line; later sources win. Each kind has one parser
(:mod:`wheelbarrow._options`) that turns the raw value into the field's type. The result is a frozen :class:`Config`;
nothing else in wheelbarrow reads ``[tool.wheelbarrow]`` or the environment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ._guard import check_location
from ._options import DEBIAN_GLIBC, DEBIAN_PYTHON, PARSERS, Context, Option, Raw, coerce, did_you_mean, opt
from ._project import name_and_version, project_directory, read_pyproject
from .errors import ConfigError

ProjectBuild = Literal["auto", "pure", "platform"]
RepairPolicy = Literal["exclude-base", "vendor-all"]
ImageBuilder = Literal["auto", "buildkit", "legacy"]
EngineName = Literal["docker", "podman"]
PullBases = Literal["missing", "always"]


#: builder-base's default: a builder derived from the runtime base (the runtime base plus a compiler).
DERIVED_BUILDER = "runtime"


@dataclass(frozen=True)
class Config:
    project_dir: Path
    project_name: str
    project_version: str | None  # None: dynamic, read from the project's built wheel
    python: str = field(
        metadata=opt("python", "str", "3.11", "CPython version the wheels are built for (X.Y).", flag=True)
    )
    groups: tuple[str, ...] = field(
        metadata=opt(
            "groups", "list", ("main",), "Poetry groups or uv dependency groups to include (main: the dependencies)."
        )
    )
    build_from_source: tuple[str, ...] = field(
        metadata=opt("build-from-source", "names", (), "Locked packages built from their sdist even if a wheel exists.")
    )
    builder_base: str = field(
        metadata=opt(
            "builder-base",
            "image",
            DERIVED_BUILDER,
            "Builder base: runtime (the runtime base plus a compiler, so both share every library), an image "
            "reference, or a manylinux policy name that cibuildwheel pins (manylinux_2_28, manylinux_2_34 ...).",
            flag=True,
        )
    )
    pull_bases: PullBases = field(
        metadata=opt(
            "pull-bases",
            "choice",
            "missing",
            "When to pull a base: missing (only when it is not on this machine), or always (a persistent "
            "runner picks up a moved tag; a failed pull then falls back to the local image, with a warning).",
            choices=get_args(PullBases),
        )
    )
    debian_suite: str = field(
        metadata=opt(
            "debian-suite",
            "choice",
            "",
            "Bootstrap local bases from this Debian suite when a base cannot be pulled.",
            choices=("", *DEBIAN_GLIBC),
            flag=True,
        )
    )
    debian_mirror: str = field(
        metadata=opt("debian-mirror", "str", "", "Debian mirror for bootstrap (default: the host's).")
    )
    system_packages: tuple[str, ...] = field(
        metadata=opt("system-packages", "packages", (), "System packages the builder needs (e.g. libpq-dev).")
    )
    runtime_packages: tuple[str, ...] = field(
        metadata=opt(
            "runtime-packages",
            "packages",
            (),
            "System packages installed into the runtime image (libraries loaded at run time, e.g. with dlopen).",
        )
    )
    wheelhouse: Path = field(
        metadata=opt("wheelhouse", "path", "wheelhouse", "Output directory, relative to the project.", flag=True)
    )
    lock: Path | None = field(
        metadata=opt(
            "lock", "file", "", "The lock: poetry.lock, uv.lock, pylock.toml or a hashed requirements file.", flag=True
        )
    )
    cache_dir: Path = field(
        metadata=opt(
            "cache-dir",
            "path",
            "",
            "The build cache (default: $XDG_CACHE_HOME/wheelbarrow or ~/.cache/wheelbarrow).",
            flag=True,
        )
    )
    jobs: int = field(
        metadata=opt(
            "jobs", "int", "", "How many builds run at once (default: the number of cores).", flag=True, bounds=(1, 256)
        )
    )
    engine: EngineName = field(
        metadata=opt("engine", "choice", "docker", "Container engine CLI.", choices=get_args(EngineName))
    )
    project_build: ProjectBuild = field(
        metadata=opt(
            "project-build",
            "choice",
            "auto",
            "How the project's own wheel is built: pure (python -m build in the "
            "builder) or platform (cibuildwheel + auditwheel).",
            choices=get_args(ProjectBuild),
        )
    )
    glibc: str = field(
        metadata=opt("glibc", "glibc", "", "Highest glibc of the target (default: from debian-suite or policy).")
    )
    runtime_base: str = field(
        metadata=opt(
            "runtime-base",
            "image",
            "python:3.11-slim",
            "Runtime base image: the wheelhouse is repaired for it and "
            "installed into it (bootstrapped from debian-suite when it cannot be pulled).",
            flag=True,
        )
    )
    repair_policy: RepairPolicy = field(
        metadata=opt(
            "repair-policy",
            "choice",
            "exclude-base",
            "exclude-base: libraries that must be single in a process "
            "(libssl, libcrypto) are not grafted when the runtime base provides them; vendor-all: graft everything.",
            choices=get_args(RepairPolicy),
        )
    )
    repair_plat: str = field(
        metadata=opt("repair-plat", "str", "", "The manylinux policy auditwheel must reach (default: the best it can).")
    )
    dist_dir: Path = field(
        metadata=opt("dist-dir", "path", "dist", "Where publish writes the CI artifacts.", flag=True)
    )
    runtime_dockerfile: Path | None = field(
        metadata=opt(
            "runtime-dockerfile", "file", "", "The runtime Dockerfile (default: wheelbarrow's runtime.Dockerfile)."
        )
    )
    image_tag: str = field(
        metadata=opt("image-tag", "image", "", "Tag of the runtime image (default: <project>:<version>).", flag=True)
    )
    command: tuple[str, ...] = field(
        metadata=opt("command", "argv", (), "The image's command (e.g. gunicorn app:app).")
    )
    port: int | None = field(metadata=opt("port", "int", "", "The port the image exposes."))
    verify_start: bool = field(
        metadata=opt(
            "verify-start",
            "bool",
            "true",
            "Verify starts the image's command (network off) and checks it keeps running.",
        )
    )
    keep_pip: bool = field(metadata=opt("keep-pip", "bool", "false", "Keep pip and setuptools in the runtime venv."))
    image_builder: ImageBuilder = field(
        metadata=opt(
            "image-builder",
            "choice",
            "auto",
            "buildkit or legacy builder for the runtime image (auto: BuildKit when the client has it).",
            choices=get_args(ImageBuilder),
        )
    )

    @property
    def python_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def glibc_tuple(self) -> tuple[int, int]:
        major, minor = self.glibc.split(".")
        return int(major), int(minor)


OPTIONS: tuple[Option, ...] = tuple(f.metadata["option"] for f in dataclasses.fields(Config) if f.metadata)
_BY_KEY = {o.key: o for o in OPTIONS}


def load_config(
    project_dir: Path,
    *,
    environ: Mapping[str, str],
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Read pyproject.toml, then the environment, then ``overrides`` (the CLI)."""
    project_dir = project_directory(project_dir)
    data = read_pyproject(project_dir)
    name, version = name_and_version(data, project_dir / "pyproject.toml")
    tool = data.get("tool", {})
    table = tool.get("wheelbarrow", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        msg = "pyproject.toml: [tool.wheelbarrow] must be a table"
        raise ConfigError(msg, tip="Write it as a [tool.wheelbarrow] section.")
    raw: dict[str, Raw] = {o.key: o.default for o in OPTIONS}
    known_env = {o.env: o for o in OPTIONS}
    sources: list[tuple[str, Mapping[str, object], dict[str, Option], str]] = [
        ("[tool.wheelbarrow]", table, _BY_KEY, "unknown key"),
        (
            "environment",
            {k: v for k, v in environ.items() if k.startswith("WHEELBARROW_")},
            known_env,
            "unknown variable",
        ),
        ("command line", overrides or {}, _BY_KEY, "unknown option"),
    ]
    for source, values, options, unknown in sources:
        for key, value in values.items():
            if key not in options:
                msg = f"{source}: {unknown} '{key}'.{did_you_mean(str(key), list(options))}"
                raise ConfigError(msg, tip="See the configuration reference in the README (wheelbarrow --help).")
            where = f"environment {key}" if source == "environment" else source
            raw[options[key].key] = coerce(options[key], value, where)
    ctx = Context(project_dir, name, version, environ, raw)
    typed = {o.attribute: PARSERS[o.kind](o, raw[o.key], ctx) for o in OPTIONS}
    config = Config(project_dir=project_dir, project_name=name, project_version=version, **typed)
    _check(config)
    return config


def _check(config: Config) -> None:
    """What no single option can say: Python and suite agree, and the outputs are places wheelbarrow may write."""
    if not re.fullmatch(r"3\.\d{1,2}", config.python):
        msg = f"python is {config.python!r}, expected a CPython version such as '3.11'"
        raise ConfigError(msg, tip='Set python = "3.11" in [tool.wheelbarrow].')
    suite = config.debian_suite
    if suite and DEBIAN_PYTHON[suite] != config.python:
        msg = f"debian-suite {suite!r} ships CPython {DEBIAN_PYTHON[suite]}, not {config.python}"
        raise ConfigError(msg, tip=f'Set python = "{DEBIAN_PYTHON[suite]}" or pick another suite.')
    project, cache = config.project_dir, config.cache_dir
    check_location(config.wheelhouse, "wheelhouse", "wheelhouse", (project, cache))
    check_location(config.dist_dir, "dist/ directory", "dist-dir", (project, cache, config.wheelhouse))
    check_location(cache, "cache", "cache-dir", (project,))
