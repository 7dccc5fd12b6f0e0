"""The whole pipeline (build, image, verify, publish) on the other engines: podman (rootful, on a host
without CAP_SYS_RESOURCE; and rootless, as a user that is not root), and a Docker engine reached over TCP
that cannot see this machine's files, so every input must be copied in."""

from __future__ import annotations

import json
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    EXAMPLE,
    LABEL,
    REPO,
    RUNTIME_BASE,
    Build,
    Postgres,
    Runner,
    copy_project,
    second_dockerd,
    sh,
)
from tests.integration.test_runner_path import RUNNER_PATH, as_user, runner_user  # noqa: F401 - a fixture

PIPELINE = ("build", "image", "verify", "publish")
CONNECT = (
    "import os, psycopg2; c = psycopg2.connect(os.environ['DATABASE_URL']); cur = c.cursor(); "
    "cur.execute('SELECT 40 + 2'); print(cur.fetchone()[0])"
)


def run_pipeline(wheelbarrow: Runner, project: Path, cache: Path, env: dict[str, str]) -> None:
    for command in PIPELINE:
        done = wheelbarrow(command, "--project", str(project), "--cache-dir", str(cache), env=env)
        assert done.returncode == 0, f"{command}:\n{done.output[-5000:]}"
    sums = sh(["bash", "-c", f"cd {project / 'dist'} && sha256sum -c SHA256SUMS"]).output
    assert sums.count(": OK") == 4, sums


def test_podman_runs_the_whole_pipeline(wheelbarrow: Runner, postgres: Postgres, tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.fail("the podman engine's test needs podman (./dev installs it)")
    project = copy_project(EXAMPLE, tmp_path / "service")
    run_pipeline(wheelbarrow, project, tmp_path / "cache", {"WHEELBARROW_ENGINE": "podman"})
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text(encoding="utf-8"))
    builder = manifest["builder"]["image"]
    assert sh(["podman", "image", "exists", builder], check=False).returncode == 0  # podman's store, not docker's
    # The image podman built, with podman's own limits for this host, talks to the real database.
    answer = sh(
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "host",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "-e",
            f"DATABASE_URL={postgres.dsn}",
            "--entrypoint",
            "/opt/venv/bin/python",
            "localhost/example-service:0.1.0",
            "-c",
            CONNECT,
        ]
    )
    assert answer.output.strip().splitlines()[-1] == "42"
    left = sh(["podman", "ps", "-aq", "--filter", f"label={LABEL}"]).output.split()
    assert left == []


def test_rootless_podman_runs_the_whole_pipeline(
    example_build: Build,
    runner_user: pwd.struct_passwd,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """As a user that is not root, with podman's own store in that user's home (user namespaces, the vfs
    driver, slirp4netns for the builder's one networked step): the runtime base comes into that store as a
    registry would bring it (``podman load`` of the bootstrapped base; a user cannot bootstrap), and the
    builder is derived from it."""
    del example_build  # it made the bootstrapped base loaded here
    user = runner_user
    home = Path(user.pw_dir)
    del tmp_path
    # Not under pytest's own folder: another pytest beside this one (CI's emulated tier) makes
    # /tmp/pytest-of-root private again when it starts, and the user would lose its way in mid-run.
    work = Path(tempfile.mkdtemp(prefix="wbtest-rootless-", dir="/tmp"))
    work.chmod(0o755)  # the user walks into it
    sh(["docker", "save", RUNTIME_BASE, "-o", str(work / "base.tar")])
    copy_project(EXAMPLE, work / "service")
    sh(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(work)])
    env = {"HOME": str(home), "USER": user.pw_name, "PATH": f"{work}/venv/bin:{RUNNER_PATH}"}
    env |= {
        "WHEELBARROW_ENGINE": "podman",
        "WHEELBARROW_CACHE_DIR": str(work / "cache"),
        "WHEELBARROW_DEBIAN_SUITE": "",  # a user cannot bootstrap: the base is the one in the user's store
        "WHEELBARROW_RUNTIME_BASE": RUNTIME_BASE,
        "WHEELBARROW_IMAGE_TAG": "rootless-example-service:0.1.0",
    }
    setup = f"/usr/bin/python3 -m venv {work}/venv && {work}/venv/bin/pip install -q '{REPO}[poetry,uv]'"
    setup += f" && podman load -q -i {work / 'base.tar'} && podman info --format '{{{{.Host.Security.Rootless}}}}'"
    made = as_user(user, setup, work, env)
    assert made.returncode == 0, made.output[-4000:]
    assert made.output.strip().splitlines()[-1] == "true"  # podman itself says it runs rootless
    try:
        for command in PIPELINE:
            done = as_user(user, f"wheelbarrow {command} --project service", work, env)
            assert done.returncode == 0, f"{command}:\n{done.output[-5000:]}"
        sums = sh(["bash", "-c", f"cd {work / 'service' / 'dist'} && sha256sum -c SHA256SUMS"]).output
        assert sums.count(": OK") == 4, sums
        mine = as_user(user, "podman image exists rootless-example-service:0.1.0", work, env)
        assert mine.returncode == 0  # in the user's own store ...
        assert sh(["podman", "image", "exists", "rootless-example-service:0.1.0"], check=False).returncode != 0
        left = as_user(user, f"podman ps -aq --filter label={LABEL}", work, env)
        assert left.output.split() == []
    finally:
        as_user(user, "podman system reset --force", work, env)  # its vfs store holds gigabytes
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def remote_engine(example_build: Build) -> Iterator[str]:
    """A Docker engine over TCP, in namespaces where this machine's /tmp is empty, with the example's bases
    and builder loaded (it has no network to install packages with)."""
    manifest = json.loads((example_build.wheelhouse / "manifest.json").read_text())
    images = [manifest["builder"]["image"], manifest["builder"]["base"], manifest["runtime_base"]["image"]]
    with second_dockerd(images, remote=True) as (host, _proc):
        yield host


def test_a_remote_engine_runs_the_whole_pipeline_with_inputs_copied_in(
    wheelbarrow: Runner, remote_engine: str, tmp_path: Path
) -> None:
    project = copy_project(EXAMPLE, tmp_path / "service")
    assert str(project).startswith("/tmp/"), "the project must be where the remote engine cannot see it"
    env = {"DOCKER_HOST": remote_engine}
    hidden = sh(
        [
            "docker",
            "run",
            "--rm",
            "-v",
            f"{project}:/p:ro",
            "--entrypoint",
            "ls",
            "localhost/wheelbarrow/runtime-base:bookworm",
            "-A",
            "/p",
        ],
        env=env,
    )
    assert hidden.output.strip() == "", "the remote engine sees this machine's files: the test proves nothing"
    run_pipeline(wheelbarrow, project, tmp_path / "cache", env)  # a cold cache: psycopg2 compiled over there
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text(encoding="utf-8"))
    (psycopg2,) = [w for w in manifest["wheels"] if w["name"] == "psycopg2"]
    assert psycopg2["origin"] == "built"
    remote_id = sh(["docker", "image", "inspect", "--format", "{{.Id}}", "example-service:0.1.0"], env=env)
    saved = json.loads(next((project / "dist").glob("image-*.json")).read_text(encoding="utf-8"))
    assert saved["id"] == remote_id.output.strip()
    left = sh(["docker", "ps", "-aq", "--filter", f"label={LABEL}"], env=env).output.split()
    assert left == []
