"""wheelbarrow init on a project locked with the real uv, and the README's "Use it in your project" followed
word for word where only nox is installed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from tests.integration.conftest import EXAMPLE, PROJECTS, REPO, Outcome, Runner, copy_project, sh, uv
from wheelbarrow._version import source_requirement


def use_it_section() -> str:
    """The README's "Use it in your project" section, as a user reads it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme[readme.index("## Use it in your project") : readme.index("### Commands")]


BUILDERS = "localhost/wheelbarrow/builder"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", use_it_section(), re.DOTALL | re.MULTILINE)


def builder_images(project: str) -> set[str]:
    listed = sh(["docker", "images", BUILDERS, "--format", "{{.Repository}}:{{.Tag}}"]).output.split()
    return {ref for ref in listed if ref.startswith(f"{BUILDERS}:{project}-")}


def test_init_lists_the_sdist_only_package_of_a_uv_lock(wheelbarrow: Runner, tmp_path: Path) -> None:
    project = copy_project(PROJECTS / "init-app", tmp_path / "init-app")
    uv(project, "lock")
    pyproject = project / "pyproject.toml"
    before = pyproject.read_bytes()
    out = wheelbarrow("init", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    after = pyproject.read_bytes()
    assert after.startswith(before + b"\n[tool.wheelbarrow]\n")  # the user's text, comments included, kept
    assert tomllib.loads(after.decode())["tool"]["wheelbarrow"] == {
        "python": "3.11",
        "build-from-source": ["psycopg2"],
        "system-packages": [],
    }
    todo = "# TODO: the system packages psycopg2 needs to compile (e.g. libpq-dev on Debian, the runtime base's"
    assert todo in after.decode()
    noxfile = (project / "noxfile.py").read_text(encoding="utf-8")
    assert f'"{source_requirement()}"' in noxfile.splitlines()[1]  # where this wheelbarrow was installed from
    # The plan compiles psycopg2 (its file named by uv.lock: uv export pins hashes only) and takes six as it is.
    plan = wheelbarrow("plan", "--project", str(project))
    assert plan.returncode == 0, plan.output[-3000:]
    compiled = "built from sdist in the builder (1):\n  psycopg2==2.9.13  psycopg2-2.9.13.tar.gz  [build-from-source]"
    assert compiled in plan.output
    assert "from the index (1):\n  six==1.16.0" in plan.output
    # Again: both files are there, so it has nothing to do, says so, exits 0 and touches neither.
    again = wheelbarrow("init", "--project", str(project))
    assert again.returncode == 0, again.output[-3000:]
    assert "already has a [tool.wheelbarrow] table: left as it is" in again.output
    assert "noxfile.py exists: left as it is" in again.output
    assert "nothing to do" in again.output
    assert pyproject.read_bytes() == after
    assert (project / "noxfile.py").read_text(encoding="utf-8") == noxfile


def test_init_on_the_example_poetry_project_records_the_debian_target(wheelbarrow: Runner, tmp_path: Path) -> None:
    """The example service without its table: poetry export read, the target from flags written down."""
    project = copy_project(EXAMPLE, tmp_path / "service")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    without = text[: text.index("[tool.wheelbarrow]")] + text[text.index("[build-system]") :]
    pyproject.write_text(without, encoding="utf-8")
    (project / "noxfile.py").unlink()
    target = ["--debian-suite", "bookworm", "--builder-base", "localhost/wheelbarrow/builder-base:bookworm"]
    out = wheelbarrow("init", "--project", str(project), *target)
    assert out.returncode == 0, out.output[-3000:]
    written = pyproject.read_text(encoding="utf-8")
    assert written.startswith(without)
    assert tomllib.loads(written)["tool"]["wheelbarrow"] == {
        "python": "3.11",
        "builder-base": "localhost/wheelbarrow/builder-base:bookworm",
        "debian-suite": "bookworm",
        "build-from-source": ["psycopg2"],  # gunicorn, a pure wheel, is taken from the index
        "system-packages": [],
    }
    todo = "# TODO: the system packages psycopg2 needs to compile (e.g. libpq-dev on Debian, the runtime base's "
    assert todo + "distribution)" in written
    assert "poetry export" in out.output
    assert (project / "noxfile.py").is_file()


def run_in(project: Path, argv: list[str], env: dict[str, str], timeout: int = 2400) -> Outcome:
    proc = subprocess.run(
        argv,
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout)


@pytest.fixture
def nox_only(tmp_path: Path) -> Path:
    """A virtual environment with nox and nothing else (nox's own dependencies)."""
    venv = tmp_path / "nox-only"
    sh([sys.executable, "-m", "venv", str(venv)])
    sh([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"nox=={metadata.version('nox')}"])
    assert sh([str(venv / "bin" / "python"), "-I", "-c", "import wheelbarrow"], check=False).returncode != 0
    return venv


def test_the_readmes_use_it_in_your_project_works_where_only_nox_is_installed(
    wheelbarrow: Runner, cache_dir: Path, nox_only: Path, tmp_path: Path
) -> None:
    """The README's table and noxfile, as they are, on a project of psycopg2 and six: nox -s build_wheels."""
    del wheelbarrow  # only its check that the engine runs
    tables, noxfiles = blocks("toml"), blocks("python")
    assert (len(tables), len(noxfiles)) == (1, 1), "the README's section has one table and one noxfile"
    project = copy_project(PROJECTS / "init-readme", tmp_path / "init-readme")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8") + "\n" + tables[0], encoding="utf-8")
    (project / "noxfile.py").write_text(noxfiles[0], encoding="utf-8")
    uv(project, "lock")
    # wheelbarrow is not on the index: a wheel of this checkout, on pip's find-links, stands in for the release
    # the noxfile's script block names, and the sessions install the checkout (NOX_WHEELBARROW_INSTALL).
    wheels = tmp_path / "wheels"
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)])
    here = Path(sys.executable).parent  # this test's environment, which has wheelbarrow: kept off PATH
    path = [str(nox_only / "bin"), *(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != here)]
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}},
        "PATH": os.pathsep.join(path),
        "PIP_FIND_LINKS": " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS", ""), str(wheels)])),
        "UV_FIND_LINKS": str(wheels),
        "NOX_WHEELBARROW_INSTALL": f"{REPO}[poetry,uv]",
        "WHEELBARROW_CACHE_DIR": str(cache_dir),
    }
    images = builder_images("init-readme")
    try:
        out = run_in(project, [str(nox_only / "bin" / "nox"), "-s", "build_wheels"], env)
    finally:
        for image in builder_images("init-readme") - images:
            sh(["docker", "rmi", image], check=False)
    assert out.returncode == 0, out.output[-6000:]
    # nox installed what the script block names into its own environment, and ran the session from there.
    script_env = project / ".nox" / "_nox_script_mode" / "bin" / "python"
    probe = "import importlib.metadata as m, wheelbarrow.nox; print(m.version('wheelbarrow'), m.version('uv'))"
    versions = sh([str(script_env), "-c", probe]).output.split()
    assert versions[0] == metadata.version("wheelbarrow"), versions
    assert sh([str(nox_only / "bin" / "python"), "-I", "-c", "import wheelbarrow"], check=False).returncode != 0
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text(encoding="utf-8"))
    wheels_made = {w["name"]: (w["origin"], w["platform_tag"]) for w in manifest["wheels"]}
    assert wheels_made["psycopg2"][0] == "built"
    assert wheels_made["psycopg2"][1].startswith("manylinux_")
    assert wheels_made["six"] == ("index", "any")
    assert wheels_made["init-readme"][0] == "built"
    assert manifest["builder"]["system_packages"] == ["libpq-dev"]
