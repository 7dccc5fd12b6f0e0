"""The build cache shared across machines, in an OCI repository (``cache-from`` / ``cache-to``).

Each entry is an image in that repository, pushed and pulled by the engine itself:

* a built and repaired wheel under ``wheel-<key>`` (the key the local cache uses): a single layer
  ``FROM scratch`` holding the wheel and ``entry.json`` (its sha256, platform tag, grafted libraries
  and what it expects from the base), with the sha256 also in the label ``io.wheelbarrow.sha256``;
* the images builds run in, whose tags carry the key of what they are made of: the derived builder
  base (``derived-builder-<key>``) and the project's builder (``builder-<project>-<key>``), each with
  the label that holds that key; pushed by a run that pushed a wheel built in them.

Nothing fetched is trusted blindly. A wheel is used only when its file name is a wheel's, its bytes
hash to the sha256 its entry and its label record, and its entry's shapes are right; an image only when
its label holds the key its tag names. Anything else is ignored with a warning, and the run builds it
itself. A run writes only what it built (never what it fetched), after it built it.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from ._cache import Cache, CachedWheel, sha256_of
from ._config import Config
from ._engine import Engine
from ._guard import scratch
from ._log import Log
from .errors import EngineError, WheelbarrowError

SHA_LABEL = "io.wheelbarrow.sha256"
KEY_LABEL = "io.wheelbarrow.cache-key"
_WHEEL_DOCKERFILE = "FROM scratch\nCOPY entry.json wheel/ /wheel/\n"


@dataclass(frozen=True)
class SharedCache:
    engine: Engine
    log: Log
    source: str  # cache-from: the repository entries are pulled from ("" for none)
    dest: str  # cache-to: the repository what this run built is pushed to ("" for none)

    @classmethod
    def of(cls, config: Config, engine: Engine, log: Log) -> SharedCache | None:
        if not config.cache_from and not config.cache_to:
            return None
        return cls(engine, log, config.cache_from, config.cache_to)

    # --- wheels ---------------------------------------------------------------------------------

    def fetch_wheel(self, key: str, cache: Cache) -> CachedWheel | None:
        """The wheel built under ``key`` on another machine, checked, and stored in the local cache."""
        if not self.source:
            return None
        ref = f"{self.source}:wheel-{key}"
        held = self._pull(ref)
        if held is None:
            return None
        try:
            with scratch("shared") as tmp:
                wheel, meta = self._extract(held, tmp)
                cache.store_wheel(key, wheel, meta)
        except (_RefusedError, WheelbarrowError, OSError) as err:
            why = err.message if isinstance(err, WheelbarrowError) else str(err)
            self.log.warning(f"the shared cache's {ref} {why}: ignored, building it here")
            return None
        finally:
            self.engine.discard_image(held)
        self.log.info(f"{wheel.name}: from the shared cache ({key[:12]}), sha256 checked")
        return cache.wheel(key)

    def _extract(self, held: str, folder: Path) -> tuple[Path, dict[str, object]]:
        size = self.engine.image_size(held) or 0
        if size > MAX_ENTRY_BYTES:
            raise _RefusedError(f"is {size} bytes, more than a wheel entry may be ({MAX_ENTRY_BYTES})")
        self.engine.copy_from_image(held, PurePosixPath("/wheel"), folder)
        return _checked_entry(folder, self.engine.label(held, SHA_LABEL))

    def _pull(self, ref: str) -> str | None:
        """Pull ``ref`` and hold it under a name of this run's (the sweep removes it if the run dies): that
        name, or None when the shared cache has no such entry."""
        if not self.engine.pull(ref, quiet=True):
            self.log.info(f"not in the shared cache: {ref}")
            return None
        held = self.engine.held_tag(f"shared-{uuid.uuid4().hex[:8]}")
        try:
            self.engine.tag(ref, held)
        finally:
            self.engine.discard_image(ref)
        return held

    def store_wheel(self, key: str, wheel: CachedWheel) -> None:
        """Push a wheel this run built under ``key``; a failed push is a warning (the build stands)."""
        if not self.dest:
            return
        ref = f"{self.dest}:wheel-{key}"
        entry = {
            "file": wheel.path.name,
            "sha256": wheel.sha256,
            "platform_tag": wheel.platform_tag,
            "grafted": list(wheel.grafted),
            "expected_from_base": list(wheel.expected_from_base),
        }
        with scratch("shared") as context:
            (context / "wheel").mkdir()
            shutil.copyfile(wheel.path, context / "wheel" / wheel.path.name)
            (context / "entry.json").write_text(json.dumps(entry, indent=2, sort_keys=True), encoding="utf-8")
            (context / "Dockerfile").write_text(_WHEEL_DOCKERFILE, encoding="utf-8")
            try:
                labels = {SHA_LABEL: wheel.sha256, KEY_LABEL: key}
                self.engine.build(context, ref, dockerfile=context / "Dockerfile", labels=labels, network="none")
                self._push(ref)
            finally:
                self.engine.discard_image(ref)

    # --- the images builds run in -----------------------------------------------------------------

    def fetch_image(self, tag: str, key: str) -> bool:
        """Whether the image ``tag`` (keyed ``key``) came from the shared cache; it is then here as ``tag``."""
        if not self.source:
            return False
        ref = _remote(self.source, tag)
        held = self._pull(ref)
        if held is None:
            return False
        try:
            if self.engine.label(held, KEY_LABEL) != key:
                self.log.warning(f"the shared cache's {ref} is not labelled with its key: ignored, building it here")
                return False
            self.engine.tag(held, tag)
        finally:
            self.engine.discard_image(held)
        self.log.info(f"{tag}: from the shared cache")
        return True

    def store_images(self, *tags: str) -> None:
        """Push the images the builds that were just pushed ran in: the builder, and its base when it is a
        derived one (the keys of those wheels name them). Each carries the key label its build set."""
        if not self.dest:
            return
        for tag in tags:
            if self.engine.label(tag, KEY_LABEL):  # made by wheelbarrow under a key (not a pulled base)
                ref = _remote(self.dest, tag)
                self.engine.tag(tag, ref)
                try:
                    self._push(ref)
                finally:
                    self.engine.discard_image(ref)

    def _push(self, ref: str) -> None:
        try:
            self.engine.push(ref)
        except EngineError as err:
            self.log.warning(f"pushing {ref} to the shared cache failed; the build stands: {err.message}")
            return
        self.log.info(f"pushed {ref} to the shared cache")


def _remote(repository: str, tag: str) -> str:
    """``localhost/wheelbarrow/builder:app-0123`` -> ``<repository>:builder-app-0123``."""
    name, _, version = tag.rpartition(":")
    return f"{repository}:{re.sub(r'[^A-Za-z0-9_.-]', '-', name.rsplit('/', 1)[-1])}-{version}"[:256]


#: The largest wheel entry read from the shared cache (the image's size, before anything is copied out).
MAX_ENTRY_BYTES = 1 << 30
_ENTRY_BYTES = 64 << 10
_PLATFORM = re.compile(r"^(any|[a-z0-9_]+(\.[a-z0-9_]+)*)$")
_SONAME = re.compile(r"^[A-Za-z0-9._+-]{1,255}$")


class _RefusedError(Exception):
    """Why an entry of the shared cache is not used."""


def _checked_entry(folder: Path, label: str) -> tuple[Path, dict[str, object]]:
    """The wheel and its metadata from an entry copied out into ``folder``, or _RefusedError: exactly a wheel
    and ``entry.json``, both regular files (no link is followed, no device read), of bounded size, a wheel
    that is a zip whose name is a wheel's, hashing to the sha256 the entry and the label record, and an
    entry whose fields have the shapes a repair writes."""
    names = {p.name: p for p in folder.iterdir()}
    for path in names.values():
        if not stat.S_ISREG(path.lstat().st_mode):
            raise _RefusedError(f"holds {path.name!r}, which is not a regular file")
    if "entry.json" not in names or len(names) != 2:
        raise _RefusedError(f"holds {sorted(names)[:4]}, not a wheel and its entry.json")
    if names["entry.json"].lstat().st_size > _ENTRY_BYTES:
        raise _RefusedError("has an entry.json larger than 64 KiB")
    try:
        entry = json.loads(names.pop("entry.json").read_text(encoding="utf-8"))
        (wheel,) = names.values()
        name = str(entry["file"])
        parse_wheel_filename(name)
        expected, platform_tag = str(entry["sha256"]), str(entry["platform_tag"])
        lists = {k: entry[k] for k in ("grafted", "expected_from_base")}
    except (ValueError, KeyError, TypeError, InvalidWheelFilename) as err:
        raise _RefusedError(f"has an entry that cannot be read ({err})") from err
    if wheel.name != name or not zipfile.is_zipfile(wheel):
        raise _RefusedError(f"holds {wheel.name!r}, which is not the wheel {name!r} its entry names")
    if not _PLATFORM.match(platform_tag) or not all(
        isinstance(v, list) and len(v) <= 1000 and all(isinstance(x, str) and _SONAME.match(x) for x in v)
        for v in lists.values()
    ):
        raise _RefusedError("has an entry whose platform tag or libraries are not plain names")
    sha = sha256_of(wheel)
    if not sha == expected == label:
        raise _RefusedError(f"does not match the sha256 recorded with it (the wheel {sha[:12]}, its entry and label)")
    return wheel, {"platform_tag": platform_tag, **lists}
