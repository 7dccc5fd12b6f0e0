"""Integration fixtures: the real Docker engine, a real PostgreSQL, one real build.

Nothing here is faked. The example service's wheelhouse is built once per
session (psycopg2 compiled from its sdist in the offline builder) and shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "service"
PROJECTS = REPO / "tests" / "projects"
RUNTIME_BASE = "localhost/wheelbarrow/runtime-base:bookworm"
LABEL = "io.wheelbarrow.run"
TAG = "example-service:0.1.0"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is marked ``integration`` (``pytest -m "not integration"`` runs the rest)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    output: str


def sh(argv: Sequence[str], *, check: bool = True, env: dict[str, str] | None = None, timeout: int = 900) -> Outcome:
    proc = subprocess.run(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-4000:]}")
    return Outcome(proc.returncode, proc.stdout)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


Runner = Callable[..., "Outcome"]


@pytest.fixture(scope="session")
def wheelbarrow(cache_dir: Path) -> Runner:
    """Run the real CLI in a subprocess, as a user would."""
    engine = sh(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    if engine.returncode != 0:
        pytest.fail(f"integration tests need a running Docker engine (./dev starts one):\n{engine.output}")

    def run(*args: str, env: dict[str, str] | None = None) -> Outcome:
        return sh(
            [sys.executable, "-m", "wheelbarrow", *args],
            check=False,
            env={"WHEELBARROW_CACHE_DIR": str(cache_dir), **(env or {})},
        )

    return run


def copy_project(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("wheelhouse", ".nox", "__pycache__"))
    return dest


def tool(name: str) -> str:
    """A lock tool installed next to this interpreter (uv, poetry)."""
    return str(Path(sys.executable).with_name(name))


def uv(project: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """The real uv (its locks name the index: made here, never committed)."""
    sh([tool("uv"), "--directory", str(project), *args], env=env)


def get_inside(container: str, url: str, tries: int = 30) -> str:
    """An HTTP GET from inside a running container (its network may be off), retried while it starts."""
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    got = Outcome(1, "")
    for _ in range(tries):
        got = sh(["docker", "exec", container, "python3", "-c", code], check=False)
        if got.returncode == 0:
            return got.output.strip()
        time.sleep(1)
    return got.output


@dataclass(frozen=True)
class Build:
    project: Path
    wheelhouse: Path
    outcome: Outcome


@pytest.fixture(scope="session")
def example_build(wheelbarrow: Runner, tmp_path_factory: pytest.TempPathFactory) -> Build:
    project = copy_project(EXAMPLE, tmp_path_factory.mktemp("example") / "service")
    outcome = wheelbarrow("build", "--project", str(project))
    if outcome.returncode != 0:
        pytest.fail(f"building the example service failed:\n{outcome.output[-6000:]}")
    return Build(project, project / "wheelhouse", outcome)


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    outcome: Outcome


@pytest.fixture(scope="session")
def example_image(wheelbarrow: Runner, example_build: Build) -> BuiltImage:
    outcome = wheelbarrow("image", "--project", str(example_build.project))
    if outcome.returncode != 0:
        pytest.fail(f"wheelbarrow image failed:\n{outcome.output[-6000:]}")
    return BuiltImage(TAG, outcome)


def leftover_containers(owner: str = "") -> list[str]:
    """Containers wheelbarrow made; with ``owner``, only those of that run (other runs may share the engine)."""
    label = f"io.wheelbarrow.owner={owner}" if owner else LABEL
    return sh(["docker", "ps", "-aq", "--filter", f"label={label}"]).output.split()


def run_id_of(output: str) -> str:
    """The run's lease id, from the line every run starts with: ``run <id> (pid N): ...``."""
    found = re.search(r"^run ([0-9a-f]{12}) \(pid \d+\)", output, re.MULTILINE)
    assert found, output[:2000]
    return found[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_registry(root: Path) -> Iterator[str]:
    """Debian's docker-registry, storing in ``root`` and serving on a loopback port until the block ends."""
    port = free_port()
    config = root / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A local registry for this test only."""
    with local_registry(tmp_path) as address:
        yield address


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user={self.user} password={self.password}"


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.fail("integration tests need Debian's postgresql package (./dev installs it)")
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL on a loopback port, with SCRAM password auth, for this session only."""
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="wheelbarrow-pg-"))
    root.chmod(0o755)
    data, pwfile = root / "data", root / "pw"
    password = "wheelbarrow-test"
    pwfile.write_text(password, encoding="utf-8")
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb and pg_ctl refuse to run as root
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "wheelbarrow", "--pwfile", str(pwfile)]
    sh([*as_postgres, *initdb, "--auth=scram-sha-256"])
    # max_prepared_transactions lets psycopg2's own two-phase-commit tests run instead of skipping.
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -k {root} -c max_prepared_transactions=10"
    sh([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"])
    try:
        yield Postgres(port, "wheelbarrow", password)
    finally:
        sh([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def offline_container(label: str, image: str = RUNTIME_BASE) -> Iterator[str]:
    """A running container of ``image`` with the network off, removed afterwards: its name."""
    name = f"wheelbarrow-test-{label}-{os.getpid()}"
    sh(["docker", "create", "--name", name, "--network", "none", image, "sleep", "infinity"])
    try:
        sh(["docker", "start", name])
        yield name
    finally:
        sh(["docker", "rm", "-f", name], check=False)


def run_installed(wheelhouse: Path, label: str, code: str) -> str:
    """Install ``wheelhouse`` with no index and hashes required into a venv of the runtime base, with the
    network off, then run ``python -c code`` there: its output."""
    with offline_container(label) as name:
        sh(["docker", "cp", str(wheelhouse), f"{name}:/wheelhouse"])
        script = (
            "python3 -m venv /v && /v/bin/pip install -q --no-index --find-links /wheelhouse --require-hashes "
            f"-r /wheelhouse/requirements.txt && /v/bin/python -c {shlex.quote(code)}"
        )
        return sh(["docker", "exec", name, "sh", "-c", script]).output


@pytest.fixture(scope="session")
def runtime_image(example_build: Build) -> Iterator[str]:
    """The runtime base with the wheelhouse installed offline into /venv, committed as an image."""
    tag = f"wheelbarrow-test-install-{os.getpid()}:latest"
    with offline_container("install") as name:
        sh(["docker", "cp", str(example_build.wheelhouse), f"{name}:/wheelhouse"])
        sh(["docker", "exec", name, "python3", "-m", "venv", "/venv"])
        install = sh(
            [
                "docker",
                "exec",
                name,
                "/venv/bin/pip",
                "install",
                "--no-index",
                "--find-links",
                "/wheelhouse",
                "--require-hashes",
                "-r",
                "/wheelhouse/requirements.txt",
            ]
        )
        assert "Successfully installed" in install.output
        sh(["docker", "exec", name, "rm", "-rf", "/wheelhouse"])
        sh(["docker", "commit", name, tag])
    yield tag
    sh(["docker", "rmi", "-f", tag], check=False)


def run_psycopg2_suite(tag: str, postgres: Postgres, cache_dir: Path, tmp_path: Path) -> None:
    """psycopg2's own tests (from its sdist in the cache) in a container of ``tag`` against ``postgres``: they
    pass, more than 500 ran. The suite is copied in with ``docker cp``: the image needs no shell."""
    (sdist,) = cache_dir.glob("artifacts/*/psycopg2-2.9.13.tar.gz")
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("psycopg2-2.9.13/tests/")]
        archive.extractall(tmp_path, members=members, filter="data")
    create = (
        "import psycopg2, sys; c = psycopg2.connect(sys.argv[1]); c.autocommit = True; cur = c.cursor();"
        "cur.execute('DROP DATABASE IF EXISTS psycopg2_test'); cur.execute('CREATE DATABASE psycopg2_test');"
        "t = psycopg2.connect(sys.argv[1].replace('dbname=postgres', 'dbname=psycopg2_test')); t.autocommit = True;"
        "t.cursor().execute('CREATE EXTENSION hstore')"
    )
    sh(["docker", "run", "--rm", "--network", "host", tag, "python", "-c", create, postgres.dsn])
    name = f"wheelbarrow-test-psycopg2-suite-{os.getpid()}"
    env = {
        "PSYCOPG2_TESTDB": "psycopg2_test",
        "PSYCOPG2_TESTDB_HOST": "127.0.0.1",
        "PSYCOPG2_TESTDB_PORT": str(postgres.port),
        "PSYCOPG2_TESTDB_USER": postgres.user,
        "PSYCOPG2_TESTDB_PASSWORD": postgres.password,
    }
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    sh(
        [
            "docker",
            "create",
            "--name",
            name,
            "--network",
            "host",
            *env_args,
            "-w",
            "/tmp/suite",
            tag,
            "python",
            "-c",
            "import tests; tests.unittest.main(defaultTest='tests.test_suite', verbosity=2)",
        ]
    )
    try:
        sh(["docker", "cp", str(tmp_path / "psycopg2-2.9.13" / "tests"), f"{name}:/tmp/suite"])
        run = sh(["docker", "start", "-a", name], check=False, timeout=900)
    finally:
        sh(["docker", "rm", "-f", name], check=False)
    summary = re.search(r"^Ran (\d+) tests? in [\d.]+s\n\n(OK|FAILED)(?: \((.*)\))?$", run.output, re.MULTILINE)
    assert summary, run.output[-3000:]
    ran, verdict, detail = int(summary[1]), summary[2], summary[3] or ""
    reasons: dict[str, int] = {}
    for reason in re.findall(r"\.\.\. skipped '(.*)'$", run.output, re.MULTILINE):
        reasons[reason] = reasons.get(reason, 0) + 1
    print(f"psycopg2 test suite in the image: ran {ran}, {verdict} {detail}")
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        print(f"  skipped by the suite itself: {count} x {reason}")
    assert run.returncode == 0, run.output[-5000:]
    assert verdict == "OK"
    assert ran > 500


def wait_for_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@contextlib.contextmanager
def serving(image: str, gunicorn: str, dsn: str) -> Iterator[tuple[str, str]]:
    """The example service under gunicorn in a container of ``image`` (host network): (container, base URL)."""
    port = free_port()
    name = f"wheelbarrow-test-service-{os.getpid()}-{port}"
    sh(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "-e",
            f"DATABASE_URL={dsn}",
            image,
            gunicorn,
            "--bind",
            f"127.0.0.1:{port}",
            "example_service:app",
        ]
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", timeout=60)
        yield name, base
    finally:
        sh(["docker", "rm", "-f", name], check=False)


def exercise_service(base: str, body: bytes) -> None:
    """What a user checks: /health runs a query on PostgreSQL; a note is written, then read back."""
    with urllib.request.urlopen(f"{base}/health") as response:
        health = json.loads(response.read())
    assert health["status"] == "ok", health
    assert health["database"].startswith("PostgreSQL")
    request = urllib.request.Request(f"{base}/notes", data=body, method="POST")
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
        note_id = json.loads(response.read())["id"]
    with urllib.request.urlopen(f"{base}/notes/{note_id}") as response:
        assert json.loads(response.read()) == {"id": note_id, "body": body.decode()}


@contextlib.contextmanager
def second_dockerd(
    images: Sequence[str], *, remote: bool = False, loopback: Sequence[int] = ()
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A second, private Docker engine with ``images`` loaded: (its ``DOCKER_HOST``, its process).

    It runs in a network namespace of its own: a dockerd started with ``--bridge=none`` deletes the
    ``docker0`` interface it finds, which would take the main engine's default network with it. With
    ``remote``, it stands in for an engine on another machine: it is reached over TCP (a forwarder on a
    loopback port), and runs in a mount namespace where ``/tmp`` (the project, the cache, wheelbarrow's
    work) is an empty file system of its own, so a bind mount of a path of this machine would be empty.
    The ports in ``loopback`` (a local registry) answer on its own loopback as they do on this machine's.
    """
    if os.geteuid() != 0:
        pytest.skip("starting a second dockerd needs root (CI runs as root)")
    bridge = Path("/sys/class/net/docker0")
    had_bridge = bridge.exists()
    root = Path(tempfile.mkdtemp(prefix="wb-engine-", dir="/var/tmp"))
    sock = root / "docker.sock"
    dockerd = ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec")]
    dockerd += ["--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{sock}", "--bridge=none", "--iptables=false"]
    if remote:
        hide = "mount -t tmpfs tmpfs /tmp && exec " + shlex.join(dockerd)
        argv = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", hide]
    else:
        argv = ["unshare", "--net", *dockerd]
    log = (root / "dockerd.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    forwarder = None
    bridges: list[Forwarder] = []
    inside: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while sh(["docker", "-H", f"unix://{sock}", "version"], check=False).returncode != 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the second dockerd did not start:\n{(root / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.5)
        load_images(images, f"unix://{sock}")
        bridges.extend(_bridge(proc.pid, root / f"port-{port}.sock", port, inside) for port in loopback)
        host = f"unix://{sock}"
        if remote:
            forwarder = Forwarder.tcp_to_unix(sock)
            host = f"tcp://127.0.0.1:{forwarder.port}"
        yield host, proc
    finally:
        for helper in inside:
            helper.kill()
            helper.wait()
            if helper.stdout is not None:
                helper.stdout.close()
        for each in [*bridges, *([forwarder] if forwarder else [])]:
            each.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        log.close()
        subprocess.run(["umount", str(root / "exec" / "netns" / "default")], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    assert bridge.exists() == had_bridge, "the second engine took the main engine's docker0 away"


def load_images(images: Sequence[str], host: str) -> None:
    """``docker save`` of this machine's ``images``, loaded into the engine at ``host``."""
    if not images:
        return
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    subprocess.run(["docker", "-H", host, "load", "-q"], stdin=save.stdout, check=True, capture_output=True)
    assert save.wait() == 0
    if save.stdout is not None:
        save.stdout.close()


def _bridge(pid: int, sock: Path, port: int, inside: list[subprocess.Popen[bytes]]) -> Forwarder:
    """Make ``port`` of this machine's loopback answer on the loopback of process ``pid``'s network
    namespace: TCP in there -> a unix socket (which crosses namespaces) -> TCP here."""
    here = Forwarder.unix_to_tcp(sock, port)
    ns = ["nsenter", f"--net=/proc/{pid}/ns/net"]
    sh([*ns, "ip", "link", "set", "lo", "up"])  # a new network namespace's loopback starts down
    code = [sys.executable, str(Path(__file__)), str(sock), str(port)]
    helper = subprocess.Popen([*ns, *code], stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    inside.append(helper)
    assert helper.stdout is not None
    assert helper.stdout.readline().strip() == b"ready"
    return here


class Forwarder:
    """Accepts connections on ``listening`` and forwards each, both ways, to a new ``connect()`` socket:
    a loopback TCP port to an engine's unix socket, or a unix socket to a loopback TCP port."""

    def __init__(self, listening: socket.socket, connect: Callable[[], socket.socket]) -> None:
        self.server, self.connect = listening, connect
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def tcp_to_unix(cls, sock: Path, port: int = 0) -> Forwarder:
        return cls(socket.create_server(("127.0.0.1", port)), lambda: _unix(sock))

    @classmethod
    def unix_to_tcp(cls, sock: Path, port: int) -> Forwarder:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(sock))
        server.listen()
        return cls(server, lambda: socket.create_connection(("127.0.0.1", port)))

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
                upstream = self.connect()
            except OSError:
                return  # closed
            pumps = [
                threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                for src, dst in ((client, upstream), (upstream, client))
            ]
            for pump in pumps:
                pump.start()
            threading.Thread(target=self._close_after, args=(pumps, client, upstream), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
            dst.shutdown(socket.SHUT_WR)  # a half-close (stdin's end) reaches the other side
        except OSError:
            pass

    @staticmethod
    def _close_after(pumps: list[threading.Thread], *ends: socket.socket) -> None:
        for pump in pumps:
            pump.join()
        for end in ends:
            end.close()

    def close(self) -> None:
        self.server.close()


def _unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    return sock


if __name__ == "__main__":  # inside another network namespace: its loopback port to a unix socket of ours
    Forwarder.tcp_to_unix(Path(sys.argv[1]), int(sys.argv[2]))
    print("ready", flush=True)
    threading.Event().wait()
