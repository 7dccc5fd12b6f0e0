"""Stage 2, plan: a pure function from config + lock to a :class:`BuildPlan`.

It decides, with no docker and no network, which locked wheels are taken from
the index as they are (the best one for the target's tags), which sdists are
compiled in the builder (those listed in ``build-from-source`` and those with
no compatible wheel), and how the project's own wheel is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.tags import Tag
from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

from . import _shapes
from ._config import DERIVED_BUILDER, Config
from ._lock import Lock, LockedFile, LockedPackage
from ._tags import manylinux_platforms, target_tags
from .errors import ConfigError, LockError

__all__ = [
    "PURE_BACKENDS",
    "BuildEngine",
    "BuildPlan",
    "IndexWheel",
    "ProjectBuild",
    "SdistBuild",
    "best_wheel",
    "make_plan",
    "manylinux_platforms",
    "sdist_of",
    "target_tags",
]

BuildEngine = Literal["cibuildwheel", "pure"]
#: Build backends whose projects are pure Python unless told otherwise.
PURE_BACKENDS = ("poetry.core.masonry.api", "flit_core.buildapi", "hatchling.build", "pdm.backend")


@dataclass(frozen=True)
class IndexWheel:
    """A wheel taken from the index as it is."""

    name: str
    version: str
    file: LockedFile | None  # None: the lock names no files; fetch picks one matching ``hashes``
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class SdistBuild:
    """An sdist compiled and repaired in the builder with cibuildwheel."""

    name: str
    version: str
    file: LockedFile | None
    hashes: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ProjectBuild:
    name: str
    version: str | None  # None: dynamic, read from the wheel the build makes
    source: Path
    engine: BuildEngine
    either: bool = False  # project-build = "auto" guessed cibuildwheel: a pure wheel from it is fine too


@dataclass(frozen=True)
class BuildPlan:
    python: str
    python_tag: str
    machine: str
    glibc: tuple[int, int]
    builder_base: str
    debian_suite: str
    system_packages: tuple[str, ...]
    index_wheels: tuple[IndexWheel, ...]
    sdist_builds: tuple[SdistBuild, ...]
    project: ProjectBuild
    wheelhouse: Path
    lock: Path
    repair_plat: str = ""

    @property
    def cibuildwheel_identifier(self) -> str:
        return f"{self.python_tag}-manylinux_{self.machine}"

    def describe(self) -> str:
        lines = [
            (
                f"target: CPython {self.python} ({self.python_tag}), linux {self.machine}, "
                f"glibc <= {self.glibc[0]}.{self.glibc[1]}"
            ),
            f"lock: {self.lock}",
            "builder: "
            + ("derived from the runtime base" if self.builder_base == DERIVED_BUILDER else self.builder_base)
            + (f" (Debian {self.debian_suite} fallback)" if self.debian_suite else ""),
            f"  system packages: {' '.join(self.system_packages) or '(none)'}",
            f"from the index ({len(self.index_wheels)}):",
            *(
                f"  {w.name}=={w.version}  {w.file.filename if w.file else '(file chosen at fetch)'}"
                for w in self.index_wheels
            ),
            f"built from sdist in the builder ({len(self.sdist_builds)}):",
            *(
                f"  {b.name}=={b.version}  {b.file.filename if b.file else '(sdist)'}  [{b.reason}]"
                for b in self.sdist_builds
            ),
            (
                f"the project: {self.project.name}=={self.project.version or '(dynamic version)'} "
                f"from {self.project.source} "
                f"[{self.project.engine}]"
            ),
            f"wheelhouse: {self.wheelhouse}",
        ]
        return "\n".join(lines)


def best_wheel(files: tuple[LockedFile, ...], ranks: dict[Tag, int]) -> LockedFile | None:
    best: tuple[int, LockedFile] | None = None
    for file in files:
        if not file.filename.endswith(".whl"):
            continue
        try:
            _, _, _, tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        rank = min((ranks[t] for t in tags if t in ranks), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, file)
    return best[1] if best else None


def sdist_of(files: tuple[LockedFile, ...]) -> LockedFile | None:
    for file in files:
        try:
            parse_sdist_filename(file.filename)
        except InvalidSdistFilename:
            continue
        return file
    return None


def _project_engine(config: Config) -> BuildEngine:
    if config.project_build == "pure":
        return "pure"
    if config.project_build == "platform":
        return "cibuildwheel"
    path = config.project_dir / "pyproject.toml"
    data = _shapes.toml(path.read_bytes(), str(path), ConfigError, tip="Fix the syntax error it names.")
    build_system = data.get("build-system", {})
    if not isinstance(build_system, dict):
        msg = "pyproject.toml: [build-system] must be a table"
        raise ConfigError(msg, tip='Write it as [build-system] with requires = [...] and build-backend = "...".')
    backend = build_system.get("build-backend", "")
    return "pure" if backend in PURE_BACKENDS else "cibuildwheel"


def make_plan(config: Config, lock: Lock, *, machine: str) -> BuildPlan:
    """Decide what comes from the index and what is built. Pure: no I/O but pyproject.toml."""
    ranks = {tag: i for i, tag in enumerate(target_tags(config.python, config.glibc_tuple, machine))}
    locked = {p.name for p in lock.packages}
    for name in config.build_from_source:
        if name not in locked:
            msg = f"build-from-source names '{name}', which is not in the locked runtime set ({lock.source.name})"
            raise ConfigError(
                msg, tip=f"Remove '{name}' from build-from-source, or add it to the project's dependencies."
            )
    index: list[IndexWheel] = []
    builds: list[SdistBuild] = []
    for package in lock.packages:
        index_wheel, build = _decide(package, config, ranks, machine)
        if index_wheel:
            index.append(index_wheel)
        if build:
            builds.append(build)
    return BuildPlan(
        python=config.python,
        python_tag=config.python_tag,
        machine=machine,
        glibc=config.glibc_tuple,
        builder_base=config.builder_base,
        debian_suite=config.debian_suite,
        system_packages=config.system_packages,
        index_wheels=tuple(index),
        sdist_builds=tuple(builds),
        project=ProjectBuild(
            config.project_name,
            config.project_version,
            config.project_dir,
            engine := _project_engine(config),
            either=engine == "cibuildwheel" and config.project_build == "auto",
        ),
        wheelhouse=config.wheelhouse,
        lock=lock.source,
        repair_plat=config.repair_plat,
    )


def _decide(
    package: LockedPackage, config: Config, ranks: dict[Tag, int], machine: str
) -> tuple[IndexWheel | None, SdistBuild | None]:
    sdist = sdist_of(package.files)
    if package.name in config.build_from_source:
        if package.files and sdist is None:
            msg = f"{package.requirement} is listed in build-from-source but the lock has no sdist for it"
            raise LockError(
                msg, tip=f"Remove '{package.name}' from build-from-source, or lock a version with an sdist."
            )
        hashes = (sdist.sha256,) if sdist else package.hashes
        return None, SdistBuild(package.name, package.version, sdist, hashes, "build-from-source")
    if not package.files:
        return IndexWheel(package.name, package.version, None, package.hashes), None
    wheel = best_wheel(package.files, ranks)
    if wheel is not None:
        return IndexWheel(package.name, package.version, wheel, (wheel.sha256,)), None
    if sdist is not None:
        return None, SdistBuild(package.name, package.version, sdist, (sdist.sha256,), "no compatible wheel")
    msg = (
        f"{package.requirement} has no wheel for {config.python_tag} manylinux (glibc {config.glibc}) {machine} "
        "and no sdist in the lock"
    )
    raise LockError(msg, tip="Pick a version that ships an sdist or a compatible wheel, or change 'python'/'glibc'.")
