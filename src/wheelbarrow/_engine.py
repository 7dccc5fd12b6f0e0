"""The container engine, behind one class and one context manager.

wheelbarrow shells out to the ``docker`` (or ``podman``) CLI so both engines
work the same way. Inputs travel into containers by copy (``docker cp``, build
contexts), never by bind mounts of host paths, so a remote engine
(``DOCKER_HOST``) works too. Every container wheelbarrow creates carries the
label ``io.wheelbarrow.run`` so a later run can remove what an interrupted one
left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from ._cmd import CommandFailed, Result, run
from ._config import EngineName
from ._guard import OWNER_LABEL, image_lock, is_dead, owner
from ._log import Log
from ._options import PLATFORMS
from .errors import (
    EngineCommandError,
    EngineError,
    EngineMissingError,
    EngineStoppedError,
    ImageBuildError,
    ToolMissingError,
    WheelbarrowError,
)

RUN_LABEL = "io.wheelbarrow.run"
#: Where every image wheelbarrow makes is named (bootstrapped bases, builders, candidates, bases with
#: runtime-packages). ``localhost/`` is a registry host that can only ever be this machine, so such a name
#: never resolves to a public registry, whoever registers the namespace there; podman names local images
#: so too. ``local_name("builder-base:bookworm")`` is ``localhost/wheelbarrow/builder-base:bookworm``.
LOCAL = "localhost/wheelbarrow"
#: Names that only wheelbarrow makes, on this machine: never pulled. ``wheelbarrow/...`` (no registry
#: host) is the namespace of wheelbarrow 0.1, which Docker would look up on Docker Hub.
LOCAL_ONLY = (f"{LOCAL}/", "wheelbarrow/", "docker.io/wheelbarrow/", "docker.io/library/wheelbarrow/")


def local_name(name: str) -> str:
    return f"{LOCAL}/{name}"


#: Where images wait that a run made or pulled for itself (``<owner>-<run>...`` tags): an unverified
#: runtime image, a shared-cache entry being read. The sweep removes those of dead runs.
CANDIDATES = local_name("candidate")


#: Engine commands that change no image: the answers of ``image inspect`` outlive them.
_READ_ONLY = frozenset({"version", "ps", "images", "inspect", "logs", "rm"})


def changes_no_image(words: Sequence[str]) -> bool:
    """Whether an engine command (its words after ``docker``) leaves every image as it was."""
    return bool(words) and (words[0] in _READ_ONLY or tuple(words[:2]) in {("image", "inspect"), ("buildx", "version")})


def is_local_only(ref: str) -> bool:
    """Whether ``ref`` names an image only wheelbarrow makes, locally: one it must never pull."""
    return ref.startswith(LOCAL_ONLY)


#: podman's limits for a container (see :meth:`Engine.limit_args`): open files when this process has no
#: bound, and processes at most (the value that a host without CAP_SYS_RESOURCE was seen to accept).
PODMAN_LIMIT = 1 << 20
PODMAN_PROCS = 32768
#: The oldest engines wheelbarrow is tested with (labels, --network none, docker cp, image inspect formats).
MINIMUM: dict[EngineName, tuple[int, int]] = {"docker": (20, 10), "podman": (4, 0)}


@dataclass(frozen=True)
class Started:
    """A container running its image's command (:meth:`Engine.started`); ``failed``: why it did not start."""

    engine: Engine
    name: str
    failed: str

    def state(self) -> tuple[bool, int, str]:
        """(still running, exit code, the last lines it printed)."""
        inspect = self.engine._run(  # noqa: SLF001 - the engine's own helper, within its module
            "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", self.name, check=False
        )
        words = inspect.output.split()
        running, code = (words[0] == "true", int(words[1])) if len(words) == 2 and words[1].isdigit() else (False, -1)
        logs = self.engine._run("logs", "--tail", "40", self.name, check=False)  # noqa: SLF001
        return running, code, logs.output.strip()


@dataclass(frozen=True)
class Pulled:
    """What a pull did: true when the image was pulled; ``why`` holds the engine's last lines otherwise."""

    ok: bool
    why: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class Engine:
    log: Log
    name: EngineName = "docker"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    #: The platform of a target that is not this machine's (``linux/arm64``; "" for the native one): every
    #: image this engine builds, imports, pulls or runs is of it (the CLI's ``DOCKER_DEFAULT_PLATFORM``).
    platform: str = ""
    #: When this engine's run started (Unix time), written into the names it holds images under.
    since: int = field(default_factory=lambda: int(time.time()))
    #: The answers of ``image inspect`` this run got, kept until a command that may change an image runs
    #: (:func:`changes_no_image`): a no-op build asks about the same bases several times.
    _inspected: dict[tuple[str, ...], Result] = field(default_factory=dict, init=False, repr=False, compare=False)
    _changes: int = field(default=0, init=False, repr=False, compare=False)  # commands that may have changed one

    def held_tag(self, what: str = "") -> str:
        """A name under :data:`CANDIDATES` for an image this run holds until it is verified or read:
        ``<owner>-<run>-t<since>[-what]``. The sweep reads the run and its age from the name, never from
        the image, whose creation time a reproducible build sets to ``SOURCE_DATE_EPOCH`` (1980)."""
        return f"{CANDIDATES}:{owner()}-{self.run_id}-t{self.since}" + (f"-{what}" if what else "")

    def _run(
        self,
        *args: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        stream: bool = False,
    ) -> Result:
        """Every engine command: a failure is an :class:`EngineCommandError`, never a bare CommandFailed.

        An ``image inspect`` is answered from this run's earlier answer to the same question, until a
        command that may change an image (a build, a tag, a pull, a run that may pull ...) clears them."""
        if self.platform:
            env = {**(env or {}), "DOCKER_DEFAULT_PLATFORM": self.platform}
        words = tuple(os.fspath(a) for a in args)
        inspect = words[:2] == ("image", "inspect") and not check
        if inspect and words in self._inspected:
            return self._inspected[words]
        if not changes_no_image(words):
            self._changes += 1
            self._inspected.clear()
        changes = self._changes
        try:
            result = run([self.name, *args], self.log, env=env, stdin=stdin, check=check, stream=stream)
        except CommandFailed as err:
            verb = " ".join(str(a) for a in args[:2])
            msg = f"'{self.name} {verb}' failed (exit {err.result.returncode}):\n{err.result.tail(8)}"
            tip = f"Check that the {self.name} engine is healthy ({self.name} info) and has free disk space."
            raise EngineCommandError(msg, tip=tip, output=err.result.output, returncode=err.result.returncode) from err
        if inspect and changes == self._changes:  # not kept when another thread changed an image meanwhile
            self._inspected[words] = result
        return result

    @contextlib.contextmanager
    def image_lock(self, image: str, log: Log) -> Iterator[None]:
        """:func:`wheelbarrow._guard.image_lock` (one maker per local image name), after which every answer
        this engine kept is forgotten: while it waited, another run may have made the image."""
        with image_lock(image, log):
            self._changes += 1
            self._inspected.clear()
            yield

    def check(self) -> str:
        """Fail early, and clearly, when the engine is missing or stopped."""
        try:
            result = self._run("version", "--format", "{{.Server.Version}}", check=False)
        except ToolMissingError as err:
            msg = f"no container engine: '{self.name}' is not installed"
            tip = 'Install Docker (apt-get install docker.io) or set engine = "podman".'
            raise EngineMissingError(msg, tip=tip) from err
        if result.returncode != 0 or not result.output.strip():
            reason = result.tail(3) or "no answer"
            msg = f"the {self.name} engine is not running: {reason}"
            tip = "Start the daemon (systemctl start docker, or dockerd &) or check DOCKER_HOST."
            raise EngineStoppedError(msg, tip=tip)
        version = result.output.strip().splitlines()[-1]
        found = re.match(r"(\d+)\.(\d+)", version)
        minimum = MINIMUM[self.name]
        if found and (int(found[1]), int(found[2])) < minimum:
            msg = f"the {self.name} engine is {version}; wheelbarrow needs {minimum[0]}.{minimum[1]} or newer"
            raise EngineError(msg, tip=f"Upgrade {self.name} (its server) and run again.")
        return version

    def has_buildkit(self) -> bool:
        """Whether the client can build with BuildKit (the buildx plugin answers)."""
        return self._run("buildx", "version", check=False).returncode == 0

    def tag(self, source: str, ref: str) -> None:
        self._run("tag", source, ref)

    def save(self, ref: str, dest: Path) -> None:
        self._run("save", "-o", str(dest), ref)

    def push(self, ref: str) -> str:
        """Push ``ref``; returns the pushed digest (``sha256:...``) or ``""``."""
        output = self._run("push", ref).output
        return next((w for w in output.split() if w.startswith("sha256:")), "")

    def create_index(self, ref: str, sources: Sequence[str]) -> tuple[str, dict[str, str]]:
        """Push ``ref`` as one multi-platform index over ``sources`` (images in the registry, by digest) with
        BuildKit's image tools; returns the index's digest and each platform's manifest digest, as the
        registry serves them afterwards."""
        if self.name != "docker":
            msg = f"a multi-platform index is made with docker's buildx image tools, not {self.name}'s"
            raise EngineError(msg, tip="Push the per-target images only (without --push), or use engine = docker.")
        self._run("buildx", "imagetools", "create", "-t", ref, *sources)
        text = self._run("buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", ref).output
        try:
            index = json.loads(text[text.index("{") :])
            platforms = {
                f"{m['platform']['os']}/{m['platform']['architecture']}": str(m["digest"]) for m in index["manifests"]
            }
            return str(index["digest"]), platforms
        except (ValueError, KeyError, TypeError) as err:
            msg = f"the registry's answer for the index {ref} cannot be read: {err}"
            raise EngineError(msg, tip=f"Check it with: docker buildx imagetools inspect {ref}") from err

    def repo_digests(self, ref: str) -> list[str]:
        text = self._run("image", "inspect", "--format", "{{json .RepoDigests}}", ref).output.strip()
        try:
            digests = json.loads(text or "[]")
        except ValueError:
            return []
        return [d for d in digests if isinstance(d, str)] if isinstance(digests, list) else []

    def image_size(self, ref: str) -> int | None:
        """The size of the local image ``ref`` in bytes (None when there is no such image)."""
        result = self._run("image", "inspect", "--format", "{{.Size}}", ref, check=False)
        text = result.output.strip()
        return int(text) if result.returncode == 0 and text.isdigit() else None

    def label(self, ref: str, key: str) -> str:
        """The value of the label ``key`` on the image ``ref`` ("" when it has none, or there is no image)."""
        text = self._run("image", "inspect", "--format", f'{{{{ index .Config.Labels "{key}" }}}}', ref, check=False)
        value = text.output.strip() if text.returncode == 0 else ""
        return "" if value == "<no value>" else value

    def image_id(self, ref: str) -> str | None:
        result = self._run("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        return result.output.strip() if result.returncode == 0 else None

    def fits(self, ref: str) -> bool:
        """Whether ``ref`` is a local image of this engine's platform (the target's, else this machine's): an
        image store keeps one platform per name, so another target's pull may have replaced what it holds."""
        wanted = self.platform or native_platform()
        result = self._run("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", ref, check=False)
        return result.returncode == 0 and result.output.strip() == wanted

    def pull(self, ref: str, *, quiet: bool = False) -> Pulled:
        """Pull ``ref``; never a name only wheelbarrow makes (:func:`is_local_only`): that is not pulled.
        The answer is true when it was pulled, and says why not when it was not. ``quiet``: the engine's
        progress is not shown (a lookup that may well miss, as in the shared cache)."""
        if is_local_only(ref):
            self.log.info(f"not pulling {ref}: wheelbarrow makes images of that name on this machine only")
            return Pulled(ok=False, why="a name only wheelbarrow makes is never pulled")
        result = self._run("pull", ref, check=False, stream=not quiet)
        return Pulled(ok=result.returncode == 0, why=result.tail(3))

    def build(
        self,
        context: Path,
        tag: str,
        *,
        dockerfile: Path,
        build_args: Mapping[str, str] | None = None,
        network: str = "default",
        labels: Mapping[str, str] | None = None,
        buildkit: bool | None = None,
    ) -> str:
        """``docker build`` a context (sent through the API) and return the image id.

        ``network`` is the engine's own (bridge) network unless a caller says otherwise: a step of the
        Dockerfile, or one its base brings (an ONBUILD trigger, an apt hook), reaches package mirrors but
        not the host's loopback. ``buildkit`` picks the builder (None: the client's default).
        """
        networking = [] if network == "default" else ["--network", network]  # podman names no "default"
        argv: list[str] = ["build", *networking, *self.limit_args(), "-t", tag, "-f", str(dockerfile)]
        env: dict[str, str] = {}
        if buildkit is not None:
            env["DOCKER_BUILDKIT"] = "1" if buildkit else "0"
        if buildkit:
            argv += ["--progress", "plain"]
        for key, value in (build_args or {}).items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in (labels or {}).items():
            argv += ["--label", f"{key}={value}"]
        try:
            self._run(*argv, str(context), stream=True, env=env)
        except EngineCommandError as err:
            msg = f"building image {tag} failed in a step of its Dockerfile:\n{err.tail()}"
            raise ImageBuildError(
                msg, tip="Read the build output above; a missing package name is the usual cause."
            ) from err
        return self._id_of_new(tag)

    def import_tarball(self, tarball: Path, tag: str) -> str:
        self._run("import", *(["--platform", self.platform] if self.platform else []), str(tarball), tag)
        return self._id_of_new(tag)

    def _id_of_new(self, tag: str) -> str:
        image = self.image_id(tag)
        if image is None:
            msg = f"the {self.name} engine reported {tag} as made, but it is not there"
            raise EngineError(msg, tip=f"Check the engine ({self.name} images) and run again.")
        return image

    def run_image(
        self, image: str, argv: Sequence[str], *, network: str = "none", stdin: bytes | None = None
    ) -> Result:
        """``docker run --rm`` one command in a fresh container of ``image`` (checked by the caller)."""
        args = ["run", "--rm", "-i" if stdin is not None else "--init", "--network", network]
        args += [*self.label_args(), "--entrypoint", argv[0], image, *argv[1:]]
        return self._run(*args, stdin=stdin, check=False)

    @contextlib.contextmanager
    def started(self, image: str) -> Iterator[Started]:
        """A container of ``image`` running its own command (``CMD``), network off, removed afterwards."""
        name = f"wheelbarrow-{self.run_id}-{uuid.uuid4().hex[:6]}"
        created = self._run("run", "-d", "--name", name, "--network", "none", *self.label_args(), image, check=False)
        try:
            said = [line for line in created.tail(5).splitlines() if not re.fullmatch(r"[0-9a-f]{64}", line.strip())]
            yield Started(self, name, "" if created.returncode == 0 else " | ".join(said) or "it did not start")
        finally:
            self._run("rm", "-f", name, check=False)

    def label_args(self) -> list[str]:
        """What every container of this run is created with: the labels of the run and of the process that
        owns it, and (podman) :meth:`limit_args`."""
        return ["--label", f"{RUN_LABEL}={self.run_id}", "--label", f"{OWNER_LABEL}={owner()}", *self.limit_args()]

    def limit_args(self) -> list[str]:
        """podman sets a container's open-files and process limits to values of its own, which a host
        without CAP_SYS_RESOURCE (many VMs, CI runners) refuses ("error setting rlimit type 7"): podman's
        containers and builds get this process's own open-files limit and a bounded process limit instead.
        Docker's daemon sets its own, and gets nothing here."""
        if self.name != "podman":
            return []
        _soft, files = resource.getrlimit(resource.RLIMIT_NOFILE)
        _soft, procs = resource.getrlimit(resource.RLIMIT_NPROC)
        files = files if files != resource.RLIM_INFINITY else PODMAN_LIMIT
        procs = min(procs if procs != resource.RLIM_INFINITY else PODMAN_LIMIT, PODMAN_PROCS)
        return ["--ulimit", f"nofile={files}:{files}", "--ulimit", f"nproc={procs}:{procs}"]

    def sweep(self, *, own: bool = False) -> None:
        """Remove containers of runs that are dead (their lease is free, or too old to check); with ``own``,
        this run's containers as well (its end: one listing does both)."""
        result = self._run(
            "ps",
            "-a",
            "--filter",
            f"label={RUN_LABEL}",
            "--format",
            f'{{{{.ID}}}}\t{{{{.Label "{OWNER_LABEL}"}}}}\t{{{{.CreatedAt}}}}\t{{{{.Label "{RUN_LABEL}"}}}}',
            check=False,
        )
        rows = [line.split("\t") for line in result.output.splitlines()]
        mine = [fields[0] for fields in rows if own and len(fields) == 4 and fields[3] == self.run_id]
        dead = [
            fields[0]
            for fields in rows
            if len(fields) == 4 and fields[0] not in mine and is_dead(fields[1], _created(fields[2]))
        ]
        if result.returncode == 0 and dead:
            self.log.info(f"removing {len(dead)} container(s) left by runs that were killed")
        if result.returncode == 0 and (dead or mine):
            self._run("rm", "-f", *mine, *dead, check=False)

    def sweep_images(self, repository: str) -> None:
        """Remove ``repository:<owner>-...`` tags whose run is dead (unverified images of killed runs): its
        lease was released, or, where the lease is not visible (another user's run), its name says it is
        older than the lease."""
        result = self._run("images", repository, "--format", "{{.Tag}}", check=False)
        for tag in result.output.split():
            fields = tag.split("-")
            stamps = [int(f[1:]) for f in fields[1:] if re.fullmatch(r"t\d{9,11}", f)]
            # Its age from its name (held_tag); a name without one is only removed when its run is known dead.
            if is_dead(fields[0], float(stamps[0]) if stamps else None):
                self.discard_image(f"{repository}:{tag}")

    def discard_image(self, ref: str) -> None:
        self._run("rmi", ref, check=False)

    def remove_leftovers(self) -> None:
        """Remove every container this run created (cibuildwheel's included), and those of dead runs that
        appeared since the run began; never raises."""
        with contextlib.suppress(WheelbarrowError):  # no engine: nothing can be left in it
            self.sweep(own=True)

    def copy_from_image(self, image: str, src: PurePosixPath, dest: Path) -> None:
        """Copy what the directory ``src`` of ``image`` holds into ``dest``, from a container that is
        created and never started (so an image with no command, ``FROM scratch``, works too)."""
        name = f"wheelbarrow-{self.run_id}-{uuid.uuid4().hex[:6]}"
        self._run("create", "--name", name, "--network", "none", *self.label_args(), image, "never-run")
        try:
            self._run("cp", f"{name}:{src}/.", str(dest))
        finally:
            self._run("rm", "-f", name, check=False)

    @contextlib.contextmanager
    def container(self, image: str, *, network: str = "none") -> Iterator[Container]:
        name = f"wheelbarrow-{self.run_id}-{uuid.uuid4().hex[:6]}"
        try:
            self._run(
                "create",
                "--name",
                name,
                "--network",
                network,
                *self.label_args(),
                "--entrypoint",
                "/bin/sh",
                image,
                "-c",
                "sleep infinity",
            )
        except EngineCommandError as err:
            msg = f"could not create a container from {image}:\n{err.tail()}"
            raise EngineError(msg, tip="Check that the image exists (docker images).") from err
        try:
            self._run("start", name)
            yield Container(self, name)
        finally:
            self._run("rm", "-f", name, check=False)


@dataclass(frozen=True)
class Container:
    engine: Engine
    name: str

    def call(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None, stream: bool = True
    ) -> Result:
        """Run a command in the container; raises EngineCommandError on failure."""
        exec_args: list[str] = ["exec"]
        for key, value in (env or {}).items():
            exec_args += ["-e", f"{key}={value}"]
        if cwd:
            exec_args += ["-w", cwd]
        return self.engine._run(*exec_args, self.name, *argv, stream=stream)  # noqa: SLF001

    def copy_into(self, src: Path, dest: PurePosixPath) -> None:
        self.engine._run("cp", str(src), f"{self.name}:{dest}")  # noqa: SLF001

    def copy_out(self, src: PurePosixPath, dest: Path, *, contents: bool = False) -> None:
        """Copy ``src`` out; with ``contents``, what is inside the ``src`` directory."""
        source = f"{src}/." if contents else str(src)
        self.engine._run("cp", f"{self.name}:{source}", str(dest))  # noqa: SLF001


def native_platform() -> str:
    """This machine's platform as the engine names it (``linux/amd64``)."""
    return PLATFORMS.get(platform.machine(), f"linux/{platform.machine()}")


def _created(text: str) -> float | None:
    """The engine's ``CreatedAt`` (``2026-11-27 16:03:12 +0000 UTC``) as a timestamp."""
    try:
        return datetime.strptime(" ".join(text.split()[:3]), "%Y-%m-%d %H:%M:%S %z").timestamp()
    except ValueError:
        return None
