"""A PEP 751 ``pylock.toml`` (written by pip, uv or PDM), read with :mod:`packaging.pylock`.

``Pylock.from_dict`` validates the document; ``Pylock.select`` decides, for
the target's environment, tags and dependency groups, which packages the
lock installs (markers on packages and on dependency groups evaluate, never
crash). Each selected package becomes a :class:`LockedPackage` with all its
locked files, so the planner chooses between its wheels and its sdist as it
does for every lock. The project's own entry (a directory that is the
project) is skipped: wheelbarrow builds it. Other directories, VCS
checkouts and archives cannot be fetched by hash here and are refused.
Every name, version, file name and hash is checked for its shape; a ``path``
must be inside the project.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from packaging.markers import Environment, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.pylock import (
    Package,
    PackageArchive,
    PackageDirectory,
    PackageSdist,
    PackageVcs,
    PackageWheel,
    Pylock,
    PylockSelectError,
    PylockUnsupportedVersionError,
    PylockValidationError,
)
from packaging.tags import Tag
from packaging.utils import canonicalize_name

from . import _shapes
from ._requirements import LockedFile, LockedPackage
from .errors import LockError, UnhashedRequirementError

TIP = "Regenerate it (pip lock, uv export --format pylock.toml, pdm export --format pylock)."


def parse_pylock(
    text: str,
    env: Mapping[str, str],
    source: Path,
    *,
    root: Path | None = None,
    tags: Sequence[Tag] | None = None,
    groups: Collection[str] = ("main",),
    prefer_sdist: Collection[str] = (),
) -> tuple[LockedPackage, ...]:
    root = (root or source.parent).resolve()
    data = _shapes.toml(text.encode(), str(source), LockError, tip=TIP)
    if not str(data.get("lock-version", "")).startswith("1."):
        msg = f"{source}: lock-version {data.get('lock-version')!r} is not a PEP 751 version 1.x"
        raise LockError(msg, tip="Regenerate it with a PEP 751 tool that writes lock-version 1.x.")
    try:
        lock = Pylock.from_dict(data)
    except PylockUnsupportedVersionError as err:
        msg = f"{source}: {err}"
        raise LockError(msg, tip="Regenerate it with a PEP 751 tool that writes lock-version 1.x.") from err
    except (PylockValidationError, ValueError, TypeError, AttributeError) as err:
        msg = f"{source} is not a valid PEP 751 lock: {err}"
        if "hashes" in str(err):
            tip = "Regenerate pylock.toml with hashes (pip lock writes them)."
            raise UnhashedRequirementError(msg, tip=tip) from err
        raise LockError(msg, tip=TIP) from err
    selected = _select(lock, env, source, tags, groups, prefer_sdist)
    packages = []
    for package, chosen in selected:
        where = f"{source}: {package.name}"
        if isinstance(chosen, PackageDirectory):
            if (source.parent / chosen.path).resolve() == root:
                continue  # the project itself: built, not fetched
            msg = f"{where} is the local directory {chosen.path!r}, which cannot be locked by hash"
            raise LockError(msg, tip="Lock a released version of it, or build it as a project of its own.")
        if not isinstance(chosen, PackageWheel | PackageSdist):
            msg = f"{where} is a {type(chosen).__name__.removeprefix('Package').lower()} source: only wheels and sdists"
            raise LockError(msg + " with hashes can be fetched", tip="Lock a released version of it.")
        if package.version is None:
            msg = f"{where} has no version"
            raise UnhashedRequirementError(msg, tip=TIP)
        files: list[PackageWheel | PackageSdist] = [package.sdist] if package.sdist else []
        files += list(package.wheels or ())
        locked = tuple(_file(f, where, source.parent, root) for f in files)
        name = _shapes.name(package.name, where, LockError, tip=TIP)
        version = _shapes.version(str(package.version), where, LockError, tip=TIP)
        packages.append(LockedPackage(name, version, tuple(f.sha256 for f in locked), locked))
    return tuple(packages)


def _select(
    lock: Pylock,
    env: Mapping[str, str],
    source: Path,
    tags: Sequence[Tag] | None,
    groups: Collection[str],
    prefer_sdist: Collection[str],
) -> list[tuple[Package, PackageVcs | PackageDirectory | PackageArchive | PackageWheel | PackageSdist]]:
    """What ``packaging.pylock`` selects for the target; a marker it cannot evaluate is a LockError."""
    wanted = [g for g in groups if g != "main"] or None  # main alone: the lock's default groups
    prefer = {canonicalize_name(n) for n in prefer_sdist}
    try:
        selected = list(
            lock.select(
                environment=cast("Environment", dict(env)),
                tags=tags,
                dependency_groups=wanted,
                prefer_sdist_predicate=lambda name: name in prefer,
            )
        )
    except (UndefinedComparison, UndefinedEnvironmentName, InvalidMarker) as err:
        msg = f"{source}: a marker in it cannot be evaluated: {err}"
        raise LockError(msg, tip=TIP) from err
    except PylockSelectError as err:
        msg = f"{source}: nothing to install for the target: {err}"
        tip = "Check the 'groups' key, 'python' and 'glibc', or regenerate the lock."
        if "dependency groups" in str(err):
            declared = ", ".join(lock.dependency_groups or ()) or "none"
            tip = f"The lock declares the dependency groups: {declared}. Export the ones you need into it."
        raise LockError(msg, tip=tip) from err
    return selected


def _file(file: PackageWheel | PackageSdist, where: str, lock_dir: Path, root: Path) -> LockedFile:
    sha = cast("dict[str, Any]", file.hashes).get("sha256")
    if sha is None:
        msg = f"{where}: a file has no sha256 hash"
        raise UnhashedRequirementError(msg, tip="Regenerate pylock.toml with hashes (pip lock writes them).")
    try:
        name = file.filename
    except (ValueError, AttributeError) as err:
        msg = f"{where}: a file has neither name, url nor path"
        raise LockError(msg, tip=TIP) from err
    filename = _shapes.filename(name, where, LockError, tip=TIP)
    sha = _shapes.sha256(sha, where, LockError, tip=TIP)
    if file.path is None:
        return LockedFile(filename, sha)
    local = (lock_dir / file.path).resolve()
    if root not in local.parents:
        msg = f"{where}: the file {file.path!r} is outside the project ({root})"
        raise LockError(msg, tip="A lock may only name local files inside the project.")
    return LockedFile(filename, sha, local)
