"""Failure paths that need no engine: each ends in a WheelbarrowError that says what to do."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import demo_plan, make_wheelhouse, quiet
from wheelbarrow import _guard, _image
from wheelbarrow._build import _build_error
from wheelbarrow._cache import Cache
from wheelbarrow._cmd import Result
from wheelbarrow._config import load_config
from wheelbarrow._engine import Engine
from wheelbarrow._fetch import Fetched, pip_download
from wheelbarrow._lock import LockedFile, LockedPackage, check_unique_files
from wheelbarrow._log import Log
from wheelbarrow._manifest import Target
from wheelbarrow._wheelhouse import read_wheelhouse
from wheelbarrow.errors import BuildError, FetchError, LockError, RepairError, WheelhouseError

DEAD_PID = 4_000_000  # above pid_max: never a live process


def test_pyproject_without_a_wheelbarrow_table_uses_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "plain"\nversion = "1"\n', encoding="utf-8")
    config = load_config(tmp_path, environ={})
    assert config.python == "3.11"
    assert config.builder_base == "runtime"  # derived from the runtime base


def test_two_files_with_one_name_and_two_hashes(tmp_path: Path) -> None:
    a = LockedPackage("six", "1", ("a" * 64,), (LockedFile("six-1.tar.gz", "a" * 64),))  # type: ignore[arg-type]
    b = LockedPackage("six", "1", ("b" * 64,), (LockedFile("six-1.tar.gz", "b" * 64),))  # type: ignore[arg-type]
    with pytest.raises(LockError, match=r"pins six-1\.tar\.gz twice with different sha256") as caught:
        check_unique_files((a, b), tmp_path / "pylock.toml")
    assert "regenerate" in caught.value.tip


def test_a_build_that_needs_the_network_says_builds_are_offline(tmp_path: Path) -> None:
    plan = demo_plan(tmp_path)
    sdist = Fetched("fetcher", "1.0", tmp_path / "fetcher-1.0.tar.gz", "0" * 64)
    output = "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>\n"
    error = _build_error(sdist, Result(("cibuildwheel",), 1, output), plan)
    assert isinstance(error, BuildError)
    assert "tried to use the network, and builds are offline" in error.message
    assert "--network none" in error.tip


def test_an_unrepairable_policy_is_a_repair_error(tmp_path: Path) -> None:
    output = (
        'auditwheel: error: cannot repair "psycopg2-2.9.13-cp311-cp311-linux_x86_64.whl" to '
        '"manylinux_2_28_x86_64" ABI because of the presence of too-recent versioned symbols.\n'
    )
    sdist = Fetched("psycopg2", "2.9.13", tmp_path / "p.tar.gz", "0" * 64)
    error = _build_error(sdist, Result(("cibuildwheel",), 1, output), demo_plan(tmp_path))
    assert isinstance(error, RepairError)
    assert "repair-plat" in error.tip


def test_an_unreachable_index_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    output = (
        "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(...: "
        "Failed to establish a new connection: [Errno 111] Connection refused')': /simple/six/\n"
        "ERROR: Could not find a version that satisfies the requirement six==1.16.0\n"
    )

    def fail(argv: list[str], *_a: Any, **_k: Any) -> Result:
        from wheelbarrow._cmd import CommandFailed

        raise CommandFailed(Result(tuple(argv), 1, output))

    monkeypatch.setattr("wheelbarrow._fetch.run", fail)
    with pytest.raises(FetchError, match="the index cannot be reached") as caught:
        pip_download(["six==1.16.0"], tmp_path, quiet())
    assert "needs no index" in caught.value.tip


class FakeEngine(Engine):
    """Answers ``run_image`` with fixed output and counts the containers it would have started."""

    def __init__(self, output: str, returncode: int = 0) -> None:
        super().__init__(quiet())
        self.output, self.returncode, self.runs = output, returncode, 0

    def image_id(self, ref: str) -> str | None:  # noqa: ARG002 - one base
        return "sha256:" + "1" * 64

    def run_image(self, image: str, argv: Any, **_: Any) -> Result:  # noqa: ARG002 - the fake ignores them
        self.runs += 1
        return Result(("docker",), self.returncode, self.output)


BOOKWORM = "3.11 2.36\nx86_64\n\tlibssl.so.3 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libssl.so.3\n"


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        ("3.12 2.36\nx86_64\n", "it is for CPython 3.11, the base runs CPython 3.12"),
        ("3.11 2.36\naarch64\n", "the base is aarch64"),
        ("3.11 2.31\nx86_64\n", "need glibc 2.34, the base has glibc 2.31"),
        ("3.11 2.36\nx86_64\n", "psycopg2 expects libssl.so.3 from the base, which lacks it"),
    ],
)
def test_a_base_the_wheelhouse_does_not_fit(tmp_path: Path, facts: str, problem: str) -> None:
    manifest, _ = read_wheelhouse(make_wheelhouse(tmp_path))
    wheels = list(manifest.wheels)
    wheels[0] = dataclasses.replace(
        wheels[0], name="psycopg2", platform_tag="manylinux_2_34_x86_64", expected_from_base=("libssl.so.3",)
    )
    manifest = dataclasses.replace(manifest, wheels=tuple(wheels), target=Target("3.11", "cp311", "x86_64", "2.36"))
    _image.check_base_fits(BOOKWORM, "base", manifest)  # the right base passes
    with pytest.raises(WheelhouseError, match=problem):
        _image.check_base_fits(facts, "base", manifest)


def test_base_facts_are_asked_once_per_base_image(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", quiet())
    engine = FakeEngine(BOOKWORM)
    assert _image.base_facts(engine, "base", cache) == BOOKWORM
    assert _image.base_facts(engine, "base", cache) == BOOKWORM
    assert engine.runs == 1


def test_a_base_without_python_is_refused_and_not_remembered(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", quiet())
    engine = FakeEngine("sh: 1: python3: not found\n", returncode=127)
    for _ in range(2):
        with pytest.raises(WheelhouseError, match="has no working python3") as caught:
            _image.base_facts(engine, "base", cache)
        assert "runtime-base" in caught.value.tip
    assert engine.runs == 2


def test_a_second_run_waits_for_the_first(tmp_path: Path) -> None:
    lines: list[str] = []
    order: list[str] = []
    wheelhouse = tmp_path / "wheelhouse"

    def second() -> None:
        with _guard.project_lock(wheelhouse, Log(sink=lines.append)):
            order.append("second")

    with _guard.project_lock(wheelhouse, quiet()):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]
    assert any("waiting for another wheelbarrow run on this project" in line for line in lines)


# The adversary's inputs: each is an ERROR with its exit code, never an internal error, and never a read
# that grows with what an untrusted file claims.


def _sdist_with_pyproject(path: Path, data: bytes) -> Path:
    import io
    import tarfile
    import zipfile

    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("bomb-1.0/pyproject.toml", data)
    else:
        with tarfile.open(path, "w:gz") as archive:
            info = tarfile.TarInfo("bomb-1.0/pyproject.toml")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["bomb-1.0.tar.gz", "bomb-1.0.zip"])
def test_an_sdist_whose_pyproject_is_huge_is_refused_unread(tmp_path: Path, name: str) -> None:
    """8 MB of zeros (a few kB compressed): refused by its stated size, never read whole."""
    from wheelbarrow._fetch import PYPROJECT_BYTES, build_requires_of_sdist

    sdist = _sdist_with_pyproject(tmp_path / name, b"\0" * (8 * PYPROJECT_BYTES))
    assert sdist.stat().st_size < PYPROJECT_BYTES
    with pytest.raises(FetchError, match="wheelbarrow reads at most"):
        build_requires_of_sdist(sdist)
    fine = _sdist_with_pyproject(tmp_path / f"ok-{name}", b'[build-system]\nrequires = ["setuptools>=61"]\n')
    assert build_requires_of_sdist(fine) == ("setuptools>=61",)


def test_the_soname_search_reads_in_chunks_and_misses_nothing_across_them() -> None:
    import io

    from wheelbarrow._repair import _search

    needles = {"libpython3.11.so.1.0": b"\0libpython3.11.so.1.0\0", "libssl.so.3": b"\0libssl.so.3\0"}
    data = b"x" * 13 + needles["libpython3.11.so.1.0"] + b"y" * 7 + needles["libssl.so.3"]
    for chunk in (1, 5, 8, 16, 1 << 20):  # every needle crosses some chunk's edge
        assert _search(io.BytesIO(data), needles, chunk) == set(needles)
    assert _search(io.BytesIO(b"\0libssl.so.30\0"), needles, 4) == set()


@pytest.mark.parametrize("marker", ['python_version ~= "3"', 'platform_release ~= "5.x"', 'python_version ~= "x"'])
def test_a_marker_that_cannot_be_evaluated_is_a_lock_error(tmp_path: Path, marker: str) -> None:
    from wheelbarrow._lock import marker_environment
    from wheelbarrow._pylock import parse_pylock
    from wheelbarrow._requirements import parse_requirements

    env = marker_environment("3.11", "x86_64")
    text = f"six==1.16.0 ; {marker} --hash=sha256:{'0' * 64}\n"
    with pytest.raises(LockError, match="marker"):
        parse_requirements(text, env, tmp_path / "requirements.txt")
    pylock = (
        'lock-version = "1.0"\ncreated-by = "test"\n\n[[packages]]\nname = "six"\nversion = "1.16.0"\n'
        f"marker = '{marker}'\n\n[[packages.wheels]]\nname = \"six-1.16.0-py2.py3-none-any.whl\"\n"
        f'url = "https://files.example.invalid/six-1.16.0-py2.py3-none-any.whl"\nhashes = {{sha256 = "{"0" * 64}"}}\n'
    )
    with pytest.raises(LockError, match="marker"):
        parse_pylock(pylock, env, tmp_path / "pylock.toml")


@pytest.mark.parametrize(
    "content",
    [b"[" * 200_000 + b"]" * 200_000, b"\xff\xfe{}", b"0", b'{"manifest_version": "1.2", "wheels": "x"}'],
)
def test_a_malformed_manifest_is_a_wheelhouse_error(tmp_path: Path, content: bytes) -> None:
    wheelhouse = make_wheelhouse(tmp_path)
    (wheelhouse / "manifest.json").write_bytes(content)
    with pytest.raises(WheelhouseError):
        read_wheelhouse(wheelhouse)


def test_an_index_url_whose_password_holds_a_slash_is_a_config_error_that_shows_no_password() -> None:
    from wheelbarrow._sources import Credentials, Index
    from wheelbarrow.errors import ConfigError

    url = "https://user:pa/ss-SECRET@127.0.0.1:9/simple/"
    keys = Credentials([Index(url)], "/nonexistent", quiet())
    with pytest.raises(ConfigError) as caught:
        keys.lookup("https://127.0.0.1:9/simple/six/")
    assert "SECRET" not in str(caught.value)
    assert "%2F" in caught.value.tip
