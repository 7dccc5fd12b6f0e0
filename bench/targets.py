"""Several targets, measured side by side in one run on this machine (results in docs/benchmarks.md).

Run from the repository root with wheelbarrow and its tools installed
(`.nox/tests/bin/python bench/targets.py`). Each build starts from an empty cache, with the base and
builder images already made (as bench/benchmark.py's cold build), on examples/multi-target:

1. one target, cp311-x86_64: build, then image (built and verified);
2. two targets in one run, cp311-x86_64 and cp313-x86_64: build, then image;
3. the aarch64 target, cp311-aarch64, under QEMU's user emulation: build, then image;
4. the shared build cache: a cold build of cp311-x86_64 that pushes to a local registry (cache-to),
   then, after its builder images are removed from the engine (as on a new machine with the same base),
   a build from an empty cache with cache-from: it fetches the builders and wheels and compiles nothing.

It prints two targets vs one, aarch64 under emulation vs native x86_64 and the warm-from-registry build
vs the cold one, and ends with one JSON object.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmark import copy, wheelbarrow  # bench/ is this script's folder, so it is on sys.path

ROOT = Path(__file__).resolve().parents[1]
MULTI = ROOT / "examples" / "multi-target"


def cold(targets: str, scratch: Path) -> tuple[float, float]:
    """(build, image) seconds for ``targets``, from an empty cache, in a fresh copy of the example."""
    name = targets.replace(",", "+")
    project = copy(MULTI, scratch / name / "project")
    cache = scratch / name / "cache"
    build = wheelbarrow(project, cache, "build", "--targets", targets)
    image = wheelbarrow(project, cache, "image", "--targets", targets)
    return build, image


def shared_cache(scratch: Path) -> tuple[float, float]:
    """(cold build pushing to the shared cache, build from an empty cache pulling from it) seconds."""
    root = scratch / "registry"
    root.mkdir(parents=True)
    port = 5000 + int(time.time()) % 1000
    (root / "registry.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    server = subprocess.Popen(["docker-registry", "serve", str(root / "registry.yml")], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        repo = f"127.0.0.1:{port}/bench/wheelbarrow-cache"
        first = copy(MULTI, scratch / "shared-a" / "project")
        cold = wheelbarrow(
            first, scratch / "shared-a" / "cache", "build", "--targets", "cp311-x86_64", "--cache-to", repo
        )
        manifest = json.loads((first / "wheelhouse" / "cp311-x86_64" / "manifest.json").read_text())
        builders = [manifest["builder"]["image"], manifest["builder"]["base"]]
        subprocess.run(["docker", "rmi", *builders], capture_output=True, check=True)  # as on a new machine
        second = copy(MULTI, scratch / "shared-b" / "project")
        warm = wheelbarrow(
            second, scratch / "shared-b" / "cache", "build", "--targets", "cp311-x86_64", "--cache-from", repo
        )
    finally:
        server.terminate()
        server.wait()
    return cold, warm


def main() -> None:
    if platform.machine() != "x86_64":
        sys.exit("bench/targets.py compares an emulated aarch64 target with native x86_64: run it on x86_64")
    with tempfile.TemporaryDirectory(prefix="wheelbarrow-bench-targets-") as tmp:
        scratch = Path(tmp)
        for warm in ("cp311-x86_64,cp313-x86_64", "cp311-aarch64"):
            cold(warm, scratch / "warm")  # bases and builders made once, outside the measures
        one = cold("cp311-x86_64", scratch)
        two = cold("cp311-x86_64,cp313-x86_64", scratch)
        arm = cold("cp311-aarch64", scratch)
        pushed, fetched = shared_cache(scratch)
    rows = [
        ("one target (cp311-x86_64)", one),
        ("two targets (cp311-x86_64, cp313-x86_64)", two),
        ("aarch64 under QEMU (cp311-aarch64)", arm),
    ]
    print(f"{'':44} {'build s':>8} {'image s':>8} {'total s':>8}")
    for label, (build, image) in rows:
        print(f"{label:44} {build:8.1f} {image:8.1f} {build + image:8.1f}")
    result = {
        "one_target_build_s": round(one[0], 1),
        "one_target_image_s": round(one[1], 1),
        "two_targets_build_s": round(two[0], 1),
        "two_targets_image_s": round(two[1], 1),
        "aarch64_build_s": round(arm[0], 1),
        "aarch64_image_s": round(arm[1], 1),
        "two_vs_one": round(sum(two) / sum(one), 2),
        "aarch64_vs_x86_64": round(sum(arm) / sum(one), 2),
        "aarch64_build_vs_x86_64": round(arm[0] / one[0], 2),
        "shared_cold_build_s": round(pushed, 1),
        "shared_warm_build_s": round(fetched, 1),
        "warm_from_registry_vs_cold": round(fetched / pushed, 2),
    }
    print(
        f"two targets vs one: {result['two_vs_one']}x; aarch64 under QEMU vs native x86_64: "
        f"{result['aarch64_vs_x86_64']}x (build alone {result['aarch64_build_vs_x86_64']}x)"
    )
    print(
        f"shared cache: cold build pushing {pushed:.1f} s, from the registry on a new machine {fetched:.1f} s "
        f"({result['warm_from_registry_vs_cold']}x)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
