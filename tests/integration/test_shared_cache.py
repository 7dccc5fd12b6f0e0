"""A build cache shared across machines, for real: two "machines" (two cache folders, and a second
dockerd as the second engine) share one local registry. The second, with an empty cache, compiles
nothing and writes a byte-identical wheelhouse; then a poisoned entry is refused and built again."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

from tests.integration.conftest import (
    EXAMPLE,
    Outcome,
    Runner,
    copy_project,
    local_registry,
    second_dockerd,
    sh,
)


def files(wheelhouse: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(wheelhouse.iterdir()) if p.is_file()}


def test_a_second_machine_compiles_nothing_and_a_poisoned_entry_is_built_again(
    wheelbarrow: Runner, tmp_path: Path
) -> None:
    (tmp_path / "registry").mkdir()
    with local_registry(tmp_path / "registry") as registry:
        repo = f"{registry}/team/wheelbarrow-cache"
        first = copy_project(EXAMPLE, tmp_path / "a" / "service")
        built = wheelbarrow(
            "build", "--project", str(first), "--cache-dir", str(tmp_path / "cache-a"), "--cache-to", repo
        )
        assert built.returncode == 0, built.output[-5000:]
        assert re.search(r"pushed \S+:wheel-[0-9a-f]{64} to the shared cache", built.output)
        manifest = json.loads((first / "wheelhouse" / "manifest.json").read_text(encoding="utf-8"))
        runtime_base = manifest["runtime_base"]["image"]

        # The second machine: another engine, an empty cache, the same runtime base (as two runners pulling
        # one digest have), and no network to install packages with: it can only fetch, or compile offline.
        with second_dockerd([runtime_base], loopback=[int(registry.rsplit(":", 1)[1])]) as (host, _proc):
            second = copy_project(EXAMPLE, tmp_path / "b" / "service")
            env = {"DOCKER_HOST": host}

            def from_the_registry(cache: str) -> Outcome:  # an empty cache folder, the registry's entries
                return wheelbarrow(
                    "build",
                    "--project",
                    str(second),
                    "--cache-dir",
                    str(tmp_path / cache),
                    "--cache-from",
                    repo,
                    env=env,
                )

            fetched = from_the_registry("cache-b")
            assert fetched.returncode == 0, fetched.output[-5000:]
            assert "with cibuildwheel" not in fetched.output  # compiled nothing
            assert "from the shared cache" in fetched.output
            assert files(second / "wheelhouse") == files(first / "wheelhouse")

            # Someone replaces the psycopg2 wheel's bytes in the registry, keeping its entry and label.
            entries = [
                json.loads(p.read_text(encoding="utf-8")) | {"key": p.parent.name}
                for p in (tmp_path / "cache-a" / "wheels").glob("*/entry.json")
            ]
            (entry,) = [e for e in entries if e["file"].startswith("psycopg2-")]
            key = entry["key"]
            poison(repo, key, entry["file"], tmp_path / "poison")
            again = from_the_registry("cache-c")
            assert again.returncode == 0, again.output[-5000:]
            assert re.search(rf"wheel-{key} does not match the sha256 recorded with it", again.output), again.output[
                -4000:
            ]
            assert "building psycopg2-2.9.13.tar.gz with cibuildwheel" in again.output
            assert files(second / "wheelhouse") == files(first / "wheelhouse")  # built again, byte for byte


def poison(repo: str, key: str, name: str, context: Path) -> None:
    """Push, under the entry's own tag, an image whose wheel bytes are not the ones its entry records."""
    ref = f"{repo}:wheel-{key}"
    sh(["docker", "pull", "-q", ref])
    wheel = sh(["docker", "image", "inspect", "--format", '{{ index .Config.Labels "io.wheelbarrow.sha256" }}', ref])
    assert len(wheel.output.strip()) == 64
    context.mkdir()
    with zipfile.ZipFile(context / name, "w") as fake:  # a wheel, just not the one that was built
        fake.writestr("psycopg2/__init__.py", "raise SystemExit('not the psycopg2 that was built')\n")
    (context / "Dockerfile").write_text(f"FROM {ref}\nCOPY {name} /wheel/{name}\n", encoding="utf-8")
    sh(["docker", "build", "-q", "-t", ref, str(context)])
    sh(["docker", "push", "-q", ref])
    sh(["docker", "rmi", ref], check=False)
