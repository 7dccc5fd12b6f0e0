"""The runner path: bases pulled from a registry, nothing bootstrapped, and the CI files run as a runner would.

A real registry (Debian's docker-registry on a loopback port) stands in for Docker Hub: the Debian base
bootstrapped for the rest of the suite is pushed to it as ``<registry>/library/python:3.11-slim``, and the
local tag of that name is removed, so wheelbarrow must pull it. The workflow's own image names are
rewritten to the stand-in's (``python:3.11-slim`` -> ``<registry>/library/python:3.11-slim``), and that is
the only change made to what the CI files say, besides the image's tag (``WHEELBARROW_IMAGE_TAG``), kept
apart from the one the rest of the suite builds and checks.

* The GitHub workflow's job runs step by step as a user that is not root (in the ``docker`` group, as a
  runner's user is), with the environment the workflow sets, no ``debootstrap`` on PATH and no sudo: its
  ``run:`` steps in bash as written, its actions emulated (checkout copies the repository, setup-python
  makes a Python the user owns, cache hands over an empty folder and then checks that everything in it is
  the user's to save, upload-artifact checks the files it names).
* The GitLab example's ``before_script`` and ``script`` lines run the same way, as root, as a GitLab job's
  container does.
* Through the CLI: both bases (the runtime base and a builder base) are pulled from the registry by a
  project that has no ``debian-suite``; the manifest records their digests; the image is verified and
  pushed; a base whose tag then moves is refused with what to do.
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
import yaml

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

WORKFLOW = REPO / ".github" / "workflows" / "wheels.yml"
GITLAB = REPO / "docs" / "ci" / "gitlab-ci.yml"
RUNNER_USER = "wbrunner"
BUILDER_BASE = "localhost/wheelbarrow/builder-base:bookworm"
#: Where a runner finds its tools: no sbin (debootstrap lives in /usr/sbin), no sudo.
RUNNER_PATH = "/usr/local/bin:/usr/bin:/bin"
RUNNER_TAG = "runner-example-service:0.1.0"


@dataclass(frozen=True)
class StandIn:
    registry: str

    def image(self, ref: str) -> str:
        """An official image's name on Docker Hub, as the stand-in registry serves it."""
        return f"{self.registry}/library/{ref}"

    def rewrite(self, value: str) -> str:
        """``python:3.11-slim`` (or ``python:${WHEELBARROW_PYTHON}-slim`` in a shell line) -> the stand-in's."""
        return re.sub(r"(?<![\w./-])(python:[\w.${}-]+)", lambda m: self.image(m[1]), value)


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


@pytest.fixture(scope="module")
def workflow_run(
    stand_in: StandIn, runner_user: pwd.struct_passwd, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str], list[str]]:
    """The wheelhouse job, first matrix entry, step by step; returns the workspace, the artifact (name:
    path) and the log of what ran."""
    base = tmp_path_factory.mktemp("runner")
    os.chmod(base, 0o755)  # noqa: PTH101 - the runner's user walks into it
    for parent in base.parents:
        if parent != Path("/") and parent.stat().st_mode & 0o005 != 0o005:
            os.chmod(parent, parent.stat().st_mode | 0o005)  # noqa: PTH101 - pytest makes its base private
    workspace, tool, output = base / "work", base / "python", base / "github_output"
    workspace.mkdir()
    output.touch()
    sh(["chown", "-R", f"{runner_user.pw_uid}:{runner_user.pw_gid}", str(base)])
    job = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["wheelhouse"]
    matrix = {k: v[0] for k, v in job["strategy"]["matrix"].items()}
    machine = os.uname().machine
    expr = Expressions(
        {
            "github.workspace": str(workspace),
            "runner.os": "Linux",
            "runner.arch": "X64" if machine == "x86_64" else "ARM64",
            **{f"matrix.{k}": str(v) for k, v in matrix.items()},
        }
    )
    env = {k: stand_in.rewrite(expr(str(v))) for k, v in job["env"].items()}
    env |= {
        "HOME": runner_user.pw_dir,
        "USER": runner_user.pw_name,
        "PATH": f"{tool}/bin:{RUNNER_PATH}",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(output),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "WHEELBARROW_IMAGE_TAG": RUNNER_TAG,  # not the tag the rest of the suite builds and checks
    }
    assert shutil.which("debootstrap", path=env["PATH"]) is None
    log: list[str] = []
    artifact: dict[str, str] = {}
    cache_path: Path | None = None
    for step in job["steps"]:
        uses = step.get("uses", "")
        if not uses:
            assert "sudo" not in step["run"], step["run"]
            out = as_user(runner_user, expr(step["run"]), workspace, {**env, **step.get("env", {})})
            log.append(f"$ {step['run']}\n{out.output}")
            assert out.returncode == 0, f"step {step.get('name', step['run'])!r} failed:\n{out.output[-6000:]}"
            if "id" in step:
                for line in output.read_text(encoding="utf-8").splitlines():
                    key, _, value = line.partition("=")
                    expr.values[f"steps.{step['id']}.outputs.{key}"] = value
            continue
        action = uses.split("@")[0]
        assert re.fullmatch(r"[^@]+@[0-9a-f]{40}", uses), f"{uses} is not pinned by a full commit SHA"
        given = step.get("with", {})
        if action == "actions/checkout":
            checkout(workspace, runner_user)
        elif action == "actions/setup-python":
            made = as_user(runner_user, f"/usr/bin/python3 -m venv {tool}", base, env)
            assert made.returncode == 0, made.output
        elif action == "actions/cache":
            cache_path = workspace / expr(given["path"])  # restored: nothing (a first run)
            assert Path(env["WHEELBARROW_CACHE_DIR"]) == cache_path
        elif action == "actions/upload-artifact":
            artifact = {"name": expr(given["name"]), "path": expr(given["path"])}
        else:
            pytest.fail(f"the emulation does not know the action {action}")
    assert cache_path is not None, "the workflow persists no cache"
    assert cache_path.is_dir()
    assert owned_by_others(cache_path, runner_user.pw_uid) == []  # actions/cache can save all of it
    return workspace, artifact, log


def test_the_workflow_runs_as_the_runner_user_with_bases_from_the_registry(
    workflow_run: tuple[Path, dict[str, str], list[str]], runner_user: pwd.struct_passwd
) -> None:
    workspace, artifact, log = workflow_run
    text = "\n".join(log)
    assert "-s build_wheels image publish" in text
    assert "pulling the runtime base" in text
    assert "bootstrap" not in text.replace("--debian-suite", "")
    assert "all 12 checks passed" in text
    assert re.fullmatch(r"dist-py3\.11-" + os.uname().machine, artifact["name"])
    dist = workspace / artifact["path"]
    files = sorted(p.name for p in dist.iterdir() if not p.name.startswith("."))  # upload-artifact skips those
    assert "SHA256SUMS" in files
    assert any(f.startswith("wheelhouse-example-service-0.1.0-cp311-") for f in files)
    assert owned_by_others(dist, runner_user.pw_uid) == []
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(files) - 1


def test_the_runtime_derived_builder_leaves_one_libssl_in_the_image(
    workflow_run: tuple[Path, dict[str, str], list[str]],
) -> None:
    """The builder was the runtime base plus a compiler: libpq is grafted, OpenSSL left to the base."""
    workspace, _artifact, _log = workflow_run
    manifest = json.loads((workspace / "wheelhouse" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["builder"]["base"].startswith("localhost/wheelbarrow/derived-builder:")
    repository = manifest["runtime_base"]["image"].rsplit(":", 1)[0]
    assert manifest["runtime_base"]["digest"].startswith(f"{repository}@sha256:")
    psycopg2 = next(w for w in manifest["wheels"] if w["name"] == "psycopg2")
    assert any(lib.startswith("libpq") for lib in psycopg2["grafted_libraries"])
    assert not any(lib.startswith(("libssl", "libcrypto")) for lib in psycopg2["grafted_libraries"])
    assert {"libssl.so.3", "libcrypto.so.3"} <= set(psycopg2["expected_from_base"])
    found = sh(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "0",  # to read every folder
            "--entrypoint",
            "sh",
            RUNNER_TAG,
            "-c",
            "find / -xdev \\( -name 'libssl*.so*' -o -name 'libcrypto*.so*' \\) 2>/dev/null",
        ]
    ).output.split()
    assert [Path(f).name for f in found if "libssl" in f] == ["libssl.so.3"], found


# ---------------------------------------------------------------------------------------------------------
# The GitLab example


def gitlab_variables(text: str, known: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in known:
            pytest.fail(f"the emulation does not know the GitLab variable {name!r} in {text!r}")
        return known[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, text)


def test_the_gitlab_job_runs_its_script_lines_with_bases_from_the_registry(stand_in: StandIn, tmp_path: Path) -> None:
    """As a GitLab job's container runs them: as root, before_script then script in one shell, with the
    job's variables; the local engine stands in for the dind service (DOCKER_HOST is not set)."""
    config = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    job = config["wheelhouse"]
    workspace, tool = tmp_path / "project", tmp_path / "python"
    workspace.mkdir()
    checkout(workspace, None)
    sh(["/usr/bin/python3", "-m", "venv", str(tool)])  # the job image's Python, root's to install into
    known = {"CI_PROJECT_DIR": str(workspace), "CI_RUNNER_EXECUTABLE_ARCH": f"linux/{os.uname().machine}"}
    known |= {k: str(v[0]) for k, v in job["parallel"]["matrix"][0].items()}
    env = {k: gitlab_variables(str(v), known) for k, v in config["variables"].items() if k != "DOCKER_HOST"}
    env |= known | {
        "HOME": str(tmp_path / "home"),
        "PATH": f"{tool}/bin:{RUNNER_PATH}",
        "CI": "true",
        "GITLAB_CI": "true",
        "WHEELBARROW_IMAGE_TAG": "gitlab-example-service:0.1.0",  # not the tag the rest of the suite checks
    }
    assert shutil.which("debootstrap", path=env["PATH"]) is None
    script = "\n".join(stand_in.rewrite(line) for line in [*job["before_script"], *job["script"]])
    sh(["docker", "rmi", stand_in.image("python:3.11-slim")], check=False)  # pulled by an earlier test
    out = as_user(None, script, workspace, env)
    assert out.returncode == 0, out.output[-6000:]
    assert "pulling the runtime base" in out.output
    assert "bootstrapping" not in out.output
    assert "all 12 checks passed" in out.output
    for path in job["artifacts"]["paths"]:
        dist = workspace / path
        assert sorted(p.name for p in dist.iterdir() if p.suffix in (".gz", ".tar"))
        assert "OK" in sh(["sh", "-c", f"cd {dist} && sha256sum -c SHA256SUMS"]).output
    for path in job["cache"]["paths"]:
        assert (workspace / path).is_dir()
    sh(["docker", "rmi", "gitlab-example-service:0.1.0"], check=False)


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
    assert "all 12 checks passed" in imaged.output
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
