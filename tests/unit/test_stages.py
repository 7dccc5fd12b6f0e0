"""Engine, fetch and build logic with the real engine replaced by fakes (no processes)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import demo_plan, quiet, write_project
from wheelbarrow import _build, _engine
from wheelbarrow._cache import Cache, sha256_of
from wheelbarrow._cli import main
from wheelbarrow._cmd import Result
from wheelbarrow._fetch import Fetched, build_requires_of_sdist
from wheelbarrow._log import Log
from wheelbarrow.errors import (
    BuildError,
    CompileError,
    EngineError,
    EngineMissingError,
    EngineStoppedError,
    RepairError,
    ToolMissingError,
)


def test_engine_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_binary(*_args: Any, **_kwargs: Any) -> Result:
        raise ToolMissingError("'docker' was not found")

    monkeypatch.setattr(_engine, "run", no_binary)
    with pytest.raises(EngineMissingError, match="not installed") as caught:
        _engine.Engine(quiet()).check()
    assert "apt-get install docker.io" in caught.value.tip


def test_engine_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    monkeypatch.setattr(_engine, "run", lambda argv, *_a, **_k: Result(tuple(argv), 1, answer))
    with pytest.raises(EngineStoppedError, match="not running: Cannot connect") as caught:
        _engine.Engine(quiet()).check()
    assert "DOCKER_HOST" in caught.value.tip


def test_cache_discards_a_corrupt_entry(tmp_path: Path) -> None:
    lines: list[str] = []
    cache = Cache(tmp_path / "cache", Log(sink=lines.append))
    source = tmp_path / "six-1.16.0-py2.py3-none-any.whl"
    source.write_bytes(b"good")
    sha = sha256_of(source)
    stored = cache.store_artifact(source, sha)
    assert cache.artifact(source.name, sha) == stored
    stored.write_bytes(b"bad!")
    assert cache.artifact(source.name, sha) is None
    assert not stored.exists()
    assert any("does not match its sha256" in line for line in lines)


def sdist_with(tmp_path: Path, pyproject: str | None) -> Path:
    path = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        files = {"demo-1.0/setup.py": "", **({"demo-1.0/pyproject.toml": pyproject} if pyproject is not None else {})}
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return path


def test_build_requires_of_sdists(tmp_path: Path) -> None:
    with_table = sdist_with(tmp_path, '[build-system]\nrequires = ["setuptools>=70.1", "cython"]\n')
    assert build_requires_of_sdist(with_table) == ("setuptools>=70.1", "cython")
    without = sdist_with(tmp_path, None)
    assert build_requires_of_sdist(without) == ("setuptools>=40.8.0",)


def test_cibuildwheel_runs_offline_without_host_mount(tmp_path: Path) -> None:
    plan = demo_plan(tmp_path)
    engine = _engine.Engine(quiet(), run_id="abc123")
    builder = _build.Builder("localhost/wheelbarrow/builder:demo", "sha256:1")
    env = _build.cibuildwheel_env(plan, builder, engine, 315532800, ("libssl.so.3",))
    assert env["CIBW_BUILD"] == "cp311-manylinux_x86_64"
    assert env["CIBW_MANYLINUX_X86_64_IMAGE"] == "localhost/wheelbarrow/builder:demo"
    assert "create_args: --network none --label io.wheelbarrow.run=abc123" in env["CIBW_CONTAINER_ENGINE"]
    assert "disable_host_mount: true" in env["CIBW_CONTAINER_ENGINE"]
    assert "PIP_NO_INDEX=1" in env["CIBW_ENVIRONMENT_LINUX"]
    assert "SOURCE_DATE_EPOCH=315532800" in env["CIBW_ENVIRONMENT_LINUX"]
    assert env["CIBW_BEFORE_BUILD_LINUX"] == "wheelbarrow-check-offline"
    repair = env["CIBW_REPAIR_WHEEL_COMMAND_LINUX"].rpartition("; ")[2]
    assert repair.startswith("PATH=/opt/wheelbarrow-dpkg:$PATH auditwheel repair -w {dest_dir} {wheel}")
    assert repair.endswith("--exclude libssl.so.3")


COMPILE_FAILURE = """\
running build_ext
Error: pg_config executable not found.

pg_config is required to build psycopg2 from source.  Please add the directory
containing pg_config to the $PATH or specify the full executable path with the
option:
ERROR Backend subprocess exited when trying to invoke build_wheel
cibuildwheel: error: Command python -m build /project --wheel failed with code 1.
"""


def test_compile_failure_shows_the_cause_and_names_the_key(tmp_path: Path) -> None:
    plan = demo_plan(tmp_path)
    sdist = Fetched("psycopg2", "2.9.13", tmp_path / "psycopg2-2.9.13.tar.gz", "1" * 64)
    error = _build._build_error(sdist, Result(("cibuildwheel",), 1, COMPILE_FAILURE), plan)  # noqa: SLF001
    assert isinstance(error, CompileError)
    assert "pg_config executable not found" in error.message
    assert "system-packages" in error.tip
    assert "libpq-dev" in error.tip
    repair = _build._build_error(sdist, Result(("cibuildwheel",), 8, "auditwheel: error"), plan)  # noqa: SLF001
    assert isinstance(repair, RepairError)


@pytest.mark.parametrize(
    ("code", "says", "tip"),
    [
        (2, "cibuildwheel refused the configuration for psycopg2==2.9.13", "Report this to wheelbarrow"),
        (5, "psycopg2==2.9.13 built a pure-Python wheel; it needs no compiling", "Remove 'psycopg2' from build-from"),
    ],
)
def test_cibuildwheel_exit_codes_2_and_5_have_their_own_errors(tmp_path: Path, code: int, says: str, tip: str) -> None:
    """cibuildwheel exits 2 for a configuration it refuses and 5 when the build gave a pure wheel."""
    sdist = Fetched("psycopg2", "2.9.13", tmp_path / "psycopg2-2.9.13.tar.gz", "1" * 64)
    error = _build._build_error(sdist, Result(("cibuildwheel",), code, "cibuildwheel: error"), demo_plan(tmp_path))  # noqa: SLF001
    assert isinstance(error, BuildError)
    assert not isinstance(error, CompileError)
    assert says in error.message
    assert error.tip.startswith(tip)


def test_cli_prints_cause_and_tip_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = write_project(tmp_path, 'pyhton = "3.11"')
    assert main(["plan", "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "ERROR: [tool.wheelbarrow]: unknown key 'pyhton'. Did you mean 'python'?"
    assert err.splitlines()[1].startswith("TIP: ")
    assert "Traceback" not in err


def test_cli_no_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--project", str(write_project(tmp_path))]) == 4
    assert "ERROR: no lock in" in capsys.readouterr().err


def test_cli_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--project", str(write_project(tmp_path)), "-C", "python"]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err


def test_multi_line_messages_are_indented(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\nbad", encoding="utf-8")
    assert main(["plan", "--project", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if line.startswith("ERROR: ")] == [lines[0]]


@pytest.mark.parametrize(("answer", "ok"), [("26.1.5", True), ("20.10.24+dfsg1", True), ("19.03.1", False)])
def test_the_engine_version_is_checked_once(monkeypatch: pytest.MonkeyPatch, answer: str, ok: bool) -> None:
    monkeypatch.setattr(_engine, "run", lambda argv, *_a, **_k: Result(tuple(argv), 0, answer + "\n"))
    if ok:
        assert _engine.Engine(quiet()).check() == answer
    else:
        with pytest.raises(EngineError, match=r"wheelbarrow needs 20\.10 or newer"):
            _engine.Engine(quiet()).check()


MYSQLCLIENT_OUTPUT = """\
env: 'manylinux-interpreters': No such file or directory
* Getting build dependencies for wheel...
/bin/sh: 1: pkg-config: not found
/bin/sh: 1: pkg-config: not found
Traceback (most recent call last):
Trying pkg-config --exists mysqlclient
Command 'pkg-config --exists mysqlclient' returned non-zero exit status 127.
  File "<string>", line 27, in find_package_name
Exception: Can not find valid pkg-config name.
Specify MYSQLCLIENT_CFLAGS and MYSQLCLIENT_LDFLAGS env vars manually
TIP pass --env-dir and --sdist-extract-dir to keep the build environment and sources, then see ...
ERROR Backend subprocess exited when trying to invoke get_requires_for_build_wheel
cibuildwheel: error: Command ['python', '-m', 'build', ...] failed with code 1.
error: some later line that is cibuildwheel's, not the build's
"""
LDAP_OUTPUT = (
    """\
env: 'manylinux-interpreters': No such file or directory
x86_64-linux-gnu-gcc -Wall -Werror=format-security -fPIC -IModules -c Modules/LDAPObject.c -o x.o
Modules/common.h:15:10: fatal error: lber.h: No such file or directory
error: Command '['x86_64-linux-gnu-gcc', '-Werror=format-security', """
    + "'-DX', " * 60
    + """]' returned non-zero exit status 1.
ERROR Backend subprocess exited when trying to invoke build_wheel
"""
)


def test_the_cause_lines_of_a_failed_build_are_its_own_each_once() -> None:
    """The backend's exception counts; cibuildwheel's noise, the compiler's command line (-Werror) and the
    lines after the build's end do not; a repeated line is shown once; a long one is cut."""
    assert _build._cause_lines(MYSQLCLIENT_OUTPUT).splitlines() == [  # noqa: SLF001
        "/bin/sh: 1: pkg-config: not found",
        "Exception: Can not find valid pkg-config name.",
        "ERROR Backend subprocess exited when trying to invoke get_requires_for_build_wheel",
    ]
    ldap = _build._cause_lines(LDAP_OUTPUT).splitlines()  # noqa: SLF001
    assert ldap[0] == "Modules/common.h:15:10: fatal error: lber.h: No such file or directory"
    assert ldap[1].startswith("error: Command '['x86_64-linux-gnu-gcc'")
    assert ldap[1].endswith(" ...")
    assert len(ldap[1]) <= 304
    assert not [line for line in ldap if "manylinux-interpreters" in line or line.startswith("x86_64-linux-gnu-gcc")]


BACKEND_RAISED = """\
    * Getting build dependencies for wheel...
    Traceback (most recent call last):
      File "/opt/python/cp311-cp311/lib/python3.11/site-packages/pyproject_hooks/_in_process.py", line 389
        main()
      File "<string>", line 2, in <module>
    RuntimeError: boom: the config file brk.cfg is missing
    TIP pass --env-dir and --sdist-extract-dir to keep the build environment and sources, then see ...
    ERROR Backend subprocess exited when trying to invoke get_requires_for_build_wheel
    cibuildwheel: error: Command ['python', '-m', 'build', ...] failed with code 1.
"""


@pytest.mark.parametrize(
    "raised",
    [
        "RuntimeError: boom: the config file brk.cfg is missing",
        "ModuleNotFoundError: No module named 'numpy'",
        "setuptools.errors.CompileError: command 'gcc' failed",
        "distutils.errors.DistutilsError: Could not find suitable distribution",
        "SystemExit: 1",
    ],
)
def test_a_backends_exception_is_named_in_the_error_not_only_builds_last_word(raised: str) -> None:
    """The line a traceback ends with, whatever its exception's name, comes before build's "Backend
    subprocess exited" (the new-user pass saw only that line in the ERROR block)."""
    output = BACKEND_RAISED.replace("RuntimeError: boom: the config file brk.cfg is missing", raised)
    lines = [line.strip() for line in _build._cause_lines(output).splitlines()]  # noqa: SLF001
    if raised.startswith("SystemExit"):  # not an error by its name: the build's own last word remains
        assert lines == ["ERROR Backend subprocess exited when trying to invoke get_requires_for_build_wheel"]
    else:
        assert lines == [raised, "ERROR Backend subprocess exited when trying to invoke get_requires_for_build_wheel"]


def test_several_failed_builds_are_one_error_naming_each() -> None:
    from wheelbarrow._schedule import one_error
    from wheelbarrow.errors import EngineStoppedError, RepairError

    mysql = CompileError("compiling mysqlclient failed:\n  pkg-config: not found", tip="add system-packages")
    pg = CompileError("compiling psycopg2 failed:\n  pg_config executable not found", tip="add system-packages")
    assert one_error([("psycopg2", pg)]) is pg
    both = one_error([("mysqlclient", mysql), ("psycopg2", pg)])
    assert type(both) is CompileError
    assert str(both).splitlines() == [
        "2 builds failed:",
        "[mysqlclient] compiling mysqlclient failed:",
        "  pkg-config: not found",
        "[psycopg2] compiling psycopg2 failed:",
        "  pg_config executable not found",
    ]
    assert both.tip == "add system-packages"
    mixed = one_error([("a", pg), ("b", RepairError("repairing b failed", tip="raise repair-plat"))])
    assert type(mixed) is BuildError
    assert mixed.tip == "add system-packages\nraise repair-plat"
    stopped = EngineStoppedError("the engine stopped")
    assert one_error([("a", pg), ("b", stopped)]) is stopped  # one cause for all: the engine's
    bug = KeyError("x")
    assert one_error([("a", pg), ("b", bug)]) is bug  # a bug is shown as the bug it is


def test_an_interrupted_json_run_still_prints_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wheelbarrow import _pipeline

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_pipeline, "execute", interrupted)
    assert main(["plan", "--json", "--project", str(write_project(tmp_path))]) == 130
    out, err = capsys.readouterr()
    assert json.loads(out)["exit_code"] == 130
    assert "ERROR: interrupted (SIGINT)" in err


def test_a_zip_sdist_is_refused_before_cibuildwheel_with_what_to_do(tmp_path: Path) -> None:
    from wheelbarrow._build import BuildContext, Builder, build_sdist

    zipped = tmp_path / "oldpkg-1.0.zip"
    zipped.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    ctx = BuildContext(
        demo_plan(tmp_path / "p"), Builder("b", "sha256:0"), _engine.Engine(quiet()), tmp_path, quiet(), 0
    )
    with pytest.raises(BuildError, match=r"oldpkg-1\.0\.zip is a \.zip sdist, and cibuildwheel builds \.tar\.gz"):
        build_sdist(Fetched("oldpkg", "1.0", zipped, "0" * 64), ctx)
