"""The corpus services (tests/projects/corpus-*), timed cold and warm through build, image and publish.

Run from the repository root with wheelbarrow and its tools installed
(`.nox/tests/bin/python bench/corpus.py`; results go in docs/benchmarks.md).

For each service: its lock is made as the integration test makes it (uv.lock with the real uv, the others
are committed); then `build`, `image` (which verifies) and `publish` run
  cold: an empty cache and no builder image of the project (the base images, and a runtime base with the
        project's runtime-packages, are present);
  warm: the same three commands again, nothing changed.
It prints, per service, the packages in its lock, the wheels in its wheelhouse, those built from source,
the image's size, both times and their ratio. One run; a measurement, not a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from benchmark import copy, wheelbarrow  # bench/ is this script's folder, so it is on sys.path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((ROOT / "tests" / "projects").glob("corpus-*"))


def locked_packages(project: Path) -> int:
    for name in ("poetry.lock", "uv.lock"):
        if (project / name).is_file():
            packages = tomllib.loads((project / name).read_text(encoding="utf-8"))["package"]
            return sum(1 for p in packages if p.get("source", {}).get("editable") != ".")  # uv lists the project
    lines = (project / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if "==" in line and not line.lstrip().startswith("#"))


def forget_builders(name: str) -> None:
    listed = subprocess.run(
        ["docker", "images", "localhost/wheelbarrow/builder", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    mine = [ref for ref in listed if ref.split(":", 1)[1].startswith(f"{name}-")]
    if mine:
        subprocess.run(["docker", "rmi", "-f", *mine], capture_output=True, check=True)


def run_all(project: Path, cache: Path, tag: str) -> float:
    start = time.monotonic()
    wheelbarrow(project, cache)
    wheelbarrow(project, cache, "image", "--image-tag", tag)
    wheelbarrow(project, cache, "publish", "--image-tag", tag)
    return time.monotonic() - start


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="wheelbarrow-bench-corpus-") as tmp_name:
        tmp = Path(tmp_name)
        for source in CORPUS:
            project = copy(source, tmp / source.name)
            if not any((project / n).is_file() for n in ("poetry.lock", "requirements.txt")):
                uv = Path(sys.executable).with_name("uv")
                subprocess.run([str(uv), "--directory", str(project), "lock", "-q"], check=True)
            tag = f"{source.name}:bench"
            forget_builders(source.name)
            cold = run_all(project, tmp / f"cache-{source.name}", tag)
            warm = run_all(project, tmp / f"cache-{source.name}", tag)
            wheels = json.loads((project / "wheelhouse" / "manifest.json").read_text())["wheels"]
            size = subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True, check=True
            ).stdout
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
            built = sorted(w["name"] for w in wheels if w["origin"] == "built")
            rows.append((source.name, locked_packages(project), len(wheels), built, int(size) / 1e6, cold, warm))
    heads = ("locked", "wheels", "image MB", "cold s", "warm s", "warm/cold")
    print(f"{'service':<17} " + " ".join(f"{h:>9}" for h in heads) + "  built")
    for name, locked, count, built, megabytes, cold, warm in rows:
        print(
            f"{name:<17} {locked:>9} {count:>9} {megabytes:>9.0f} {cold:>9.1f} {warm:>9.1f} {warm / cold:>9.2f}  "
            + ", ".join(built)
        )


if __name__ == "__main__":
    main()
