"""Stage 3, fetch: download exactly the locked files on the host.

Containers do not trust the host's TLS setup (a proxy, a private CA), so
every Python artifact is fetched here, with the host's pip and its
configuration, and verified against its locked sha256. Verified files live in
a cache keyed by sha256; a cached file that no longer matches its hash is
discarded and fetched again, never used. The build requirements of each sdist
(and of the project) are fetched too, as wheels for the target, so builds run
with the network off.
"""

from __future__ import annotations

import re
import shutil
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._cache import Cache, key_of, sha256_of
from ._cmd import CommandFailed, run
from ._guard import scratch
from ._log import Log
from ._plan import BuildPlan, IndexWheel, SdistBuild, manylinux_platforms
from .errors import FetchError, HashMismatchError

#: PEP 517's fallback when an sdist has no [build-system] table.
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0",)


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
    """One ``pip download`` with the host's pip and configuration."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(dest), *args]
    try:
        run(argv, log)
    except CommandFailed as err:
        output = err.result.tail(12)
        if "THESE PACKAGES DO NOT MATCH THE HASHES" in output:
            msg = f"the index served a file whose sha256 is not the locked one: {_mismatch(output)}"
            raise HashMismatchError(
                msg, tip="The lock or the index changed: re-lock the project and run again."
            ) from err
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


def _mismatch(pip_output: str) -> str:
    """``six==1.16.0 (six-1.16.0-py2.py3-none-any.whl): expected sha256 0000..., got 8abb...`` from pip's report."""
    found = re.search(
        r"^\s*(\S+==\S+) from \S*?([^/\s]+\.(?:whl|tar\.gz|zip))\b.*?Expected sha256 (\w+).*?Got\s+(\w+)",
        pip_output,
        re.MULTILINE | re.DOTALL,
    )
    if not found:
        return pip_output.strip().splitlines()[-1]
    requirement, filename, expected, got = found.groups()
    return f"{requirement} ({filename}): expected sha256 {expected}, got {got}"


Wanted = IndexWheel | SdistBuild


def _download(items: Sequence[Wanted], flags: list[str], cache: Cache, log: Log) -> dict[Wanted, Fetched]:
    """Download ``items`` in one pip call; return each one's verified cached file."""
    if not items:
        return {}
    cache.root.mkdir(parents=True, exist_ok=True)
    with scratch("fetch", cache.root) as tmp:
        tmp_dir = Path(tmp)
        requirements = tmp_dir / "locked.txt"
        requirements.write_text(
            "".join(f"{i.name}=={i.version} " + " ".join(f"--hash=sha256:{h}" for h in i.hashes) + "\n" for i in items),
            encoding="utf-8",
        )
        downloads = tmp_dir / "files"
        pip_download([*flags, "--no-deps", "--require-hashes", "-r", str(requirements)], downloads, log)
        by_hash = {sha256_of(p): p for p in downloads.iterdir()}
        out: dict[Wanted, Fetched] = {}
        for item in items:
            matches = [h for h in item.hashes if h in by_hash]
            if not matches:
                msg = f"pip downloaded no file of {item.name}=={item.version} with a locked sha256"
                raise HashMismatchError(msg, tip="Re-lock the project; the index no longer serves the locked file.")
            path = by_hash[matches[0]]
            if item.file is not None and path.name != item.file.filename:
                msg = f"expected {item.file.filename}, pip downloaded {path.name} for {item.name}=={item.version}"
                raise FetchError(msg, tip="Report this: the lock and the index disagree on the file name.")
            out[item] = Fetched(item.name, item.version, cache.store_artifact(path, matches[0]), matches[0])
        return out


def _from_cache_or_path(item: Wanted, cache: Cache) -> Fetched | None:
    if item.file is None:  # the lock names hashes, not files: any cached file with one of them will do
        for sha in item.hashes:
            path = cache.artifact_by_hash(sha)
            if path is not None and (isinstance(item, IndexWheel) == path.name.endswith(".whl")):
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
    found: dict[Wanted, Fetched] = {}
    everything: list[Wanted] = [*plan.index_wheels, *plan.sdist_builds]
    for item in everything:
        hit = _from_cache_or_path(item, cache)
        if hit is not None:
            found[item] = hit
    missing_wheels = [w for w in plan.index_wheels if w not in found]
    missing_sdists = [b for b in plan.sdist_builds if b not in found]
    log.info(f"{len(found)} locked files in the cache, {len(missing_wheels) + len(missing_sdists)} to download")
    found |= _download(missing_wheels, _target_flags(plan), cache, log)
    found |= _download(missing_sdists, ["--no-binary=:all:"], cache, log)
    return tuple(found[w] for w in plan.index_wheels), tuple(found[b] for b in plan.sdist_builds)


def build_requires_of_sdist(sdist: Path) -> tuple[str, ...]:
    """The [build-system] requires of an sdist (.tar.gz or .zip), without unpacking it."""
    text: str | None = None
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/pyproject.toml")]
            text = archive.read(names[0]).decode() if names else None
    else:
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/pyproject.toml")]
            stream = archive.extractfile(members[0]) if members else None
            text = stream.read().decode() if stream else None
    return _requires_from_pyproject(text, str(sdist))


def build_requires_of_project(project_dir: Path) -> tuple[str, ...]:
    path = project_dir / "pyproject.toml"
    return _requires_from_pyproject(path.read_text(encoding="utf-8") if path.is_file() else None, str(path))


def _requires_from_pyproject(text: str | None, where: str) -> tuple[str, ...]:
    if text is None:
        return LEGACY_BUILD_REQUIRES
    try:
        requires = tomllib.loads(text).get("build-system", {}).get("requires")
    except tomllib.TOMLDecodeError as err:
        msg = f"{where}: pyproject.toml is not valid TOML: {err}"
        raise FetchError(msg, tip="This sdist cannot be built as it is; pick another version.") from err
    if requires is None:
        return LEGACY_BUILD_REQUIRES
    return tuple(str(r) for r in requires)


def fetch_build_requirements(
    plan: BuildPlan, requirement_sets: Iterable[tuple[str, ...]], dest: Path, cache: Cache, log: Log
) -> tuple[Path, ...]:
    """Wheels of every build requirement (and their dependencies) for the target, into ``dest``.

    A set is resolved once (pip download on the host), then pinned: its files and their sha256
    are remembered in the cache, so later runs reuse exactly those files.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for requires in dict.fromkeys(requirement_sets):
        if not requires:
            continue
        flags = _target_flags(plan)
        key = key_of({"build-requirements": list(requires), "target": flags})
        pinned = cache.memo(key)
        files = [cache.artifact(f["file"], f["sha256"]) for f in pinned] if isinstance(pinned, list) else [None]
        if all(files):
            for path in files:
                assert path is not None
                shutil.copyfile(path, dest / path.name)
            continue
        with scratch("buildreqs", dest.parent) as tmp:
            pip_download([*flags, *requires], Path(tmp), log)
            resolved = []
            for path in sorted(Path(tmp).iterdir()):
                sha = sha256_of(path)
                shutil.copyfile(cache.store_artifact(path, sha), dest / path.name)
                resolved.append({"file": path.name, "sha256": sha})
        cache.store_memo(key, resolved)
    return tuple(sorted(dest.iterdir()))
