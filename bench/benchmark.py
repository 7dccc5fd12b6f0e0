"""wheelbarrow's speed, measured side by side in one run on this machine.

Run from the repository root with wheelbarrow and its tools installed
(`.nox/tests/bin/python bench/benchmark.py`; results go in docs/benchmarks.md):

1. a cold `wheelbarrow build` of the example service (empty cache, base and builder images present)
   next to the floor, compiling and repairing psycopg2 by hand (pip wheel + auditwheel repair) in the
   ready builder, to plain cibuildwheel in that builder, and to cibuildwheel as its users configure it
   (the builder *base*, `before-all` installing libpq-dev every run: bench/peers.py);
2. lock -> verified image, cold (empty cache: build then image), next to the tutorial's Dockerfile and a
   multi-stage Dockerfile, each `docker build --no-cache` (bench/peers.py);
3. a no-op `wheelbarrow build`;
4. an edit to the example service's code, then a new verified image, three times (median), next to each
   Dockerfile's rebuild after the same edit with its layer cache;
5. two sdists (psycopg2 and MarkupSafe) built with --jobs 2 vs --jobs 1, each build's own time, and the
   best --jobs 2 could do (the longest build plus what is not building);
6. one locked package bumped (tests/projects/uv-app's six, locked again with uv), then a verified image;
7. a no-op build of the largest corpus project (tests/projects/corpus-poetry, 62 locked packages);
8. image sizes, by running bench/image_sizes.py.

The cold build runs with --json and prints each stage's share of its time.

It ends with one JSON object (seconds and ratios) for other tools to read.
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
LARGE = ROOT / "tests" / "projects" / "corpus-poetry"
BUMP = ROOT / "tests" / "projects" / "uv-app"  # six 1.16.0, bumped to 1.17.0 and locked again with uv
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


def wheelbarrow_json(project: Path, cache: Path, *args: str) -> tuple[float, dict[str, object]]:
    """A command run with --json: its seconds and what it printed (stage timings, wall, each wheel's build)."""
    cmd = args[0] if args else "build"
    argv = [sys.executable, "-m", "wheelbarrow", cmd, "--project", str(project), "--cache-dir", str(cache)]
    start = time.monotonic()
    proc = subprocess.run([*argv, "--json", *args[1:]], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    payload: dict[str, object] = json.loads(proc.stdout)
    return time.monotonic() - start, payload


def shares(label: str, seconds: float, payload: dict[str, object]) -> None:
    """Where a run's time went: each stage's seconds and share of the command's own time."""
    timings, wall = payload["timings"], payload["wall"]
    assert isinstance(timings, dict)
    assert isinstance(wall, float)
    parts = ", ".join(f"{name} {t:.1f} s ({t / seconds:.0%})" for name, t in timings.items() if t >= 0.05)
    print(
        f"{label}: {seconds:.2f} s; stages: {parts}; outside the stages (start, imports, end): {seconds - wall:.2f} s"
    )


def build_seconds(payload: dict[str, object]) -> dict[str, float]:
    wheels = payload["wheels"]
    assert isinstance(wheels, list)
    return {str(w["wheel"]).split("-")[0]: float(w["build_seconds"]) for w in wheels if w["build_seconds"]}


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


def main() -> None:  # noqa: PLR0915 - one measurement after another, in the order they are printed
    import peers  # noqa: PLC0415 - bench/ is on sys.path when this script runs

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wheelbarrow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        service = copy(EXAMPLE, tmp / "service")
        results["cold build_wheels"], cold_json = wheelbarrow_json(service, tmp / "cache")
        shares("cold build_wheels", results["cold build_wheels"], cold_json)
        builder = str(manifest(service)["builder"]["image"])  # type: ignore[index]
        builder_base = str(manifest(service)["builder"]["base"])  # type: ignore[index]
        runtime_base = str(manifest(service)["runtime_base"]["image"])  # type: ignore[index]
        (sdist,) = (tmp / "cache").glob("artifacts/*/psycopg2-2.9.13.tar.gz")
        results["psycopg2 by hand (pip wheel + auditwheel)"] = by_hand(builder, sdist)
        results["psycopg2 with plain cibuildwheel"] = plain_cibuildwheel(builder, sdist, tmp / "plain")
        results["psycopg2 with cibuildwheel as used"] = peers.cibuildwheel_as_used(sdist, builder_base, tmp / "cibw")
        results["no-op build_wheels"] = wheelbarrow(service, tmp / "cache")
        cold_image = copy(EXAMPLE, tmp / "cold-image")
        start = time.monotonic()
        wheelbarrow(cold_image, tmp / "cold-image-cache")
        wheelbarrow(cold_image, tmp / "cold-image-cache", "image")
        results["lock -> verified image, cold"] = time.monotonic() - start
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
        for name, text in (("tutorial", peers.TUTORIAL), ("multistage", peers.MULTISTAGE)):
            measured = peers.dockerfile_peer(EXAMPLE, tmp, name, text, runtime_base)
            results[f"{name} Dockerfile, cold (--no-cache)"] = measured["cold"]
            results[f"{name} Dockerfile, after an app edit"] = measured["edit"]
            print(f"{name} Dockerfile image: {measured['size_mb']:.0f} MB")
        two = copy(TWO, tmp / "two")
        wheelbarrow(two, tmp / "warm")  # fetches and builder image, so the two runs below only build
        for jobs in ("1", "2"):
            cache = tmp / f"jobs{jobs}"
            cache.mkdir()
            for section in ("artifacts", "memo"):
                shutil.copytree(tmp / "warm" / section, cache / section)
            results[f"two sdists, --jobs {jobs}"], two_json = wheelbarrow_json(two, cache, "build", "--jobs", jobs)
            each = build_seconds(two_json)
            print(f"--jobs {jobs}: " + ", ".join(f"{name} built in {t:.1f} s" for name, t in each.items()))
            if jobs == "1":  # --jobs 2 can at best take the longest build's time, plus what is not building
                longest, serial = max(each.values()), results["two sdists, --jobs 1"]
                results["two sdists, --jobs 2 at best"] = serial - sum(each.values()) + longest
        bumped = copy(BUMP, tmp / "bump")
        uv = [str(Path(sys.executable).with_name("uv")), "--directory", str(bumped)]
        subprocess.run([*uv, "lock", "-q"], check=True)
        wheelbarrow(bumped, tmp / "bump-cache")
        wheelbarrow(bumped, tmp / "bump-cache", "image")
        pyproject = bumped / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('"six==1.16.0"', '"six==1.17.0"'))
        subprocess.run([*uv, "lock", "-q"], check=True)  # the user's own step: not timed
        start = time.monotonic()
        wheelbarrow(bumped, tmp / "bump-cache")
        wheelbarrow(bumped, tmp / "bump-cache", "image")
        results["one locked package bumped -> verified image"] = time.monotonic() - start
        large = copy(LARGE, tmp / "large")
        wheelbarrow(large, tmp / "large-cache")
        results["corpus-poetry (62 locked) no-op build"] = wheelbarrow(large, tmp / "large-cache")
    floor = results["psycopg2 by hand (pip wheel + auditwheel)"]
    print(f"machine: {os.cpu_count()} cores")
    for label, seconds in results.items():
        print(f"{label:<50} {seconds:7.2f} s")
    cold, image = results["cold build_wheels"], results["lock -> verified image, cold"]
    edit = results["edit -> image, median of 3"]
    ratios = {
        "cold_vs_floor": cold / floor,
        "cold_vs_plain_cibuildwheel": cold / results["psycopg2 with plain cibuildwheel"],
        "cold_vs_cibuildwheel_as_used": cold / results["psycopg2 with cibuildwheel as used"],
        "cold_image_vs_tutorial": image / results["tutorial Dockerfile, cold (--no-cache)"],
        "cold_image_vs_multistage": image / results["multistage Dockerfile, cold (--no-cache)"],
        "edit_vs_multistage": edit / results["multistage Dockerfile, after an app edit"],
        "edit_vs_tutorial": edit / results["tutorial Dockerfile, after an app edit"],
        "jobs2_vs_jobs1": results["two sdists, --jobs 2"] / results["two sdists, --jobs 1"],
        "jobs2_best_vs_jobs1": results["two sdists, --jobs 2 at best"] / results["two sdists, --jobs 1"],
    }
    for label, ratio in ratios.items():
        print(f"{label:<50} {ratio:7.2f}x")
    summary = {
        **{k: round(v, 3) for k, v in ratios.items()},
        "floor_s": round(floor, 2),
        "cold_s": round(cold, 2),
        "cold_image_s": round(image, 2),
        "noop_s": round(results["no-op build_wheels"], 3),
        "edit_to_image_s": round(edit, 2),
        "large_noop_s": round(results["corpus-poetry (62 locked) no-op build"], 3),
        "bump_to_image_s": round(results["one locked package bumped -> verified image"], 2),
    }
    sys.stdout.flush()
    subprocess.run([sys.executable, str(Path(__file__).with_name("image_sizes.py"))], check=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
