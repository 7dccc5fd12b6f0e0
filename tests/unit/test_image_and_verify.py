from __future__ import annotations

import _ssl
import copy
import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import ENVIRONMENT, make_wheelhouse, sample_manifest, write_project
from wheelbarrow import _probe
from wheelbarrow._config import load_config
from wheelbarrow._image import _tail
from wheelbarrow._manifest import Manifest, WheelEntry
from wheelbarrow._verify import START_CHECK, judge, start_check
from wheelbarrow._wheelhouse import read_wheelhouse
from wheelbarrow.errors import ConfigError, WheelhouseError


def test_a_good_wheelhouse_is_read(tmp_path: Path) -> None:
    wheelhouse = make_wheelhouse(tmp_path)
    manifest, sha = read_wheelhouse(wheelhouse)
    assert [w.name for w in manifest.wheels] == ["a", "b"]
    assert sha == hashlib.sha256((wheelhouse / "requirements.txt").read_bytes()).hexdigest()


def test_tampered_wheel_is_refused(tmp_path: Path) -> None:
    wheelhouse = make_wheelhouse(tmp_path)
    (wheelhouse / "a-1-py3-none-any.whl").write_bytes(b"not the wheel")
    with pytest.raises(WheelhouseError, match=r"a-1-py3-none-any\.whl has sha256 \w+, but the wheelhouse lock says"):
        read_wheelhouse(wheelhouse)


def test_extra_missing_and_absent(tmp_path: Path) -> None:
    wheelhouse = make_wheelhouse(tmp_path)
    (wheelhouse / "c-1-py3-none-any.whl").write_bytes(b"x")
    with pytest.raises(WheelhouseError, match="holds wheels no lock pins: c-1"):
        read_wheelhouse(wheelhouse)
    (wheelhouse / "c-1-py3-none-any.whl").unlink()
    (wheelhouse / "b-1-py3-none-any.whl").unlink()
    with pytest.raises(WheelhouseError, match=r"b-1-py3-none-any\.whl is missing"):
        read_wheelhouse(wheelhouse)
    with pytest.raises(WheelhouseError, match="not a wheelbarrow wheelhouse") as caught:
        read_wheelhouse(tmp_path / "nowhere")
    assert "build_wheels" in caught.value.tip


def test_dockerfile_tail_from_config(tmp_path: Path) -> None:
    project = write_project(tmp_path, 'command = ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]\nport = "8000"')
    tail = _tail(load_config(project, environ={}))
    assert "EXPOSE 8000\n" in tail
    assert 'CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]\n' in tail


def test_image_options(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path), environ={"WHEELBARROW_COMMAND": "gunicorn --bind '0.0.0.0:80' a:b"})
    assert config.command == ("gunicorn", "--bind", "0.0.0.0:80", "a:b")
    assert config.image_tag == "demo:1.0"
    assert config.keep_pip is False
    assert config.repair_policy == "exclude-base"
    assert load_config(tmp_path, environ={"WHEELBARROW_KEEP_PIP": "yes"}).keep_pip is True
    with pytest.raises(ConfigError, match="must be true or false"):
        load_config(tmp_path, environ={"WHEELBARROW_KEEP_PIP": "maybe"})
    with pytest.raises(ConfigError, match="expected a whole number from 1 to 65535"):
        load_config(tmp_path, environ={"WHEELBARROW_PORT": "80000"})


GOOD_REPORT: dict[str, Any] = {
    "uid": 10001,
    "python": "3.11",
    "tools": {},
    "headers": [],
    "elf": [
        {
            "file": "/opt/venv/lib/python3.11/site-packages/psycopg2/_psycopg.cpython-311-x86_64-linux-gnu.so",
            "kind": "shared",
            "module": "psycopg2._psycopg",
            "missing": [],
            "import_error": None,
            "embeds_python": False,
        },
        {
            "file": "/opt/venv/lib/python3.11/site-packages/psycopg2.libs/libpq-1.so.5",
            "kind": "shared",
            "module": None,
            "missing": [],
            "import_error": None,
            "embeds_python": False,
        },
    ],
    "libssl_mapped": ["/usr/lib/x86_64-linux-gnu/libssl.so.3"],
    "expected_from_base": {"libssl.so.3": True},
    "wheels": ["/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl"],
    "distributions": [
        {"name": "psycopg2", "version": "2.9.13", "requires": []},
        {"name": "gunicorn", "version": "23.0.0", "requires": ["packaging", "eventlet>=0.24.1; extra == 'eventlet'"]},
        {"name": "packaging", "version": "26.4", "requires": []},
    ],
    "environment": ENVIRONMENT,
    "venv_writable": False,
    "shells": {"sh": "/usr/bin/sh", "dpkg": "/usr/bin/dpkg"},  # a slim image's
}


def manifest_expecting(*sonames: str) -> Manifest:
    wheel = WheelEntry("psycopg2", "2.9.13", "p.whl", "0" * 64, 1, "built", "x", expected_from_base=sonames)
    return sample_manifest(wheel)


def test_judge_passes_a_good_image() -> None:
    checks = judge(
        GOOD_REPORT, ["/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl"], manifest_expecting("libssl.so.3")
    )
    assert [c.name for c in checks if not c.ok] == []
    assert len(checks) == 12


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"tools": {"gcc": "/usr/bin/gcc"}}, "no compiler or build tool"),
        ({"headers": ["/usr/include/postgresql/libpq-fe.h"]}, "no C or C++ headers"),
        ({"uid": 0}, "runs as non-root"),
        ({"venv_writable": True}, "venv not writable by the runtime user"),
        (
            {"libssl_mapped": ["/usr/lib/libssl.so.3", "/opt/venv/psycopg2.libs/libssl-ab.so.3"]},
            "exactly one libssl mapped",
        ),
        ({"expected_from_base": {"libssl.so.3": False}}, "libraries expected from the base are present"),
        ({"wheels": ["/tmp/wheelhouse/a-1-py3-none-any.whl"]}, "no wheel files beyond the base's"),
        ({"distributions": [{"name": "a", "version": "1", "requires": ["b"]}]}, "dependency check"),
        ({"scripts": [{"file": "/opt/venv/bin/t", "interpreter": "/bin/sh"}]}, "every script's interpreter is there"),
    ],
)
def test_judge_names_what_fails(change: dict[str, Any], failing: str) -> None:
    report = copy.deepcopy(GOOD_REPORT) | change
    checks = judge(report, GOOD_REPORT["wheels"], manifest_expecting("libssl.so.3"))
    assert [c.name for c in checks if not c.ok] == [failing]


@pytest.mark.parametrize(
    "shells",
    [
        {"sh": "/bin/sh"},
        {"busybox": "/usr/local/bin/busybox"},
        {"dpkg": "/usr/bin/dpkg", "apt-get": "/usr/bin/apt-get"},
        {"ls": "/usr/bin/ls"},
        {"bash": "/usr/local/sbin/bash"},
    ],
)
def test_a_distroless_image_with_a_shell_fails_and_names_it(shells: dict[str, str]) -> None:
    manifest = manifest_expecting("libssl.so.3")
    slim = judge(copy.deepcopy(GOOD_REPORT) | {"shells": shells}, GOOD_REPORT["wheels"], manifest)
    assert [c.name for c in slim if not c.ok] == []  # a slim image has a shell, as its base does
    report = copy.deepcopy(GOOD_REPORT) | {"shells": shells}
    (failed,) = [c for c in judge(report, GOOD_REPORT["wheels"], manifest, distroless=True) if not c.ok]
    assert failed.name == "no shell, package manager or coreutils (distroless)"
    assert all(f"{name}={path}" in failed.detail for name, path in shells.items())
    clean = judge(copy.deepcopy(GOOD_REPORT) | {"shells": {}}, GOOD_REPORT["wheels"], manifest, distroless=True)
    assert [c.name for c in clean if not c.ok] == []
    assert len(clean) == len(slim) + 1


def test_the_probe_finds_shells_only_in_the_system_bin_folders(tmp_path: Path) -> None:
    for name in ("sh", "busybox", "gunicorn", "shellcheck", "dash-1"):
        (tmp_path / name).write_text("#!/x\n")
        (tmp_path / name).chmod(0o755)
    (tmp_path / "ls").mkdir()  # a folder is no program
    (tmp_path / "cat").write_text("")  # not executable
    assert _probe.tools(_probe.SHELL, (str(tmp_path),)) == {"busybox": f"{tmp_path}/busybox", "sh": f"{tmp_path}/sh"}


def test_judge_fails_a_broken_extension() -> None:
    report = copy.deepcopy(GOOD_REPORT)
    report["elf"][0]["missing"] = ["libpq.so.5"]
    (failed,) = [c for c in judge(report, GOOD_REPORT["wheels"], manifest_expecting()) if not c.ok]
    assert "missing libpq.so.5" in failed.detail


UWSGI: dict[str, Any] = {
    "file": "/opt/venv/bin/uwsgi",
    "kind": "executable",
    "module": None,
    "missing": [],
    "import_error": None,
    "embeds_python": True,
    "start_error": None,
    "sees_venv": True,
}


@pytest.mark.parametrize(
    ("change", "failing", "said"),
    [
        ({}, [], "1 started"),
        (  # auditwheel left to itself: libpython dropped, the executable moved out of bin/ behind a shim
            {"file": "/opt/venv/lib/python3.11/site-packages/uwsgi.scripts/uwsgi", "sees_venv": False,
             "missing": ["symbol Py_NoSiteFlag", "symbol PyType_Ready"]},
            ["every extension imports and every ELF file's libraries are found",
             "executables that embed Python start and find the venv"],
            "no pyvenv.cfg beside it or one folder up",
        ),
        (  # a base without a shared libpython
            {"missing": ["libpython3.11.so.1.0"], "start_error": None},
            ["every extension imports and every ELF file's libraries are found"],
            "missing libpython3.11.so.1.0",
        ),
        (  # it links, and the loader still refuses it when it starts
            {"start_error": "symbol lookup error: /opt/venv/bin/uwsgi: undefined symbol: Py_NoSiteFlag"},
            ["executables that embed Python start and find the venv"],
            "undefined symbol: Py_NoSiteFlag",
        ),
    ],
)  # fmt: skip
def test_judge_checks_executables_that_embed_python(change: dict[str, Any], failing: list[str], said: str) -> None:
    report = copy.deepcopy(GOOD_REPORT)
    report["elf"].append(UWSGI | change)
    checks = judge(report, GOOD_REPORT["wheels"], manifest_expecting("libssl.so.3"))
    assert [c.name for c in checks if not c.ok] == failing
    assert any(said in c.detail for c in checks)


def test_judge_wants_elf_files_from_platform_wheels_and_none_from_pure_ones() -> None:
    report = copy.deepcopy(GOOD_REPORT) | {"elf": []}
    (failed,) = [c for c in judge(report, GOOD_REPORT["wheels"], manifest_expecting("libssl.so.3")) if not c.ok]
    assert failed.name == "every extension imports and every ELF file's libraries are found"
    pure = sample_manifest(WheelEntry("six", "1.16.0", "six-1.16.0-py3-none-any.whl", "0" * 64, 1, "index", "any"))
    assert [c for c in judge(report, GOOD_REPORT["wheels"], pure) if not c.ok] == []


def test_the_probe_tells_executables_from_shared_objects_by_their_program_header(tmp_path: Path) -> None:
    """ELF files are found by their magic, not their names; an executable is one with an interpreter."""
    shell = Path(sys.executable).resolve()
    extension = Path(_ssl.__file__)  # a shared object with no interpreter (libc.so.6 has one: it runs)
    (tmp_path / "bin").mkdir()
    shutil.copy(shell, tmp_path / "bin" / "named-like-a-library.so")
    shutil.copy(extension, tmp_path / "bin" / "no-suffix")
    (tmp_path / "bin" / "script").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "short").write_bytes(b"\x7fELF\x02\x01")
    (tmp_path / "bin" / "link").symlink_to(shell)
    found = {p.name: kind for p, kind in _probe.elf_files(tmp_path)}
    # a file that starts as ELF but is cut short is not skipped: the loader could not load it either
    assert found == {"named-like-a-library.so": "executable", "no-suffix": "shared", "short": "unreadable"}


@pytest.mark.parametrize(
    ("name", "is_tool"),
    [
        ("gcc", True), ("gcc-12", True), ("x86_64-linux-gnu-gcc-12", True), ("aarch64-linux-gnu-g++", True),
        ("clang", True), ("clang++-16", True), ("cc", True), ("c++", True), ("cpp", True), ("ld", True),
        ("ld.gold", True), ("as", True), ("make", True), ("ninja", True),
        ("ld.so", False), ("ldd", False), ("python3", False), ("gunicorn", False), ("ascii", False), ("gccx", False),
    ],
)  # fmt: skip
def test_the_probe_knows_a_compiler_or_linker_by_its_name(name: str, is_tool: bool) -> None:
    assert bool(_probe.TOOL.match(name)) is is_tool


class FakeStarted:
    """A started container whose state goes through ``states`` (running, exit code, output), one per look."""

    def __init__(self, *states: tuple[bool, int, str], failed: str = "") -> None:
        self.states, self.failed, self.looks = list(states), failed, 0

    def state(self) -> tuple[bool, int, str]:
        self.looks += 1
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


@pytest.mark.parametrize(
    ("started", "ok", "detail"),
    [
        (FakeStarted((True, 0, "")), True, "running after"),
        (FakeStarted((True, 0, ""), (False, 0, "done")), True, "exited 0"),
        (
            FakeStarted(
                (True, 0, ""),
                (
                    False,
                    3,
                    "Traceback\nModuleNotFoundError: No module named 'app'\nbooting\n[ERROR] Worker failed to boot.",
                ),
            ),
            False,
            "exited 3: ModuleNotFoundError: No module named 'app' | booting | [ERROR] Worker failed to boot.",
        ),
        (FakeStarted((False, 127, ""), failed='exec: "gunicron": executable file not found'), False, "did not start"),
        (FakeStarted((False, 1, "")), False, "exited 1: it printed nothing"),
    ],
)
def test_the_command_must_keep_running_for_three_seconds(started: FakeStarted, ok: bool, detail: str) -> None:
    ticks = iter(float(t) for t in range(100))
    naps: list[float] = []
    check = start_check(started, ("gunicorn", "app:app"), 0.0, lambda: next(ticks), naps.append)  # type: ignore[arg-type]
    assert sum(naps) < 3  # it looked again while it waited, never longer than the 3 s
    assert (check.name, check.ok) == (START_CHECK, ok)
    assert detail in check.detail
    assert check.detail.startswith("gunicorn app:app: ")


def test_an_unreadable_elf_file_in_the_venv_fails_the_libraries_check() -> None:
    report = copy.deepcopy(GOOD_REPORT)
    said = "not a readable ELF file (truncated or malformed): the loader cannot load it either"
    report["elf"].append(
        {"file": "/opt/venv/lib/x/y.so", "kind": "unreadable", "missing": [], "import_error": said, "module": None}
        | {"embeds_python": False}
    )
    (failed,) = [c for c in judge(report, GOOD_REPORT["wheels"], manifest_expecting("libssl.so.3")) if not c.ok]
    assert failed.detail == f"/opt/venv/lib/x/y.so: {said}"


def test_the_probe_names_each_script_whose_interpreter_is_not_there(tmp_path: Path) -> None:
    """#!/bin/sh in a distroless image, /usr/bin/env of a program not on PATH, a path that is no file: each
    named; an ELF file, a script whose interpreter is there and a plain file are not."""
    here = Path(sys.executable).resolve()
    scripts = {
        "sh-tool": b"#!/nonexistent/sh -e\necho\n",
        "env-tool": b"#!/usr/bin/env -S wheelbarrow-no-such-program -u\n",
        "empty": b"#!\n",
        "good": b"#!" + bytes(here) + b"\nprint()\n",
        "good-env": b"#!/usr/bin/env python3\n",
        "data.txt": b"not a script\n",
        "elf": b"\x7fELF\x02\x01\x01",
    }
    for name, text in scripts.items():
        (tmp_path / name).write_bytes(text)
    (tmp_path / "link").symlink_to("/nonexistent")
    found = {Path(e["file"]).name: e["interpreter"] for e in _probe.scripts(tmp_path)}
    assert found == {
        "sh-tool": "/nonexistent/sh",
        "env-tool": "/usr/bin/env wheelbarrow-no-such-program",
        "empty": "(none)",
    }
    assert _probe.scripts(tmp_path / "missing") == []
