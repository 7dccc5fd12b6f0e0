"""The CI files' fan-out, run as runners would: one job per target, then the merge.

A real registry (Debian's docker-registry on a loopback port) stands in for Docker Hub and for the
team's registry. It serves the Debian bases bootstrapped here under Docker Hub's names:
``library/python:3.11-slim`` as one index over amd64 and arm64, and ``library/python:3.13-slim``.
Each job's default runtime base, ``python:{python}-slim``, is pointed at those names
(``WHEELBARROW_RUNTIME_BASE``), as a registry mirror would. The repository variables (or, for GitLab,
``$CI_REGISTRY_IMAGE``) name repositories in it; no secret is set, so no job logs in. The image's tag
(``WHEELBARROW_IMAGE_TAG``) is kept apart from the ones the rest of the suite builds. Those are the only
things added to what the files say.

* **GitHub**: every job of the workflow in order (the release job's condition, a tag, is false for a
  push to main). The ``target`` job runs once per entry of its matrix, each in a fresh workspace and
  with a fresh cache, as a user that is not root (in the ``docker`` group), with no ``debootstrap`` on
  PATH and no sudo. The ``run:`` steps run in bash as written. The actions are emulated:
  * checkout copies the repository, and setup-python makes a Python the user owns;
  * setup-qemu-action checks that QEMU's aarch64 handler is registered, which ``./dev`` did here;
  * cache hands over an empty folder;
  * upload-artifact keeps the files it names, without hidden ones, as the action does;
  * download-artifact puts each kept artifact in a folder of its own name.
* **GitLab**: the ``target`` job once per entry of ``parallel: matrix``, then ``merge`` with the target
  jobs' artifacts in its project folder. Each runs ``before_script`` and ``script`` as root, as a job's
  container does, with the local engine standing in for the dind service (DOCKER_HOST is dropped). The
  line that installs QEMU's handlers through the dind service becomes a check that they are registered.
  It runs after GitHub's, against the same shared cache, so its jobs compile nothing.

Minutes of emulated aarch64: marked ``emulated``, the tier CI runs beside the rest.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import platform
import pwd
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import REPO, local_registry, sh
from tests.integration.test_runner_path import (
    RUNNER_PATH,
    Expressions,
    StandIn,
    as_user,
    checkout,
    gitlab_variables,
    owned_by_others,
    runner_user,  # noqa: F401 - a fixture, used by name
)
from wheelbarrow._bootstrap import resolve_runtime_base
from wheelbarrow._config import load_config
from wheelbarrow._engine import Engine
from wheelbarrow._log import Log

pytestmark = [
    pytest.mark.emulated,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="emulates aarch64 on an x86_64 machine"),
]

WORKFLOW = REPO / ".github" / "workflows" / "wheels.yml"
GITLAB = REPO / "docs" / "ci" / "gitlab-ci.yml"
MULTI = REPO / "examples" / "multi-target"
TARGETS = ("cp311-x86_64", "cp313-x86_64", "cp311-aarch64")
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
SHA = "5eed" + "0" * 36  # the commit a runner checked out


@dataclass(frozen=True)
class Hub(StandIn):
    """The stand-in registry, with the team's repositories in it."""

    @property
    def images(self) -> str:
        return f"{self.registry}/ci/example-multi"

    @property
    def cache(self) -> str:
        return f"{self.registry}/ci/wheelbarrow-cache"

    @property
    def runtime_base(self) -> str:
        return self.image("python:{python}-slim")

    def tags(self, repository: str) -> list[str]:
        with urllib.request.urlopen(f"http://{self.registry}/v2/{repository}/tags/list", timeout=10) as answer:
            return list(json.load(answer).get("tags") or [])


def bootstrapped_runtime_bases(cache: Path) -> dict[str, str]:
    """Each target's runtime base as this machine bootstraps it (examples/multi-target, debian-suite
    bookworm: trixie for CPython 3.13), made now if it is not here yet."""
    config = load_config(MULTI, environ={"WHEELBARROW_CACHE_DIR": str(cache)})
    log = Log(sink=lambda _line: None)
    bases = {}
    for each in config.per_target:
        engine = Engine(log, name="docker", platform=each.platform if each.foreign else "")
        bases[each.target] = resolve_runtime_base(each, engine, log)
    return bases


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    bases = bootstrapped_runtime_bases(tmp_path_factory.mktemp("bases-cache"))
    with local_registry(tmp_path_factory.mktemp("hub")) as address:
        hub = Hub(address)
        by_python: dict[str, list[str]] = {}
        for target, local in bases.items():
            python, arch = target.split("-")
            version = f"3.{python[3:]}"
            ref = hub.image(f"python:{version}-slim-{arch}")
            sh(["docker", "tag", local, ref])
            sh(["docker", "push", ref])
            sh(["docker", "rmi", ref])
            by_python.setdefault(version, []).append(ref)
        for version, refs in by_python.items():
            sh(["docker", "buildx", "imagetools", "create", "-t", hub.image(f"python:{version}-slim"), *refs])
        yield hub


def matrix_entries(matrix: Mapping[str, Any] | list[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    """Every combination a matrix makes (GitHub: one mapping of lists; GitLab: a list of such mappings)."""
    if not matrix:
        return [{}]
    out = []
    for entry in matrix if isinstance(matrix, list) else [matrix]:
        keys = list(entry)
        lists = [v if isinstance(v, list) else [v] for v in entry.values()]
        out += [dict(zip(keys, map(str, combo), strict=True)) for combo in itertools.product(*lists)]
    return out


def keep_artifact(source: Path, dest: Path, owner: pwd.struct_passwd | None) -> None:
    """What upload-artifact keeps and download-artifact writes back: the files, without hidden ones."""
    assert not dest.exists(), f"two jobs upload an artifact named {dest.name}"
    shutil.copytree(source, dest, ignore=lambda _d, names: [n for n in names if n.startswith(".")])
    if owner is not None:
        sh(["chown", "-R", f"{owner.pw_uid}:{owner.pw_gid}", str(dest)])


def check_qemu() -> None:
    assert BINFMT.read_text(encoding="utf-8").startswith("enabled"), "QEMU's aarch64 handler is not registered"


@dataclass
class Job:
    name: str
    workspace: Path
    log: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.log)


# ---------------------------------------------------------------------------------------------------------
# GitHub


def github_job(job_id: str, job: Mapping[str, Any], values: Mapping[str, str], run: GitHubRun, number: int) -> Job:
    user, hub = run.user, run.hub
    base = run.base / f"{job_id}-{number}"
    workspace, tool, output = base / "work", base / "python", base / "github_output"
    workspace.mkdir(parents=True)
    output.touch()
    sh(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(base)])
    expr = Expressions(
        {
            "github.workspace": str(workspace),
            "github.token": "",
            "runner.os": "Linux",
            "runner.arch": "X64",
            "vars.WHEELBARROW_IMAGE": hub.images,
            "vars.WHEELBARROW_CACHE": hub.cache,
            "secrets.WHEELBARROW_REGISTRY_USER": "",
            "secrets.WHEELBARROW_REGISTRY_PASSWORD": "",
            **{f"matrix.{k}": v for k, v in values.items()},
        }
    )
    env = {k: expr(str(v)) for k, v in {**run.workflow.get("env", {}), **job.get("env", {})}.items()}
    env |= {
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "PATH": f"{tool}/bin:{RUNNER_PATH}",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_SHA": SHA,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "WHEELBARROW_IMAGE_TAG": "fanout-example-multi:0.1.0",
        "WHEELBARROW_RUNTIME_BASE": hub.runtime_base,
    }
    assert shutil.which("debootstrap", path=env["PATH"]) is None
    done = Job(f"{job_id} {' '.join(values.values())}".strip(), workspace)
    for step in job["steps"]:
        uses = step.get("uses", "")
        if not uses:
            assert "sudo" not in step["run"], step["run"]
            step_env = {k: expr(str(v)) for k, v in step.get("env", {}).items()}
            out = as_user(user, expr(step["run"]), workspace, {**env, **step_env})
            done.log.append(f"$ {step['run']}\n{out.output}")
            assert out.returncode == 0, f"{done.name}: {step.get('name', step['run'])!r} failed:\n{out.output[-6000:]}"
            continue
        action = uses.split("@")[0]
        assert re.fullmatch(r"[^@]+@[0-9a-f]{40}", uses), f"{uses} is not pinned by a full commit SHA"
        keys = ("key", "restore-keys")  # actions/cache's keys (hashFiles): not the emulation's to compute
        given = {k: expr(str(v)) for k, v in step.get("with", {}).items() if k not in keys}
        if action == "actions/checkout":
            checkout(workspace, user)
        elif action == "actions/setup-python":
            made = as_user(user, f"/usr/bin/python3 -m venv {tool}", base, env)
            assert made.returncode == 0, made.output
        elif action == "docker/setup-qemu-action":
            assert given["platforms"] == "arm64"
            check_qemu()
        elif action == "actions/cache":
            assert Path(env["WHEELBARROW_CACHE_DIR"]) == workspace / given["path"]  # restored: nothing
        elif action == "actions/upload-artifact":
            source = workspace / given["path"]
            assert any(source.iterdir()), f"{done.name}: nothing to upload in {source}"
            keep_artifact(source, run.artifacts / given["name"], None)
        elif action == "actions/download-artifact":
            dest = workspace / given["path"]
            if "pattern" in given:
                names = sorted(n.name for n in run.artifacts.iterdir() if fnmatch.fnmatch(n.name, given["pattern"]))
                for name in names:
                    keep_artifact(run.artifacts / name, dest / name, user)
            else:
                keep_artifact(run.artifacts / given["name"], dest, user)
        else:
            pytest.fail(f"the emulation does not know the action {action}")
    return done


@dataclass
class GitHubRun:
    hub: Hub
    user: pwd.struct_passwd
    base: Path
    workflow: dict[str, Any]
    artifacts: Path
    jobs: list[Job] = field(default_factory=list)

    def job(self, name: str) -> Job:
        return next(j for j in self.jobs if j.name == name)


@pytest.fixture(scope="module")
def github(hub: Hub, runner_user: pwd.struct_passwd) -> Iterator[GitHubRun]:  # noqa: F811
    # Not under pytest's own temporary folder: another pytest starting meanwhile (the other tier in CI)
    # makes that private again, and the runner's user must walk into its workspace.
    base = Path(tempfile.mkdtemp(prefix="wbtest-fan-out-"))
    base.chmod(0o755)
    try:
        yield _run_workflow(hub, runner_user, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run_workflow(hub: Hub, user: pwd.struct_passwd, base: Path) -> GitHubRun:
    run = GitHubRun(hub, user, base, yaml.safe_load(WORKFLOW.read_text(encoding="utf-8")), base / "artifacts")
    run.artifacts.mkdir()
    for job_id, job in run.workflow["jobs"].items():  # in the file's order, which is the order of needs
        if "if" in job:
            assert job["if"] == "startsWith(github.ref, 'refs/tags/v')"  # a push to main: skipped
            continue
        for number, values in enumerate(matrix_entries(job.get("strategy", {}).get("matrix")), 1):
            run.jobs.append(github_job(job_id, job, values, run, number))
    return run


def index_of(hub: Hub, ref: str) -> dict[str, str]:
    raw = json.loads(sh(["docker", "buildx", "imagetools", "inspect", "--raw", ref]).output)
    return {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in raw["manifests"]}


def check_merged(dist: Path, hub: Hub, tag: str, merge_log: str) -> None:
    """dist/ as merge writes it for the three targets, and the two indexes it pushed as the registry
    serves them, each platform pulled back by digest and verified."""
    assert {p.name for p in dist.iterdir() if not p.name.startswith(".")} == {
        "SHA256SUMS",
        "images.json",
        "targets.json",
        "sbom-example-multi-0.1.0.cdx.json",
        *TARGETS,
    }
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    sbom = json.loads((dist / "sbom-example-multi-0.1.0.cdx.json").read_text(encoding="utf-8"))
    assert sorted(c["properties"][0]["value"] for c in sbom["components"]) == sorted(TARGETS)
    for component in sbom["components"]:
        assert "psycopg2" in {c["name"] for c in component["components"]}
    indexes = {i["index"].split("@")[0]: i["platforms"] for i in json.loads((dist / "images.json").read_text())}
    assert set(indexes) == {f"{hub.images}:{tag}-cp311", f"{hub.images}:{tag}-cp313"}
    assert set(indexes[f"{hub.images}:{tag}-cp311"]) == {"linux/amd64", "linux/arm64"}
    assert set(indexes[f"{hub.images}:{tag}-cp313"]) == {"linux/amd64"}
    for ref, platforms in indexes.items():
        assert index_of(hub, ref) == platforms
    assert merge_log.count("pulled by digest, all") == 3


def test_the_workflow_builds_each_target_in_a_job_of_its_own_and_merges_them(github: GitHubRun) -> None:
    names = [j.name for j in github.jobs]
    assert names == [f"target {t}" for t in TARGETS] + ["merge"]
    for target in TARGETS:
        job = github.job(f"target {target}")
        assert "pulling the runtime base" in job.text
        assert "bootstrapping" not in job.text
        assert "all 13 checks passed" in job.text
        manifest = json.loads((job.workspace / "wheelhouse-multi" / target / "manifest.json").read_text())
        assert manifest["target"]["machine"] == target.split("-")[1]
        psycopg2 = next(w for w in manifest["wheels"] if w["name"] == "psycopg2")
        assert psycopg2["origin"] == "built"
    merge = github.job("merge")
    dist = merge.workspace / "dist-multi"
    check_merged(dist, github.hub, SHA[:12], merge.text)
    kept = github.artifacts / "dist-multi"
    assert sorted(p.name for p in kept.iterdir()) == sorted(p.name for p in dist.iterdir() if p.name[0] != ".")
    assert owned_by_others(dist, github.user.pw_uid) == []


def test_each_target_job_pushed_what_it_built_to_the_shared_cache(github: GitHubRun) -> None:
    pushed = [t for t in github.hub.tags("ci/wheelbarrow-cache") if t.startswith("wheel-")]
    for target in TARGETS:
        assert "to the shared cache" in github.job(f"target {target}").text
    assert len(pushed) >= len(TARGETS)  # psycopg2, once per target at least


def test_the_runtime_derived_builder_leaves_one_libssl_in_the_image(github: GitHubRun) -> None:
    """The builder was the runtime base plus a compiler: libpq is grafted, OpenSSL left to the base."""
    job = github.job("target cp311-x86_64")
    manifest = json.loads((job.workspace / "wheelhouse-multi" / "cp311-x86_64" / "manifest.json").read_text())
    assert manifest["builder"]["base"].startswith("localhost/wheelbarrow/derived-builder:")
    assert manifest["runtime_base"]["digest"].startswith(f"{github.hub.image('python')}@sha256:")
    psycopg2 = next(w for w in manifest["wheels"] if w["name"] == "psycopg2")
    assert any(lib.startswith("libpq") for lib in psycopg2["grafted_libraries"])
    assert not any(lib.startswith(("libssl", "libcrypto")) for lib in psycopg2["grafted_libraries"])
    assert {"libssl.so.3", "libcrypto.so.3"} <= set(psycopg2["expected_from_base"])
    image = "fanout-example-multi:0.1.0-cp311-x86_64"
    find = "find / -xdev \\( -name 'libssl*.so*' -o -name 'libcrypto*.so*' \\) 2>/dev/null"
    found = sh(
        ["docker", "run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "sh", image, "-c", find]
    ).output.split()
    assert [Path(f).name for f in found if "libssl" in f] == ["libssl.so.3"], found


# ---------------------------------------------------------------------------------------------------------
# GitLab


def test_the_gitlab_example_fans_out_with_a_matrix_and_merges_from_the_shared_cache(
    github: GitHubRun, tmp_path: Path
) -> None:
    """After GitHub's run, against the same shared cache: the target jobs fetch every wheel from it."""
    hub = github.hub
    config = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    engine = config[".engine"]
    parts = tmp_path / "artifacts"
    parts.mkdir()
    jobs: list[Job] = []
    for job_id in ("target", "merge"):
        job = config[job_id]
        assert job["extends"] == ".engine"
        for number, values in enumerate(matrix_entries(job.get("parallel", {}).get("matrix")), 1):
            workspace, tool = tmp_path / f"{job_id}-{number}" / "project", tmp_path / f"{job_id}-{number}" / "python"
            workspace.mkdir(parents=True)
            checkout(workspace, None)
            sh(["/usr/bin/python3", "-m", "venv", str(tool)])  # the job image's Python, root's to install into
            if job_id == "merge":  # the target jobs' artifacts, extracted into the project folder
                shutil.copytree(parts, workspace, dirs_exist_ok=True)
            known = {
                "CI_PROJECT_DIR": str(workspace),
                "CI_REGISTRY_IMAGE": f"{hub.registry}/ci",
                "CI_COMMIT_SHORT_SHA": SHA[:8],
                **values,
            }
            env = {k: gitlab_variables(str(v), known) for k, v in config["variables"].items() if k != "DOCKER_HOST"}
            env |= known | {
                "HOME": str(tmp_path / "home"),
                "PATH": f"{tool}/bin:{RUNNER_PATH}",
                "CI": "true",
                "GITLAB_CI": "true",
                "WHEELBARROW_IMAGE_TAG": "gitlab-example-multi:0.1.0",
                "WHEELBARROW_RUNTIME_BASE": hub.runtime_base,
            }
            lines = []
            for line in [*engine["before_script"], *job["script"]]:
                if re.fullmatch(r"docker run --privileged --rm \S+/binfmt --install arm64", line):
                    check_qemu()  # what that line does to the dind host's kernel, ./dev did to this one's
                    continue
                lines.append(line)
            out = as_user(None, "\n".join(lines), workspace, env)
            done = Job(f"{job_id} {' '.join(values.values())}".strip(), workspace, [out.output])
            assert out.returncode == 0, f"{done.name}:\n{out.output[-6000:]}"
            jobs.append(done)
            if job_id == "target":
                for path in job["artifacts"]["paths"]:
                    shutil.copytree(workspace / path, parts / path, dirs_exist_ok=True)
    arches = ("amd64", "amd64", "arm64")
    assert [j.name for j in jobs] == [f"target {t} {a}" for t, a in zip(TARGETS, arches, strict=True)] + ["merge"]
    for job in jobs[:-1]:
        assert "psycopg2" in job.text
        assert re.search(r"psycopg2\S*\.whl: from the shared cache", job.text), job.text[-4000:]
        assert "bootstrapping" not in job.text
    check_merged(jobs[-1].workspace / "dist-multi", hub, SHA[:8], jobs[-1].text)
