"""wheelbarrow's speed, measured side by side in one run on this machine.

Run from the repository root with wheelbarrow and its tools installed
(`.nox/tests/bin/python bench/benchmark.py`; results go in docs/benchmarks.md):

1. a cold `wheelbarrow build` of the example service (empty cache, base images
   present) next to compiling and repairing psycopg2 by hand (pip wheel +
   auditwheel repair) and to plain cibuildwheel, on the same sdist and builder;
2. a no-op `wheelbarrow build` (target: at most 2 s);
3. an edit to the example service's code, then a new verified image, three times, each printed
   (target: a median of at most 5 s);
4. two sdists (psycopg2 and MarkupSafe) built with --jobs 2 vs --jobs 1;
5. image sizes, by running bench/image_sizes.py.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "service"
TWO = ROOT / "tests" / "projects" / "two-sdists"
EDITS = 3  # edit -> image is measured this many times; the median is compared with the target


def timed(argv: list[str], **kwargs: object) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return time.monotonic() - start


def wheelbarrow(project: Path, cache: Path, *args: str) -> float:
    cmd = args[0] if args else "build"
    return timed(
        [
            sys.executable,
            "-m",
            "wheelbarrow",
            cmd,
            "--project",
            str(project),
            "--cache-dir",
            str(cache),
            "-q",
            *args[1:],
        ]
    )


def copy(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("wheelhouse", ".nox", "__pycache__"))
    return dest


def manifest(project: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((project / "wheelhouse" / "manifest.json").read_text())
    return data


def in_builder(builder: str, sdist: Path, script: str) -> float:
    name = f"wheelbarrow-bench-{os.getpid()}"
    subprocess.run(
        ["docker", "create", "--name", name, "--network", "none", "--entrypoint", "sleep", builder, "infinity"],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
        subprocess.run(["docker", "cp", str(sdist), f"{name}:/tmp/{sdist.name}"], check=True, capture_output=True)
        return timed(["docker", "exec", name, "sh", "-c", script])
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)


def by_hand(builder: str, sdist: Path) -> float:
    script = (
        "set -e; cd /tmp; /opt/python/cp311-cp311/bin/pip wheel -q --no-deps --no-index "
        f"--find-links /wheelbarrow/wheels -w raw /tmp/{sdist.name}; auditwheel repair -w repaired raw/*.whl"
    )
    return in_builder(builder, sdist, script)


def plain_cibuildwheel(builder: str, sdist: Path, out: Path) -> float:
    env = {
        **os.environ,
        "CIBW_BUILD": "cp311-manylinux_x86_64",
        "CIBW_MANYLINUX_X86_64_IMAGE": builder,
        "CIBW_CONTAINER_ENGINE": "docker; create_args: --network none",
        "CIBW_ENVIRONMENT_LINUX": "PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelbarrow/wheels",
        "CIBW_BUILD_FRONTEND": "build",
    }
    cibuildwheel = Path(sys.executable).parent / "cibuildwheel"
    return timed([str(cibuildwheel), "--platform", "linux", "--output-dir", str(out), str(sdist)], env=env)


def main() -> None:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wheelbarrow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        service = copy(EXAMPLE, tmp / "service")
        results["cold build_wheels"] = wheelbarrow(service, tmp / "cache")
        builder = str(manifest(service)["builder"]["image"])  # type: ignore[index]
        (sdist,) = (tmp / "cache").glob("artifacts/*/psycopg2-2.9.13.tar.gz")
        results["psycopg2 by hand (pip wheel + auditwheel)"] = by_hand(builder, sdist)
        results["psycopg2 with plain cibuildwheel"] = plain_cibuildwheel(builder, sdist, tmp / "plain")
        results["no-op build_wheels"] = wheelbarrow(service, tmp / "cache")
        wheelbarrow(service, tmp / "cache", "image")
        app = service / "src" / "example_service" / "app.py"
        edits = []
        for n in range(EDITS):
            app.write_text(app.read_text() + f"\n# edit {n}\n")
            start = time.monotonic()
            wheelbarrow(service, tmp / "cache")
            wheelbarrow(service, tmp / "cache", "image")
            edits.append(time.monotonic() - start)
        print("edits -> new verified image: " + ", ".join(f"{s:.2f} s" for s in edits))
        results["edit -> image, median of 3"] = statistics.median(edits)
        two = copy(TWO, tmp / "two")
        wheelbarrow(two, tmp / "warm")  # fetches and builder image, so the two runs below only build
        for jobs in ("1", "2"):
            cache = tmp / f"jobs{jobs}"
            cache.mkdir()
            for section in ("artifacts", "memo"):
                shutil.copytree(tmp / "warm" / section, cache / section)
            results[f"two sdists, --jobs {jobs}"] = wheelbarrow(two, cache, "build", "--jobs", jobs)
    hand = results["psycopg2 by hand (pip wheel + auditwheel)"]
    print(f"machine: {os.cpu_count()} cores")
    for label, seconds in results.items():
        print(f"{label:<45} {seconds:7.2f} s")
    ratios = {
        "cold build_wheels / by hand": results["cold build_wheels"] / hand,
        "cold build_wheels / plain cibuildwheel": results["cold build_wheels"]
        / results["psycopg2 with plain cibuildwheel"],
        "plain cibuildwheel / by hand": results["psycopg2 with plain cibuildwheel"] / hand,
        "--jobs 2 / --jobs 1": results["two sdists, --jobs 2"] / results["two sdists, --jobs 1"],
    }
    for label, ratio in ratios.items():
        print(f"{label:<45} {ratio:7.2f}x")
    print(f"no-op target (<= 2 s): {'met' if results['no-op build_wheels'] <= 2 else 'NOT met'}")
    print(f"edit -> image target (<= 5 s): {'met' if results['edit -> image, median of 3'] <= 5 else 'NOT met'}")
    sys.stdout.flush()
    subprocess.run([sys.executable, str(Path(__file__).with_name("image_sizes.py"))], check=True)


if __name__ == "__main__":
    main()
