"""Stage 3, fetch: download exactly the locked files on the host, and run nothing from the index.

Containers do not trust the host's TLS setup (a proxy, a private CA), so
every Python artifact is fetched here, with the host's pip configuration.
The locked wheels and sdists are downloaded by :mod:`wheelbarrow._index`, a client of
the index's simple API: it picks each file by its locked sha256 (and name),
hashes it while it streams and keeps it only if the hash is a locked one. No
sdist's build backend runs on the host, as ``pip download`` of an sdist would
run it to prepare metadata. Verified files live in a cache keyed by sha256; a
cached file that no longer matches its hash is discarded and fetched again,
never used. The build requirements of each sdist (read from its
pyproject.toml, never by running it) and of the project are resolved by
``pip download --only-binary=:all:``, as wheels for the target, so builds run
with the network off; every pip call here has that flag, so pip never builds.
"""

from __future__ import annotations

import functools
import lzma
import os
import re
import shutil
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from . import _shapes
from ._cache import Cache, key_of, sha256_of
from ._cmd import CommandFailed, run
from ._guard import scratch
from ._index import RELOCK, Client, IndexFile, read_settings
from ._lock import LockedFile, marker_environment
from ._log import Log
from ._parallel import in_threads
from ._plan import BuildPlan, IndexWheel, SdistBuild, best_wheel, manylinux_platforms, sdist_of, target_tags
from ._sources import Index, Sources, read_sources
from .errors import (
    FetchError,
    HashMismatchError,
    IndexAuthError,
    IndexTLSError,
    IndexUnreachableError,
    LockError,
    NoLockedFileError,
    ProjectNotFoundError,
)

#: PEP 517's fallback when an sdist has no [build-system] table.
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0",)
#: Parallel downloads of locked files.
WORKERS = 8
#: What reading a corrupt or truncated sdist raises.
ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError, KeyError)


@dataclass(frozen=True)
class Fetched:
    name: str
    version: str
    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name


def target_flags(python: str, glibc: tuple[int, int], machine: str) -> list[str]:
    """pip's options to download wheels for a target that is not the host: CPython X.Y, manylinux, glibc."""
    tag = "cp" + python.replace(".", "")
    flags = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    flags += ["--abi", tag, "--abi", "abi3", "--abi", "none"]
    for platform in manylinux_platforms(glibc, machine):
        flags += ["--platform", platform]
    return flags


def _target_flags(plan: BuildPlan) -> list[str]:
    return target_flags(plan.python, plan.glibc, plan.machine)


def pip_download(args: Sequence[str], dest: Path, log: Log) -> None:
    """One ``pip download`` of wheels only, with the host's pip and configuration: pip builds nothing here."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(dest), *args]
    argv += ["--only-binary=:all:"]  # last, so nothing before it can turn it off
    try:
        run(argv, log)
    except CommandFailed as err:
        output = err.result.tail(12)
        if _UNREACHABLE.search(err.result.output):
            msg = f"the index cannot be reached from this host:\n{_last_line_matching(err.result.output)}"
            tip = (
                "Check the network, proxy and index settings (pip config list). A run whose downloads are "
                "all in wheelbarrow's cache needs no index."
            )
            raise FetchError(msg, tip=tip) from err
        msg = f"pip download failed:\n{output}"
        tip = "Check that the index is reachable from this host (pip config list), or that the lock's files exist."
        raise FetchError(msg, tip=tip) from err


_UNREACHABLE = re.compile(
    r"NewConnectionError|Connection refused|Temporary failure in name resolution|Name or service not known|"
    r"Max retries exceeded|ProxyError|Network is unreachable|ConnectTimeoutError|Read timed out"
)


def _last_line_matching(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if _UNREACHABLE.search(line)]
    return lines[-1] if lines else output.strip().splitlines()[-1]


Wanted = IndexWheel | SdistBuild


def _version_of(filename: str) -> Version | None:
    try:
        return parse_wheel_filename(filename)[1] if filename.endswith(".whl") else parse_sdist_filename(filename)[1]
    except (ValueError, InvalidVersion):
        return None


def belongs(filename: str, name: str, version: str) -> bool:
    """Whether a distribution file is ``name``'s, at ``version``: a locked hash alone does not say whose file
    it is (a lock may pin one hash under two names)."""
    try:
        parsed = parse_wheel_filename(filename)[:2] if filename.endswith(".whl") else parse_sdist_filename(filename)
        return parsed[0] == canonicalize_name(name) and parsed[1] == Version(version)
    except (ValueError, InvalidVersion):
        return False


def _preferred(pool: Sequence[IndexFile], item: Wanted, ranks: dict[Tag, int]) -> IndexFile | None:
    """The sdist in ``pool`` for a build, else its best wheel for the target's tags, ranked as the plan ranks them."""
    locked = tuple(LockedFile(f.filename, f.sha256 or "") for f in pool)
    pick = sdist_of(locked) if isinstance(item, SdistBuild) else best_wheel(locked, ranks)
    return next((f for f in pool if pick is not None and f.filename == pick.filename), None)


def choose(files: Sequence[IndexFile], item: Wanted, ranks: dict[Tag, int]) -> IndexFile | None:
    """The file of an index page to download for ``item``, or None.

    It has the locked name when the lock names one, and a locked sha256; a file the index gives
    no hash for is taken only when no file has a locked one (the download is then verified).
    """
    wanted = set(item.hashes)
    if item.file is not None:
        named = [f for f in files if f.filename == item.file.filename]
        return next((f for f in named if f.sha256 in wanted), None) or next((f for f in named if not f.sha256), None)
    if hashed := [f for f in files if f.sha256 in wanted and belongs(f.filename, item.name, item.version)]:
        return _preferred(hashed, item, ranks)
    version = Version(item.version)
    return _preferred([f for f in files if not f.sha256 and _version_of(f.filename) == version], item, ranks)


def _locate(client: Client, indexes: Sequence[Index], item: Wanted, ranks: dict[Tag, int]) -> IndexFile:
    """The file to download for ``item`` from the first of its indexes that has one."""
    listed: list[IndexFile] = []
    problems: list[FetchError] = []
    for index in indexes:
        try:
            files = client.project_files(index, item.name) or []
        except FetchError as err:
            problems.append(err)
            continue
        listed += files
        if (chosen := choose(files, item, ranks)) is not None:
            for problem in problems:
                log_line = f"{problem} (another index has {item.name}=={item.version})"
                client.log.warning(log_line)
            if chosen.yanked is not None:
                client.log.warning(f"{chosen.filename} is yanked ({chosen.yanked or 'no reason given'}); it is locked")
            return chosen
    raise _why_not(item, listed, problems, ranks, indexes)


def _why_not(
    item: Wanted, listed: list[IndexFile], problems: list[FetchError], ranks: dict[Tag, int], indexes: Sequence[Index]
) -> FetchError:
    """Why no index gave a file of ``item``: an index's own failure first, then a hash mismatch, then absence."""
    for kind in (IndexAuthError, IndexTLSError, IndexUnreachableError, FetchError):
        if failed := [p for p in problems if type(p) is kind]:
            return failed[0]
    if hashed := sorted({f.filename for f in listed if f.sha256 in item.hashes}):
        needed = "its sdist" if isinstance(item, SdistBuild) else "a wheel for the target"
        msg = (
            f"{item.name}=={item.version}: the locked files on the index ({', '.join(hashed)}) do not include {needed}"
        )
        tip = "Lock the file the target needs (the sdist, or a wheel for this python and glibc), or re-lock."
        return NoLockedFileError(msg, tip=tip)
    version = Version(item.version)
    same = [f for f in listed if _version_of(f.filename) == version]
    shown = [f for f in same if f.filename == item.file.filename] if item.file else same
    if shown:
        file = _preferred(shown, item, ranks) or shown[0]
        got = file.sha256 or "(no hash on the index)"
        msg = f"{item.name}=={item.version} ({file.filename}): expected sha256 {' or '.join(item.hashes)}, got {got}"
        return NoLockedFileError(f"the index served a file whose sha256 is not the locked one: {msg}", tip=RELOCK)
    if listed:
        wanted = item.file.filename if item.file else f"any file of {item.name}=={item.version}"
        msg = f"the index lists {len(listed)} files of {item.name}, but not {wanted}"
        return NoLockedFileError(msg, tip=RELOCK)
    where = ", ".join(i.shown for i in indexes) or "none (pip's no-index is set)"
    if all(not i.label for i in indexes):
        msg = f"{item.name} is on none of the indexes pip is configured with: {where}"
        tip = "Check the name, and pip's index-url and extra-index-url (pip config list, PIP_INDEX_URL)."
        return ProjectNotFoundError(msg, tip=tip)
    msg = f"{item.name} is on none of the indexes searched for it: {where}"
    tip = "Check the name, the project's package sources (a Poetry source, a uv index, a package pinned to one) "
    return ProjectNotFoundError(msg, tip=tip + "and pip's index-url and extra-index-url (pip config list).")


def open_indexes(project_dir: Path, python: str, machine: str, lock: Path, log: Log) -> tuple[Client, Sources]:
    """A client of the indexes fetch searches: pip's configuration, and those the project declares
    (read from its pyproject.toml, mapped onto pip's), in the order its lock tool searches them."""
    settings = read_settings(log)
    target = marker_environment(python, machine)
    sources = read_sources(project_dir, settings.indexes, os.environ, target, log, lock=lock)
    for line in sources.describe() if sources.declared else ():
        log.info(line)
    return Client(settings, log, sources.declared), sources


def _download(items: Sequence[Wanted], plan: BuildPlan, cache: Cache, log: Log) -> dict[Wanted, Fetched]:
    """Each item's locked file from the index, several at once, verified and stored in the cache."""
    if not items:
        return {}
    client, sources = open_indexes(plan.project.source, plan.python, plan.machine, plan.lock, log)
    ranks = {tag: i for i, tag in enumerate(target_tags(plan.python, plan.glibc, plan.machine))}

    def one(item: Wanted, dest: Path) -> Fetched:
        chosen = _locate(client, sources.for_project(item.name), item, ranks)
        path, sha = client.download(chosen, item.hashes, f"{item.name}=={item.version}", dest)
        return Fetched(item.name, item.version, cache.store_artifact(path, sha), sha)

    with scratch("fetch", cache.root) as tmp:
        try:
            jobs = [(item, functools.partial(one, item, tmp / str(n))) for n, item in enumerate(items)]
            return in_threads(jobs, WORKERS)
        finally:
            client.stopping.set()  # after a failure or Ctrl-C, the other downloads stop at their next block


def _from_cache_or_path(item: Wanted, cache: Cache) -> Fetched | None:
    if item.file is None:  # the lock names hashes, not files: any cached file with one of them will do
        for sha in item.hashes:
            path = cache.artifact_by_hash(sha)
            if path is None or isinstance(item, IndexWheel) != path.name.endswith(".whl"):
                continue
            if belongs(path.name, item.name, item.version):
                return Fetched(item.name, item.version, path, sha)
        return None
    cached = cache.artifact(item.file.filename, item.file.sha256)
    if cached is None and item.file.path is not None:
        if not item.file.path.is_file():
            msg = f"the lock names the local file {item.file.path}, which does not exist"
            raise FetchError(msg, tip="Restore the file or re-lock the project.")
        actual = sha256_of(item.file.path)
        if actual != item.file.sha256:
            msg = f"{item.file.path}: sha256 {actual} is not the locked {item.file.sha256}"
            raise HashMismatchError(msg, tip="The file changed after locking: re-lock the project.")
        cached = cache.store_artifact(item.file.path, actual)
    return Fetched(item.name, item.version, cached, item.file.sha256) if cached else None


def fetch_locked(plan: BuildPlan, cache: Cache, log: Log) -> tuple[tuple[Fetched, ...], tuple[Fetched, ...]]:
    """Every locked wheel and sdist of the plan, verified, from the cache or the index."""
    found = fetch_items([*plan.index_wheels, *plan.sdist_builds], plan, cache, log)
    return tuple(found[w] for w in plan.index_wheels), tuple(found[b] for b in plan.sdist_builds)


def fetch_items(items: Sequence[Wanted], plan: BuildPlan, cache: Cache, log: Log) -> dict[Wanted, Fetched]:
    """Each locked file of ``items``, verified, from the cache or the index (a build's sdists first, its
    wheels while it builds: :data:`wheelbarrow._pipeline.BUILD`)."""
    found: dict[Wanted, Fetched] = {}
    for item in items:
        hit = _from_cache_or_path(item, cache)
        if hit is not None:
            found[item] = hit
    missing = [item for item in items if item not in found]
    kinds = {"wheels" if isinstance(item, IndexWheel) else "sdists" for item in items}
    what = kinds.pop() if len(kinds) == 1 else "files"
    log.info(f"{len(found)} locked {what} in the cache, {len(missing)} to download")
    found |= _download(missing, plan, cache, log)
    for item, fetched in found.items():
        if not belongs(fetched.filename, item.name, item.version):
            msg = f"the lock pins {fetched.filename} for {item.name}=={item.version}: it is another project's file"
            raise LockError(msg, tip="The lock was edited or merged badly: regenerate it.")
    return found


#: The largest pyproject.toml read from an sdist (real ones are a few kB; a member's stated size is checked
#: before it is read, and no more than this is ever read, so a compressed bomb costs nothing).
PYPROJECT_BYTES = 1 << 20


def _top_pyproject(name: str) -> bool:
    return name.count("/") == 1 and name.endswith("/pyproject.toml")


def _small_enough(sdist: Path, size: int) -> None:
    if size > PYPROJECT_BYTES:
        msg = f"{sdist.name}: its pyproject.toml is {size} bytes; wheelbarrow reads at most {PYPROJECT_BYTES}"
        raise FetchError(msg, tip="This sdist is not a usual one: check it, or lock another version.")


def build_requires_of_sdist(sdist: Path) -> tuple[str, ...]:
    """The [build-system] requires of an sdist (.tar.gz or .zip), read without unpacking or running it."""
    data: bytes | None = None
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as archive:
                infos = [
                    i
                    for i in archive.infolist()
                    if i.filename.count("/") == 1 and i.filename.endswith("/pyproject.toml")
                ]
                if infos:
                    _small_enough(sdist, infos[0].file_size)
                    with archive.open(infos[0]) as member:
                        data = member.read(PYPROJECT_BYTES + 1)
        else:
            with tarfile.open(sdist) as archive:
                members = [m for m in archive.getmembers() if _top_pyproject(m.name)]
                stream = archive.extractfile(members[0]) if members else None
                if stream is not None:
                    _small_enough(sdist, members[0].size)
                    data = stream.read(PYPROJECT_BYTES + 1)
    except ARCHIVE_ERRORS as err:
        msg = f"{sdist.name} cannot be read as an sdist: {err}"
        raise FetchError(msg, tip="This sdist is corrupt: re-lock the project, or pick another version.") from err
    if data is not None and len(data) > PYPROJECT_BYTES:  # a member larger than its header says
        _small_enough(sdist, len(data))
    return _requires_from_pyproject(data, f"{sdist.name}: pyproject.toml")


def build_requires_of_project(project_dir: Path) -> tuple[str, ...]:
    path = project_dir / "pyproject.toml"
    return _requires_from_pyproject(path.read_bytes() if path.is_file() else None, str(path))


def _requires_from_pyproject(data: bytes | None, where: str) -> tuple[str, ...]:
    if data is None:
        return LEGACY_BUILD_REQUIRES
    tip = "This sdist cannot be built as it is; pick another version."
    system = _shapes.toml(data, where, FetchError, tip).get("build-system", {})
    requires = system.get("requires") if isinstance(system, dict) else None
    if requires is None:
        return LEGACY_BUILD_REQUIRES
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        msg = f"{where}: [build-system] requires is not a list of strings: {requires!r}"
        raise FetchError(msg, tip=tip)
    # Untrusted (the sdist's own words): each must be a requirement by name, never an option or a URL.
    return tuple(_shapes.requirement(r, f"{where}: [build-system] requires", FetchError, tip) for r in requires)


def build_requires_remembered(sdist: Fetched, cache: Cache) -> tuple[str, ...]:
    """:func:`build_requires_of_sdist`, remembered for the sdist of that sha256 (reading them reads the
    archive). What is remembered is checked as the sdist's own words are; a bad memory is not used."""
    key = key_of({"build-requires": sdist.sha256})
    known = cache.memo(key)
    if isinstance(known, list):
        try:
            return tuple(_shapes.requirement(r, "remembered", FetchError, "") for r in known)
        except FetchError:
            pass  # edited by hand, or by a bug: read the sdist again
    requires = build_requires_of_sdist(sdist.path)
    cache.store_memo(key, list(requires))
    return requires


def fetch_build_requirements(
    plan: BuildPlan, requirement_sets: Iterable[tuple[str, ...]], dest: Path, cache: Cache, log: Log
) -> tuple[Path, ...]:
    """Wheels of every build requirement (and their dependencies) for the target, into ``dest``.

    A set is resolved once (pip download on the host), then pinned: its files and their sha256
    are remembered in the cache, so later runs reuse exactly those files.
    """
    dest.mkdir(parents=True, exist_ok=True)
    flags = _target_flags(plan)

    def resolve(requires: tuple[str, ...]) -> list[Path]:
        key = key_of({"build-requirements": list(requires), "target": flags})
        pinned = cache.memo(key)
        files = [cache.artifact(f["file"], f["sha256"]) for f in pinned] if isinstance(pinned, list) else [None]
        if all(files):
            return [path for path in files if path is not None]
        with scratch("buildreqs", dest.parent) as tmp:
            downloads = Path(tmp) / "wheels"  # only pip's files: the scratch folder holds wheelbarrow's own too
            pip_download([*flags, *requires], downloads, log)
            stored, resolved = [], []
            for path in sorted(downloads.iterdir()):
                sha = sha256_of(path)
                stored.append(cache.store_artifact(path, sha))
                resolved.append({"file": path.name, "sha256": sha})
        cache.store_memo(key, resolved)
        return stored

    # Each set (an sdist's, the project's) is resolved by its own pip, all at once; the files are copied
    # afterwards, in this thread, so two sets that share a wheel never write it at the same time.
    sets = [requires for requires in dict.fromkeys(requirement_sets) if requires]
    found = in_threads([(requires, functools.partial(resolve, requires)) for requires in sets], workers=len(sets) or 1)
    for paths in found.values():
        for path in paths:
            shutil.copyfile(path, dest / path.name)
    return tuple(sorted(dest.iterdir()))
