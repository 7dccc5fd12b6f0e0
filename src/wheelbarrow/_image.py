"""Stage 7, image: the wheelhouse installed into a slim runtime image.

Before anything is built, every wheel in the wheelhouse is checked against
``requirements.txt`` and the manifest: a tampered, missing or extra wheel
stops the build. The image is built from a context that holds the
Dockerfile and a copy of the wheelhouse, with ``pip install --no-index
--require-hashes`` in a first stage; the final stage copies only the venv, so
no wheel file is in any of its layers. It runs as a non-root user, carries OCI
labels, ``io.wheelbarrow.wheelhouse`` (the sha256 of requirements.txt) and
``io.wheelbarrow.runtime-style`` (slim or distroless: verify and publish judge an
image by what it is, whatever the configuration now says).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from . import _engine
from ._bootstrap import docker_dir, pulled_digest, resolve_runtime_base
from ._cache import Cache, key_of
from ._config import Config
from ._engine import Engine
from ._guard import scratch
from ._log import Log
from ._manifest import Manifest
from ._repair import parse_ldconfig
from ._shapes import image_name_for
from ._wheelhouse import read_wheelhouse, requirements_text
from .errors import ConfigError, WheelhouseError

WHEELHOUSE_LABEL = "io.wheelbarrow.wheelhouse"
STYLE_LABEL = "io.wheelbarrow.runtime-style"
CANDIDATES = _engine.CANDIDATES


@dataclass(frozen=True)
class Image:
    tag: str
    candidate: str  # the tag it is built under; it becomes ``tag`` only once verified
    image_id: str
    builder: str  # "BuildKit" or "the legacy builder"
    manifest: Manifest
    base: str  # the runtime base it was built over


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
    if config.runtime_style == "distroless":
        msg = f'runtime-style = "distroless" builds from wheelbarrow\'s own Dockerfile, not {config.runtime_dockerfile}'
        raise ConfigError(msg, tip='Remove runtime-dockerfile, or set runtime-style = "slim" to keep your own.')
    if not config.runtime_dockerfile.is_file():
        msg = f"runtime-dockerfile {config.runtime_dockerfile} does not exist"
        raise ConfigError(msg, tip="Fix the runtime-dockerfile key, or remove it to use wheelbarrow's.")
    return config.runtime_dockerfile, False


def _distroless(config: Config, context: Path) -> str:
    """With runtime-style = "distroless": the stages that follow the slim one (runtime-distroless.Dockerfile),
    and in the context the two standard-library modules its closure stage runs in the runtime base."""
    if config.runtime_style == "slim":
        return ""
    package = context / "closure" / "wheelbarrow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    for module in ("_elf.py", "_closure.py"):
        shutil.copyfile(Path(__file__).with_name(module), package / module)
    return (docker_dir() / "runtime-distroless.Dockerfile").read_text(encoding="utf-8")


def _distroless_args(config: Config) -> dict[str, str]:
    if config.runtime_style == "slim":
        return {}
    return {
        "STDLIB_EXCLUDE": ",".join(config.stdlib_exclude),
        "RUNTIME_PACKAGES": ",".join(config.runtime_packages),
        "EXTRAS": " ".join(name for name, on in (("tzdata", config.tzdata), ("gconv", config.gconv)) if on),
    }


def _tail(config: Config) -> str:
    """The lines wheelbarrow appends to its own Dockerfile from [tool.wheelbarrow]."""
    lines = ["", "# added by wheelbarrow from [tool.wheelbarrow]"]
    if config.port:
        lines.append(f"EXPOSE {config.port}")
    if config.command:
        lines.append(f"CMD {json.dumps(list(config.command))}")
    return "\n".join(lines) + "\n"


def use_buildkit(config: Config, engine: Engine) -> bool:
    match config.image_builder:
        case "buildkit":
            return True
        case "legacy":
            return False
        case "auto":
            return engine.has_buildkit()


NO_PYTHON_TIP = "Use a runtime-base with CPython (python:3.11-slim, or debian-suite's)."
BASE_FACTS = (
    'python3 -c \'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1] or "-")\'; '
    "uname -m; ldconfig -p"
)


def base_facts(engine: Engine, base: str, cache: Cache) -> str:
    """What :func:`check_base_fits` needs to know of a base, asked once per base image id."""

    def ask() -> str:
        facts = engine.run_image(base, ["sh", "-c", BASE_FACTS])
        if facts.returncode != 0:
            msg = f"the runtime base {base} has no working python3:\n{facts.tail(5)}"
            raise WheelhouseError(msg, tip=NO_PYTHON_TIP)
        return facts.output

    return cache.remember(key_of({"base-facts": engine.image_id(base) or base, "script": BASE_FACTS}), str, ask)


PACKAGED = r"""
for package in "$@"; do
  dpkg -L "$package" 2>/dev/null || rpm -ql "$package" 2>/dev/null || apk info -L "$package" 2>/dev/null \
    || { echo "wheelbarrow: no package $package in the runtime base" >&2; exit 3; }
done | sed -n 's|.*/||; /\.so\(\.[0-9.]*\)\{0,1\}$/p' | sort -u
"""


def packaged_sonames(engine: Engine, base: str, packages: tuple[str, ...], cache: Cache) -> frozenset[str]:
    """The shared libraries the ``runtime-packages`` put in the runtime base (asked once per image id)."""
    if not packages:
        return frozenset()

    def ask() -> list[str]:
        listed = engine.run_image(base, ["sh", "-c", PACKAGED, "sh", *packages])
        if listed.returncode != 0:
            msg = f"the runtime-packages {' '.join(packages)} cannot be listed in {base}:\n{listed.tail(5)}"
            raise WheelhouseError(msg, tip="Check the package names for the runtime base's distribution.")
        return listed.output.split()

    key = key_of({"packaged": engine.image_id(base) or base, "packages": list(packages), "script": PACKAGED})
    return frozenset(cache.remember(key, list, ask))


def check_built_from(engine: Engine, tag: str, wheelhouse_sha: str) -> None:
    """Refuse an image that was built from another wheelhouse than the one here (its label says which):
    verifying or publishing it would vouch for code the wheelhouse does not hold."""
    label = engine.label(tag, WHEELHOUSE_LABEL)
    if label == wheelhouse_sha:
        return
    said = f"another wheelhouse (requirements.txt {label[:12]})" if label else f"no wheelhouse (no {WHEELHOUSE_LABEL})"
    msg = f"the image {tag} was built from {said}, not from this one (requirements.txt {wheelhouse_sha[:12]})"
    raise WheelhouseError(msg, tip="Build the image from this wheelhouse first: wheelbarrow image (nox -s image).")


def style_of(engine: Engine, tag: str, config: Config, log: Log) -> str:
    """The runtime style of the image ``tag`` as its label says (the configured one for an image without the
    label); said when it is not the configured one, since one tag can hold either style."""
    label = engine.label(tag, STYLE_LABEL)
    if label not in ("slim", "distroless"):
        return config.runtime_style
    if label != config.runtime_style:
        log.info(
            f"the image {tag} is {label} (its {STYLE_LABEL} label), though runtime-style is "
            f"{config.runtime_style}: it is taken as {label}"
        )
    return label


def check_base_fits(facts: str, base: str, manifest: Manifest) -> None:
    """Refuse, before building, a base the wheelhouse was not made for: Python, machine, glibc, libraries."""
    lines = facts.splitlines()
    if len(lines) < 2 or len(lines[0].split()) != 2:
        msg = f"the runtime base {base} has no working python3: it printed {facts[:200]!r}"
        raise WheelhouseError(msg, tip=NO_PYTHON_TIP)
    python, glibc = lines[0].split()
    machine = lines[1].strip()
    target = manifest.target
    problems = []
    if target.python != python:
        problems.append(f"it is for CPython {target.python}, the base runs CPython {python}")
    if target.machine != machine:
        problems.append(f"it is for {target.machine}, the base is {machine}")
    needed = max((_glibc_of(w.platform_tag) for w in manifest.wheels), default=(0, 0))
    if glibc != "-" and needed > tuple(int(p) for p in glibc.split(".")[:2]):
        problems.append(f"its wheels need glibc {needed[0]}.{needed[1]}, the base has glibc {glibc}")
    provided = parse_ldconfig(facts)
    for wheel in manifest.wheels:
        missing = [s for s in wheel.expected_from_base if s not in provided]
        if missing:
            problems.append(f"{wheel.name} expects {', '.join(missing)} from the base, which lacks it")
    if problems:
        msg = f"the wheelhouse does not fit the runtime base {base}: {'; '.join(problems)}"
        tip = (
            "Rebuild the wheelhouse for this base (wheelbarrow build), or set runtime-base to the one it was built for."
        )
        raise WheelhouseError(msg, tip=tip)


def check_same_base(manifest: Manifest, base: str, base_id: str, digest: str) -> None:
    """Refuse to install a wheelhouse into a base other than the one it was repaired against (a tag that
    moved since, a rebuilt local base): its wheels leave libraries to that base, not to this one."""
    recorded = manifest.runtime_base
    if not recorded.image_id or base_id == recorded.image_id:
        return
    if recorded.digest and digest and digest != recorded.digest:
        said = f"{base} has moved: it is now {digest}, and the wheelhouse was repaired against {recorded.digest}"
        pin = f' or pin runtime-base = "{recorded.digest}" (the base it was built for)'
    else:
        now, then = base_id[:19], recorded.image_id[:19]
        said = f"the runtime base {base} is image {now}, and the wheelhouse was repaired against {then}"
        pin = f" or set runtime-base to the image it was built for ({recorded.digest or recorded.image})"
    tip = f"Rebuild the wheelhouse against the base as it is now (wheelbarrow build, nox -s build_wheels){pin}."
    raise WheelhouseError(said, tip=tip)


def _glibc_of(platform_tag: str) -> tuple[int, int]:
    found = [(int(major), int(minor)) for major, minor in re.findall(r"manylinux_(\d+)_(\d+)", platform_tag)]
    legacy = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
    found += [v for k, v in legacy.items() if f"{k}_" in platform_tag]
    return min(found) if found else (0, 0)  # a wheel with several tags needs only the lowest


def runtime_base_of(config: Config, manifest: Manifest, engine: Engine, log: Log) -> str:
    """The runtime base the wheelhouse was repaired against, resolved as a build resolves it; another image
    under that name (a tag that moved) is refused. image, verify and publish (its SBOM) all take it here."""
    base = resolve_runtime_base(config, engine, log)
    check_same_base(manifest, base, engine.image_id(base) or "", pulled_digest(config.runtime_base, engine))
    return base


def write_context(config: Config, manifest: Manifest, context: Path) -> dict[str, str]:
    """The runtime image's build context in ``context`` (the Dockerfile, the wheelhouse, deps/ and app/ and,
    for a distroless image, the closure's modules): the build arguments it takes besides ``BASE``."""
    dockerfile, ours = _dockerfile(config)
    shutil.copytree(config.wheelhouse, context / "wheelhouse")
    _split(config, manifest, context)
    text = dockerfile.read_text(encoding="utf-8") + _distroless(config, context) + (_tail(config) if ours else "")
    (context / "Dockerfile").write_text(text, encoding="utf-8")
    epoch = str(manifest.source_date_epoch)
    return {
        "KEEP_PIP": "true" if config.keep_pip else "false",
        "SOURCE_DATE_EPOCH": epoch,
        **({"WHEELBARROW_EPOCH": epoch} if ours else {}),  # in the cache key of the steps that stamp
        **_distroless_args(config),
    }


def build_image(config: Config, engine: Engine, log: Log, cache: Cache) -> Image:
    manifest, wheelhouse_sha = read_wheelhouse(config.wheelhouse)
    log.info(f"wheelhouse {config.wheelhouse}: {len(manifest.wheels)} wheels, every sha256 checked")
    base = runtime_base_of(config, manifest, engine, log)
    check_base_fits(base_facts(engine, base, cache), base, manifest)
    buildkit = use_buildkit(config, engine)
    with scratch("image") as tmp:
        context = Path(tmp)
        build_args = write_context(config, manifest, context)
        labels = {
            "org.opencontainers.image.title": config.project_name,
            "org.opencontainers.image.version": manifest.project.version,
            WHEELHOUSE_LABEL: wheelhouse_sha,
            STYLE_LABEL: config.runtime_style,
        }
        image_id = engine.build(
            context,
            candidate_tag(engine),
            dockerfile=context / "Dockerfile",
            build_args={"BASE": base, **build_args},
            labels=labels,
            network="none",
            buildkit=buildkit,
        )
    builder = "BuildKit" if buildkit else "the legacy builder"
    style = f"{config.runtime_style} image"
    shown = f"{style} {tag_of(config, manifest)} ({image_id[:19]})"
    log.info(f"{shown} built with {builder} over {base}; verifying it first")
    return Image(tag_of(config, manifest), candidate_tag(engine), image_id, builder, manifest, base)


def tag_of(config: Config, manifest: Manifest) -> str:
    """The runtime image's tag: ``image-tag``, else ``<project>:<version>`` from the wheelhouse (whose
    version is the built wheel's, so a dynamic version is known here). One of several targets adds its name
    to the tag: ``app:1.0-cp313-x86_64``."""
    tag = config.image_tag or image_name_for(manifest.project.name, manifest.project.version)
    return target_tag(tag, config.target)


def target_tag(ref: str, target: str) -> str:
    """``ref`` with ``-<target>`` added to its tag (``:<target>`` when it has none); ``ref`` when no target."""
    if not target:
        return ref
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        if len(tag) + 1 + len(target) > 128:  # a tag has at most 128 characters; cut, two tags could meet
            msg = f"{ref}: its tag is too long to carry the target (-{target}) within a tag's 128 characters"
            raise ConfigError(msg, tip=f"Use a tag of at most {127 - len(target)} characters.")
        return f"{name}:{tag}-{target}"
    return f"{ref}:{target}"


def candidate_tag(engine: Engine) -> str:
    """Where a new image waits for its verification: the real tag keeps the previous image until then."""
    return engine.held_tag()


def promote(image: Image, engine: Engine, log: Log) -> None:
    engine.tag(image.candidate, image.tag)
    engine.discard_image(image.candidate)
    log.info(f"tagged {image.tag} ({image.image_id[:19]})")
