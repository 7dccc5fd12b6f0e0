"""The example service, built for real: psycopg2 from its sdist in the offline builder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import jsonschema

from tests.integration.conftest import (
    REPO,
    RUNTIME_BASE,
    Build,
    Postgres,
    Runner,
    exercise_service,
    serving,
    sh,
)
from wheelbarrow._cache import sha256_of


def wheel_names(wheelhouse: Path) -> list[str]:
    return sorted(p.name for p in wheelhouse.glob("*.whl"))


def test_wheelhouse_holds_exactly_the_runtime_wheels(example_build: Build) -> None:
    names = wheel_names(example_build.wheelhouse)
    projects = sorted(n.split("-")[0].lower() for n in names)
    assert projects == ["example_service", "gunicorn", "packaging", "psycopg2"]
    assert not [n for n in names if "binary" in n or n.startswith("pytest")]  # nothing from the dev group
    assert sorted(p.name for p in example_build.wheelhouse.iterdir() if not p.name.endswith(".whl")) == [
        ".wheelbarrow-owned",  # the marker: wheelbarrow may replace this directory, and nothing it did not write
        "README.md",
        "manifest.json",
        "requirements.txt",
    ]


def test_psycopg2_is_compiled_and_repaired_with_libpq(example_build: Build) -> None:
    (psycopg2,) = example_build.wheelhouse.glob("psycopg2-*.whl")
    assert re.fullmatch(r"psycopg2-2\.9\.13-cp311-cp311-manylinux_2_\d+_x86_64\.whl", psycopg2.name)
    with zipfile.ZipFile(psycopg2) as archive:
        libs = [n for n in archive.namelist() if n.startswith("psycopg2.libs/")]
    assert any(Path(n).name.startswith("libpq") for n in libs), libs


def test_requirements_and_manifest_match_the_files(example_build: Build) -> None:
    wheelhouse = example_build.wheelhouse
    pin = r"^(\S+)==\S+ \\\n    --hash=sha256:([0-9a-f]{64})$"
    pins = dict(re.findall(pin, (wheelhouse / "requirements.txt").read_text(), re.MULTILINE))
    manifest = json.loads((wheelhouse / "manifest.json").read_text())
    assert manifest["manifest_version"] == "1.3"
    jsonschema.validate(manifest, json.loads((REPO / "docs" / "manifest.schema.json").read_text()))
    by_file = {w["file"]: w for w in manifest["wheels"]}
    assert sorted(by_file) == wheel_names(wheelhouse)
    for name, entry in by_file.items():
        path = wheelhouse / name
        assert entry["sha256"] == sha256_of(path) == pins[entry["name"]]
        assert entry["size"] == path.stat().st_size
    psycopg2 = by_file[next(n for n in by_file if n.startswith("psycopg2-"))]
    assert psycopg2["origin"] == "built"
    assert psycopg2["sdist"]["file"] == "psycopg2-2.9.13.tar.gz"
    assert psycopg2["builder_image_id"].startswith("sha256:")
    assert psycopg2["platform_tag"].startswith("manylinux_2_")
    assert any(lib.startswith("libpq") for lib in psycopg2["grafted_libraries"])
    gunicorn = by_file[next(n for n in by_file if n.startswith("gunicorn-"))]
    assert gunicorn["origin"] == "index"
    assert gunicorn["sdist"] is None
    setuptools = [r for r in manifest["build_requirements"] if r["file"].startswith("setuptools-")]
    assert setuptools, "the sdist's build requirement was fetched on the host"


def test_builds_ran_with_the_network_off(example_build: Build) -> None:
    offline = "wheelbarrow: build container network interfaces: lo (offline)"
    assert example_build.outcome.output.count(offline) == 2  # psycopg2 (cibuildwheel) and the project
    # The same check, in the same builder image, refuses a container that has a network.
    builder = json.loads((example_build.wheelhouse / "manifest.json").read_text())["builder"]["image"]
    networked = sh(["docker", "run", "--rm", "--network", "host", builder, "wheelbarrow-check-offline"], check=False)
    assert networked.returncode == 1
    assert "builds must run with --network none" in networked.output


def test_runtime_base_has_no_libpq_and_no_compiler() -> None:
    probe = (
        "ls /usr/lib/*/libpq.so* 2>/dev/null; command -v gcc cc make; test -e /usr/include/libpq-fe.h && echo hdr; true"
    )
    out = sh(["docker", "run", "--rm", "--network", "none", RUNTIME_BASE, "sh", "-c", probe]).output
    assert out.strip() == ""


def test_installed_wheelhouse_imports_psycopg2_offline(runtime_image: str) -> None:
    code = "import psycopg2, psycopg2.extensions as e; print(psycopg2.__version__, e.libpq_version())"
    out = sh(["docker", "run", "--rm", "--network", "none", runtime_image, "/venv/bin/python", "-c", code]).output
    assert out.startswith("2.9.13")
    assert int(out.split()[-1]) >= 150000  # the grafted libpq (15.x), not one from the base


def test_query_against_a_real_postgres(runtime_image: str, postgres: Postgres) -> None:
    code = (
        "import psycopg2, sys\n"
        "with psycopg2.connect(sys.argv[1]) as c, c.cursor() as cur:\n"
        "    cur.execute('SELECT 6 * 7, current_setting(%s)', ('password_encryption',))\n"
        "    print(*cur.fetchone())\n"
    )
    out = sh(
        ["docker", "run", "--rm", "--network", "host", runtime_image, "/venv/bin/python", "-c", code, postgres.dsn]
    ).output
    assert out.split() == ["42", "scram-sha-256"]


def test_example_service_under_gunicorn(runtime_image: str, postgres: Postgres) -> None:
    with serving(runtime_image, "/venv/bin/gunicorn", postgres.dsn) as (_, base):
        exercise_service(base, b"carried by wheelbarrow")


def test_plan_command_prints_the_plan(wheelbarrow: Runner, example_build: Build) -> None:
    out = wheelbarrow("plan", "--project", str(example_build.project))
    assert out.returncode == 0
    assert "psycopg2==2.9.13  psycopg2-2.9.13.tar.gz  [build-from-source]" in out.output
    assert "gunicorn==23.0.0  gunicorn-23.0.0-py3-none-any.whl" in out.output


def test_module_and_console_script_agree() -> None:
    """`python -m wheelbarrow` and the installed `wheelbarrow` script run the same CLI, at the installed version."""
    script = Path(sys.executable).with_name("wheelbarrow")
    assert script.is_file(), "the console script is installed next to the interpreter"
    runs = [
        subprocess.run(argv, capture_output=True, text=True, check=True)
        for argv in ([sys.executable, "-m", "wheelbarrow", "--version"], [str(script), "--version"])
    ]
    assert runs[0].stdout == runs[1].stdout == f"wheelbarrow {metadata.version('wheelbarrow')}\n"
    helps = [
        subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        for argv in ([sys.executable, "-m", "wheelbarrow", "build", "--help"], [str(script), "build", "--help"])
    ]
    assert helps[0] == helps[1]
    assert "--wheelhouse" in helps[0]
