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

from ._cache import sha256_of
from ._config import Config
from ._guard import MARKER, check_output, is_marked, mark
from ._wheelhouse import replacing, write_atomic
from .errors import WheelhouseError

INDEX = "targets.json"
INDEX_VERSION = "1"
_TARGET_DIR = re.compile(r"^cp3\d{1,2}-[a-z0-9_]+$")
_ROOT_FILES = {MARKER, INDEX, "README.md"}

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
