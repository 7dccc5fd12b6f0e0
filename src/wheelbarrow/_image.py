"""Stage 7, image: the wheelhouse installed into a slim runtime image.

Before anything is built, every wheel in the wheelhouse is checked against
``requirements.txt`` and the manifest: a tampered, missing or extra wheel
stops the build. The image is built from a context that holds the
Dockerfile and a copy of the wheelhouse, with ``pip install --no-index
--require-hashes`` in a first stage; the final stage copies only the venv, so
no wheel file is in any of its layers. It runs as a non-root user, carries OCI
labels and ``io.wheelbarrow.wheelhouse`` (the sha256 of requirements.txt).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from ._bootstrap import docker_dir, resolve_runtime_base
from ._cache import sha256_of
from ._cmd import run
from ._config import Config
from ._engine import Engine
from ._log import Log
from ._wheelhouse import Manifest, requirements_text
from .errors import ConfigError, WheelhouseError

WHEELHOUSE_LABEL = "io.wheelbarrow.wheelhouse"
_PIN = re.compile(r"^(\S+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", re.MULTILINE)


@dataclass(frozen=True)
class Image:
    tag: str
    image_id: str
    builder: str  # "BuildKit" or "the legacy builder"
    wheelhouse_sha256: str
    manifest: Manifest


def read_wheelhouse(wheelhouse: Path) -> tuple[Manifest, str]:
    """The manifest, after checking every wheel against requirements.txt and the manifest."""
    requirements = wheelhouse / "requirements.txt"
    manifest_path = wheelhouse / "manifest.json"
    if not requirements.is_file() or not manifest_path.is_file():
        msg = f"{wheelhouse} is not a wheelbarrow wheelhouse (no requirements.txt or manifest.json)"
        raise WheelhouseError(msg, tip="Build it first: nox -s build_wheels (or wheelbarrow build).")
    manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
    pins = {name: sha for name, _version, sha in _PIN.findall(requirements.read_text(encoding="utf-8"))}
    by_name = {w.name: w for w in manifest.wheels}
    if set(pins) != set(by_name):
        msg = f"requirements.txt pins {sorted(pins)} but the manifest lists {sorted(by_name)}"
        raise WheelhouseError(msg, tip="Rebuild the wheelhouse: it was edited by hand.")
    files = {p.name for p in wheelhouse.glob("*.whl")}
    extra = files - {w.file for w in manifest.wheels}
    if extra:
        msg = f"{wheelhouse} holds wheels no lock pins: {', '.join(sorted(extra))}"
        raise WheelhouseError(msg, tip="Remove them or rebuild the wheelhouse.")
    for name, entry in sorted(by_name.items()):
        path = wheelhouse / entry.file
        if not path.is_file():
            msg = f"{entry.file} is missing from {wheelhouse}"
            raise WheelhouseError(msg, tip="Rebuild the wheelhouse.")
        actual = sha256_of(path)
        if actual != pins[name] or actual != entry.sha256:
            msg = f"{entry.file} has sha256 {actual}, but the wheelhouse lock says {pins[name]}: it was changed"
            raise WheelhouseError(msg, tip="Do not edit wheels by hand; rebuild the wheelhouse and check its source.")
    return manifest, sha256_of(requirements)


def _split(config: Config, manifest: Manifest, context: Path) -> None:
    """deps/ and app/: the wheelhouse split in two, each with its own hash-pinned requirements."""
    own = canonicalize_name(config.project_name)
    for name, wanted in (
        ("deps", [w for w in manifest.wheels if w.name != own]),
        ("app", [w for w in manifest.wheels if w.name == own]),
    ):
        folder = context / name
        folder.mkdir()
        for entry in wanted:
            shutil.copyfile(config.wheelhouse / entry.file, folder / entry.file)
        (folder / "requirements.txt").write_text(requirements_text(wanted), encoding="utf-8")


def _dockerfile(config: Config) -> tuple[Path, bool]:
    if config.runtime_dockerfile is None:
        return docker_dir() / "runtime.Dockerfile", True
    if not config.runtime_dockerfile.is_file():
        msg = f"runtime-dockerfile {config.runtime_dockerfile} does not exist"
        raise ConfigError(msg, tip="Fix the runtime-dockerfile key, or remove it to use wheelbarrow's.")
    return config.runtime_dockerfile, False


def _tail(config: Config) -> str:
    """The lines wheelbarrow appends to its own Dockerfile from [tool.wheelbarrow]."""
    lines = ["", "# added by wheelbarrow from [tool.wheelbarrow]"]
    if config.port:
        lines.append(f"EXPOSE {config.port}")
    if config.command:
        lines.append(f"CMD {json.dumps(list(config.command))}")
    return "\n".join(lines) + "\n"


def use_buildkit(config: Config, engine: Engine, log: Log) -> bool:
    match config.image_builder:
        case "buildkit":
            return True
        case "legacy":
            return False
        case "auto":
            probe = run([engine.name, "buildx", "version"], log, check=False)
            return probe.returncode == 0


def build_image(config: Config, engine: Engine, log: Log) -> Image:
    manifest, wheelhouse_sha = read_wheelhouse(config.wheelhouse)
    log.info(f"wheelhouse {config.wheelhouse}: {len(manifest.wheels)} wheels, every sha256 checked")
    base = resolve_runtime_base(config, engine, log)
    repaired_for = manifest.runtime_base.get("image_id")
    base_id = engine.image_id(base)
    if repaired_for and base_id != repaired_for:
        log.warning(f"the wheelhouse was repaired against runtime base {repaired_for[:19]}, not {base} ({base_id})")
    dockerfile, ours = _dockerfile(config)
    buildkit = use_buildkit(config, engine, log)
    with tempfile.TemporaryDirectory(prefix="wheelbarrow-image-") as tmp:
        context = Path(tmp)
        shutil.copytree(config.wheelhouse, context / "wheelhouse")
        _split(config, manifest, context)
        text = dockerfile.read_text(encoding="utf-8") + (_tail(config) if ours else "")
        (context / "Dockerfile").write_text(text, encoding="utf-8")
        labels = {
            "org.opencontainers.image.title": config.project_name,
            "org.opencontainers.image.version": config.project_version,
            WHEELHOUSE_LABEL: wheelhouse_sha,
        }
        image_id = engine.build(
            context,
            config.image_tag,
            dockerfile=context / "Dockerfile",
            build_args={"BASE": base, "KEEP_PIP": "true" if config.keep_pip else "false"},
            labels=labels,
            network="none",
            buildkit=buildkit,
        )
    builder = "BuildKit" if buildkit else "the legacy builder"
    log.info(f"image {config.image_tag} ({image_id[:19]}) built with {builder} over {base}")
    return Image(config.image_tag, image_id, builder, wheelhouse_sha, manifest)
