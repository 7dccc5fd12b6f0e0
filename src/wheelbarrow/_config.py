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
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ._guard import check_location
from ._options import (
    DEBIAN_GLIBC,
    DEBIAN_PYTHON,
    PARSERS,
    PLATFORMS,
    Context,
    Option,
    Raw,
    coerce,
    did_you_mean,
    opt,
    parse_target,
)
from ._project import name_and_version, project_directory, read_pyproject
from .errors import ConfigError

ProjectBuild = Literal["auto", "pure", "platform"]
RepairPolicy = Literal["exclude-base", "vendor-all"]
ImageBuilder = Literal["auto", "buildkit", "legacy"]
EngineName = Literal["docker", "podman"]
PullBases = Literal["missing", "always"]
RuntimeStyle = Literal["slim", "distroless"]


#: What a service never imports: left out of a distroless image's standard library (fnmatch patterns of
#: top-level module names; lib-dynload's and __pycache__'s files are matched by their module name too).
STDLIB_EXCLUDE = (
    "test",
    "idlelib",
    "tkinter",
    "_tkinter",
    "turtle",
    "turtledemo",
    "ensurepip",
    "pydoc_data",
    "lib2to3",
    "_test*",
    "_ctypes_test",
    "_xxtestfuzz",
    "xxlimited*",
    "config-*",
    "site-packages",
    "dist-packages",
)


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
    targets: tuple[str, ...] = field(
        metadata=opt(
            "targets",
            "targets",
            (),
            "Targets built from the one lock in one run, as cpXY-ARCH (cp311-x86_64, cp313-aarch64); each gets "
            "<wheelhouse>/<target>/ and its own image (default: one target, python on this machine's "
            "architecture, in <wheelhouse>/ itself).",
            flag=True,
        )
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
    cache_from: str = field(
        metadata=opt(
            "cache-from",
            "repository",
            "",
            "An OCI repository of a build cache shared across machines: built wheels and builder images are "
            "pulled from it by their cache key, and checked, before anything is built.",
            flag=True,
        )
    )
    cache_to: str = field(
        metadata=opt(
            "cache-to",
            "repository",
            "",
            "An OCI repository to push what this run built to, under its cache key (often the same as cache-from).",
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
            "python:{python}-slim",
            "Runtime base image ({python} is the target's CPython version): the wheelhouse is repaired for it "
            "and installed into it (bootstrapped from debian-suite when it cannot be pulled).",
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
    runtime_style: RuntimeStyle = field(
        metadata=opt(
            "runtime-style",
            "choice",
            "slim",
            "slim: the venv over the runtime base; distroless: an image FROM scratch with only the interpreter, "
            "its standard library (minus stdlib-exclude), the venv, the shared-library closure of every ELF "
            "file resolved in the runtime base, CA certificates, passwd and group (no shell, no package manager).",
            choices=get_args(RuntimeStyle),
            flag=True,
        )
    )
    stdlib_exclude: tuple[str, ...] = field(
        metadata=opt(
            "stdlib-exclude",
            "list",
            STDLIB_EXCLUDE,
            "distroless: top-level standard-library modules left out (fnmatch patterns of module names; the "
            "default drops test suites, idlelib, tkinter, ensurepip, pydoc data, lib2to3, the base's site-packages).",
        )
    )
    tzdata: bool = field(
        metadata=opt("tzdata", "bool", "false", "distroless: copy the time-zone database (/usr/share/zoneinfo).")
    )
    gconv: bool = field(
        metadata=opt(
            "gconv",
            "bool",
            "false",
            "distroless: copy glibc's iconv modules (gconv, about 8 MB): iconv_open in C code for encodings "
            "other than UTF-8 and ASCII (Python's own codecs need none).",
        )
    )
    image_builder: ImageBuilder = field(
        metadata=opt(
            "image-builder",
            "choice",
            "auto",
            "buildkit or legacy builder for the runtime image (auto: BuildKit when the client has it).",
            choices=get_args(ImageBuilder),
        )
    )

    #: The architecture the wheels and the image are for (``uname -m``'s name); a target's, else this machine's.
    arch: str = field(default_factory=platform.machine)
    #: The target this configuration is one of (``cp313-x86_64``), or "" when the project names no targets.
    target: str = ""
    #: With ``targets``: one configuration per target, each with its own wheelhouse, dist/ and image tag.
    per_target: tuple[Config, ...] = ()

    @property
    def platform(self) -> str:
        """The engine's platform for :attr:`arch` (``linux/arm64``)."""
        return PLATFORMS.get(self.arch, f"linux/{self.arch}")

    @property
    def foreign(self) -> bool:
        """Whether the target's architecture is not this machine's (its containers run under emulation)."""
        return self.arch != platform.machine()

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
    config = _typed(project_dir, name, version, environ, raw)
    if not config.targets:
        _check(config)
        return config
    _check(config, suite_agrees=False)  # each target bootstraps from the suite that ships its CPython
    per_target = tuple(
        _typed(project_dir, name, version, environ, _target_raw(raw, t), target=t) for t in config.targets
    )
    for each in per_target:
        _check(each)
    return dataclasses.replace(config, per_target=per_target)


def _typed(
    project_dir: Path, name: str, version: str | None, environ: Mapping[str, str], raw: dict[str, Raw], target: str = ""
) -> Config:
    ctx = Context(project_dir, name, version, environ, raw)
    typed = {o.attribute: PARSERS[o.kind](o, raw[o.key], ctx) for o in OPTIONS}
    config = Config(project_dir=project_dir, project_name=name, project_version=version, **typed)
    return dataclasses.replace(config, target=target, arch=parse_target(target)[1]) if target else config


def _target_raw(raw: Mapping[str, Raw], target: str) -> dict[str, Raw]:
    """The raw values of one target: its Python, its Debian suite, its own wheelhouse and dist/ inside the
    configured ones."""
    python, _arch = parse_target(target)
    suite = ""
    if raw["debian-suite"]:
        suites = [s for s, v in DEBIAN_PYTHON.items() if v == python]
        if not suites:
            shipped = ", ".join(f"{s} ({v})" for s, v in DEBIAN_PYTHON.items())
            msg = f"target {target}: no Debian suite ships CPython {python} ({shipped}), so none can be bootstrapped"
            tip = f"Unset debian-suite where python:{python}-slim can be pulled, or drop {target} from targets."
            raise ConfigError(msg, tip=tip)
        suite = suites[0]
    out = dict(raw)
    out.update({"python": python, "debian-suite": suite, "targets": ()})
    for key in ("wheelhouse", "dist-dir"):
        out[key] = str(Path(str(raw[key])) / target)
    return out


def _check(config: Config, *, suite_agrees: bool = True) -> None:
    """What no single option can say: Python and suite agree, and the outputs are places wheelbarrow may write."""
    if not re.fullmatch(r"3\.\d{1,2}", config.python):
        msg = f"python is {config.python!r}, expected a CPython version such as '3.11'"
        raise ConfigError(msg, tip='Set python = "3.11" in [tool.wheelbarrow].')
    suite = config.debian_suite
    if suite_agrees and suite and DEBIAN_PYTHON[suite] != config.python:
        msg = f"debian-suite {suite!r} ships CPython {DEBIAN_PYTHON[suite]}, not {config.python}"
        raise ConfigError(msg, tip=f'Set python = "{DEBIAN_PYTHON[suite]}" or pick another suite.')
    odd = [p for p in config.stdlib_exclude if not re.fullmatch(r"[A-Za-z0-9_*?\[\]!.-]{1,100}", p)]
    if odd:
        msg = f"stdlib-exclude has {odd[0]!r}, which is not a pattern of a module name"
        raise ConfigError(msg, tip='Write module names or fnmatch patterns, e.g. stdlib-exclude = ["test", "_test*"].')
    project, cache = config.project_dir, config.cache_dir
    check_location(config.wheelhouse, "wheelhouse", "wheelhouse", (project, cache))
    check_location(config.dist_dir, "dist/ directory", "dist-dir", (project, cache, config.wheelhouse))
    check_location(cache, "cache", "cache-dir", (project,))
