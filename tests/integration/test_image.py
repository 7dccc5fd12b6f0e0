"""The runtime image: built from the wheelhouse, verified, and run against a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import IO, Any

import pytest

from tests.integration.conftest import (
    TAG,
    Build,
    BuiltImage,
    Postgres,
    Runner,
    exercise_service,
    run_psycopg2_suite,
    serving,
    sh,
)


def inspect(tag: str) -> Any:
    return json.loads(sh(["docker", "image", "inspect", tag]).output)[0]


def member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    stream = archive.extractfile(name)
    assert stream is not None, name
    return stream


def test_image_is_built_with_buildkit_and_every_check_passes(example_image: BuiltImage) -> None:
    out = example_image.outcome.output
    assert f"image {TAG} (sha256:" in out
    assert "built with BuildKit" in out
    assert "all 13 checks passed (network off)" in out
    assert "[FAIL]" not in out
    for check in ("no compiler or build tool", "runs as non-root: uid 10001", "exactly one libssl mapped"):
        assert f"[PASS] {check}" in out


def test_labels_command_port_and_user(example_image: BuiltImage, example_build: Build) -> None:
    config = inspect(example_image.tag)["Config"]
    labels = config["Labels"]
    requirements = (example_build.wheelhouse / "requirements.txt").read_bytes()
    assert labels["io.wheelbarrow.wheelhouse"] == hashlib.sha256(requirements).hexdigest()
    assert labels["org.opencontainers.image.title"] == "example-service"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert config["Cmd"] == ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "example_service:app"]
    assert "8000/tcp" in config["ExposedPorts"]
    assert config["User"] == "10001:10001"
    group = sh(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", example_image.tag, "-c",
                "import grp, os; print(os.getgid(), grp.getgrgid(os.getgid()).gr_name)"]).output  # fmt: skip
    assert group.split() == ["10001", "app"], group  # the image's group has a name (before: gid 999 did)


def test_no_wheel_file_in_any_layer_of_ours(example_image: BuiltImage, tmp_path: Path) -> None:
    """The layers the image adds on top of its base hold no .whl (the base's own ensurepip wheels aside)."""
    base = "localhost/wheelbarrow/runtime-base:bookworm"
    ours = len(inspect(example_image.tag)["RootFS"]["Layers"]) - len(inspect(base)["RootFS"]["Layers"])
    assert ours >= 1
    archive = tmp_path / "image.tar"
    sh(["docker", "save", "-o", str(archive), example_image.tag])
    with tarfile.open(archive) as saved:
        manifest = json.load(member(saved, "manifest.json"))
        layer_files = manifest[0]["Layers"][-ours:]
        names: list[str] = []
        for layer in layer_files:
            with tarfile.open(fileobj=member(saved, layer)) as inner:
                names += inner.getnames()
    assert any(n.startswith("opt/venv/") for n in names)
    assert [n for n in names if n.endswith(".whl")] == []
    assert not any(Path(n).name == "pip" for n in names if n.startswith("opt/venv/bin/"))


def test_legacy_builder_builds_the_same_venv(wheelbarrow: Runner, example_build: Build) -> None:
    tag = "example-service:legacy-builder"
    out = wheelbarrow(
        "image", "--project", str(example_build.project), "-C", "image-builder=legacy", "--image-tag", tag
    )
    assert out.returncode == 0, out.output[-4000:]
    assert "built with the legacy builder" in out.output
    assert "all 13 checks passed" in out.output
    freeze = (
        "/opt/venv/bin/python -c 'import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))'"
    )
    legacy = sh(["docker", "run", "--rm", "--network", "none", tag, "sh", "-c", freeze]).output
    buildkit = sh(["docker", "run", "--rm", "--network", "none", TAG, "sh", "-c", freeze]).output
    assert legacy == buildkit
    assert "'pip'" not in legacy
    sh(["docker", "rmi", tag])


def test_tampered_wheel_stops_the_image_build(wheelbarrow: Runner, example_build: Build, tmp_path: Path) -> None:
    tampered = tmp_path / "wheelhouse"
    shutil.copytree(example_build.wheelhouse, tampered)
    (wheel,) = tampered.glob("gunicorn-*.whl")
    data = bytearray(wheel.read_bytes())
    data[-100] ^= 0xFF
    wheel.write_bytes(bytes(data))
    tag = "example-service:tampered"
    out = wheelbarrow(
        "image", "--project", str(example_build.project), "--wheelhouse", str(tampered), "--image-tag", tag
    )
    assert out.returncode == 10
    assert re.search(
        r"ERROR: gunicorn-23\.0\.0-py3-none-any\.whl has sha256 \w+, but the wheelhouse lock says", out.output
    )
    assert "Traceback" not in out.output
    assert sh(["docker", "image", "inspect", tag], check=False).returncode != 0  # nothing was built


BROKEN = """\
FROM {tag}
USER root
RUN site=/opt/venv/lib/python3.11/site-packages \\
 && rm -r $site/packaging $site/packaging-*.dist-info $site/psycopg2.libs/libpq-*.so* \\
 && for tool in gcc x86_64-linux-gnu-g++-12 clang-16 as; do \\
      printf '#!/bin/sh\\n' >/usr/local/bin/$tool && chmod +x /usr/local/bin/$tool; done \\
 && mkdir -p /usr/local/include /usr/include/sub && touch /usr/local/include/Python.h /usr/include/sub/zlib.hpp \\
 && touch /tmp/left-behind-1.0-py3-none-any.whl \\
 && chmod -R o+w /opt/venv/lib
"""


def test_verify_fails_an_image_that_breaks_each_rule(
    wheelbarrow: Runner, example_build: Build, example_image: BuiltImage, tmp_path: Path
) -> None:
    """The real probe, on an image derived from the verified one with one fault per check."""
    tag = "example-service:broken"
    (tmp_path / "Dockerfile").write_text(BROKEN.format(tag=example_image.tag), encoding="utf-8")
    sh(["docker", "build", "--network", "none", "-q", "-t", tag, str(tmp_path)])
    try:
        out = wheelbarrow("verify", "--project", str(example_build.project), "--image-tag", tag)
    finally:
        sh(["docker", "rmi", tag])
    assert out.returncode != 0
    failed = dict(re.findall(r"\[FAIL\] ([^:]+): (.*)", out.output))
    assert failed.keys() == {
        "no compiler or build tool",
        "no C or C++ headers",
        "runs as non-root",
        "venv not writable by the runtime user",
        "every extension imports and every ELF file's libraries are found",
        "no wheel files beyond the base's",
        "dependency check",
        "the command starts and keeps running",  # gunicorn cannot import its app without libpq
    }, out.output[-3000:]
    assert failed["no compiler or build tool"] == ", ".join(
        f"{tool}=/usr/local/bin/{tool}" for tool in ("as", "clang-16", "gcc", "x86_64-linux-gnu-g++-12")
    )
    assert failed["no C or C++ headers"] == "/usr/include/sub/zlib.hpp, /usr/local/include/Python.h"
    assert "libpq" in failed["every extension imports and every ELF file's libraries are found"]
    assert failed["no wheel files beyond the base's"] == "/tmp/left-behind-1.0-py3-none-any.whl"
    assert "gunicorn 23.0.0 requires packaging, which is not installed" in failed["dependency check"]
    assert "[PASS] exactly one libssl mapped" in out.output
    assert "ERROR: the image example-service:broken failed 8 of 13 checks" in out.output


def test_service_runs_as_configured_user_against_postgres(example_image: BuiltImage, postgres: Postgres) -> None:
    with serving(example_image.tag, "gunicorn", postgres.dsn) as (name, base):
        exercise_service(base, b"from the slim image")
        assert sh(["docker", "exec", name, "id", "-u"]).output.strip() == "10001"


def test_psycopg2_own_test_suite_passes_in_the_image(
    example_image: BuiltImage, postgres: Postgres, cache_dir: Path, tmp_path: Path
) -> None:
    """psycopg2's tests (from its sdist) against the repaired wheel in the image, as psycopg's CI does for wheels."""
    run_psycopg2_suite(example_image.tag, postgres, cache_dir, tmp_path)


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("gunicron --bind 0.0.0.0:8000 example_service:app", 'exec: "gunicron": executable file not found'),
        ("gunicorn --bind 0.0.0.0:8000 example_service.nope:app", "ModuleNotFoundError"),
        ("python3 -c 'raise SystemExit(4)'", "exited 4"),
    ],
)
def test_an_image_whose_command_cannot_start_is_not_tagged(
    wheelbarrow: Runner, example_build: Build, command: str, said: str
) -> None:
    """A misspelt program, an app module that does not import, a command that fails at once: verify starts
    the image's command (network off) and the candidate never gets the tag; verify-start = false skips it."""
    tag = "example-service:bad-command"
    env = {"WHEELBARROW_COMMAND": command, "WHEELBARROW_IMAGE_TAG": tag}
    try:
        out = wheelbarrow("image", "--project", str(example_build.project), env=env)
        assert out.returncode == 11, out.output[-3000:]
        (failed,) = re.findall(r"\[FAIL\] the command starts and keeps running: (.*)", out.output)
        assert said in failed
        assert "failed 1 of 13 checks" in out.output
        assert f"ERROR: the image {tag} (waiting as localhost/wheelbarrow/candidate:" in out.output  # its own name
        assert sh(["docker", "image", "inspect", tag], check=False).returncode != 0
        skipped = wheelbarrow(
            "image", "--project", str(example_build.project), env={**env, "WHEELBARROW_VERIFY_START": "false"}
        )
        assert skipped.returncode == 0, skipped.output[-3000:]
        assert "[PASS] the command starts and keeps running: not started (verify-start = false)" in skipped.output
    finally:
        sh(["docker", "rmi", "-f", tag], check=False)


LYING = """\
FROM {tag}
USER root
COPY zz_lie.pth zz_noise.pth /opt/venv/lib/python3.11/site-packages/
RUN rm /opt/venv/lib/python3.11/site-packages/psycopg2.libs/libpq-*
USER 10001:10001
"""
PTH = {
    "zz_lie.pth": "import atexit; atexit.register(lambda: print('wheelbarrow-probe-report: {\"uid\": 10001}'))\n",
    "zz_noise.pth": "import atexit, sys; atexit.register(lambda: print('bye', file=sys.stderr))\n",
}


def test_a_package_cannot_forge_the_report_of_verify(
    wheelbarrow: Runner, example_build: Build, example_image: BuiltImage, tmp_path: Path
) -> None:
    """A .pth in the venv that prints a report of its own at exit, another that prints to stderr: the
    probe runs with -S (they never run in it) and reads only its own prefixed line, so verify still
    sees that psycopg2 cannot load libpq."""
    tag = "example-service:lying"
    (tmp_path / "Dockerfile").write_text(LYING.format(tag=example_image.tag), encoding="utf-8")
    for name, text in PTH.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    sh(["docker", "build", "--network", "none", "-q", "-t", tag, str(tmp_path)])
    try:
        out = wheelbarrow("verify", "--project", str(example_build.project), "--image-tag", tag)
    finally:
        sh(["docker", "rmi", tag])
    assert out.returncode == 11, out.output[-3000:]
    failed = dict(re.findall(r"\[FAIL\] ([^:]+): (.*)", out.output))
    assert "libpq" in failed["every extension imports and every ELF file's libraries are found"]


def test_an_image_from_another_wheelhouse_is_neither_verified_nor_published(
    wheelbarrow: Runner, example_build: Build, tmp_path: Path
) -> None:
    """The image says which wheelhouse it was built from; after the code changes and the wheelhouse is
    built again, verify and publish refuse the old image until `image` makes it anew."""
    project = tmp_path / "service"
    shutil.copytree(example_build.project, project)
    env = {"WHEELBARROW_IMAGE_TAG": "example-service:other-wheelhouse"}
    try:
        assert wheelbarrow("image", "--project", str(project), env=env).returncode == 0
        app = project / "src" / "example_service" / "app.py"
        app.write_text(app.read_text(encoding="utf-8") + "\n# a change\n", encoding="utf-8")
        assert wheelbarrow("build", "--project", str(project), env=env).returncode == 0
        for command in ("verify", "publish"):
            out = wheelbarrow(command, "--project", str(project), env=env)
            assert out.returncode == 10, out.output[-3000:]
            assert "ERROR: the image example-service:other-wheelhouse was built from another wheelhouse" in out.output
            assert "TIP: Build the image from this wheelhouse first" in out.output
        assert not (project / "dist").exists()
        assert wheelbarrow("image", "--project", str(project), env=env).returncode == 0
        assert wheelbarrow("verify", "--project", str(project), env=env).returncode == 0
    finally:
        sh(["docker", "rmi", "-f", "example-service:other-wheelhouse"], check=False)
