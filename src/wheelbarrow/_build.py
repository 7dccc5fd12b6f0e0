"""Stage 4, build: wheels are compiled in the builder container, offline.

The project's builder image is the builder base plus the configured system
packages plus the build requirements fetched on the host. Platform sdists are
built and repaired by cibuildwheel in a container created with
``--network none`` and no host mount; every input travels into the container
by copy. Before each build the container proves it is offline
(``wheelbarrow-check-offline``). A pure-Python project is built with
``python -m build`` in a container of the same image, also offline.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ._bootstrap import docker_dir
from ._cache import IGNORED_IN_PROJECT, Cache, key_of, sha256_of, skipped
from ._cmd import CommandFailed, Result, run, which
from ._engine import Engine, local_name
from ._fetch import Fetched
from ._guard import scratch
from ._log import Log
from ._plan import BuildPlan
from ._repair import RepairedWheel, is_pure, one_repaired_wheel, repair_command
from ._shared import KEY_LABEL, SharedCache
from .errors import (
    BuildError,
    CompileError,
    EngineCommandError,
    FetchError,
    PureWheelBuiltError,
    RepairError,
    ToolMissingError,
)

WHEELS_IN_IMAGE = "/wheelbarrow/wheels"
#: Lines of a failed build that point at the cause.
_CAUSE = re.compile(
    r"\berror\b|\bnot found\b|No such file|\bfatal\b|\bcannot\b|can not|undefined reference"
    r"|^\s*[\w.]*(?:Exception|Error)\b",  # a traceback's last line: RuntimeError, ModuleNotFoundError ...
    re.IGNORECASE,
)
#: Lines every cibuildwheel build prints that are never the cause (a wheelbarrow builder has no
#: manylinux-interpreters tool; build's advice on keeping the environment).
_NOISE = re.compile(r"manylinux-interpreters|TIP pass --env-dir")
#: Where a failed build's own output ends and cibuildwheel's report of it begins.
_END = re.compile(r"cibuildwheel: error|Build failed|ERROR Backend subprocess exited")


@dataclass(frozen=True)
class Builder:
    tag: str
    image_id: str
    #: uv is on the builder's PATH: each build's isolated environment is installed with it (cibuildwheel's
    #: ``build[uv]``, about 2 s less than pip per sdist). wheelbarrow's own builder bases carry it.
    uv: bool = False


def with_installer(builder: Builder, engine: Engine, cache: Cache) -> Builder:
    """``builder``, knowing whether it has uv (asked once per image id: another base may lack it)."""

    def ask() -> bool:
        return engine.run_image(builder.tag, ["sh", "-c", "command -v uv"]).returncode == 0

    uv = cache.remember(key_of({"builder-has-uv": builder.image_id}), bool, ask)
    return dataclasses.replace(builder, uv=uv)


def prepare_builder(
    plan: BuildPlan,
    base: str,
    build_requirements: tuple[Path, ...],
    project_requires: tuple[str, ...],
    engine: Engine,
    log: Log,
    shared: SharedCache | None = None,
) -> Builder:
    """The project's builder image (system packages, then build requirement wheels).

    Its tag carries a key of everything it is made of, so an unchanged builder is found (here, or in the
    shared cache), not rebuilt.
    """
    dockerfiles = docker_dir()
    key = key_of(
        {
            "base": engine.image_id(base) or base,
            "system_packages": list(plan.system_packages),
            "wheels": [sha256_of(w) for w in build_requirements],
            "dockerfile": sha256_of(dockerfiles / "builder.Dockerfile"),
            "check-offline": sha256_of(dockerfiles / "check-offline"),
            "project-requires": list(project_requires),
            "labels": [KEY_LABEL],  # an image made before it carried its key label is not one of these
        }
    )
    tag = local_name(f"builder:{re.sub(r'[^a-z0-9_.-]', '-', plan.project.name.lower())}-{key[:12]}")
    with engine.image_lock(tag, log):
        existing = engine.image_id(tag)
        if existing:
            log.info(f"builder image {tag} is up to date")
            return Builder(tag, existing)
        if shared and shared.fetch_image(tag, key):
            return Builder(tag, engine.image_id(tag) or "")
        return Builder(tag, _make_builder(plan, base, build_requirements, project_requires, engine, key, tag))


def _make_builder(
    plan: BuildPlan,
    base: str,
    build_requirements: tuple[Path, ...],
    project_requires: tuple[str, ...],
    engine: Engine,
    key: str,
    tag: str,
) -> str:
    dockerfiles = docker_dir()
    with scratch("context") as tmp:
        context = Path(tmp)
        shutil.copy(dockerfiles / "builder.Dockerfile", context / "Dockerfile")
        shutil.copy(dockerfiles / "check-offline", context / "check-offline")
        (context / "project-requires.txt").write_text("".join(f"{r}\n" for r in project_requires), encoding="utf-8")
        (context / "wheels").mkdir()
        for wheel in build_requirements:
            shutil.copy(wheel, context / "wheels" / wheel.name)
        return engine.build(
            context,
            tag,
            dockerfile=context / "Dockerfile",
            build_args={
                "BASE": base,
                "SYSTEM_PACKAGES": " ".join(plan.system_packages),
                "PYTHON": python_in_builder(plan),
            },
            labels={"io.wheelbarrow.builder-key": key, KEY_LABEL: key},
        )


def python_in_builder(plan: BuildPlan) -> str:
    return f"/opt/python/{plan.python_tag}-{plan.python_tag}/bin/python"


def _offline_env(epoch: int, *, uv: bool = False) -> dict[str, str]:
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELS_IN_IMAGE, "SOURCE_DATE_EPOCH": str(epoch)}
    if uv:  # uv reads none of pip's settings: the same wheels, no index, nothing downloaded, no cache kept,
        # and no configuration file: an sdist's own [tool.uv] (or a uv.toml in it) is never read
        env |= {"UV_NO_INDEX": "1", "UV_FIND_LINKS": WHEELS_IN_IMAGE, "UV_OFFLINE": "1", "UV_NO_CACHE": "1"}
        env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    return env


def cibuildwheel_env(
    plan: BuildPlan, builder: Builder, engine: Engine, epoch: int, exclude: tuple[str, ...] = ()
) -> dict[str, str]:
    """The whole cibuildwheel configuration of one build, as environment variables."""
    inner = " ".join(f"{k}={v}" for k, v in _offline_env(epoch, uv=builder.uv).items())
    labels = " ".join(engine.label_args())
    engine_config = f"{engine.name}; create_args: --network none {labels}; disable_host_mount: true"
    return {
        "CIBW_BUILD": plan.cibuildwheel_identifier,
        "CIBW_ARCHS_LINUX": plan.machine,
        f"CIBW_MANYLINUX_{plan.machine.upper()}_IMAGE": builder.tag,
        "CIBW_CONTAINER_ENGINE": engine_config,
        "CIBW_ENVIRONMENT_LINUX": inner,
        "CIBW_ENVIRONMENT_PASS_LINUX": "",
        "CIBW_BEFORE_ALL_LINUX": "",
        "CIBW_BEFORE_BUILD_LINUX": "wheelbarrow-check-offline",
        "CIBW_BUILD_FRONTEND": "build[uv]" if builder.uv else "build",
        "CIBW_REPAIR_WHEEL_COMMAND_LINUX": repair_command(exclude, plan.repair_plat),
        "CIBW_TEST_COMMAND": "",
        "CIBW_BUILD_VERBOSITY": "1",
    }


def _cause_lines(output: str, limit: int = 15) -> str:
    """The last lines of a failed build that look like its cause (compiler errors, the build backend's
    exception), each once, before cibuildwheel's own report of the failure."""
    lines = [line for line in output.splitlines() if line.strip() and not _NOISE.search(line)]
    ends = [i for i, line in enumerate(lines) if _END.search(line)]
    body = lines[: ends[0] + 1] if ends else lines
    causes = list(dict.fromkeys(line for line in body if _CAUSE.search(line)))
    return "\n".join(line if len(line) <= 300 else line[:300] + " ..." for line in (causes or body)[-limit:])


@dataclass(frozen=True)
class BuildContext:
    """What every build of one run shares."""

    plan: BuildPlan
    builder: Builder
    engine: Engine
    work: Path
    log: Log
    epoch: int
    exclude: tuple[str, ...] = ()  # sonames the repair leaves to the runtime base
    shared: SharedCache | None = None  # the build cache shared across machines


def build_sdist(sdist: Fetched, ctx: BuildContext, epoch: int | None = None) -> RepairedWheel:
    """Compile and repair one sdist with cibuildwheel; return the repaired wheel."""
    plan, work = ctx.plan, ctx.work
    if sdist.path.is_file() and not sdist.path.name.endswith(".tar.gz"):
        msg = f"{sdist.filename} is a {sdist.path.suffix} sdist, and cibuildwheel builds .tar.gz sdists only"
        tip = f"Lock a version of {sdist.name} that has a .tar.gz sdist (or a wheel for the target)."
        raise BuildError(msg, tip=tip)
    epoch = sdist_epoch(sdist.path) if epoch is None else epoch
    out_dir = work / "out" / sdist.name  # sdists and a project of any name: one folder each, never shared
    out_dir.mkdir(parents=True)
    # wheelbarrow owns the build configuration: an sdist's own [tool.cibuildwheel] table is not read.
    config_file = out_dir.parent / f"cibuildwheel-{sdist.name}.toml"
    config_file.write_text("[tool.cibuildwheel]\n", encoding="utf-8")
    argv = [which("cibuildwheel"), "--platform", "linux", "--config-file", str(config_file)]
    argv += ["--output-dir", str(out_dir), str(sdist.path)]
    try:
        env = cibuildwheel_env(plan, ctx.builder, ctx.engine, epoch, ctx.exclude)
        # cibuildwheel wants a package directory (the project's staged copy) inside its working directory.
        run(argv, ctx.log, env=env, stream=True, cwd=work)
    except CommandFailed as err:
        raise _build_error(sdist, err.result, plan) from err
    return one_repaired_wheel(out_dir, sdist.filename, ctx.exclude)


#: What a build that tried to reach the network prints in a container with no network.
_NETWORK = re.compile(
    r"Network is unreachable|Temporary failure in name resolution|Name or service not known|"
    r"No address associated with hostname|Could not resolve host|getaddrinfo failed|"
    r"Failed to establish a new connection"
)
NETWORK_TIP = (
    "Builds run with the network off (--network none). Fetch what the build downloads ahead of time and "
    "ship it in the sdist, or add it to the builder with system-packages."
)


def _build_error(sdist: Fetched, result: Result, plan: BuildPlan) -> Exception:
    what = f"{sdist.name}=={sdist.version}"
    if _NETWORK.search(result.output):
        msg = f"building {what} tried to use the network, and builds are offline:\n{_cause_lines(result.output)}"
        return BuildError(msg, tip=NETWORK_TIP)
    if "cannot repair" in result.output and "auditwheel" in result.output:
        msg = f"auditwheel could not repair {what} to the requested policy:\n{_cause_lines(result.output)}"
        return RepairError(msg, tip="Raise or remove repair-plat in [tool.wheelbarrow], or use an older builder base.")
    match result.returncode:
        case 2:
            msg = f"cibuildwheel refused the configuration for {what}:\n{_cause_lines(result.output)}"
            return BuildError(msg, tip="Report this to wheelbarrow with the lines above.")
        case 5:
            msg = f"{what} built a pure-Python wheel; it needs no compiling"
            return PureWheelBuiltError(
                msg, tip=f"Remove '{sdist.name}' from build-from-source; the index's wheel will do."
            )
        case 8:
            msg = f"auditwheel could not repair {what}:\n{_cause_lines(result.output)}"
            return RepairError(msg, tip="Check 'glibc' and the builder base: the wheel may need a newer policy.")
        case _:
            msg = f"compiling {what} from {sdist.filename} failed in the builder:\n{_cause_lines(result.output)}"
            have = " ".join(plan.system_packages) or "none"
            tip = (
                f"If a header, library or tool (pg_config, *.h) is missing, add its package to "
                f"system-packages in [tool.wheelbarrow] (now: {have})."
            )
            return CompileError(msg, tip=tip)


def _copy_project(source: Path, dest: Path, *, keep_git: bool = False) -> None:
    """The project's sources, as :func:`~wheelbarrow._cache.source_files` lists them (no special files,
    nothing wheelbarrow wrote); with its ``.git`` when its version is dynamic (setuptools-scm and
    hatch-vcs read it, with the builder's git)."""

    git = source / ".git"
    if keep_git and git.exists() and (git.is_symlink() or not git.is_dir()):
        kind = "link" if git.is_symlink() else "file"
        msg = f"{git} is a {kind} (a worktree or a submodule): the builder cannot read the history it points to"
        tip = "Build from a plain clone for a dynamic version, or set a static [project] version."
        raise BuildError(msg, tip=tip)

    def ignore(folder: str, names: list[str]) -> set[str]:
        ignored = tuple(n for n in IGNORED_IN_PROJECT if not (keep_git and n == ".git"))
        return {n for n in names if skipped(Path(folder) / n, ignored)}

    shutil.copytree(source, dest, ignore=ignore, symlinks=True)


def build_project_pure(ctx: BuildContext) -> RepairedWheel:
    """``python -m build --wheel`` of the project in an offline builder container."""
    plan, work, log = ctx.plan, ctx.work, ctx.log
    staged = work / "project-src" / plan.project.name
    _copy_project(plan.project.source, staged, keep_git=plan.project.version is None)
    out_dir = work / "out-pure" / plan.project.name
    out_dir.mkdir(parents=True)
    python = python_in_builder(plan)
    inside = PurePosixPath("/wheelbarrow/project")
    log.info(f"copying {plan.project.source} into the builder (by copy: no host mount)")
    with ctx.engine.container(ctx.builder.tag, network="none") as container:
        container.copy_into(staged, inside)  # /wheelbarrow is in every builder image; build makes out/
        try:
            container.call(["wheelbarrow-check-offline"])
            container.call(
                [python, "-m", "build", "--wheel", "--no-isolation", "--outdir", "/wheelbarrow/out", str(inside)],
                env=_offline_env(ctx.epoch),
            )
        except EngineCommandError as err:
            cause = _cause_lines(err.output)
            if _NETWORK.search(err.output):
                msg = f"building the project's wheel tried to use the network, and builds are offline:\n{cause}"
                raise BuildError(msg, tip=NETWORK_TIP) from err
            msg = f"building the project's wheel failed in the builder:\n{cause}"
            raise BuildError(msg, tip="Run 'python -m build --wheel' in the project to see the error.") from err
        container.copy_out(PurePosixPath("/wheelbarrow/out"), out_dir, contents=True)
    repaired = one_repaired_wheel(out_dir, f"the project {plan.project.name}")
    if not is_pure(repaired.path.name):
        msg = f"the project built a platform wheel ({repaired.path.name}) with the pure-Python builder"
        raise BuildError(msg, tip='Set project-build = "platform" so it is built and repaired with cibuildwheel.')
    return repaired


def build_project_platform(ctx: BuildContext) -> RepairedWheel:
    """A project with extensions goes through cibuildwheel like an sdist, from a staged copy."""
    plan = ctx.plan
    staged = ctx.work / "project-src" / plan.project.name
    _copy_project(plan.project.source, staged, keep_git=plan.project.version is None)
    version = plan.project.version or "dynamic"  # a name for the log; the wheel's own version is the truth
    try:
        return build_sdist(Fetched(plan.project.name, version, staged, ""), ctx, ctx.epoch)
    except PureWheelBuiltError as err:
        if not plan.project.either:
            msg = f'the project {plan.project.name} built a pure-Python wheel, and project-build is "platform"'
            tip = 'Set project-build = "pure" (or "auto") in [tool.wheelbarrow].'
            raise BuildError(msg, tip=tip) from err
    # project-build = "auto" on a backend that may or may not compile (setuptools): it did not.
    ctx.log.info(f"the project {plan.project.name} has no extension modules: building it as pure Python")
    shutil.rmtree(staged)  # in this run's own work folder; build_project_pure stages it afresh
    return build_project_pure(ctx)


#: The range of an sdist's SOURCE_DATE_EPOCH: not before 1980 (zip dates start there), not after 9999.
EPOCH_FLOOR, EPOCH_CEILING = 315532800, 253402300800


def sdist_epoch(sdist: Path, cache: Cache | None = None, sha256: str = "") -> int:
    """SOURCE_DATE_EPOCH for an sdist: set in the environment, else its newest member's mtime (remembered
    in ``cache`` for the sdist of that ``sha256``: reading every member of a large sdist takes a while).

    It depends on the sdist alone, so a new commit of the project does not rebuild its dependencies.
    """
    if _EPOCH.fullmatch(os.environ.get("SOURCE_DATE_EPOCH", "")):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    if cache is None or not sha256:
        return _newest_member(sdist)
    key = key_of({"sdist-epoch": sha256})
    known = cache.memo(key)
    if type(known) is int and EPOCH_FLOOR <= known < EPOCH_CEILING:  # a bad memory (a bool, 1970) is not used
        return known
    epoch = _newest_member(sdist)
    cache.store_memo(key, epoch)
    return epoch


def _newest_member(sdist: Path) -> int:
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as archive:
                stamps = [int(datetime(*i.date_time, tzinfo=UTC).timestamp()) for i in archive.infolist()]
        else:
            with tarfile.open(sdist) as archive:
                stamps = [int(m.mtime) for m in archive.getmembers()]
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError, OverflowError) as err:
        msg = f"{sdist.name} is not a readable sdist archive: {err}"
        tip = "The lock names a file that is not an sdist: re-lock, or fix the local file."
        raise FetchError(msg, tip=tip) from err
    return min(max([*stamps, EPOCH_FLOOR]), EPOCH_CEILING - 1)


def source_date_epoch(project_dir: Path, log: Log) -> int:
    """SOURCE_DATE_EPOCH if set, else the project's last commit time, else 1980-01-01."""
    if _EPOCH.fullmatch(os.environ.get("SOURCE_DATE_EPOCH", "")):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        result = run(["git", "log", "-1", "--format=%ct"], log, cwd=project_dir, check=False)
    except ToolMissingError:  # no git is a normal case: fall back to a fixed date
        return 315532800
    text = result.output.strip()
    return int(text) if result.returncode == 0 and _EPOCH.fullmatch(text) else 315532800


#: SOURCE_DATE_EPOCH: ASCII digits only (``str.isdigit`` also takes other scripts' digits), at most year 2286.
_EPOCH = re.compile(r"[0-9]{1,10}")
