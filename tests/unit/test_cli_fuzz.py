"""The CLI under random flags, environment values, path shapes and file contents (hypothesis).

Whatever it is given, `wheelbarrow` ends with an exit code from the README's table, never a
traceback (or the last-resort "internal error", which is a bug), and leaves the project tree
byte-identical. No engine is on PATH here (unit tests start no process), so every run ends at the
latest when the engine is needed; everything before that (config, lock, plan, outputs, the cache
command) is attacked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.unit.conftest import snapshot
from wheelbarrow._cli import main

#: The README's exit codes (129, 130, 143: signals, not raised here; 70: internal error, a bug).
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
SHA = "a" * 64

PATHS = [
    "",
    " ",
    ".",
    "..",
    "/",
    "~",
    "src",
    "wheelhouse",
    "dist",
    "out/../..",
    "../sibling",
    "link",
    "fifo",
    "pyproject.toml",
    "nested/deeper/wh",
    "wheels",
    "caf\udce9",
    "a\nb",
]
VALUES = [*PATHS, "3.11", "3.1x", "²", "٣", "0", "-1", "99999999", "true", "maybe", "a,b", "[", "x" * 300]
KEYS = [
    "python",
    "groups",
    "build-from-source",
    "builder-base",
    "debian-suite",
    "system-packages",
    "wheelhouse",
    "lock",
    "cache-dir",
    "jobs",
    "engine",
    "project-build",
    "glibc",
    "runtime-base",
    "repair-policy",
    "dist-dir",
    "image-tag",
    "command",
    "port",
    "keep-pip",
    "unknown-key",
]
LOCK_LINES = [
    f"six==1.16.0 --hash=sha256:{SHA}",
    f"six==1.16.0 --hash sha256:{SHA}",
    "six==1.16.0 --hash=sha256:../../../etc",
    "-r ../outside.txt",
    "-r requirements.txt",
    "-c constraints.txt",
    "-e .",
    "--index-url https://example.invalid/simple",
    "six>=1",
    "six @ https://example.invalid/six.whl",
    "not a requirement ((",
    '[project]\nname = "x"',
    "",
]
PYLOCKS = [
    (
        'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "six"\nversion = "1.16.0"\n'
        f'[packages.sdist]\nname = "six-1.16.0.tar.gz"\nhashes = {{sha256 = "{SHA}"}}\n'
    ),
    (
        'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "six"\nversion = "1.16.0"\n[packages.sdist]\n'
        f'path = "/etc/passwd"\nhashes = {{sha256 = "{SHA}"}}\n'
    ),
    'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "../x"\nversion = "1"\nwheels = "no"\n',
    'lock-version = "2.0"\n',
    "packages = [",
]
FLAGS = ["--wheelhouse", "--dist-dir", "--cache-dir", "--jobs", "--lock"]
BUILD_SYSTEMS = [
    '[build-system]\nrequires = ["poetry-core"]\nbuild-backend = "poetry.core.masonry.api"\n',
    'build-system = "oops"\n',
    "[build-system]\nrequires = 3\n",
    "",
]


def toml_string(value: str) -> str:
    return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


@st.composite
def cases(draw: st.DrawFn) -> dict[str, object]:
    return {
        "command": draw(
            st.sampled_from(
                [
                    ["plan"],
                    ["build"],
                    ["image"],
                    ["verify"],
                    ["publish", "--skip-image"],
                    ["bootstrap"],
                    ["cache", "info"],
                    ["cache", "prune", "--older-than", "0"],
                ]
            )
        ),
        # Mostly one change at a time, so that runs get past the config to the lock, the plan and the outputs.
        "table": draw(
            st.one_of(st.just({}), st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2))
        ),
        "env": draw(
            st.one_of(st.just({}), st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=1))
        ),
        "flags": draw(
            st.one_of(
                st.just([]),
                st.lists(st.tuples(st.sampled_from(FLAGS), st.sampled_from(PATHS)), max_size=2),
            )
        ),
        "project_arg": draw(st.sampled_from(["dir", "dir", "dir", "pyproject", "missing", "file"])),
        "lock": draw(st.sampled_from(["requirements", "pylock", "utf16", "none"])),
        "lines": draw(st.lists(st.sampled_from(LOCK_LINES), max_size=5)),
        "pylock": draw(st.sampled_from(PYLOCKS)),
        "build_system": draw(st.sampled_from(BUILD_SYSTEMS)),
        "with_list_value": draw(st.sampled_from([False, False, False, True])),
    }


def make_project(root: Path, case: dict[str, object]) -> Path:
    project = root / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "src").mkdir()
    (project / "src" / "app.py").write_text("print('hi')\n")
    for section in ("wheels", "memo", "artifacts"):  # names a cache also uses
        (project / section).mkdir()
        (project / section / "keep.txt").write_text(section)
    os.mkfifo(project / "fifo")
    (project / "link").symlink_to(project / "src")
    table = case["table"]
    assert isinstance(table, dict)
    lines = [f"{key} = {toml_string(value)}" for key, value in table.items()]
    if case["with_list_value"]:
        lines.append('groups = ["main", 3]')
    build_system = case["build_system"]
    assert isinstance(build_system, str)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "fuzzed"\nversion = "1.0"\n\n'
        + build_system
        + "\n[tool.wheelbarrow]\n"
        + "\n".join(lines)
        + "\n"
    )
    body = "\n".join(str(line) for line in case["lines"]) + "\n"  # type: ignore[attr-defined]
    match case["lock"]:
        case "requirements":
            (project / "requirements.txt").write_text(body)
        case "utf16":
            (project / "requirements.txt").write_bytes(body.encode("utf-16"))
        case "pylock":
            (project / "pylock.toml").write_text(str(case["pylock"]))
    (root / "outside.txt").write_text(f"six==1.16.0 --hash=sha256:{SHA}\n")
    return project


#: 150 in CI (about 10 s); set FUZZ_EXAMPLES for a longer hunt.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_the_cli_ends_with_a_documented_code_and_touches_nothing(
    case: dict[str, object],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    project = make_project(root, case)
    before = snapshot(root)
    empty_path = root / "bin"
    empty_path.mkdir()
    runtime = root / "runtime"
    runtime.mkdir(mode=0o700)
    project_arg = {
        "dir": str(project),
        "pyproject": str(project / "pyproject.toml"),
        "missing": str(project / "nope"),
        "file": str(project / "src" / "app.py"),
    }[str(case["project_arg"])]
    flags = [part for flag in case["flags"] for part in flag]  # type: ignore[attr-defined]
    env = {"WHEELBARROW_" + k.upper().replace("-", "_"): v for k, v in case["env"].items()}  # type: ignore[attr-defined]
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("WHEELBARROW_")]:
            patch.delenv(name)
        patch.setenv("PATH", str(empty_path))
        patch.setenv("HOME", str(root / "home"))
        patch.setenv("XDG_CACHE_HOME", str(root / "xdg-cache"))
        patch.setenv("XDG_RUNTIME_DIR", str(runtime))
        for name, value in env.items():
            try:
                patch.setenv(name, value)
            except ValueError:
                continue  # a value the OS cannot hold in the environment
        patch.chdir(project)
        command = list(case["command"])  # type: ignore[call-overload]
        code = main([*command[:1], "--project", project_arg, *flags, *command[1:]])
    err = capsys.readouterr().err
    event(f"exit {code}")
    assert code in DOCUMENTED, err
    assert "Traceback" not in err
    assert "internal error" not in err
    if code != 0:
        assert re.search(r"^ERROR: ", err, re.MULTILINE), err
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k.startswith("project")} == {
        k: v for k, v in before.items() if k.startswith("project")
    }
    assert after.get("outside.txt") == before["outside.txt"]
