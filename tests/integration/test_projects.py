"""Projects of other shapes than the example: all pure Python, and a project with its own C extension."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

from tests.integration.conftest import PROJECTS, Build, Runner, copy_project, get_inside, sh


def test_a_wheelhouse_of_pure_python_wheels_passes_verify(wheelbarrow: Runner, tmp_path: Path) -> None:
    """No extension module anywhere: the image still builds and every check passes (it used to fail on
    "0 modules")."""
    project = copy_project(PROJECTS / "req-app", tmp_path / "req-app")
    assert wheelbarrow("build", "--project", str(project)).returncode == 0
    tag = "req-app:pure-test"
    try:
        out = wheelbarrow("image", "--project", str(project), "--image-tag", tag, "--json")
        assert out.returncode == 0, out.output[-3000:]
        assert "0 modules, 0 executables, 0 ELF files (every wheel is pure Python)" in out.output
        report = json.loads(out.output[out.output.index("\n{\n") :])  # stdout, after the log lines
        assert all(check["ok"] for check in report["checks"])
        assert len(report["checks"]) == 13
    finally:
        sh(["docker", "rmi", "-f", tag], check=False)


def test_a_project_with_its_own_extension_is_built_with_cibuildwheel(wheelbarrow: Runner, tmp_path: Path) -> None:
    """A setuptools project with a C extension: built from a staged copy by cibuildwheel, offline, repaired."""
    project = copy_project(PROJECTS / "ext-app", tmp_path / "ext-app")
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text())
    (wheel,) = manifest["wheels"]
    assert wheel["name"] == "ext-app"
    assert wheel["origin"] == "built"
    assert "manylinux" in wheel["platform_tag"]  # repaired by auditwheel: it links nothing but libc
    assert wheel["file"].startswith("ext_app-1.0-cp311-cp311-manylinux")


def test_a_dynamic_version_is_read_from_the_built_wheel(wheelbarrow: Runner, tmp_path: Path) -> None:
    """hatch-vcs: the version is the git tag's, built in the offline builder from the project's .git; the
    manifest, the image tag and the dist names use it, and a new tag rebuilds the project's wheel."""
    project = copy_project(PROJECTS / "dynamic-app", tmp_path / "dynamic-app")
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    sh([*git, "init", "-q"])
    sh([*git, "add", "-A"])
    sh([*git, "commit", "-q", "-m", "first"])
    sh([*git, "tag", "v1.2.3"])
    plan = wheelbarrow("plan", "--project", str(project))
    assert "the project: dynamic-app==(dynamic version)" in plan.output, plan.output[-2000:]
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text())
    assert manifest["project"] == {"name": "dynamic-app", "version": "1.2.3"}
    assert "dynamic_app-1.2.3-py3-none-any.whl" in {w["file"] for w in manifest["wheels"]}
    published = wheelbarrow("publish", "--project", str(project), "--skip-image")
    assert published.returncode == 0, published.output[-3000:]
    assert (project / "dist" / "sbom-dynamic-app-1.2.3.cdx.json").is_file()
    (project / "src" / "dynamic_app" / "extra.py").write_text("X = 1\n")
    sh([*git, "add", "-A"])
    sh([*git, "commit", "-q", "-m", "second"])
    sh([*git, "tag", "v1.2.4"])
    again = wheelbarrow("build", "--project", str(project))
    assert again.returncode == 0, again.output[-3000:]
    assert "dynamic-app==1.2.4 " in (project / "wheelhouse" / "requirements.txt").read_text()


def test_runtime_packages_are_installed_left_to_the_image_and_verified(
    wheelbarrow: Runner, example_build: Build, tmp_path: Path
) -> None:
    """runtime-packages: installed into the runtime base; the repair leaves their libraries to it (libpq
    is not grafted into psycopg2); the manifest records them; verify checks them; a wrong name is exit 13."""
    project = copy_project(example_build.project, tmp_path / "with-libpq")
    out = wheelbarrow("build", "--project", str(project), "-C", "runtime-packages=libpq5")
    assert out.returncode == 0, out.output[-3000:]
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text())
    assert manifest["runtime_base"]["packages"] == ["libpq5"]
    assert manifest["runtime_base"]["image"].startswith("localhost/wheelbarrow/runtime-with-packages:")
    (psycopg2,) = [w for w in manifest["wheels"] if w["name"] == "psycopg2"]
    assert "libpq.so.5" in psycopg2["expected_from_base"]
    assert not [g for g in psycopg2["grafted_libraries"] if g.startswith("libpq")]
    tag = "example-service:with-libpq"
    try:
        image = wheelbarrow("image", "--project", str(project), "-C", "runtime-packages=libpq5", "--image-tag", tag)
        assert image.returncode == 0, image.output[-3000:]
        assert "[PASS] runtime-packages are installed: libpq5: yes" in image.output
        imported = sh(["docker", "run", "--rm", "--network", "none", tag, "python", "-c", "import psycopg2; print(1)"])
        assert imported.output.strip().endswith("1")
    finally:
        sh(["docker", "rmi", "-f", tag], check=False)
    wrong = wheelbarrow("build", "--project", str(project), "-C", "runtime-packages=no-such-package-here")
    assert wrong.returncode == 13, wrong.output[-3000:]
    assert "Unable to locate package no-such-package-here" in wrong.output


def test_an_executable_that_embeds_python_starts_and_serves_from_the_venv(wheelbarrow: Runner, tmp_path: Path) -> None:
    """uWSGI's wheel carries an ELF executable linked against libpython. The repair leaves it in the
    scripts folder with its libpython (left to the runtime base, as libssl is); a base without a shared
    libpython is refused at build time; verify checks the executable; the image serves the app."""
    project = copy_project(PROJECTS / "exe-app", tmp_path / "exe-app")
    lacking = wheelbarrow("build", "--project", str(project), "-C", "runtime-packages=")
    assert lacking.returncode == 10, lacking.output[-3000:]
    assert "uwsgi needs libpython3.11.so.1.0" in lacking.output
    assert "(on Debian: libpython3.11)" in lacking.output
    assert "has no extension modules: building it as pure Python" in lacking.output  # setuptools, auto

    built = wheelbarrow("build", "--project", str(project))
    assert built.returncode == 0, built.output[-3000:]
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text())
    (uwsgi,) = [w for w in manifest["wheels"] if w["name"] == "uwsgi"]
    assert uwsgi["expected_from_base"] == ["libpython3.11.so.1.0"]
    with zipfile.ZipFile(project / "wheelhouse" / uwsgi["file"]) as wheel:
        assert wheel.read("uwsgi-2.0.31.data/scripts/uwsgi")[:4] == b"\x7fELF"  # not replaced by a shim
        assert not [n for n in wheel.namelist() if n.startswith("uwsgi.scripts/")]

    tag, broken = "exe-app:test", "exe-app:test-shimmed"
    container = ""
    try:
        image = wheelbarrow("image", "--project", str(project), "--image-tag", tag)
        assert image.returncode == 0, image.output[-3000:]
        assert "[PASS] executables that embed Python start and find the venv: 1 started" in image.output
        assert "0 modules, 1 executables, 1 ELF files" in image.output
        container = sh(["docker", "run", "-d", "--network", "none", tag]).output.strip()
        assert get_inside(container, "http://127.0.0.1:8000/") == "served from the venv"

        # What auditwheel does when left to itself: libpython dropped, the executable moved behind a shim.
        work = tmp_path / "shim"
        (work / "in").mkdir(parents=True)
        shutil.copy(project / "wheelhouse" / uwsgi["file"], work / "in")
        builder = uwsgi["builder_image_id"]
        mount = f"{work}:/w"
        sh(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                mount,
                builder,
                "auditwheel",
                "repair",
                "-w",
                "/w/out",
                f"/w/in/{uwsgi['file']}",
            ]
        )
        (work / "Dockerfile").write_text(
            f"FROM {tag}\nUSER root\nCOPY out/ /tmp/w/\n"
            "RUN python3 -m venv /tmp/pip && /tmp/pip/bin/pip --python /opt/venv/bin/python install -q --no-index"
            " --no-deps --force-reinstall /tmp/w/*.whl && rm -rf /tmp/w /tmp/pip\nUSER 10001:10001\n"
        )
        sh(["docker", "build", "-q", "-t", broken, str(work)])
        checked = wheelbarrow("verify", "--project", str(project), "--image-tag", broken)
        assert checked.returncode == 11, checked.output[-3000:]
        # its libraries are all found; the loader, binding every symbol at start, names the missing one
        assert "[FAIL] executables that embed Python start and find the venv" in checked.output
        assert re.search(r"uwsgi\.scripts/uwsgi: .*undefined symbol: _?Py", checked.output), checked.output[-3000:]
    finally:
        if container:
            sh(["docker", "rm", "-f", container], check=False)
        sh(["docker", "rmi", "-f", tag, broken], check=False)


def test_a_setuptools_project_of_any_name_builds_pure_and_platform_says_what_to_set(
    wheelbarrow: Runner, tmp_path: Path
) -> None:
    """A pure setuptools project named "project" (the name wheelbarrow's own work folders once used):
    auto tries cibuildwheel, then builds it pure; project-build = "platform" says to set pure or auto."""
    project = tmp_path / "project"
    (project / "src" / "project").mkdir(parents=True)
    (project / "src" / "project" / "__init__.py").write_text("")
    (project / "requirements.txt").write_text("")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "project"\nversion = "1.0"\nrequires-python = ">=3.11"\ndependencies = []\n\n'
        '[tool.wheelbarrow]\ndebian-suite = "bookworm"\n'
        'builder-base = "localhost/wheelbarrow/builder-base:bookworm"\n'
        'runtime-base = "localhost/wheelbarrow/runtime-base:bookworm"\nlock = "requirements.txt"\n\n'
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    built = wheelbarrow("build", "--project", str(project))
    assert built.returncode == 0, built.output[-3000:]
    assert "the project project has no extension modules: building it as pure Python" in built.output
    assert (project / "wheelhouse" / "project-1.0-py3-none-any.whl").is_file()
    platform = wheelbarrow("build", "--project", str(project), "-C", "project-build=platform")
    assert platform.returncode == 8, platform.output[-3000:]
    assert 'ERROR: the project project built a pure-Python wheel, and project-build is "platform"' in platform.output
    assert 'TIP: Set project-build = "pure" (or "auto")' in platform.output
