"""The content-addressed cache, outside the wheelhouse (``cache-dir``).

Sections, each a directory under the cache root:

* ``artifacts/<sha256>/<file>``: verified downloads, keyed by their own sha256;
* ``wheels/<key>/``: built and repaired wheels with an ``entry.json``, keyed by
  everything that can change their bytes (see :func:`build_key`);
* ``memo/<key>.json``: small results of slow, pure steps (a Poetry export, a
  resolved set of build requirements, what a runtime base provides).

A hit is verified before use: a wheel or artifact whose sha256 is not the
recorded one is discarded and made again, never used. Entries are written to
a temporary name and renamed into place, so an interrupted run leaves no half
entry. Using an entry refreshes its mtime, which ``cache prune`` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, TypeVar

from ._guard import tempdir
from ._log import Log

T = TypeVar("T")

SECTIONS = ("artifacts", "wheels", "memo")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def key_of(data: Mapping[str, Any]) -> str:
    """A stable key for a JSON-able mapping."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tree_digest(root: Path, ignore: tuple[str, ...]) -> str:
    """sha256 over the relative paths, modes and contents of a source tree (``ignore``: names to skip)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(fnmatch(part, pattern) for part in relative.parts for pattern in (*ignore, "*.pyc")):
            continue
        if path.is_file() and not path.is_symlink():
            digest.update(f"{relative.as_posix()}\0{path.stat().st_mode & 0o111}\0".encode())
            digest.update(sha256_of(path).encode())
        elif path.is_symlink():
            digest.update(f"{relative.as_posix()}\0->{path.readlink()}\0".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedWheel:
    path: Path
    sha256: str
    platform_tag: str
    grafted: tuple[str, ...]
    expected_from_base: tuple[str, ...]


@dataclass
class Cache:
    root: Path
    log: Log

    def _section(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # artifacts ---------------------------------------------------------
    def artifact(self, filename: str, sha256: str) -> Path | None:
        path = self.root / "artifacts" / sha256 / filename
        if not path.is_file():
            return None
        if sha256_of(path) != sha256:
            self.log.warning(f"cached {filename} does not match its sha256; discarding it and fetching again")
            shutil.rmtree(path.parent, ignore_errors=True)
            return None
        path.parent.touch()
        return path

    def artifact_by_hash(self, sha256: str) -> Path | None:
        """The cached file with this sha256, whatever its name (locks that name no files)."""
        folder = self.root / "artifacts" / sha256
        files = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
        return self.artifact(files[0].name, sha256) if len(files) == 1 else None

    def store_artifact(self, path: Path, sha256: str) -> Path:
        target_dir = self._section("artifacts") / sha256
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        partial = target_dir / f".{path.name}.part-{os.getpid()}"
        shutil.copyfile(path, partial)
        partial.replace(target)
        return target

    # built wheels --------------------------------------------------------
    def wheel(self, key: str) -> CachedWheel | None:
        entry_dir = self.root / "wheels" / key
        try:
            entry = json.loads((entry_dir / "entry.json").read_text(encoding="utf-8"))
            path = entry_dir / entry["file"]
            cached = CachedWheel(
                path,
                entry["sha256"],
                entry["platform_tag"],
                tuple(entry["grafted"]),
                tuple(entry["expected_from_base"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            if entry_dir.exists():
                self.log.warning(f"cache entry wheels/{key[:12]} is unreadable; discarding it")
                shutil.rmtree(entry_dir, ignore_errors=True)
            return None
        if not path.is_file() or sha256_of(path) != cached.sha256:
            self.log.warning(f"cached {entry['file']} does not match its sha256; discarding it and building again")
            shutil.rmtree(entry_dir, ignore_errors=True)
            return None
        entry_dir.touch()
        return cached

    def store_wheel(self, key: str, wheel: Path, meta: Mapping[str, Any]) -> CachedWheel:
        section = self._section("wheels")
        staging = tempdir("wheel", section)
        try:
            shutil.copyfile(wheel, staging / wheel.name)
            sha = sha256_of(staging / wheel.name)
            entry = {"file": wheel.name, "sha256": sha, **meta}
            (staging / "entry.json").write_text(json.dumps(entry, indent=2, sort_keys=True), encoding="utf-8")
            target = section / key
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        cached = self.wheel(key)
        assert cached is not None
        return cached

    # memo ----------------------------------------------------------------
    def memo(self, key: str) -> Any | None:
        path = self.root / "memo" / f"{key}.json"
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        path.touch()
        return value

    def store_memo(self, key: str, value: Any) -> None:
        section = self._section("memo")
        partial = section / f".{key}.part-{os.getpid()}"
        partial.write_text(json.dumps(value), encoding="utf-8")
        partial.replace(section / f"{key}.json")

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
        for name in SECTIONS:
            section = self.root / name
            if not section.is_dir():
                continue
            for entry in section.iterdir():
                if older_than_days <= 0 or entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
        return removed
