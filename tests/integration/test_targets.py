"""Several targets from one lock, for real: CPython 3.11 (Debian bookworm bases) and 3.13 (trixie bases)
built, imaged and verified in one run of examples/multi-target, then each image talks to a real PostgreSQL.
The aarch64 target, under QEMU, is in test_emulated.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.integration.conftest import REPO, Postgres, Runner, copy_project, sh

MULTI = REPO / "examples" / "multi-target"
TWO = "cp311-x86_64,cp313-x86_64"


def health(image: str, dsn: str, *, platform: str = "") -> dict[str, object]:
    """The example's WSGI app answering GET /health inside ``image`` (host network, the real database)."""
    code = (
        "import json; from example_multi import app\n"
        "out = app({'PATH_INFO': '/health', 'REQUEST_METHOD': 'GET'}, lambda status, headers: None)\n"
        "print(b''.join(out).decode())"
    )
    argv = ["docker", "run", "--rm", "--network", "host", "-e", f"DATABASE_URL={dsn}"]
    argv += ["--platform", platform] if platform else []
    answer = sh([*argv, "--entrypoint", "/opt/venv/bin/python", image, "-c", code]).output.strip()
    parsed: dict[str, object] = json.loads(answer.splitlines()[-1])
    return parsed


def test_two_cpythons_from_one_lock_in_one_run(wheelbarrow: Runner, postgres: Postgres, tmp_path: Path) -> None:
    project = copy_project(MULTI, tmp_path / "multi")
    built = wheelbarrow("build", "--project", str(project), "--targets", TWO)
    assert built.returncode == 0, built.output[-4000:]
    root = project / "wheelhouse"
    index = json.loads((root / "targets.json").read_text(encoding="utf-8"))
    assert [(t["target"], t["python"]) for t in index["targets"]] == [
        ("cp311-x86_64", "3.11"),
        ("cp313-x86_64", "3.13"),
    ]
    tags = {}
    for entry in index["targets"]:
        wheelhouse = root / entry["wheelhouse"]
        manifest = json.loads((wheelhouse / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["target"]["python"] == entry["python"]
        assert sh(["sha256sum", str(wheelhouse / "requirements.txt")]).output.split()[0] == entry["requirements_sha256"]
        (psycopg2,) = [w for w in manifest["wheels"] if w["name"] == "psycopg2"]
        assert psycopg2["origin"] == "built"
        tags[entry["target"]] = psycopg2["platform_tag"]
        assert psycopg2["file"].startswith(f"psycopg2-2.9.13-{entry['target'][:5]}-{entry['target'][:5]}-")
    # Each target's wheel is repaired for its own base: trixie's glibc 2.41 makes psycopg2 need 2.38.
    assert tags == {"cp311-x86_64": "manylinux_2_34_x86_64", "cp313-x86_64": "manylinux_2_38_x86_64"}

    imaged = wheelbarrow("image", "--project", str(project), "--targets", TWO, "--json")
    assert imaged.returncode == 0, imaged.output[-4000:]
    report = json.loads(imaged.output[imaged.output.index("\n{\n") :])  # stdout, after the log lines
    images = {t["target"]: t["image"] for t in report["targets"]}
    assert images == {t: f"example-multi:0.1.0-{t}" for t in ("cp311-x86_64", "cp313-x86_64")}
    assert all(all(c["ok"] for c in t["checks"]) for t in report["targets"])
    for target, image in images.items():
        answer = health(image, postgres.dsn)
        assert answer["python"] == {"cp311-x86_64": "3.11", "cp313-x86_64": "3.13"}[target]
        assert answer["machine"] == "x86_64"
        assert answer["database"] is True, answer

    # Distroless on both: the closure of bookworm's CPython 3.11 and of trixie's 3.13 (another suite,
    # another stdlib folder, t64 library packages), each serving against PostgreSQL with no shell.
    lean = ("--runtime-style", "distroless", "--image-tag", "example-multi:0.1.0-distroless")
    distroless = wheelbarrow("image", "--project", str(project), "--targets", TWO, *lean)
    assert distroless.returncode == 0, distroless.output[-4000:]
    assert distroless.output.count("all 14 checks passed") == 2
    for target in ("cp311-x86_64", "cp313-x86_64"):
        shell_less = f"example-multi:0.1.0-distroless-{target}"
        try:
            answer = health(shell_less, postgres.dsn)
            assert (answer["python"], answer["database"]) == (target[2] + "." + target[3:5], True), answer
            assert sh(["docker", "run", "--rm", "--entrypoint", "sh", shell_less], check=False).returncode != 0
        finally:
            sh(["docker", "rmi", "-f", shell_less], check=False)

    again = wheelbarrow("build", "--project", str(project), "--targets", TWO)
    assert again.returncode == 0, again.output[-3000:]
    assert f"wheelhouse {root.resolve()}: unchanged" in again.output

    published = wheelbarrow("publish", "--project", str(project), "--targets", TWO)
    assert published.returncode == 0, published.output[-3000:]
    for target in ("cp311-x86_64", "cp313-x86_64"):
        dist = project / "dist" / target
        check = sh(["bash", "-c", f"cd {dist} && sha256sum -c SHA256SUMS"])
        assert check.output.count(": OK") >= 4, check.output
        assert (dist / f"image-example-multi-0.1.0-{target}.tar").is_file()


def test_one_target_then_several_replaces_only_wheelbarrows_wheelhouse(wheelbarrow: Runner, tmp_path: Path) -> None:
    """A project that moves from one target to several: the single-target wheelhouse wheelbarrow wrote
    becomes a folder of targets; a folder in it wheelbarrow did not write is refused and kept; a target
    dropped from the list leaves it."""
    project = copy_project(MULTI, tmp_path / "multi")
    single = wheelbarrow("build", "--project", str(project), "--targets", "", "--python", "3.11")
    assert single.returncode == 0, single.output[-3000:]
    root = project / "wheelhouse"
    assert (root / "manifest.json").is_file()
    several = wheelbarrow("build", "--project", str(project), "--targets", TWO)
    assert several.returncode == 0, several.output[-3000:]
    assert not (root / "manifest.json").exists()
    assert {p.name for p in root.iterdir() if p.is_dir()} == {"cp311-x86_64", "cp313-x86_64"}
    (root / "cp39-x86_64").mkdir()  # named like a target, but not wheelbarrow's: refused, kept
    (root / "cp39-x86_64" / "notes.txt").write_text("mine", encoding="utf-8")
    refused = wheelbarrow("build", "--project", str(project), "--targets", "cp313-x86_64")
    assert refused.returncode == 2, refused.output[-3000:]
    assert "also holds what wheelbarrow did not write there: cp39-x86_64" in refused.output
    assert (root / "cp39-x86_64" / "notes.txt").read_text(encoding="utf-8") == "mine"
    shutil.rmtree(root / "cp39-x86_64")
    fewer = wheelbarrow("build", "--project", str(project), "--targets", "cp313-x86_64")
    assert fewer.returncode == 0, fewer.output[-3000:]
    assert {p.name for p in root.iterdir() if p.is_dir()} == {"cp313-x86_64"}
    index = json.loads((root / "targets.json").read_text(encoding="utf-8"))
    assert [t["target"] for t in index["targets"]] == ["cp313-x86_64"]
