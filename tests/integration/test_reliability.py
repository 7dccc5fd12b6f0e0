"""The reliability catalogue on the real engine: signals, concurrent runs, a full disk, offline builds,
an unreachable index, absent bases, unrepairable policies, and the security of what is built."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    EXAMPLE,
    PROJECTS,
    RUNTIME_BASE,
    TAG,
    Build,
    BuiltImage,
    Runner,
    copy_project,
    leftover_containers,
    run_id_of,
    second_dockerd,
    sh,
)
from wheelbarrow._guard import MARKER, mark


def tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


class Background:
    """`wheelbarrow build` in its own session, its output collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wheelbarrow", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"never saw {text!r}:\n{''.join(self.lines)[-3000:]}")
            time.sleep(0.2)

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code, "".join(self.lines)


def our_temp_dirs(run: str = "[0-9a-f]{12}") -> list[str]:
    """wheelbarrow's temporary folders (``wheelbarrow-<run id>-<kind>-...``) of one run, or of all."""
    return sorted(p.name for p in Path("/tmp").glob("wheelbarrow-*") if re.match(rf"wheelbarrow-{run}-", p.name))


@pytest.fixture
def cold_example(example_build: Build, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the example with a previous good wheelhouse, and an empty cache: psycopg2 compiles."""
    project = copy_project(EXAMPLE, tmp_path / "service")
    shutil.copytree(example_build.wheelhouse, project / "wheelhouse")
    return project, tmp_path / "cache"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_build_stops_cleanly(cold_example: tuple[Path, Path], signum: signal.Signals) -> None:
    """Ctrl-C, a CI cancel or `timeout` (SIGTERM), a closed terminal (SIGHUP): the same clean end."""
    project, cache = cold_example
    before = tree(project / "wheelhouse")
    run = Background("build", "--project", str(project), "--cache-dir", str(cache))
    run.wait_for("wheelbarrow: build container network interfaces: lo (offline)")
    lease = run_id_of("".join(run.lines))
    # While it builds: the build container has no network and no host mount.
    containers = leftover_containers(lease)
    inspected = [sh(["docker", "inspect", c], check=False) for c in containers]  # one may finish meanwhile
    infos = [json.loads(i.output)[0] for i in inspected if i.returncode == 0]
    assert infos
    for info in infos:
        assert info["HostConfig"]["NetworkMode"] == "none"
        assert info["Mounts"] == []
    os.kill(run.proc.pid, signum)  # the process alone, as a terminal's Ctrl-C reaches the foreground job
    code, output = run.finish(timeout=120)
    assert code == 128 + signum, output[-3000:]
    assert f"ERROR: interrupted ({signum.name}); every output is whole, the previous one or the new one" in output
    assert "TIP: Run the same command again" in output
    assert "Traceback" not in output
    assert tree(project / "wheelhouse") == before
    assert leftover_containers(lease) == []
    assert our_temp_dirs(lease) == []
    assert not list(project.glob(".wheelhouse-*"))


def test_sigkill_leftovers_are_swept_by_the_next_run(cold_example: tuple[Path, Path]) -> None:
    project, cache = cold_example
    before = tree(project / "wheelhouse")
    run = Background("build", "--project", str(project), "--cache-dir", str(cache))
    run.wait_for("wheelbarrow: build container network interfaces: lo (offline)")
    os.killpg(run.proc.pid, signal.SIGKILL)  # wheelbarrow and cibuildwheel die at once, no cleanup
    _, output = run.finish(timeout=60)
    lease = run_id_of(output)
    assert tree(project / "wheelhouse") == before  # nothing half-written
    assert leftover_containers(lease)  # what SIGKILL leaves: the build containers (psycopg2's, maybe the project's)
    assert our_temp_dirs(lease)  # its work folder, named by its run's lease
    again = Background("build", "--project", str(project), "--cache-dir", str(cache))
    code, output = again.finish()
    assert code == 0, output[-3000:]
    assert re.search(r"removing \d+ container\(s\) left by runs that were killed", output)
    assert "left in /tmp by runs that were killed" in output
    assert leftover_containers(lease) == []
    assert our_temp_dirs(lease) == []


def test_two_runs_at_once_take_turns(cold_example: tuple[Path, Path]) -> None:
    project, cache = cold_example
    first = Background("build", "--project", str(project), "--cache-dir", str(cache))
    first.wait_for("==> build + repair")
    second = Background("build", "--project", str(project), "--cache-dir", str(cache))
    code2, out2 = second.finish()
    code1, out1 = first.finish()
    assert (code1, code2) == (0, 0), out1[-2000:] + out2[-2000:]
    assert "waiting for another wheelbarrow run on this project to finish" in out2
    assert "0 built, 2 from the cache" in out2  # it waited, then reused the first run's work
    wheelhouse = project / "wheelhouse"
    pinned = [
        line.split("==")[0] for line in (wheelhouse / "requirements.txt").read_text().splitlines() if "==" in line
    ]
    assert sorted(pinned) == ["example-service", "gunicorn", "packaging", "psycopg2"]
    assert len(list(wheelhouse.glob("*.whl"))) == 4


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "tiny"
    mount.mkdir()
    sh(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)])
    try:
        yield mount
    finally:
        sh(["umount", str(mount)], check=False)


def test_a_full_disk_leaves_the_previous_wheelhouse(wheelbarrow: Runner, example_build: Build, tiny_disk: Path) -> None:
    previous = tiny_disk / "wheelhouse"
    previous.mkdir()
    (previous / "README.md").write_text("the previous wheelhouse\n")
    mark(previous, "wheelhouse")  # one wheelbarrow wrote: it may replace it
    out = wheelbarrow("build", "--project", str(example_build.project), "--wheelhouse", str(previous))
    assert out.returncode == 10, out.output[-3000:]
    assert "ERROR: could not write the new wheelhouse beside" in out.output
    assert "No space left on device" in out.output
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["wheelhouse"]
    assert (previous / "README.md").read_text() == "the previous wheelhouse\n"
    assert sorted(p.name for p in previous.iterdir()) == sorted([MARKER, "README.md"])


def test_a_build_that_needs_the_network_fails_clearly(wheelbarrow: Runner, tmp_path: Path) -> None:
    project = copy_project(PROJECTS / "needs-network", tmp_path / "needs-network")
    started = time.monotonic()
    out = wheelbarrow("build", "--project", str(project))
    assert out.returncode == 8, out.output[-3000:]
    assert "tried to use the network, and builds are offline" in out.output
    assert time.monotonic() - started < 180  # it fails, it does not hang


def test_an_unrepairable_policy(wheelbarrow: Runner, example_build: Build, tmp_path: Path) -> None:
    project = copy_project(example_build.project, tmp_path / "old-policy")
    out = wheelbarrow("build", "--project", str(project), "-C", "repair-plat=manylinux_2_28_x86_64")
    assert out.returncode == 9, out.output[-3000:]
    assert "could not repair psycopg2==2.9.13 to the requested policy" in out.output
    assert "too-recent versioned symbols" in out.output


def test_an_absent_base_that_cannot_be_bootstrapped(wheelbarrow: Runner, example_build: Build) -> None:
    out = wheelbarrow(
        "build",
        "--project",
        str(example_build.project),
        "--builder-base",
        "wheelbarrow-test/absent:1",
        "--runtime-base",
        "localhost/wheelbarrow/runtime-base:bookworm",
        "-C",
        "debian-suite=",
    )
    assert out.returncode == 7, out.output[-3000:]
    assert (
        "ERROR: the builder base wheelbarrow-test/absent:1 is not on this machine and cannot be pulled:" in out.output
    )
    assert "pull access denied" in out.output or "no such host" in out.output  # the engine's reason, shown
    assert (
        "TIP: Check the name and that its registry is reachable (docker pull wheelbarrow-test/absent:1)" in out.output
    )
    assert 'debian-suite = "bookworm"' in out.output


def test_index_unreachable_then_offline_from_the_cache(wheelbarrow: Runner, tmp_path: Path) -> None:
    project = copy_project(PROJECTS / "req-app", tmp_path / "req-app")
    cache = tmp_path / "cache"
    offline = {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_FIND_LINKS": "",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_RETRIES": "1",
        "PIP_TIMEOUT": "2",
    }
    cold = wheelbarrow("build", "--project", str(project), "--cache-dir", str(cache), env=offline)
    assert cold.returncode == 5, cold.output[-3000:]
    assert "ERROR: the index cannot be reached from this host" in cold.output
    warm = wheelbarrow("build", "--project", str(project), "--cache-dir", str(cache))
    assert warm.returncode == 0, warm.output[-3000:]
    again = wheelbarrow("build", "--project", str(project), "--cache-dir", str(cache), env=offline)
    assert again.returncode == 0, again.output[-3000:]


def test_a_corrupt_or_truncated_download_in_the_cache_is_fetched_again(
    wheelbarrow: Runner, example_build: Build, cache_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(cache_dir, cache)  # warm: every wheel is in it
    (cached,) = cache.glob("artifacts/*/psycopg2-2.9.13.tar.gz")
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])  # a truncated sdist
    project = copy_project(example_build.project, tmp_path / "service")
    out = wheelbarrow("build", "--project", str(project), "--cache-dir", str(cache))
    assert out.returncode == 0, out.output[-3000:]
    assert "cached psycopg2-2.9.13.tar.gz does not match its sha256; discarding it and fetching again" in out.output
    assert tree(project / "wheelhouse") == tree(example_build.wheelhouse)


def test_a_wheelhouse_for_another_python_is_refused(wheelbarrow: Runner, example_build: Build, tmp_path: Path) -> None:
    other = tmp_path / "wheelhouse"
    shutil.copytree(example_build.wheelhouse, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["target"]["python"] = "3.12"
    (other / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    tag = "example-service:other-python"
    out = wheelbarrow("image", "--project", str(example_build.project), "--wheelhouse", str(other), "--image-tag", tag)
    assert out.returncode == 10, out.output[-3000:]
    assert "it is for CPython 3.12, the base runs CPython 3.11" in out.output
    assert sh(["docker", "image", "inspect", tag], check=False).returncode != 0


def test_a_base_that_lacks_an_expected_library_is_refused(
    wheelbarrow: Runner, example_build: Build, tmp_path: Path
) -> None:
    other = tmp_path / "wheelhouse"
    shutil.copytree(example_build.wheelhouse, other)
    manifest = json.loads((other / "manifest.json").read_text())
    for wheel in manifest["wheels"]:
        if wheel["name"] == "psycopg2":
            wheel["expected_from_base"].append("libwheelbarrow-absent.so.1")
    (other / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    out = wheelbarrow(
        "image",
        "--project",
        str(example_build.project),
        "--wheelhouse",
        str(other),
        "--image-tag",
        "example-service:lacks",
    )
    assert out.returncode == 10, out.output[-3000:]
    assert "psycopg2 expects libwheelbarrow-absent.so.1 from the base, which lacks it" in out.output


def test_no_secret_ca_or_setuid_in_the_image(example_image: BuiltImage, tmp_path: Path) -> None:
    # Layers: ours (above the base) hold no certificate, key or pip configuration.
    base_layers = len(json.loads(sh(["docker", "image", "inspect", RUNTIME_BASE]).output)[0]["RootFS"]["Layers"])
    archive = tmp_path / "image.tar"
    sh(["docker", "save", "-o", str(archive), TAG])
    with tarfile.open(archive) as saved:
        stream = saved.extractfile("manifest.json")
        assert stream is not None
        layers = json.load(stream)[0]["Layers"][base_layers:]
        for layer in layers:
            inner_stream = saved.extractfile(layer)
            assert inner_stream is not None
            with tarfile.open(fileobj=inner_stream) as inner:
                for member in inner.getmembers():
                    name = member.name
                    assert not name.endswith((".pem", ".crt", ".key", "pip.conf", ".netrc")), name
                    if member.isfile() and member.size < 2_000_000:
                        data = inner.extractfile(member)
                        content = data.read() if data else b""
                        assert b"-----BEGIN CERTIFICATE-----" not in content, name
                        assert b"PRIVATE KEY-----" not in content, name
    # History and config: no index, proxy, token or certificate settings baked in.
    history = sh(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", TAG]).output
    env = json.loads(sh(["docker", "image", "inspect", TAG]).output)[0]["Config"]["Env"]
    for needle in ("PIP_INDEX_URL", "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "proxy", "TOKEN", "PASSWORD"):
        assert needle.lower() not in history.lower()
        assert not any(needle.lower() in e.lower() for e in env)
    # setuid/setgid files: none beyond the base's.
    find = "find / -xdev -perm /6000 -type f 2>/dev/null | sort"
    ours = sh(["docker", "run", "--rm", "--network", "none", "--user", "0", TAG, "sh", "-c", find]).output
    base = sh(["docker", "run", "--rm", "--network", "none", RUNTIME_BASE, "sh", "-c", find]).output
    assert ours == base


@pytest.fixture
def second_engine(example_build: Build) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A second, private Docker engine (as a remote one would be), with the example's images loaded."""
    manifest = json.loads((example_build.wheelhouse / "manifest.json").read_text())
    images = [manifest["builder"]["image"], manifest["builder"]["base"], manifest["runtime_base"]["image"]]
    with second_dockerd(images) as engine:
        yield engine


def test_the_engine_stopping_mid_build(cold_example: tuple[Path, Path], second_engine: tuple[str, Any]) -> None:
    project, cache = cold_example
    host, dockerd = second_engine
    before = tree(project / "wheelhouse")
    run = Background("build", "--project", str(project), "--cache-dir", str(cache), env={"DOCKER_HOST": host})
    run.wait_for("wheelbarrow: build container network interfaces: lo (offline)")
    dockerd.kill()  # the daemon dies under the build
    dockerd.wait(30)
    code, output = run.finish(timeout=180)
    assert code == 6, output[-3000:]
    assert re.search(r"ERROR: the docker engine stopped while [\w-]+ was building", output), output[-3000:]
    assert "TIP: Restart the daemon and run again" in output
    assert tree(project / "wheelhouse") == before


def test_sigint_mid_image_stops_cleanly(example_build: Build, example_image: BuiltImage) -> None:
    tag = "example-service:interrupted"
    sh(["docker", "rmi", "-f", tag], check=False)
    run = Background("image", "--project", str(example_build.project), "--image-tag", tag, "-C", "image-builder=legacy")
    run.wait_for("==> image")
    time.sleep(1.5)  # inside docker build
    os.kill(run.proc.pid, signal.SIGINT)
    code, output = run.finish(timeout=120)
    if code == 0:
        pytest.fail(f"the image was finished before the interrupt landed:\n{output[-2000:]}")
    assert code == 130, output[-3000:]
    assert "ERROR: interrupted" in output
    assert leftover_containers(run_id_of(output)) == []  # this run's: another may share the engine
    assert sh(["docker", "image", "inspect", tag], check=False).returncode != 0  # the tag moves only on success


def test_a_run_that_ends_takes_its_lease_file_with_it(wheelbarrow: Runner, example_build: Build) -> None:
    """Each run holds a lease (a locked file) for its life; one that ends normally, even with an error,
    leaves no file behind (a killed one leaves it unlocked: that is how its leftovers are found)."""
    from wheelbarrow._guard import runtime_dir

    no_engine = {"DOCKER_HOST": "unix:///nonexistent.sock"}
    for command, env in (("plan", {}), ("build", no_engine)):  # the second ends with an engine error
        out = wheelbarrow(command, "--project", str(example_build.project), env=env)
        assert (out.returncode == 0) is (not env), out.output[-2000:]
        run = run_id_of(out.output)
        assert not (runtime_dir() / "runs" / f"{run}.lock").exists(), out.output[-2000:]


@contextlib.contextmanager
def index_that_never_answers() -> Iterator[str]:
    """A server on a loopback port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/simple"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_ctrl_c_while_an_index_never_answers_ends_the_run_at_once(tmp_path: Path) -> None:
    """A download blocked on a silent index (for pip's timeout: minutes) cannot hold the run: Ctrl-C ends
    it within seconds, exit 130, with nothing left in the cache folder but the cache."""
    project = copy_project(PROJECTS / "req-app", tmp_path / "req-app")
    cache = tmp_path / "cache"
    with index_that_never_answers() as url:
        env = {"PIP_INDEX_URL": url, "PIP_EXTRA_INDEX_URL": "", "PIP_DEFAULT_TIMEOUT": "300", "PIP_RETRIES": "0"}
        run = Background("build", "--project", str(project), "--cache-dir", str(cache), env=env)
        run.wait_for("to download")
        time.sleep(2)  # the download is now blocked on the silent index
        started = time.monotonic()
        os.kill(run.proc.pid, signal.SIGINT)
        code, output = run.finish(timeout=120)
    assert code == 130, output[-3000:]
    assert time.monotonic() - started < 15, output[-3000:]
    assert "ERROR: interrupted (SIGINT)" in output
    assert "Traceback" not in output
    assert not [p for p in cache.rglob("*") if "fetch" in p.name], sorted(cache.rglob("*"))
