"""The content-addressed cache, outside the wheelhouse (``cache-dir``).

Sections, each a directory under the cache root:

* ``artifacts/<sha256>/<file>``: verified downloads, keyed by their own sha256;
* ``wheels/<key>/``: built and repaired wheels with an ``entry.json``, keyed by
  everything that can change their bytes (see :func:`wheelbarrow._schedule.sdist_key` and
  :func:`~wheelbarrow._schedule.project_key`);
* ``memo/<key>.json``: small results of slow, pure steps (a Poetry export, a
  resolved set of build requirements, what a runtime base provides).

A hit is verified before use: a wheel or artifact whose sha256 is not the
recorded one is discarded and made again, never used. Entries are written to
a temporary name and renamed into place, so an interrupted run leaves no half
entry. Using an entry refreshes its mtime, which ``cache prune`` reads.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, TypeVar

from . import _shapes
from ._guard import MARKER, claim, is_marked, remove_tempdir, tempdir
from ._log import Log
from .errors import ConfigError, FetchError, FileSystemError, HashMismatchError

T = TypeVar("T")

SECTIONS = ("artifacts", "wheels", "memo")
#: The names of cache entries (a sha256, or a memo ``<sha256>.json``); nothing else in the cache is pruned.
_ENTRY = re.compile(r"^[0-9a-f]{64}(\.json)?$")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def key_of(data: Mapping[str, Any]) -> str:
    """A stable key for a JSON-able mapping."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


#: What a project's build leaves out of its source tree (and so of its fingerprint).
IGNORED_IN_PROJECT = (
    ".git",
    ".nox",
    ".venv",
    "__pycache__",
    "*.pyc",
    "wheelhouse",
    ".wheelhouse-*",
    "dist",
    ".dist-*",
    "build",
)


def skipped(path: Path, ignore: tuple[str, ...]) -> bool:
    """Whether a project's build leaves ``path`` out: an ignored name, bytecode, a socket, fifo or device,
    and any directory wheelbarrow made (a wheelhouse, dist/, a staging folder: they carry its marker)."""
    if any(fnmatch(path.name, pattern) for pattern in (*ignore, "*.pyc")):
        return True
    try:
        mode = path.lstat().st_mode
    except OSError:
        return True
    if stat.S_ISDIR(mode):
        return is_marked(path)
    return not (stat.S_ISREG(mode) or stat.S_ISLNK(mode))


def source_files(root: Path, ignore: tuple[str, ...]) -> Iterator[Path]:
    """The files and symlinks of a source tree that a build uses, sorted; never follows a symlink."""
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not skipped(here / d, ignore))
        links = [here / d for d in dirs if (here / d).is_symlink()]
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        yield from sorted([*links, *(here / f for f in files if not skipped(here / f, ignore))])


def tree_digest(root: Path, ignore: tuple[str, ...]) -> str:
    """sha256 over the relative paths, modes and contents of a source tree (``ignore``: names to skip)."""
    digest = hashlib.sha256()
    for path in sorted(source_files(root, ignore)):
        relative = os.fsencode(path.relative_to(root))
        if path.is_symlink():
            digest.update(relative + b"\0->" + os.fsencode(path.readlink()) + b"\0")
        else:
            digest.update(relative + f"\0{path.stat().st_mode & 0o111}\0".encode())
            digest.update(sha256_of(path).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedWheel:
    path: Path
    sha256: str
    platform_tag: str
    grafted: tuple[str, ...]
    expected_from_base: tuple[str, ...]


@contextmanager
def writing(path: Path, what: str = "the cache") -> Iterator[None]:
    """A write into ``what``: a full, read-only or forbidden disk is a FileSystemError naming the path."""
    try:
        yield
    except OSError as err:
        where = err.filename or path
        msg = f"could not write {what} at {where}: {err.strerror or err}"
        tip = f"Free space on that disk, fix its permissions, or point cache-dir at another directory ({path})."
        raise FileSystemError(msg, tip=tip) from err


def _partial(folder: Path, name: str) -> Path:
    """A unique temporary file in ``folder`` (unique across processes, PID namespaces and machines)."""
    fd, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    os.close(fd)
    return Path(partial)


def _key(value: str, where: str) -> str:
    return _shapes.sha256(value, where, FileSystemError, tip="Report this: wheelbarrow made a bad cache key.")


@dataclass
class Cache:
    root: Path
    log: Log
    _claimed: bool = False

    def _claim(self) -> None:
        """Make sure the cache folder is wheelbarrow's (marked, or new) before anything in it is written or
        removed: a cache-dir naming someone's folder is refused, never emptied."""
        if not self._claimed:
            with writing(self.root):
                claim(self.root, "cache", "cache-dir", known=(*SECTIONS, "tools", "CACHEDIR.TAG"))
            self._claimed = True

    def _discard(self, entry: Path) -> None:
        """Remove one entry of the cache (a bad or stale one), in a claimed cache only."""
        self._claim()
        shutil.rmtree(entry, ignore_errors=True)

    def section(self, name: str) -> Path:
        """A folder of the cache (``artifacts``, ``tools`` ...), made, in a claimed cache."""
        self._claim()
        path = self.root / name
        with writing(path):
            path.mkdir(parents=True, exist_ok=True)
        return path

    # artifacts ---------------------------------------------------------
    def artifact(self, filename: str, sha256: str) -> Path | None:
        where = "cache artifact"
        path = self.root / "artifacts" / _key(sha256, where) / _shapes.filename(filename, where, FetchError)
        if not path.is_file():
            return None
        if sha256_of(path) != sha256:
            self.log.warning(f"cached {filename} does not match its sha256; discarding it and fetching again")
            self._discard(path.parent)
            return None
        path.parent.touch()
        return path

    def artifact_by_hash(self, sha256: str) -> Path | None:
        """The cached file with this sha256, whatever its name (locks that name no files)."""
        folder = self.root / "artifacts" / _key(sha256, "cache artifact")
        files = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
        return self.artifact(files[0].name, sha256) if len(files) == 1 else None

    def store_artifact(self, path: Path, sha256: str) -> Path:
        """Store a verified file under its sha256; the entry appears whole or not at all."""
        target_dir = self.section("artifacts") / _key(sha256, "cache artifact")
        target = target_dir / _shapes.filename(path.name, "cache artifact", FetchError)
        with writing(target_dir):
            target_dir.mkdir(exist_ok=True)
            partial = _partial(target_dir, path.name)
            try:
                shutil.copyfile(path, partial)
                if sha256_of(partial) != sha256:
                    msg = f"{path.name} changed while it was copied into the cache"
                    raise HashMismatchError(msg, tip="Run again; check the disk for errors.")
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        return target

    # built wheels --------------------------------------------------------
    def wheel(self, key: str) -> CachedWheel | None:
        entry_dir = self.root / "wheels" / _key(key, "cache key")
        try:
            entry = json.loads((entry_dir / "entry.json").read_text(encoding="utf-8"))
            path = entry_dir / _shapes.filename(entry["file"], "cache entry", FetchError)
            cached = CachedWheel(
                path,
                entry["sha256"],
                entry["platform_tag"],
                tuple(entry["grafted"]),
                tuple(entry["expected_from_base"]),
            )
        except (OSError, ValueError, KeyError, TypeError, FetchError):
            if entry_dir.exists():
                self.log.warning(f"cache entry wheels/{key[:12]} is unreadable; discarding it")
                self._discard(entry_dir)
            return None
        if not path.is_file() or sha256_of(path) != cached.sha256:
            self.log.warning(f"cached {entry['file']} does not match its sha256; discarding it and building again")
            self._discard(entry_dir)
            return None
        entry_dir.touch()
        return cached

    def store_wheel(self, key: str, wheel: Path, meta: Mapping[str, Any]) -> CachedWheel:
        """Store a built wheel under ``key``. Two runs that store one key at once both succeed: the entry
        appears whole (a rename), and a valid entry already there is kept."""
        section = self.section("wheels")
        target = section / _key(key, "cache key")
        with writing(section):
            staging = tempdir("wheel", section)
            try:
                shutil.copyfile(wheel, staging / wheel.name)
                sha = sha256_of(staging / wheel.name)
                entry = {"file": wheel.name, "sha256": sha, **meta}
                (staging / "entry.json").write_text(json.dumps(entry, indent=2, sort_keys=True), encoding="utf-8")
                try:
                    staging.rename(target)
                except OSError as err:
                    if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    # Another run stored this key first: its entry is used if it is valid (wheel() discards
                    # it if not, and then this one takes its place).
                    if self.wheel(key) is None:
                        with suppress(OSError):
                            staging.rename(target)
            finally:
                remove_tempdir(staging)
        cached = self.wheel(key)
        if cached is None:
            msg = f"the cache entry wheels/{key[:12]} could not be read back after it was written"
            raise FileSystemError(msg, tip=f"Check the disk that holds {self.root}, or point cache-dir elsewhere.")
        return cached

    # memo ----------------------------------------------------------------
    def memo(self, key: str) -> object:
        path = self.root / "memo" / f"{_key(key, 'cache key')}.json"
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        path.touch()
        return value

    def store_memo(self, key: str, value: object) -> None:
        section = self.section("memo")
        target = section / f"{_key(key, 'cache key')}.json"
        with writing(section):
            partial = _partial(section, key)
            try:
                partial.write_text(json.dumps(value), encoding="utf-8")
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)

    def remember(self, key: str, kind: type[T], compute: Callable[[], T]) -> T:
        """The value stored under ``key`` if it is a ``kind``, else ``compute()``, stored for next time."""
        known = self.memo(key)
        if isinstance(known, kind):
            return known
        value = compute()
        self.store_memo(key, value)
        return value

    # maintenance ---------------------------------------------------------
    def info(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name in SECTIONS:
            section = self.root / name
            entries = (
                [p for p in section.iterdir() if not p.name.startswith((".", "wheelbarrow-"))]
                if section.is_dir()
                else []
            )
            size = sum(f.stat().st_size for p in entries for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
            out[name] = {"entries": len(entries), "bytes": size}
        return out

    def prune(self, older_than_days: float) -> int:
        """Remove entries not used for ``older_than_days`` (0: everything). Returns how many."""
        cutoff = time.time() - older_than_days * 86400
        removed = 0
        if not self.root.is_dir():
            return 0
        if not is_marked(self.root, "cache"):
            msg = f"{self.root} is not a wheelbarrow cache (it has no {MARKER} file): nothing was pruned"
            raise ConfigError(msg, tip="Point cache-dir at wheelbarrow's cache (see 'wheelbarrow cache info').")
        for name in SECTIONS:
            section = self.root / name
            if not section.is_dir():
                continue
            for entry in section.iterdir():
                if not _ENTRY.match(entry.name) or entry.is_symlink():
                    continue  # not an entry wheelbarrow made: never removed
                if older_than_days <= 0 or entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
        return removed
