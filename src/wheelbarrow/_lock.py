"""Stage 1, lock: the hash-pinned requirement set of the project.

Three inputs give the same :class:`Lock`:

* ``poetry.lock``: checked against pyproject.toml (``poetry check --lock``),
  exported for the configured groups (``poetry export -f requirements.txt``),
  and joined with the lock's file list so every hash has its file name;
* a PEP 751 ``pylock.toml``;
* a requirements file in which every requirement is pinned with ``==`` and
  carries ``--hash=sha256:...`` (file names are then learnt at fetch time).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import _shapes
from ._cache import Cache, key_of, sha256_of
from ._cmd import CommandFailed, run, which
from ._config import Config
from ._guard import scratch
from ._log import Log
from ._parallel import in_threads
from ._project import dynamic_fields, read_pyproject
from ._pylock import parse_pylock
from ._requirements import LockedFile, LockedPackage, parse_requirements, read_text
from ._tags import target_tags
from .errors import LockError, MissingLockError, StaleLockError, WheelbarrowError

__all__ = [
    "Lock",
    "LockKind",
    "LockedFile",
    "LockedPackage",
    "find_lock",
    "marker_environment",
    "parse_pylock",
    "parse_requirements",
    "poetry_lock_files",
    "read_lock",
    "read_text",
    "uv_lock_files",
]

LockKind = Literal["poetry", "uv", "pylock", "requirements"]
UV_HINT = "Install uv (pip install 'wheelbarrow[uv]'), or run through nox."
POETRY_HINT = "Install poetry and poetry-plugin-export (pip install 'wheelbarrow[poetry]'), or run through nox."


@dataclass(frozen=True)
class Lock:
    source: Path
    kind: LockKind
    packages: tuple[LockedPackage, ...]


def marker_environment(python: str, machine: str) -> dict[str, str]:
    """The PEP 508 environment of the target (a Linux CPython), not of the host."""
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{python}.0",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{python}.0",
        "python_version": python,
        "sys_platform": "linux",
    }


def find_lock(config: Config) -> tuple[Path, LockKind]:
    candidates = (
        [config.lock]
        if config.lock
        else [
            config.project_dir / "poetry.lock",
            config.project_dir / "uv.lock",
            config.project_dir / "pylock.toml",
            config.project_dir / "requirements.txt",
        ]
    )
    for path in candidates:
        if path is not None and path.is_file():
            return path, _kind_of(path)
    if config.lock:
        msg = f"the lock file {config.lock} does not exist"
        raise MissingLockError(msg, tip="Fix the 'lock' key in [tool.wheelbarrow], or create the lock.")
    msg = f"no lock in {config.project_dir}: looked for poetry.lock, uv.lock, pylock.toml, requirements.txt"
    raise MissingLockError(msg, tip="Run 'poetry lock', 'uv lock' or 'pip lock' in the project and run again.")


def _kind_of(path: Path) -> LockKind:
    if path.name == "poetry.lock":
        return "poetry"
    if path.name == "uv.lock":
        return "uv"
    if path.name == "pylock.toml" or (path.name.startswith("pylock.") and path.suffix == ".toml"):
        return "pylock"
    return "requirements"


def read_lock(config: Config, log: Log, *, machine: str, cache: Cache | None = None) -> Lock:
    """Stage entry point: the locked runtime requirements for the target."""
    path, kind = find_lock(config)
    env = marker_environment(config.python, machine)
    match kind:
        case "poetry":
            text = _export_cached("poetry", config, path, log, cache, export_poetry)
            files = _files_cached(path, cache, poetry_lock_files)
            packages = tuple(
                _attach_files(p, files.get((p.name, p.version), ())) for p in parse_requirements(text, env, path)
            )
        case "uv":
            text = _export_cached("uv", config, path, log, cache, export_uv)
            files = _files_cached(path, cache, uv_lock_files)  # uv export pins hashes; uv.lock names their files
            packages = tuple(
                _attach_files(p, files.get((p.name, p.version), ()))
                for p in parse_requirements(text, env, path, root=config.project_dir)
            )
        case "pylock":
            tags = target_tags(config.python, config.glibc_tuple, machine)
            packages = parse_pylock(
                read_text(path), env, path, root=config.project_dir, tags=tags, groups=config.groups,
                prefer_sdist=config.build_from_source,
            )  # fmt: skip
        case "requirements":
            packages = parse_requirements(read_text(path), env, path, root=config.project_dir)
    if kind != "poetry":  # poetry check --lock already said whether the lock is stale
        check_covers_project(config.project_dir / "pyproject.toml", packages, env, path)
    own = canonicalize_name(config.project_name)
    check_unique_files(packages, path)
    return Lock(path, kind, tuple(sorted((p for p in packages if p.name != own), key=lambda p: p.name)))


def uv_lock_files(path: Path) -> dict[tuple[str, str], tuple[LockedFile, ...]]:
    """Each package's files in a uv.lock (its sdist and wheels, named by the last part of their URL or path)."""
    tip = "Regenerate it with 'uv lock'."
    data = _shapes.toml(read_text(path).encode(), str(path), LockError, tip=tip)
    out: dict[tuple[str, str], tuple[LockedFile, ...]] = {}
    packages = data.get("package", [])
    for index, package in enumerate(packages if isinstance(packages, list) else []):
        if not isinstance(package, dict) or not isinstance(package.get("version"), str):
            continue  # a virtual or dynamic project: nothing uv exports with hashes
        where = f"{path}: package[{index}]"
        wheels = package.get("wheels", [])
        entries = [package.get("sdist"), *(wheels if isinstance(wheels, list) else [])]
        files = []
        for entry in entries:
            if not isinstance(entry, dict) or not str(entry.get("hash", "")).startswith("sha256:"):
                continue
            location = unquote(urlsplit(str(entry.get("url") or entry.get("path") or "")).path)
            filename = _shapes.filename(PurePosixPath(location).name, where, LockError, tip=tip)
            files.append(LockedFile(filename, _shapes.sha256(entry["hash"].removeprefix("sha256:"), where, LockError)))
        name = _shapes.name(package.get("name"), where, LockError, tip=tip)
        out[(name, _shapes.version(package["version"], where, LockError, tip=tip))] = tuple(files)
    return out


def check_covers_project(
    pyproject: Path, packages: tuple[LockedPackage, ...], env: Mapping[str, str], source: Path
) -> None:
    """A lock that does not satisfy the project's own ``[project] dependencies`` is stale (for the target)."""
    try:
        project = _shapes.toml(pyproject.read_bytes(), str(pyproject), LockError, tip="").get("project", {})
    except (OSError, LockError):
        return  # the config stage already read it; nothing more to say here
    dependencies = project.get("dependencies", []) if isinstance(project, dict) else []
    locked = {p.name: p.version for p in packages}
    problems = []
    for text in dependencies if isinstance(dependencies, list) else []:
        try:
            requirement = Requirement(str(text))
            if requirement.marker is not None and not requirement.marker.evaluate(dict(env)):
                continue
        except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            continue  # not for this check to judge: the build backend will say
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement} is not in it")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{requirement} does not allow the locked {name}=={locked[name]}")
    if problems:
        msg = f"{source.name} is stale: pyproject.toml requires {'; '.join(problems)}"
        tip = f"Lock and export again (uv export, pip lock, pip-compile), then run again; {source.name} must hold it."
        raise StaleLockError(msg, tip=tip)


def check_unique_files(packages: tuple[LockedPackage, ...], source: Path) -> None:
    """One package, one version; one file name, one sha256: a lock that says otherwise is corrupt."""
    versions: dict[str, str] = {}
    for package in packages:
        if versions.setdefault(package.name, package.version) != package.version:
            msg = f"{source.name} pins {package.name} twice: {versions[package.name]} and {package.version}"
            raise LockError(msg, tip="The lock was edited or merged badly: regenerate it.")
    seen: dict[str, str] = {}
    for package in packages:
        for file in package.files:
            earlier = seen.setdefault(file.filename, file.sha256)
            if earlier != file.sha256:
                hashes = f"{earlier[:12]}... and {file.sha256[:12]}..."
                msg = f"{source.name} pins {file.filename} twice with different sha256 ({hashes})"
                raise LockError(msg, tip="The lock was edited or merged badly: regenerate it.")


def _export_cached(
    tool: str, config: Config, lock: Path, log: Log, cache: Cache | None, export: Callable[[Config, Log], str]
) -> str:
    """A lock tool's staleness check and export, remembered for this exact lock, pyproject.toml and groups."""
    if cache is None:
        return export(config, log)
    key = key_of(
        {
            f"{tool}-export": 1,
            "lock": sha256_of(lock),
            "pyproject": sha256_of(config.project_dir / "pyproject.toml"),
            "groups": list(config.groups),
        }
    )
    remembered = cache.memo(key)
    if isinstance(remembered, str):
        log.info(f"{lock.name} and pyproject.toml unchanged since the last export: reusing it")
        return remembered
    text = export(config, log)
    cache.store_memo(key, text)
    return text


def export_uv(config: Config, log: Log) -> str:
    """``uv lock --check`` (a stale lock is an error), then ``uv export`` of the configured groups, hashed.

    ``main`` is the project's own dependencies; any other name is a dependency group (``--group``).
    """
    groups = [g for g in config.groups if g != "main"]
    export = ["export", "--format", "requirements-txt", "--frozen", "--no-emit-project", "--no-header"]
    if "main" in config.groups:
        export += ["--no-default-groups", *(f"--group={g}" for g in groups)]
    else:
        export += [f"--only-group={g}" for g in groups]
    tip = "Check that the 'groups' key names dependency groups of the project."
    return _check_then_export("uv", config, log, {"UV_NO_PROGRESS": "1"}, export, tip)


def export_poetry(config: Config, log: Log) -> str:
    export = ["export", "-f", "requirements.txt", "--only", ",".join(config.groups)]
    tip = "Check the 'groups' key names groups that exist; is poetry-plugin-export installed?"
    return _check_then_export("poetry", config, log, {"POETRY_NO_INTERACTION": "1"}, export, tip)


#: What uv says when checking the lock would need an sdist built (``--no-build`` forbids it).
_UV_WOULD_BUILD = "marked as `--no-build`"
#: [project] fields uv can only learn by running the project's build backend.
_BUILT_METADATA = frozenset({"dependencies", "optional-dependencies"})


def _check_then_export(
    tool: Literal["poetry", "uv"], config: Config, log: Log, env: dict[str, str], export: list[str], tip: str
) -> str:
    """``<tool> check --lock`` / ``lock --check`` (stale: a StaleLockError), then its export's text.

    Neither runs code that came from an index on the host: uv checks with ``--no-build`` (it would build
    sdists to read their metadata), and skips the check when the project's own dependencies are dynamic
    (uv would run its build backend, fetched from the index, to learn them); Poetry checks with
    ``--no-plugins`` and exports from a copy of pyproject.toml and poetry.lock alone, so plugins in the
    project's ``.poetry/plugins`` (installed from the index) never load; poetry-plugin-export, installed
    with wheelbarrow, is the one plugin that runs.
    """
    hint = POETRY_HINT if tool == "poetry" else UV_HINT
    program = which(tool, hint=hint)
    lock = "poetry.lock" if tool == "poetry" else "uv.lock"
    check = ["--no-plugins", "check", "--lock"] if tool == "poetry" else ["lock", "--check", "--no-build"]
    dynamic = dynamic_fields(read_pyproject(config.project_dir)) & _BUILT_METADATA if tool == "uv" else frozenset()
    if dynamic:
        log.warning(
            f"not checking that uv.lock is fresh: pyproject.toml declares {', '.join(sorted(dynamic))} dynamic, "
            "and uv would run the project's build backend on the host to learn them"
        )

    def checked() -> str:
        try:
            run([program, *check], log, cwd=config.project_dir, env=env)
        except CommandFailed as err:
            if _UV_WOULD_BUILD in err.result.output:
                msg = "checking uv.lock would build an sdist on the host, and wheelbarrow runs none there:\n"
                msg += err.result.tail(3)
                index = "Lock that package from the index (wheelbarrow compiles sdists in the offline builder)."
                raise LockError(msg, tip=index) from err
            msg = f"{lock} is stale or invalid for {config.project_dir / 'pyproject.toml'}:\n{err.result.tail(5)}"
            raise StaleLockError(msg, tip=f"Run '{tool} lock' in the project, commit the lock, and run again.") from err
        return ""

    def exported() -> str:
        try:
            if tool == "uv":
                return run([program, *export, "--no-build"], log, cwd=config.project_dir, env=env, hint=hint).output
            with scratch("poetry-export") as alone:
                for name in ("pyproject.toml", "poetry.lock"):
                    shutil.copyfile(config.project_dir / name, alone / name)
                return run([program, *export], log, cwd=alone, env=env, hint=hint).output
        except CommandFailed as err:
            msg = f"{tool} export failed:\n{err.result.tail(8)}"
            raise LockError(msg, tip=tip) from err

    # The check and the export read the same two files and do not wait for each other: both run at once
    # (each starts the tool, about a second for Poetry). A stale lock is the error said, whatever the export did.
    jobs = [("check", _outcome(checked))] if not dynamic else []
    outcomes = in_threads([*jobs, ("export", _outcome(exported))], workers=2)
    for outcome in outcomes.values():
        if isinstance(outcome, WheelbarrowError):
            raise outcome
    text = outcomes["export"]
    assert isinstance(text, str), "an export that failed was raised above"
    return text


def _outcome(job: Callable[[], str]) -> Callable[[], str | WheelbarrowError]:
    """``job``, with its error returned instead of raised: the caller picks which error to say."""

    def wrapped() -> str | WheelbarrowError:
        try:
            return job()
        except WheelbarrowError as err:
            return err

    return wrapped


def poetry_lock_files(path: Path) -> dict[tuple[str, str], tuple[LockedFile, ...]]:
    data = _shapes.toml(read_text(path).encode(), str(path), LockError, tip="Regenerate it with 'poetry lock'.")
    out: dict[tuple[str, str], tuple[LockedFile, ...]] = {}
    packages = data.get("package", [])
    for index, package in enumerate(packages if isinstance(packages, list) else []):
        where = f"{path}: package[{index}]"
        if not isinstance(package, dict):
            continue
        files = package.get("files", [])
        locked = tuple(
            LockedFile(
                _shapes.filename(f.get("file"), where, LockError, tip="Regenerate it with 'poetry lock'."),
                _shapes.sha256(f["hash"].removeprefix("sha256:"), where, LockError),
            )
            for f in (files if isinstance(files, list) else [])
            if isinstance(f, dict) and str(f.get("hash", "")).startswith("sha256:")
        )
        name = _shapes.name(package.get("name"), where, LockError, tip="Regenerate it with 'poetry lock'.")
        out[(name, str(package.get("version")))] = locked
    return out


LockFiles = dict[tuple[str, str], tuple[LockedFile, ...]]
#: Bumped when what the lock parsers read changes: their remembered answers are then asked again.
_FILES_FORMAT = 1


#: A file and its sha256 as both lock formats write them, in one inline table: Poetry's
#: ``{file = "NAME", hash = "sha256:HEX"}``, uv's ``{ url = ".../NAME", hash = "sha256:HEX", ... }``.
_FILE_HASH = re.compile(r'"(?:[^"]*/)?([^"/]+)", hash = "sha256:([0-9a-f]{64})"')


def _files_cached(path: Path, cache: Cache | None, parse: Callable[[Path], LockFiles]) -> LockFiles:
    """``parse(path)`` (a lock's files: which file and sha256 belong to which package), remembered for this
    exact lock: parsing a large lock's TOML takes longer than a no-op build's every other step.

    A remembered answer is used only when each of its files is named, with that sha256, in one entry of
    the lock as it is now (found by :data:`_FILE_HASH`, far quicker than parsing), and when its names and
    hashes have the shapes a lock's must: an edited memory is not used, the lock is parsed again."""
    if cache is None:
        return parse(path)
    data = path.read_bytes()
    key = key_of({"lock-files": _FILES_FORMAT, "parser": parse.__name__, "lock": hashlib.sha256(data).hexdigest()})

    def rows() -> list[object]:
        files = parse(path).items()
        return [[name, version, [[f.filename, f.sha256] for f in locked]] for (name, version), locked in files]

    where = f"{path} (as remembered in the cache)"
    try:
        remembered = {
            (str(name), str(version)): tuple(
                LockedFile(_shapes.filename(f, where, LockError), _shapes.sha256(h, where, LockError)) for f, h in files
            )
            for name, version, files in cache.remember(key, list, rows)
        }
    except (TypeError, ValueError, LockError):  # a remembered answer of another shape
        return parse(path)
    in_lock = set(_FILE_HASH.findall(data.decode("utf-8", "replace")))
    if any((f.filename, f.sha256) not in in_lock for files in remembered.values() for f in files):
        return parse(path)  # a file the lock does not pin with that hash: the memory is not the lock's
    return remembered


def _attach_files(package: LockedPackage, files: tuple[LockedFile, ...]) -> LockedPackage:
    wanted = set(package.hashes)
    return LockedPackage(package.name, package.version, package.hashes, tuple(f for f in files if f.sha256 in wanted))
