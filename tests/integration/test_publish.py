"""nox -s publish: artifacts another machine consumes with the network off, and a push to a real registry."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import (
    TAG,
    Build,
    BuiltImage,
    Outcome,
    Runner,
    offline_container,
    sh,
)


@pytest.fixture(scope="module")
def published(
    wheelbarrow: Runner, example_build: Build, example_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Outcome]:
    dist = tmp_path_factory.mktemp("publish") / "dist"
    out = wheelbarrow("publish", "--project", str(example_build.project), "--dist-dir", str(dist), "--simple-index")
    assert out.returncode == 0, out.output[-4000:]
    return dist, out


def test_dist_holds_the_artifacts(published: tuple[Path, Outcome]) -> None:
    dist, _ = published
    names = sorted(p.name for p in dist.iterdir())
    assert names == [
        ".wheelbarrow-owned",  # the marker, not listed in SHA256SUMS
        "SHA256SUMS",
        "image-example-service-0.1.0.json",
        "image-example-service-0.1.0.tar",
        "sbom-example-service-0.1.0.cdx.json",
        "simple",
        "wheelhouse-example-service-0.1.0-cp311-manylinux_2_34_x86_64.tar.gz",
    ]
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = [p for p in dist.rglob("*") if p.is_file() and p.name not in ("SHA256SUMS", ".wheelbarrow-owned")]
    assert check.stdout.count(": OK") == len(listed)  # every artifact, and not the marker
    image = json.loads((dist / "image-example-service-0.1.0.json").read_text())
    assert image["tag"] == TAG
    assert image["id"] == sh(["docker", "image", "inspect", "--format", "{{.Id}}", TAG]).output.strip()


def test_publish_is_deterministic(
    wheelbarrow: Runner, example_build: Build, published: tuple[Path, Outcome], tmp_path: Path
) -> None:
    dist, _ = published
    again = tmp_path / "dist"
    out = wheelbarrow("publish", "--project", str(example_build.project), "--dist-dir", str(again), "--simple-index")
    assert out.returncode == 0, out.output[-3000:]
    assert (again / "SHA256SUMS").read_text() == (dist / "SHA256SUMS").read_text()


def test_sbom_lists_libpq_and_openssl_with_versions(published: tuple[Path, Outcome]) -> None:
    dist, _ = published
    bom = json.loads((dist / "sbom-example-service-0.1.0.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    wheels = {c["name"]: c for c in bom["components"]}
    assert sorted(wheels) == ["example-service", "gunicorn", "packaging", "psycopg2"]
    psycopg2 = wheels["psycopg2"]
    assert psycopg2["purl"].startswith("pkg:pypi/psycopg2@2.9.13?file_name=psycopg2-2.9.13-cp311-cp311-manylinux_")
    assert psycopg2["hashes"][0]["alg"] == "SHA-256"
    inner = {c["name"]: c for c in psycopg2["components"]}
    assert inner["libpq5"]["version"].startswith("15.")
    assert inner["libpq5"]["purl"].startswith("pkg:deb/debian/libpq5@15.")
    assert inner["libssl3"]["version"].startswith("3.")
    provided = {p["name"]: p["value"] for p in inner["libssl3"]["properties"]}
    assert provided["wheelbarrow:provided-by"].startswith("runtime base ")
    assert provided["wheelbarrow:sonames"] == "libcrypto.so.3 libssl.so.3"
    # Every library grafted into psycopg2 has its Debian package listed, asked of the builder's dpkg by
    # any spelling of its path (bookworm lists libcom-err2's and libkeyutils1's files under /lib).
    (tarball,) = dist.glob("wheelhouse-*.tar.gz")
    with tarfile.open(tarball) as archive:
        manifest = json.loads(archive.extractfile("wheelhouse/manifest.json").read())  # type: ignore[union-attr]
    (entry,) = [w for w in manifest["wheels"] if w["name"] == "psycopg2"]
    names = [re.sub(r"-[0-9a-f]{8}(?=\.)", "", g) for g in entry["grafted_libraries"]]  # auditwheel's hash out
    script = 'for n in "$@"; do echo "package: $(dpkg -S "*/$n" 2>/dev/null | head -n 1 | cut -d: -f1)"; done'
    said = sh(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", entry["builder_image_id"],
               "-c", script, "sh", *names]).output  # fmt: skip
    found = [line.removeprefix("package: ") for line in said.splitlines() if line.startswith("package: ")]
    assert {"libcom-err2", "libkeyutils1", "libpq5"} <= set(found)
    assert len(found) == len(names)
    assert all(found), dict(zip(names, found, strict=True))  # a package for each grafted library
    assert set(found) <= set(inner), sorted(set(found) - set(inner))


def test_consumer_installs_offline_from_the_tarball_and_the_index(published: tuple[Path, Outcome]) -> None:
    dist, _ = published
    (tarball,) = dist.glob("wheelhouse-*.tar.gz")
    with offline_container("consumer") as name:
        sh(["docker", "exec", name, "mkdir", "/in"])
        for path in (tarball, dist / "SHA256SUMS", dist / "simple"):
            sh(["docker", "cp", str(path), f"{name}:/in/"])
        script = (
            "set -e; cd /in; sha256sum -c --ignore-missing SHA256SUMS; tar xzf wheelhouse-*.tar.gz; "
            "python3 -m venv /a; /a/bin/pip install -q --no-index --find-links wheelhouse --require-hashes "
            "-r wheelhouse/requirements.txt; "
            "/a/bin/python -c 'import psycopg2; print(\"tarball\", psycopg2.__version__)'; "
            "python3 -m venv /b; /b/bin/pip install -q --index-url file:///in/simple example-service==0.1.0; "
            "/b/bin/python -c 'import psycopg2, example_service; print(\"index\", psycopg2.__version__)'"
        )
        out = sh(["docker", "exec", name, "sh", "-c", script]).output
    assert f"{tarball.name}: OK" in out
    assert "tarball 2.9.13" in out
    assert "index 2.9.13" in out


def test_image_archive_loads_and_verifies(
    wheelbarrow: Runner, example_build: Build, published: tuple[Path, Outcome]
) -> None:
    dist, _ = published
    image_id = json.loads((dist / "image-example-service-0.1.0.json").read_text())["id"]
    sh(["docker", "rmi", "-f", TAG])
    loaded = sh(["docker", "load", "-i", str(dist / "image-example-service-0.1.0.tar")])
    assert TAG in loaded.output
    assert sh(["docker", "image", "inspect", "--format", "{{.Id}}", TAG]).output.strip() == image_id
    out = wheelbarrow("verify", "--project", str(example_build.project))
    assert out.returncode == 0, out.output[-3000:]
    assert "all 13 checks passed" in out.output


def test_push_to_a_local_registry(
    wheelbarrow: Runner, example_build: Build, example_image: BuiltImage, registry: str, tmp_path: Path
) -> None:
    ref = f"{registry}/example-service:0.1.0"
    out = wheelbarrow(
        "publish", "--project", str(example_build.project), "--dist-dir", str(tmp_path / "dist"), "--push", ref
    )
    assert out.returncode == 0, out.output[-3000:]
    image = json.loads((tmp_path / "dist" / "image-example-service-0.1.0.json").read_text())
    assert image["pushed"].startswith(f"{ref}@sha256:")
    with urllib.request.urlopen(f"http://{registry}/v2/example-service/tags/list") as response:
        assert json.loads(response.read())["tags"] == ["0.1.0"]
    sh(["docker", "rmi", ref])
