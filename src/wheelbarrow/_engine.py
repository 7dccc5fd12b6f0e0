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
import os
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ._cmd import CommandFailed, Result, run
from ._guard import OWNER_LABEL, dead_owner, owner
from ._log import Log
from .errors import EngineError, EngineMissingError, EngineStoppedError, ToolMissingError, WheelbarrowError

RUN_LABEL = "io.wheelbarrow.run"


@dataclass
class Engine:
    log: Log
    name: str = "docker"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def _run(self, *args: str | os.PathLike[str], **kwargs: object) -> Result:
        return run([self.name, *args], self.log, **kwargs)  # type: ignore[arg-type]

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
        return result.output.strip().splitlines()[-1]

    def has_buildkit(self) -> bool:
        """Whether the client can build with BuildKit (the buildx plugin answers)."""
        return self._run("buildx", "version", check=False).returncode == 0

    def command(self, *args: str) -> Result:
        """Any other engine command (save, tag, push ...); raises CommandFailed."""
        return self._run(*args)

    def image_id(self, ref: str) -> str | None:
        result = self._run("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        return result.output.strip() if result.returncode == 0 else None

    def pull(self, ref: str) -> bool:
        return self._run("pull", ref, check=False, stream=True).returncode == 0

    def build(
        self,
        context: Path,
        tag: str,
        *,
        dockerfile: Path,
        build_args: Mapping[str, str] | None = None,
        network: str = "host",
        labels: Mapping[str, str] | None = None,
        buildkit: bool | None = None,
    ) -> str:
        """``docker build`` a context (sent through the API) and return the image id.

        ``buildkit`` picks the builder (None: the client's default).
        """
        argv: list[str] = ["build", "--network", network, "-t", tag, "-f", str(dockerfile)]
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
        except CommandFailed as err:
            msg = f"building image {tag} failed:\n{err.result.tail()}"
            raise EngineError(
                msg, tip="Read the build output above; a missing package name is the usual cause."
            ) from err
        image = self.image_id(tag)
        assert image is not None
        return image

    def import_tarball(self, tarball: Path, tag: str) -> str:
        try:
            self._run("import", str(tarball), tag)
        except CommandFailed as err:
            msg = f"docker import of {tarball} failed:\n{err.result.tail()}"
            raise EngineError(msg, tip="Check the engine's free disk space.") from err
        image = self.image_id(tag)
        assert image is not None
        return image

    def run_image(
        self, image: str, argv: Sequence[str], *, network: str = "none", stdin: bytes | None = None
    ) -> Result:
        """``docker run --rm`` one command in a fresh container of ``image`` (checked by the caller)."""
        args = ["run", "--rm", "-i" if stdin is not None else "--init", "--network", network]
        args += [*self.label_args(), "--entrypoint", argv[0], image, *argv[1:]]
        return self._run(*args, stdin=stdin, check=False)

    def label_args(self) -> list[str]:
        """The labels every container of this run carries: the run, and the process that owns it."""
        return ["--label", f"{RUN_LABEL}={self.run_id}", "--label", f"{OWNER_LABEL}={owner()}"]

    def sweep(self) -> None:
        """Remove containers that runs killed before they could clean up (their process is gone)."""
        result = self._run(
            "ps",
            "-a",
            "--filter",
            f"label={RUN_LABEL}",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{OWNER_LABEL}"}}}}',
            check=False,
        )
        dead = [
            line.split()[0]
            for line in result.output.splitlines()
            if len(line.split()) == 2 and dead_owner(line.split()[1])
        ]
        if result.returncode == 0 and dead:
            self.log.info(f"removing {len(dead)} container(s) left by runs that were killed")
            self._run("rm", "-f", *dead, check=False)

    def sweep_images(self, repository: str) -> None:
        """Remove ``repository:<pid>-...`` tags whose process is gone (unverified images of killed runs)."""
        result = self._run("images", repository, "--format", "{{.Tag}}", check=False)
        for tag in result.output.split():
            pid = tag.split("-", 1)[0]
            if pid.isdigit() and dead_owner(f"{socket.gethostname()}:{pid}"):
                self.discard_image(f"{repository}:{tag}")

    def discard_image(self, ref: str) -> None:
        self._run("rmi", ref, check=False)

    def remove_leftovers(self) -> None:
        """Remove every container this run created (cibuildwheel's included); never raises."""
        try:
            result = self._run("ps", "-aq", "--filter", f"label={RUN_LABEL}={self.run_id}", check=False)
            ids = result.output.split()
            if result.returncode == 0 and ids:
                self._run("rm", "-f", *ids, check=False)
        except WheelbarrowError:
            pass  # no engine: nothing can be left in it

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
        except CommandFailed as err:
            msg = f"could not create a container from {image}:\n{err.result.tail()}"
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
        """Run a command in the container; raises CommandFailed on failure."""
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
