"""The runner path: bases pulled from a registry, nothing bootstrapped.

A real registry (Debian's docker-registry on a loopback port) stands in for Docker Hub: the Debian bases
bootstrapped for the rest of the suite are pushed to it (``<registry>/library/python:3.11-slim`` and a
builder base), and the local tags of those names are removed, so wheelbarrow must pull them.

* Through the CLI: both bases (the runtime base and a builder base) are pulled from the registry by a
  project that has no ``debian-suite``; the manifest records their digests; the image is verified and
  pushed; a base whose tag then moves is refused with what to do.
* A runtime base that is hostile to a builder derived from it (an entrypoint, a user, a narrow PATH,
  ONBUILD steps).

The CI files themselves run as runners would in ``test_fan_out.py``, with the helpers here: a user that is
not root (:func:`runner_user`), ``${{ ... }}`` expressions (:class:`Expressions`), a checkout
(:func:`checkout`), a shell as that user (:func:`as_user`) and GitLab's variables
(:func:`gitlab_variables`).
"""

from __future__ import annotations

import http.server
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import (
    REPO,
    RUNTIME_BASE,
    Build,
    Outcome,
    Runner,
    copy_project,
    local_registry,
    sh,
)

RUNNER_USER = "wbrunner"
BUILDER_BASE = "localhost/wheelbarrow/builder-base:bookworm"
#: Where a runner finds its tools: no sbin (debootstrap lives in /usr/sbin), no sudo.
RUNNER_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class StandIn:
    registry: str

    def image(self, ref: str) -> str:
        """An official image's name on Docker Hub, as the stand-in registry serves it."""
        return f"{self.registry}/library/{ref}"


@pytest.fixture(scope="module")
def stand_in(example_build: Build, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """The registry, holding the bootstrapped Debian bases under registry names; none of them local."""
    del example_build  # it made the bootstrapped bases this registry serves
    with local_registry(tmp_path_factory.mktemp("registry")) as address:
        hub = StandIn(address)
        for local, remote in (
            (RUNTIME_BASE, hub.image("python:3.11-slim")),
            (BUILDER_BASE, f"{address}/ci/builder:bookworm"),
        ):
            sh(["docker", "tag", local, remote])
            sh(["docker", "push", remote])
            sh(["docker", "rmi", remote])  # the image stays under its bootstrapped name only
        yield hub


def not_local(ref: str) -> bool:
    return sh(["docker", "image", "inspect", ref], check=False).returncode != 0


@pytest.fixture(scope="module")
def runner_user() -> pwd.struct_passwd:
    """A user that is not root and may use the engine (the docker group), as a CI runner's user."""
    if os.geteuid() != 0:
        pytest.fail("the runner emulation makes its user and so runs as root (CI does)")
    if subprocess.run(["getent", "passwd", RUNNER_USER], capture_output=True, check=False).returncode != 0:
        sh(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", "docker", RUNNER_USER])
    return pwd.getpwnam(RUNNER_USER)


# ---------------------------------------------------------------------------------------------------------
# The GitHub workflow


class Expressions:
    """``${{ ... }}`` as the workflow uses them: contexts looked up by name; anything else fails the test."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)

    def __call__(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match[1].strip()
            if name not in self.values:
                pytest.fail(f"the emulation does not know the expression {name!r} in {text!r}")
            return self.values[name]

        return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def as_user(user: pwd.struct_passwd | None, script: str, cwd: Path, env: Mapping[str, str]) -> Outcome:
    argv = ["bash", "-e", "-o", "pipefail", "-c", script]
    if user is not None:
        argv = ["runuser", "-u", user.pw_name, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
        env = {}
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=dict(env) or None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout)


def checkout(dest: Path, owner: pwd.struct_passwd | None) -> None:
    """The repository's files as a checkout has them (tracked, plus new ones git does not ignore)."""
    listed = sh(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]).output
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_symlink() or source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)
    if owner is not None:
        sh(["chown", "-R", f"{owner.pw_uid}:{owner.pw_gid}", str(dest)])


def owned_by_others(root: Path, uid: int) -> list[str]:
    return [str(p) for p in [root, *root.rglob("*")] if p.lstat().st_uid != uid]


def gitlab_variables(text: str, known: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in known:
            pytest.fail(f"the emulation does not know the GitLab variable {name!r} in {text!r}")
        return known[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, text)


# ---------------------------------------------------------------------------------------------------------
# The CLI, with both bases in the registry


def test_both_bases_are_pulled_recorded_by_digest_and_a_moved_tag_is_refused(
    wheelbarrow: Runner, stand_in: StandIn, tmp_path: Path
) -> None:
    runtime, builder = stand_in.image("python:3.11-slim"), f"{stand_in.registry}/ci/builder:bookworm"
    sh(["docker", "rmi", runtime], check=False)  # the workflow's run (if it came first) pulled it
    assert not_local(runtime)
    assert not_local(builder)
    project = copy_project(REPO / "examples" / "service", tmp_path / "service")
    env = {
        "WHEELBARROW_RUNTIME_BASE": runtime,
        "WHEELBARROW_BUILDER_BASE": builder,
        "WHEELBARROW_DEBIAN_SUITE": "",  # no fallback: a base that cannot be pulled is an error
        "WHEELBARROW_IMAGE_TAG": "registry-example-service:0.1.0",
        "PATH": RUNNER_PATH + ":" + str(Path(sys.executable).parent),
    }
    built = wheelbarrow("build", "--project", str(project), env=env)
    assert built.returncode == 0, built.output[-6000:]
    assert f"pulling the runtime base {runtime}" in built.output
    assert f"pulling the builder base {builder}" in built.output
    assert "bootstrapping" not in built.output
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["runtime_base"]["digest"].startswith(f"{runtime.rsplit(':', 1)[0]}@sha256:")
    assert manifest["builder"]["base_digest"].startswith(f"{builder.rsplit(':', 1)[0]}@sha256:")
    pushed_ref = f"{stand_in.registry}/runner/example-service:0.1.0"
    imaged = wheelbarrow("image", "--project", str(project), env=env)
    assert imaged.returncode == 0, imaged.output[-6000:]
    assert "all 13 checks passed" in imaged.output
    published = wheelbarrow(
        "publish", "--project", str(project), "--dist-dir", str(tmp_path / "dist"), "--push", pushed_ref, env=env
    )
    assert published.returncode == 0, published.output[-6000:]
    record = json.loads((tmp_path / "dist" / "image-example-service-0.1.0.json").read_text())
    assert record["pushed"].startswith(f"{pushed_ref}@sha256:")
    assert record["pushed"] in [f"{pushed_ref}@{d.split('@')[1]}" for d in record["repo_digests"]]

    # The tag moves on the registry (a new release of the base), and the runner pulls it again.
    moved = subprocess.run(
        ["docker", "build", "-t", runtime, "-"],
        input=f"FROM {runtime}\nLABEL io.wheelbarrow.test=moved\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    sh(["docker", "push", runtime])
    refused = wheelbarrow("image", "--project", str(project), env=env)
    assert refused.returncode != 0
    assert f"{runtime} has moved" in refused.output
    assert f'runtime-base = "{manifest["runtime_base"]["digest"]}"' in refused.output
    # Pinned by the digest the manifest recorded, the same wheelhouse goes into the base it was built for.
    pinned = wheelbarrow(
        "image", "--project", str(project), env={**env, "WHEELBARROW_RUNTIME_BASE": manifest["runtime_base"]["digest"]}
    )
    assert pinned.returncode == 0, pinned.output[-4000:]
    sh(["docker", "rmi", runtime, builder, pushed_ref, "registry-example-service:0.1.0"], check=False)


# ---------------------------------------------------------------------------------------------------------
# A runtime base that is hostile to a builder derived from it

HOSTILE = """\
FROM {base}
# A loopback service the builds must not reach: it records any request.
ONBUILD RUN python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/onbuild', timeout=3)" || true
ENTRYPOINT ["/bin/sh", "-c", "echo hijacked by the base >&2; exit 7"]
ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin
USER 65534
"""


@pytest.fixture
def loopback_listener() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.1 that records the paths asked of it."""
    asked: list[str] = []

    class Record(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_builder_is_derived_from_a_base_that_sets_an_entrypoint_a_user_a_path_and_onbuild_steps(
    wheelbarrow: Runner, loopback_listener: tuple[int, list[str]], tmp_path: Path
) -> None:
    """The derived builder resets what the base sets for its own users (entrypoint, user, PATH), builds on
    the engine's own network (the base's ONBUILD step cannot reach the host's loopback), and the runtime
    image is built as root over a base that names another user; verify then reports the base's entrypoint,
    which swallows the command."""
    port, asked = loopback_listener
    base = "localhost/wheelbarrow/test-hostile-base:1"
    made = subprocess.run(
        ["docker", "build", "--network", "host", "-t", base, "-"],
        input=HOSTILE.format(base=RUNTIME_BASE, port=port),
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    asked.clear()  # the base's own build does not count
    project = copy_project(REPO / "tests" / "projects" / "ext-app", tmp_path / "ext-app")
    env = {
        "WHEELBARROW_RUNTIME_BASE": base,
        "WHEELBARROW_BUILDER_BASE": "runtime",
        "WHEELBARROW_IMAGE_TAG": "hostile-ext-app:1.0",
        "WHEELBARROW_COMMAND": "python -c 'import time; time.sleep(60)'",
    }
    try:
        built = wheelbarrow("build", "--project", str(project), env=env)
        assert built.returncode == 0, built.output[-6000:]
        assert (
            "derived-builder" in json.loads((project / "wheelhouse" / "manifest.json").read_text())["builder"]["base"]
        )
        imaged = wheelbarrow("image", "--project", str(project), env=env)
        assert imaged.returncode != 0
        assert "Permission denied" not in imaged.output  # built as root, whatever user the base names
        assert "exited 7" in imaged.output  # ... and verify caught the base's entrypoint
        assert "hijacked by the base" in imaged.output
        assert asked == []  # no build step reached the host's loopback
    finally:
        sh(["docker", "rmi", "-f", base, "hostile-ext-app:1.0"], check=False)
