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
from dataclasses import dataclass
from pathlib import PurePosixPath

from . import _shapes
from ._cache import Cache, CachedWheel, sha256_of
from ._config import Config
from ._engine import Engine
from ._guard import scratch
from ._log import Log
from .errors import EngineError, FetchError, WheelbarrowError

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
        if not self.engine.pull(ref, quiet=True):
            return None
        try:
            with scratch("shared") as tmp:
                self.engine.copy_from_image(ref, PurePosixPath("/wheel"), tmp)
                entry = json.loads((tmp / "entry.json").read_text(encoding="utf-8"))
                name = _shapes.filename(str(entry["file"]), "shared cache entry", FetchError)
                wheel = tmp / name
                sha = sha256_of(wheel)
                label = self.engine.label(ref, SHA_LABEL)
                if not name.endswith(".whl") or not (sha == entry["sha256"] == label):
                    self.log.warning(
                        f"the shared cache's {ref} does not match the sha256 recorded with it "
                        f"({sha[:12]} vs {str(entry['sha256'])[:12]}, label {label[:12]}): ignored, building it here"
                    )
                    return None
                meta = {
                    "platform_tag": str(entry["platform_tag"]),
                    "grafted": [str(g) for g in entry["grafted"]],
                    "expected_from_base": [str(e) for e in entry["expected_from_base"]],
                }
                cache.store_wheel(key, wheel, meta)
        except (WheelbarrowError, OSError, ValueError, KeyError, TypeError) as err:
            self.log.warning(f"the shared cache's {ref} cannot be read ({err}): ignored, building it here")
            return None
        finally:
            self.engine.discard_image(ref)
        self.log.info(f"{name}: from the shared cache ({key[:12]}), sha256 checked")
        return cache.wheel(key)

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
        if not self.engine.pull(ref, quiet=True):
            return False
        try:
            if self.engine.label(ref, KEY_LABEL) != key:
                self.log.warning(f"the shared cache's {ref} is not labelled with its key: ignored, building it here")
                return False
            self.engine.tag(ref, tag)
        finally:
            self.engine.discard_image(ref)
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
