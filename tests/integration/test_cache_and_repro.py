"""Cache, parallel builds and reproducibility, on real builds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import EXAMPLE, PROJECTS, Outcome, Runner, copy_project, sh
from wheelbarrow._guard import MARKER


def tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def cold(wheelbarrow: Runner, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Outcome]:
    """One cold build (empty cache) of a copy of the example service."""
    root = tmp_path_factory.mktemp("cold")
    project = copy_project(EXAMPLE, root / "service")
    out = wheelbarrow("build", "--project", str(project), "--cache-dir", str(root / "cache"))
    assert out.returncode == 0, out.output[-4000:]
    return project, root / "cache", out


def test_two_cold_builds_are_byte_identical(
    wheelbarrow: Runner, cold: tuple[Path, Path, Outcome], tmp_path: Path
) -> None:
    first, _, out = cold
    assert "2 built, 0 from the cache" in out.output
    second = copy_project(EXAMPLE, tmp_path / "service")
    again = wheelbarrow("build", "--project", str(second), "--cache-dir", str(tmp_path / "cache"))
    assert again.returncode == 0, again.output[-4000:]
    assert "2 built, 0 from the cache" in again.output
    assert tree(first / "wheelhouse") == tree(second / "wheelhouse")  # wheels, requirements.txt, manifest.json


def test_noop_build_rebuilds_nothing(wheelbarrow: Runner, cold: tuple[Path, Path, Outcome]) -> None:
    project, cache, _ = cold
    before = tree(project / "wheelhouse")
    out = wheelbarrow("build", "--project", str(project), "--cache-dir", str(cache), "--json")
    assert out.returncode == 0, out.output[-4000:]
    assert "0 built, 2 from the cache" in out.output
    assert "(unchanged)" in out.output
    assert "cibuildwheel" not in out.output.split("==> build + repair")[1]
    assert tree(project / "wheelhouse") == before
    summary = json.loads(out.output[out.output.index("{\n") :])
    origins = {w["wheel"].split("-")[0]: w["origin"] for w in summary["wheels"]}
    assert origins == {"example_service": "cache", "gunicorn": "index", "packaging": "index", "psycopg2": "cache"}


def test_an_app_edit_rebuilds_only_the_project(wheelbarrow: Runner, cold: tuple[Path, Path, Outcome]) -> None:
    project, cache, _ = cold
    before = tree(project / "wheelhouse")
    app = project / "src" / "example_service" / "app.py"
    app.write_text(app.read_text() + "\n# an edit\n")
    out = wheelbarrow("build", "--project", str(project), "--cache-dir", str(cache))
    assert out.returncode == 0, out.output[-4000:]
    assert "1 built, 1 from the cache" in out.output
    assert "psycopg2-2.9.13.tar.gz: up to date in the cache" in out.output
    after = tree(project / "wheelhouse")
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == ["example_service-0.1.0-py3-none-any.whl", "manifest.json", "requirements.txt"]


def test_a_corrupt_cache_entry_is_rebuilt_not_used(wheelbarrow: Runner, cold: tuple[Path, Path, Outcome]) -> None:
    project, cache, _ = cold
    before = tree(project / "wheelhouse")
    (cached,) = cache.glob("wheels/*/psycopg2-*.whl")
    cached.write_bytes(cached.read_bytes()[:-64] + b"\0" * 64)
    out = wheelbarrow("build", "--project", str(project), "--cache-dir", str(cache))
    assert out.returncode == 0, out.output[-4000:]
    assert "does not match its sha256; discarding it and building again" in out.output
    assert "[psycopg2] building psycopg2-2.9.13.tar.gz" in out.output
    assert tree(project / "wheelhouse") == before  # rebuilt byte for byte


def test_two_sdists_build_in_parallel(wheelbarrow: Runner, tmp_path: Path) -> None:
    project = copy_project(PROJECTS / "two-sdists", tmp_path / "two")
    out = wheelbarrow("build", "--project", str(project), "--cache-dir", str(tmp_path / "cache"), "--jobs", "2")
    assert out.returncode == 0, out.output[-4000:]
    assert "building 3 wheel(s), 2 at a time" in out.output
    assert "[psycopg2] " in out.output
    assert "[markupsafe] " in out.output
    names = sorted(p.name.split("-")[0] for p in (project / "wheelhouse").glob("*.whl"))
    assert names == ["markupsafe", "psycopg2", "two_sdists"]
    (markupsafe,) = (project / "wheelhouse").glob("markupsafe-*.whl")
    assert "manylinux" in markupsafe.name


def test_cache_info_and_prune(wheelbarrow: Runner, cold: tuple[Path, Path, Outcome], tmp_path: Path) -> None:
    project, cache, _ = cold
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    info = wheelbarrow("cache", "info", "--project", str(project), "--cache-dir", str(copy), "--json")
    sections = json.loads(info.output[info.output.index("{") :])["sections"]
    assert sections["wheels"]["entries"] >= 2
    assert sections["artifacts"]["entries"] >= 3
    pruned = wheelbarrow("cache", "prune", "--older-than", "0", "--project", str(project), "--cache-dir", str(copy))
    assert pruned.returncode == 0
    assert "removed" in pruned.output
    assert not any(p for section in copy.iterdir() if section.is_dir() for p in section.iterdir())
    assert (copy / MARKER).is_file()  # still wheelbarrow's cache


def test_runtime_image_is_reproducible(wheelbarrow: Runner, cold: tuple[Path, Path, Outcome]) -> None:
    """Two BuildKit builds with no build cache give the same image id; the legacy builder the same layers."""
    project, cache, _ = cold
    digest = "find /opt/venv -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum"
    ids, layers, digests = [], [], []
    for n, builder in enumerate(("buildkit", "buildkit", "legacy")):
        tag = f"example-service:repro-{builder}-{n}"
        sh(["docker", "builder", "prune", "--all", "--force"])
        out = wheelbarrow(
            "image",
            "--project",
            str(project),
            "--cache-dir",
            str(cache),
            "--image-tag",
            tag,
            "-C",
            f"image-builder={builder}",
        )
        assert out.returncode == 0, out.output[-4000:]
        assert " CACHED" not in out.output  # every step ran again
        ids.append(sh(["docker", "image", "inspect", "--format", "{{.Id}}", tag]).output.strip())
        layers.append(sh(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", tag]).output)
        digests.append(sh(["docker", "run", "--rm", "--network", "none", tag, "sh", "-c", digest]).output)
        sh(["docker", "rmi", tag])
    assert ids[0] == ids[1]
    assert ids[2] != ids[0]  # the legacy builder dates the image with the time of the build
    assert layers[0] == layers[1] == layers[2]
    assert digests[0] == digests[1] == digests[2]
