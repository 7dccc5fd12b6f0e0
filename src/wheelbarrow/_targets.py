"""Several targets from one lock: ``<wheelhouse>/<target>/`` each, and an index of them.

With ``targets`` set, every per-target command (plan, build, image, verify, publish, bootstrap) runs
once per target, each with its own configuration (:attr:`~wheelbarrow._config.Config.per_target`):
its CPython, its architecture, its bases, its wheelhouse ``<wheelhouse>/<target>/``, its dist/
``<dist-dir>/<target>/`` and its image tag ``<tag>-<target>``. The directories that hold them are
wheelbarrow's own (marked, :func:`claim_root`), and the wheelhouse's root gets ``targets.json``, the
index of the targets built from the lock, with each target's requirements.txt hash
(:func:`write_index`). A target that left the list leaves the index, and its directory is removed:
it carries wheelbarrow's marker and a target's name.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from ._cache import Cache, sha256_of
from ._config import Config
from ._engine import Engine
from ._guard import MARKER, check_output, is_marked, mark
from ._image import runtime_base_of, tag_of, target_tag
from ._log import Log
from ._verify import verify_image
from ._wheelhouse import read_wheelhouse, replacing, write_atomic
from .errors import EngineError, WheelhouseError

INDEX = "targets.json"
#: In the dist/ root, after ``publish --push``: each multi-platform index pushed, and what it holds.
IMAGES = "images.json"
INDEX_VERSION = "1"
_TARGET_DIR = re.compile(r"^cp3\d{1,2}-[a-z0-9_]+$")
_ROOT_FILES = {MARKER, INDEX, IMAGES, "README.md"}

README = """\
# wheelhouse (several targets)

Written by `wheelbarrow build` (or `nox -s build_wheels`) for a project that
sets `targets`: one wheelhouse per target, built from the same lock.

- `<target>/` (for example `cp311-x86_64/`): that target's wheels, its
  hash-locked `requirements.txt` and its `manifest.json`, as a single-target
  wheelhouse has them.
- `targets.json`: the targets, each with its CPython, architecture, folder and
  the sha256 of its `requirements.txt`.
"""


def claim_root(root: Path, what: str, key: str, protected: Sequence[Path]) -> None:
    """Make ``root`` a directory of targets: absent or empty (made and marked), already one, or a
    single-target ``what`` wheelbarrow wrote (replaced, in one atomic step, by an empty directory of targets).
    Anything else is refused by :func:`~wheelbarrow._guard.check_output`."""
    real = check_output(root, what, key, protected)
    names = {p.name for p in real.iterdir()} if real.is_dir() else set()
    if is_marked(real, what) and all(_TARGET_DIR.match(n) or n in _ROOT_FILES for n in names):
        return
    if names - {MARKER}:  # a single-target output of wheelbarrow's (check_output said so)
        with replacing(root, what, key=key, protected=protected):
            pass  # the staging directory is marked and empty: it becomes the root
        return
    real.mkdir(parents=True, exist_ok=True)
    if not is_marked(real, what):
        mark(real, what)


def write_index(root: Path, configs: Sequence[Config]) -> None:
    """``targets.json`` and README.md in ``root``; folders of targets no longer configured are removed."""
    listed = {c.target for c in configs}
    for path in sorted(root.iterdir()):
        stale = _TARGET_DIR.match(path.name) and path.name not in listed
        if stale and path.is_dir() and not path.is_symlink() and is_marked(path, "wheelhouse"):
            shutil.rmtree(path)
    targets = []
    for config in configs:
        requirements = config.wheelhouse / "requirements.txt"
        if not requirements.is_file():
            msg = f"target {config.target}: {config.wheelhouse} has no requirements.txt"
            raise WheelhouseError(msg, tip="Run the build again: every target's wheelhouse is written first.")
        targets.append(
            {
                "target": config.target,
                "python": config.python,
                "arch": config.arch,
                "platform": config.platform,
                "wheelhouse": config.wheelhouse.name,
                "requirements_sha256": sha256_of(requirements),
            }
        )
    index = {"version": INDEX_VERSION, "project": configs[0].project_name, "targets": targets}
    write_atomic(root / INDEX, json.dumps(index, indent=2) + "\n")
    write_atomic(root / "README.md", README)


def push_indexes(pushed: Sequence[tuple[Config, str]], push: str, log: Log, cache: Cache) -> list[dict[str, object]]:
    """One multi-platform index per CPython over its targets' pushed images (``REF-cp311`` over
    ``REF-cp311-x86_64`` and ``REF-cp311-aarch64``); then each platform is pulled from the registry by the
    digest the index names, checked to be the very image verified before the push, and verified again."""
    by_python: dict[str, list[tuple[Config, str]]] = {}
    for config, ref in pushed:
        by_python.setdefault(config.python_tag, []).append((config, ref))
    written: list[dict[str, object]] = []
    for python, members in by_python.items():
        ref = target_tag(push, python)
        engine = Engine(log, name=members[0][0].engine)
        digest, platforms = engine.create_index(ref, [r for _c, r in members])
        log.info(f"pushed the index {ref} ({digest}): {', '.join(sorted(platforms))}")
        repository = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
        for config, member in members:
            if "@sha256:" not in member:
                msg = f"the push of {member} reported no digest, so the index cannot be checked against it"
                raise EngineError(msg, tip="Check the registry (docker push output) and run publish --push again.")
            want = member.rsplit("@", 1)[-1]
            if platforms.get(config.platform) != want:
                msg = f"the index {ref} names {platforms.get(config.platform)} for {config.platform}, not {want}"
                raise EngineError(msg, tip="Another push replaced a tag meanwhile: run publish --push again.")
            _verify_pulled(config, f"{repository}@{want}", log, cache)
        written.append({"index": f"{ref}@{digest}", "platforms": platforms})
    return written


def _verify_pulled(config: Config, ref: str, log: Log, cache: Cache) -> None:
    """Pull ``ref`` (one platform of an index, by digest) and verify it as ``verify`` does the local image."""
    engine = Engine(log, name=config.engine, platform=config.platform if config.foreign else "")
    pulled = engine.pull(ref)
    if not pulled:
        msg = f"pulling {ref} back from the registry failed:\n{pulled.why}"
        raise EngineError(msg, tip="Check that the registry keeps what was pushed to it.")
    manifest, _sha = read_wheelhouse(config.wheelhouse)
    local = tag_of(config, manifest)
    if engine.image_id(ref) != engine.image_id(local):
        msg = f"{ref}, pulled from the index, is not the image {local} that was verified"
        raise EngineError(msg, tip="Another push replaced a tag meanwhile: run publish --push again.")
    base = runtime_base_of(config, manifest, engine, log)
    checks = verify_image(engine, ref, base, manifest, log, cache, config.command, start=config.verify_start)
    log.info(f"{config.target}: {ref} pulled by digest, all {len(checks)} checks passed")
