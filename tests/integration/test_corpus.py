"""The corpus: three services locked by their own tools (Poetry, uv, pip-tools), each taken from its lock
through build, image, verify and publish, and served from its image.

Their locks come from the real tools, never edited: poetry.lock and the pip-compile output are committed
(they name no index); uv.lock names the index's hosts, so the test makes it with the real uv. This is the
slow tier (about five minutes cold, most of it corpus-poetry's 52 wheels and two compiled sdists); bench/
corpus.py times the same path cold and warm.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import PROJECTS, Runner, copy_project, get_inside, sh, uv


@dataclass(frozen=True)
class Service:
    lock: str  # the lock kind the manifest records
    built: frozenset[str]  # what is compiled or built (the project itself included)
    wheels: int  # at least this many in the wheelhouse
    answer: str  # the service's answer to GET / contains this
    dev: str  # a package of the dev group: locked, never in the wheelhouse


CORPUS = {
    "corpus-poetry": Service(
        "poetry",
        frozenset({"corpus-poetry", "psycopg2", "uwsgi"}),
        50,
        "django rest_framework celery redis psycopg2 requests boto3 cryptography pydantic sqlalchemy",
        "pytest",
    ),
    "corpus-uv": Service("uv", frozenset({"corpus-uv", "psycopg2"}), 20, '"psycopg2":"2.9.13', "pytest"),
    "corpus-piptools": Service(
        "requirements", frozenset({"corpus-piptools", "psycopg2"}), 12, '"psycopg2":"2.9.13', "pytest"
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_a_corpus_service_goes_from_its_lock_to_a_published_image_that_serves(
    name: str, wheelbarrow: Runner, tmp_path: Path
) -> None:
    service = CORPUS[name]
    project = copy_project(PROJECTS / name, tmp_path / name)
    if service.lock == "uv":
        uv(project, "lock")

    built = wheelbarrow("build", "--project", str(project))
    assert built.returncode == 0, built.output[-4000:]
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text())
    assert manifest["lock"]["kind"] == service.lock
    wheels = {w["name"]: w for w in manifest["wheels"]}
    assert len(wheels) >= service.wheels
    assert {n for n, w in wheels.items() if w["origin"] == "built"} == service.built
    assert service.dev not in wheels

    tag = f"{name}:test"
    container = ""
    try:
        image = wheelbarrow("image", "--project", str(project), "--image-tag", tag)
        assert image.returncode == 0, image.output[-4000:]
        assert "all 13 checks passed (network off)" in image.output
        container = sh(["docker", "run", "-d", "--network", "none", tag]).output.strip()
        assert service.answer in get_inside(container, "http://127.0.0.1:8000/")
        logs = sh(["docker", "logs", container]).output
        assert "Permission denied" not in logs, logs  # the user has a home (gunicorn's control socket)

        dist = tmp_path / "dist"
        published = wheelbarrow("publish", "--project", str(project), "--image-tag", tag, "--dist-dir", str(dist))
        assert published.returncode == 0, published.output[-4000:]
        sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True, check=False)
        assert sums.returncode == 0, sums.stdout + sums.stderr
        (tarball,) = dist.glob("wheelhouse-*.tar.gz")
        with tarfile.open(tarball) as archive:
            members = {Path(m.name).name for m in archive.getmembers()}
        assert {w["file"] for w in wheels.values()} <= members  # every legal name, long ones included
    finally:
        if container:
            sh(["docker", "rm", "-f", container], check=False)
        sh(["docker", "rmi", "-f", tag], check=False)


def test_the_poetry_corpus_is_the_size_the_issue_asks_for() -> None:
    """At least 50 locked packages, a dev group, and a wheel name over 100 characters, in the real lock."""
    lock = tomllib.loads((PROJECTS / "corpus-poetry" / "poetry.lock").read_text(encoding="utf-8"))
    packages = lock["package"]
    assert len(packages) >= 50
    assert any(p.get("groups") == ["dev"] for p in packages)
    names = [f["file"] for p in packages for f in p["files"]]
    assert any(len(n) > 100 and "manylinux" in n and "cp311" in n for n in names)
