"""Cold `wheelbarrow build` of the example service next to compiling and repairing psycopg2 by hand.

Run from the repository root, with wheelbarrow and its tools installed
(e.g. `.nox/tests/bin/python bench/cold_build.py`). It measures, in one run
on this machine:

1. `wheelbarrow build` from nothing: no wheelbarrow images, empty cache
   (includes the Debian bootstrap); skipped with --keep-images;
2. `wheelbarrow build` with the base images present but an empty cache;
3. the raw work: `pip wheel` of the psycopg2 sdist plus `auditwheel repair`,
   by hand, in the same builder image with the network off.

and prints the times and their ratios.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = (
    "wheelbarrow/builder:example-service",
    "wheelbarrow/builder-base:bookworm",
    "wheelbarrow/runtime-base:bookworm",
    "wheelbarrow/debian:bookworm",
)
BUILDER = IMAGES[0]


def timed(argv: list[str], **kwargs: object) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
    return time.monotonic() - start


def build(tmp: Path, label: str) -> float:
    project = tmp / label
    shutil.copytree(ROOT / "examples" / "service", project, ignore=shutil.ignore_patterns("wheelhouse"))
    cache = tmp / f"cache-{label}"
    argv = [sys.executable, "-m", "wheelbarrow", "build", "--project", str(project), "-C", f"cache-dir={cache}"]
    return timed(argv)


def raw_psycopg2(tmp: Path) -> float:
    """pip wheel + auditwheel repair of the same sdist, by hand, in the same offline builder image."""
    sdist_dir = tmp / "sdist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary=:all:",
            "-d",
            str(sdist_dir),
            "psycopg2==2.9.13",
        ],
        check=True,
    )
    (sdist,) = sdist_dir.glob("*.tar.gz")
    name = "wheelbarrow-bench-raw"
    subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)
    subprocess.run(
        ["docker", "create", "--name", name, "--network", "none", "--entrypoint", "sleep", BUILDER, "infinity"],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
        subprocess.run(["docker", "cp", str(sdist), f"{name}:/tmp/{sdist.name}"], check=True)
        script = (
            "set -e; cd /tmp; /opt/python/cp311-cp311/bin/pip wheel -q --no-deps --no-index "
            f"--find-links /wheelbarrow/wheels -w raw /tmp/{sdist.name}; "
            "auditwheel repair -w repaired raw/*.whl >/dev/null 2>&1; ls repaired"
        )
        return timed(["docker", "exec", name, "sh", "-c", script])
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-images", action="store_true", help="skip the from-nothing run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wheelbarrow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        rows: list[tuple[str, float]] = []
        if not args.keep_images:
            subprocess.run(["docker", "rmi", "-f", *IMAGES], check=False, capture_output=True)
            rows.append(("wheelbarrow build, from nothing (bootstrap included)", build(tmp, "cold")))
        rows.append(("wheelbarrow build, base images present, empty cache", build(tmp, "images")))
        raw = raw_psycopg2(tmp)
        rows.append(("psycopg2 alone by hand: pip wheel + auditwheel repair", raw))
    width = max(len(label) for label, _ in rows)
    print(f"machine: {subprocess.run(['nproc'], capture_output=True, text=True, check=True).stdout.strip()} cores")
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:7.1f} s  {seconds / raw:5.1f}x raw")


if __name__ == "__main__":
    main()
