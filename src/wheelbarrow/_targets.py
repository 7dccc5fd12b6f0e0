"""Several targets from one lock: ``<wheelhouse>/<target>/`` each, and an index of them.

With ``targets`` set, every per-target command (plan, build, image, verify, publish, bootstrap) runs
once per target, each with its own configuration (:attr:`~wheelbarrow._config.Config.per_target`):
its CPython, its architecture, its bases, its wheelhouse ``<wheelhouse>/<target>/``, its dist/
``<dist-dir>/<target>/`` and its image tag ``<tag>-<target>``.

The roots that hold the targets' wheelhouses and dist/ folders are written as one output each
(:func:`staged_root`): every target is written into a fresh, marked staging folder beside the root, the
index (``targets.json``, each target's requirements.txt hash) last, and the whole swaps in with one
atomic rename only when every target succeeded. A failed or interrupted run leaves the previous root as
it was, a single-target wheelhouse included. A root is replaced only when it is absent, empty, a
single-target output wheelbarrow wrote, or a root of targets holding nothing but what wheelbarrow
writes there (:func:`check_root`); anything else in it is refused, before any work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._cache import Cache, sha256_of, tree_digest
from ._config import Config
from ._engine import Engine
from ._guard import MARKER, check_output, is_marked
from ._image import runtime_base_of, style_of, target_tag
from ._log import Log
from ._manifest import Manifest
from ._verify import verify_image
from ._wheelhouse import staging, swap_in, write_atomic
from .errors import ConfigError, EngineError, WheelhouseError

INDEX = "targets.json"
#: In the dist/ root, after ``publish --push``: each multi-platform index pushed, and what it holds.
IMAGES = "images.json"
INDEX_VERSION = "1"
_TARGET_DIR = re.compile(r"^cp3\d{1,2}-[a-z0-9_]+$")
_ROOT_FILES = {MARKER, INDEX, IMAGES, "README.md", "SHA256SUMS"}
#: What else merge writes at the top of a dist/ of targets: the one SBOM over every target.
_ROOT_SBOM = re.compile(r"^sbom-[\w.+-]+\.cdx\.json$")

README = """\
# wheelhouse (several targets)

Written by `wheelbarrow build` (or `nox -s build_wheels`) for a project that
sets `targets`: one wheelhouse per target, built from the same lock, and
replaced as a whole on every successful run.

- `<target>/` (for example `cp311-x86_64/`): that target's wheels, its
  hash-locked `requirements.txt` and its `manifest.json`, as a single-target
  wheelhouse has them.
- `targets.json`: the targets, each with its CPython, architecture, folder and
  the sha256 of its `requirements.txt`.
"""


def check_root(root: Path, what: str, key: str, protected: Sequence[Path]) -> Path:
    """The real path of ``root``, which a run may replace: absent, empty, a single-target ``what``
    wheelbarrow wrote (no index), or a root of targets holding only what wheelbarrow writes there (its
    marker, index, README, ``images.json``, ``SHA256SUMS``, merge's SBOM and marked target folders).
    Anything else is a ConfigError naming it. A wheelhouse and a dist/ of targets both carry the index."""
    real = check_output(root, what, key, protected)
    if not real.is_dir() or not (real / INDEX).is_file():
        return real
    strangers = sorted(
        p.name
        for p in real.iterdir()
        if p.name not in _ROOT_FILES
        and not (what != "wheelhouse" and _ROOT_SBOM.match(p.name) and not p.is_symlink() and p.is_file())
        and not (_TARGET_DIR.match(p.name) and not p.is_symlink() and p.is_dir() and is_marked(p, what))
    )
    if strangers:
        msg = f"{key} is {root}, a folder of targets that also holds what wheelbarrow did not write there: "
        msg += ", ".join(strangers[:5])
        raise ConfigError(msg, tip=f"Move {', '.join(strangers[:5])} out of {root}: it is replaced as a whole.")
    return real


@contextlib.contextmanager
def staged_root(root: Path, what: str, key: str, protected: Sequence[Path], log: Log) -> Iterator[Path]:
    """A marked staging folder beside ``root`` for the targets' outputs; when the block ends without an
    error it becomes ``root`` in one atomic step (unless it holds exactly what ``root`` holds already)."""
    real = check_root(root, what, key, protected)
    with staging(real, what) as stage:
        yield stage
        if what == "wheelhouse":
            write_atomic(stage / "README.md", README)
        if _same_tree(stage, real):
            log.info(f"{key} {root}: unchanged")
            return
        check_root(root, what, key, protected)  # still one to replace, now that the new one is ready
        swap_in(stage, real)
        log.info(f"{key} {root}: replaced")


def staged(config: Config, stage: Path, key: str) -> Config:
    """One target's configuration, writing its ``key`` output (wheelhouse, dist-dir) into ``stage``."""
    if key == "wheelhouse":
        return dataclasses.replace(config, wheelhouse=stage / config.target)
    return dataclasses.replace(config, dist_dir=stage / config.target)


def _same_tree(a: Path, b: Path) -> bool:
    try:
        return b.is_dir() and tree_digest(a, ()) == tree_digest(b, ())
    except OSError:
        return False


def write_index(root: Path, configs: Sequence[Config]) -> None:
    """``targets.json`` in ``root`` (where ``configs``' wheelhouses are), each target's folder named."""
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
    _write_index(root, configs, targets)


def write_dist_index(root: Path, configs: Sequence[Config]) -> None:
    """``targets.json`` in a dist/ of targets (``root``), so the next publish or merge knows it for one and
    refuses anything else in it (:func:`check_root`)."""
    targets = [
        {"target": c.target, "python": c.python, "arch": c.arch, "platform": c.platform, "dist": c.target}
        for c in configs
    ]
    _write_index(root, configs, targets)


def _write_index(root: Path, configs: Sequence[Config], targets: list[dict[str, str]]) -> None:
    index = {"version": INDEX_VERSION, "project": configs[0].project_name, "targets": targets}
    write_atomic(root / INDEX, json.dumps(index, indent=2) + "\n")


@dataclasses.dataclass(frozen=True)
class Member:
    """One target's image as pushed for an index: the image verify passed (its id) and its wheelhouse."""

    config: Config
    pushed: str  # REF-<target>@sha256:...
    image_id: str
    manifest: Manifest


def push_indexes(members: Sequence[Member], push: str, log: Log, cache: Cache) -> list[dict[str, object]]:
    """One multi-platform index per CPython over its targets' pushed images (``REF-cp311`` over
    ``REF-cp311-x86_64`` and ``REF-cp311-aarch64``); then each platform is pulled from the registry by the
    digest the index names, checked to be the very image verified before the push (its id), and verified
    again."""
    by_python: dict[str, list[Member]] = {}
    for member in members:
        by_python.setdefault(member.config.python_tag, []).append(member)
    written: list[dict[str, object]] = []
    for python, group in by_python.items():
        ref = target_tag(push, python)
        engine = Engine(log, name=group[0].config.engine)
        for member in group:
            if "@sha256:" not in member.pushed:
                msg = f"the push of {member.pushed} reported no digest, so the index cannot be checked against it"
                raise EngineError(msg, tip="Check the registry (docker push output) and run publish --push again.")
        digest, platforms = engine.create_index(ref, [m.pushed for m in group])
        log.info(f"pushed the index {ref} ({digest}): {', '.join(sorted(platforms))}")
        repository = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
        for member in group:
            want = member.pushed.rsplit("@", 1)[-1]
            if platforms.get(member.config.platform) != want:
                msg = f"the index {ref} names {platforms.get(member.config.platform)} for {member.config.platform}"
                msg += f", not {want}"
                raise EngineError(msg, tip="Another push replaced a tag meanwhile: run publish --push again.")
            _verify_pulled(member, f"{repository}@{want}", log, cache)
        written.append({"index": f"{ref}@{digest}", "platforms": platforms})
    return written


def _verify_pulled(member: Member, ref: str, log: Log, cache: Cache) -> None:
    """Pull ``ref`` (one platform of an index, by digest) and verify it as ``verify`` does the local image."""
    config = member.config
    engine = Engine(log, name=config.engine, platform=config.platform if config.foreign else "")
    pulled = engine.pull(ref)
    if not pulled:
        msg = f"pulling {ref} back from the registry failed:\n{pulled.why}"
        raise EngineError(msg, tip="Check that the registry keeps what was pushed to it.")
    if engine.image_id(ref) != member.image_id:
        msg = f"{ref}, pulled from the index, is not the image {member.image_id} that was verified"
        raise EngineError(msg, tip="Another push replaced a tag meanwhile: run publish --push again.")
    manifest = member.manifest
    base = runtime_base_of(config, manifest, engine, log)
    checks = verify_image(
        engine,
        ref,
        base,
        manifest,
        log,
        cache,
        config.command,
        start=config.verify_start,
        distroless=style_of(engine, ref, config, log) == "distroless",
    )
    log.info(f"{config.target}: {ref} pulled by digest, all {len(checks)} checks passed")
