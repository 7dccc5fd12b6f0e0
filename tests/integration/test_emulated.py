"""The aarch64 target on this x86_64 machine, under QEMU's user emulation: its bases bootstrapped for
arm64, psycopg2 compiled and repaired in an arm64 builder, the arm64 image built and verified, the
service in it talking to a real PostgreSQL (and its distroless image, made in the arm64 base); then one
multi-platform index over the x86_64 and aarch64
images of CPython 3.11, pushed to a local registry, each platform pulled back by digest and verified.
About ten times slower than native (minutes): marked ``emulated`` so a quick local run can leave it
out (``-m "not emulated"``); CI runs it every time."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from tests.integration.conftest import Postgres, Runner, copy_project, sh
from tests.integration.test_targets import MULTI, health

pytestmark = pytest.mark.emulated
BOTH = "cp311-x86_64,cp311-aarch64"
#: Its own image tag: this tier runs beside the others, which build examples/multi-target's images too.
TAG = ("--image-tag", "example-multi-emulated:0.1.0")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="emulates aarch64 on an x86_64 machine")
def test_the_aarch64_target_builds_images_serves_and_joins_a_multi_platform_index(
    wheelbarrow: Runner, postgres: Postgres, registry: str, tmp_path: Path
) -> None:
    project = copy_project(MULTI, tmp_path / "multi")
    built = wheelbarrow("build", "--project", str(project), "--targets", BOTH)
    assert built.returncode == 0, built.output[-5000:]
    wheelhouse = project / "wheelhouse" / "cp311-aarch64"
    manifest = json.loads((wheelhouse / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["target"]["machine"] == "aarch64"
    (psycopg2,) = [w for w in manifest["wheels"] if w["name"] == "psycopg2"]
    assert psycopg2["origin"] == "built"
    assert psycopg2["file"].endswith("_aarch64.whl"), psycopg2
    assert any(g.startswith("libpq") for g in psycopg2["grafted_libraries"]), psycopg2

    imaged = wheelbarrow("image", "--project", str(project), "--targets", BOTH, *TAG)
    assert imaged.returncode == 0, imaged.output[-5000:]
    image = "example-multi-emulated:0.1.0-cp311-aarch64"
    arch = sh(["docker", "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image]).output.strip()
    assert arch == "linux/arm64"
    answer = health(image, postgres.dsn, platform="linux/arm64")
    assert (answer["machine"], answer["python"], answer["database"]) == ("aarch64", "3.11", True), answer
    # the native target's base is not replaced by the arm64 one (an image store keeps one platform per name)
    native = "localhost/wheelbarrow/runtime-base:bookworm"
    assert sh(["docker", "image", "inspect", "--format", "{{.Architecture}}", native]).output.strip() == "amd64"
    # The distroless image of the same wheelhouse: its closure resolved in the arm64 base, under QEMU.
    lean = ("--runtime-style", "distroless", "--image-tag", "example-multi-emulated:0.1.0-distroless")
    distroless = wheelbarrow("image", "--project", str(project), "--targets", "cp311-aarch64", *lean)
    assert distroless.returncode == 0, distroless.output[-5000:]
    assert "all 14 checks passed" in distroless.output
    shell_less = "example-multi-emulated:0.1.0-distroless-cp311-aarch64"
    try:
        answer = health(shell_less, postgres.dsn, platform="linux/arm64")
        assert (answer["machine"], answer["python"], answer["database"]) == ("aarch64", "3.11", True), answer
        no_shell = sh(
            ["docker", "run", "--rm", "--platform", "linux/arm64", "--entrypoint", "sh", shell_less], check=False
        )
        assert no_shell.returncode != 0
    finally:
        sh(["docker", "rmi", "-f", shell_less], check=False)

    ref = f"{registry}/team/example-multi:0.1.0"
    published = wheelbarrow("publish", "--project", str(project), "--targets", BOTH, "--push", ref, *TAG)
    assert published.returncode == 0, published.output[-5000:]
    (index,) = json.loads((project / "dist" / "images.json").read_text(encoding="utf-8"))
    assert index["index"].startswith(f"{ref}-cp311@sha256:")
    assert set(index["platforms"]) == {"linux/amd64", "linux/arm64"}
    raw = sh(["docker", "buildx", "imagetools", "inspect", "--raw", f"{ref}-cp311"]).output
    served = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in json.loads(raw)["manifests"]
    }
    assert served == index["platforms"]
    assert published.output.count("pulled by digest, all") == 2
    for target in ("cp311-x86_64", "cp311-aarch64"):
        assert (project / "dist" / target / f"image-example-multi-0.1.0-{target}.tar").is_file()
