"""wheelbarrow init on fixture projects made here: what it appends, what it never touches."""

from __future__ import annotations

import importlib.metadata
import re
import stat
import tomllib
from pathlib import Path

import nox.project
import pytest

from wheelbarrow import _init
from wheelbarrow._config import load_config
from wheelbarrow._index import Client, Settings
from wheelbarrow._init import (
    appended,
    create_new,
    init_project,
    noxfile_text,
    replace_text,
    with_files,
)
from wheelbarrow._lock import Lock, LockedFile, LockedPackage, uv_lock_files
from wheelbarrow._log import Log
from wheelbarrow._sources import Index
from wheelbarrow._version import __version__, source_requirement, with_tools
from wheelbarrow.errors import ConfigError, LockError, MissingLockError

REPO = Path(__file__).resolve().parents[2]
PSYCOPG2_SDIST, PSYCOPG2_WIN, SIX_SDIST, SIX_WHEEL, NEW_WHEEL = (c * 64 for c in "12345")

#: An existing project's pyproject.toml, with the comments and odd spacing a real one has.
PYPROJECT = """\
# The service's metadata.   Kept as it is, comments and spacing included.
[project]
name    = "svc"   # the name
version = "2.0"
requires-python = ">=3.11"
dependencies = [
    "psycopg2==2.9.13",  # compiled
    "six==1.16.0",
]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
# the end
"""


def entry(name: str, sha256: str) -> str:
    """A file of a PEP 751 lock, as an inline table."""
    return f'{{ name = "{name}", url = "https://x.invalid/{name}", hashes = {{ sha256 = "{sha256}" }} }}'


#: A PEP 751 lock: psycopg2 has an sdist and a Windows wheel only, six a pure wheel.
PYLOCK = f"""\
lock-version = "1.0"
created-by = "hand"

[[packages]]
name = "psycopg2"
version = "2.9.13"
sdist = {entry("psycopg2-2.9.13.tar.gz", PSYCOPG2_SDIST)}
wheels = [{entry("psycopg2-2.9.13-cp311-cp311-win_amd64.whl", PSYCOPG2_WIN)}]

[[packages]]
name = "six"
version = "1.16.0"
sdist = {entry("six-1.16.0.tar.gz", SIX_SDIST)}
wheels = [{entry("six-1.16.0-py2.py3-none-any.whl", SIX_WHEEL)}]
"""


def lines_of() -> tuple[list[str], Log]:
    lines: list[str] = []
    return lines, Log(sink=lines.append)


def project(root: Path, pyproject: str = PYPROJECT, lock: str | None = PYLOCK) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_bytes(pyproject.encode())
    if lock is not None:
        (root / "pylock.toml").write_text(lock, encoding="utf-8")
    return root


def run_init(root: Path, **overrides: object) -> tuple[_init.Initialized, list[str]]:
    lines, log = lines_of()
    config = load_config(root, environ={}, overrides=overrides)
    return init_project(config, log, machine="x86_64"), lines


def the_table(root: Path) -> dict[str, object]:
    table = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["wheelbarrow"]
    assert isinstance(table, dict)
    return table


def test_a_fresh_project_gets_the_table_with_the_sdist_only_package_and_a_todo(tmp_path: Path) -> None:
    root = project(tmp_path / "svc")
    done, lines = run_init(root)
    assert (done.table_written, done.noxfile_written, done.build_from_source) == (True, True, ("psycopg2",))
    assert the_table(root) == {"python": "3.11", "build-from-source": ["psycopg2"], "system-packages": []}
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    # The default builder is the runtime base (python:3.11-slim, Debian) plus a compiler: Debian's package.
    todo = "# TODO: the system packages psycopg2 needs to compile (e.g. libpq-dev on Debian, the runtime base's "
    todo += "distribution)"
    assert todo in text.splitlines()
    assert "#   psycopg2: the lock has no wheel of it for this target" in text
    assert any("fill in system-packages" in line for line in lines)
    assert (root / "noxfile.py").read_text(encoding="utf-8") == noxfile_text(source_requirement())


def test_the_text_above_the_table_is_kept_byte_for_byte(tmp_path: Path) -> None:
    root = project(tmp_path / "svc")
    before = (root / "pyproject.toml").read_bytes()
    run_init(root)
    after = (root / "pyproject.toml").read_bytes()
    assert after.startswith(before + b"\n[tool.wheelbarrow]\n# Written by wheelbarrow init")


@pytest.mark.parametrize(
    ("old", "start"),
    [
        (b"[project]\nname = 'a'", b"[project]\nname = 'a'\n\n[tool.wheelbarrow]\n"),  # no final newline
        (b"[project]\nname = 'a'\n\n", b"[project]\nname = 'a'\n\n[tool.wheelbarrow]\n"),  # a blank line already
        (b"[project]\r\nname = 'a'\r\n", b"[project]\r\nname = 'a'\r\n\r\n[tool.wheelbarrow]\r\n"),  # CRLF kept
        (b"", b"[tool.wheelbarrow]\n"),
    ],
)
def test_the_table_is_appended_in_the_files_own_line_endings(old: bytes, start: bytes) -> None:
    new = appended(old, "[tool.wheelbarrow]\npython = '3.11'\n")
    assert new.startswith(start)
    assert new.startswith(old)
    assert (b"\n" in new.replace(b"\r\n", b"")) is (b"\r\n" not in old)


def test_a_crlf_project_still_loads(tmp_path: Path) -> None:
    root = project(tmp_path / "svc", PYPROJECT.replace("\n", "\r\n"))
    run_init(root)
    assert load_config(root, environ={}).build_from_source == ("psycopg2",)
    assert b"\n" not in (root / "pyproject.toml").read_bytes().replace(b"\r\n", b"")


def test_the_written_pyproject_loads_and_the_table_passes_wheelbarrows_validation(tmp_path: Path) -> None:
    root = project(tmp_path / "svc")
    run_init(root)
    config = load_config(root, environ={})  # the table is read and checked as any [tool.wheelbarrow]
    assert (config.python, config.build_from_source, config.system_packages) == ("3.11", ("psycopg2",), ())
    # Before it writes, init checks its table as wheelbarrow checks any: a value it rejects is never written.
    with pytest.raises(ConfigError, match=re.escape("python is '3.x', expected a CPython version")):
        _init.check_appended(root, b'[tool.wheelbarrow]\npython = "3.x"\n', {"python": "3.x"})
    with pytest.raises(ConfigError, match="does not read back as the table wheelbarrow init wrote"):
        _init.check_appended(root, b'[tool.wheelbarrow]\npython = "3.11"\n', {"python": "3.12"})


def test_an_existing_table_is_never_touched_and_the_lock_is_not_needed(tmp_path: Path) -> None:
    existing = PYPROJECT + '\n[tool.wheelbarrow]\n# mine\npython = "3.11"\n'
    root = project(tmp_path / "svc", existing, lock=None)  # no lock: init must not even read one
    before = (root / "pyproject.toml").stat()
    done, lines = run_init(root)
    assert (root / "pyproject.toml").read_bytes() == existing.encode()
    assert (root / "pyproject.toml").stat().st_mtime_ns == before.st_mtime_ns
    assert (done.table_written, done.noxfile_written) == (False, True)
    assert any("already has a [tool.wheelbarrow] table: left as it is" in line for line in lines)


def test_a_table_written_as_a_dotted_key_counts_as_existing(tmp_path: Path) -> None:
    existing = PYPROJECT + '\n[tool]\nwheelbarrow = { python = "3.11" }\n'
    root = project(tmp_path / "svc", existing)
    done, _ = run_init(root)
    assert not done.table_written
    assert (root / "pyproject.toml").read_bytes() == existing.encode()


def test_an_existing_noxfile_is_never_touched(tmp_path: Path) -> None:
    root = project(tmp_path / "svc")
    (root / "noxfile.py").write_text("# mine\n", encoding="utf-8")
    done, lines = run_init(root)
    assert (root / "noxfile.py").read_text(encoding="utf-8") == "# mine\n"
    assert (done.table_written, done.noxfile_written) == (True, False)
    assert any("noxfile.py exists: left as it is" in line for line in lines)


def test_a_dangling_noxfile_symlink_is_left_too(tmp_path: Path) -> None:
    root = project(tmp_path / "svc")
    (root / "noxfile.py").symlink_to(tmp_path / "elsewhere.py")
    done, _ = run_init(root)
    assert not done.noxfile_written
    assert not (tmp_path / "elsewhere.py").exists()


def test_with_both_there_it_has_nothing_to_do(tmp_path: Path) -> None:
    existing = PYPROJECT + '\n[tool.wheelbarrow]\npython = "3.11"\n'
    root = project(tmp_path / "svc", existing, lock=None)
    (root / "noxfile.py").write_text("# mine\n", encoding="utf-8")
    done, lines = run_init(root)
    assert (done.table_written, done.noxfile_written) == (False, False)
    assert lines[-1] == "nothing to do: wheelbarrow init writes only what a project does not have yet"
    assert sorted(p.name for p in root.iterdir()) == ["noxfile.py", "pyproject.toml"]


def test_a_failure_before_writing_leaves_the_project_as_it_was(tmp_path: Path) -> None:
    root = project(tmp_path / "svc", lock=None)
    with pytest.raises(MissingLockError):
        run_init(root)
    assert (root / "pyproject.toml").read_bytes() == PYPROJECT.encode()
    assert sorted(p.name for p in root.iterdir()) == ["pyproject.toml"]  # not even the noxfile


def test_a_table_that_cannot_be_appended_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    inline = "tool = { black = { line-length = 100 } }\n" + PYPROJECT  # a [tool.x] header after it is invalid
    root = project(tmp_path / "svc", inline)
    before = (root / "pyproject.toml").read_bytes()
    with pytest.raises(ConfigError, match=r"with \[tool\.wheelbarrow\] appended is not valid TOML"):
        run_init(root)
    assert (root / "pyproject.toml").read_bytes() == before
    assert not (root / "noxfile.py").exists()


def test_the_glibc_of_the_target_decides_and_the_table_keeps_the_target(tmp_path: Path) -> None:
    """A package whose only wheel needs glibc 2.34 is compiled for manylinux_2_28, not for bookworm (2.36)."""
    lock = PYLOCK + (
        f'\n[[packages]]\nname = "newlib"\nversion = "1.0"\n'
        f"wheels = [{entry('newlib-1.0-cp311-cp311-manylinux_2_34_x86_64.whl', NEW_WHEEL)}]\n"
        f"sdist = {entry('newlib-1.0.tar.gz', '6' * 64)}\n"
    )
    pyproject = PYPROJECT.replace('"six==1.16.0",', '"six==1.16.0", "newlib==1.0",')
    default = project(tmp_path / "default", pyproject, lock)
    assert run_init(default)[0].build_from_source == ("newlib", "psycopg2")
    debian = project(tmp_path / "debian", pyproject, lock)
    suite = {"debian-suite": "bookworm", "builder-base": "localhost/wheelbarrow/builder-base:bookworm"}
    done, _ = run_init(debian, **suite)
    assert done.build_from_source == ("psycopg2",)
    assert the_table(debian) == {
        "python": "3.11",
        **suite,
        "build-from-source": ["psycopg2"],
        "system-packages": [],
    }
    assert "(e.g. libpq-dev on Debian, the runtime base's distribution)" in (debian / "pyproject.toml").read_text(
        encoding="utf-8"
    )
    assert load_config(debian, environ={}).glibc == "2.36"  # the table alone gives the same target
    pinned = project(tmp_path / "pinned", pyproject, lock)
    run_init(pinned, glibc="2.34")
    assert the_table(pinned)["glibc"] == "2.34"
    assert the_table(pinned)["build-from-source"] == ["psycopg2"]


def test_packages_named_already_and_system_packages_given_are_kept(tmp_path: Path) -> None:
    root = project(tmp_path / "svc")
    done, _ = run_init(root, **{"build-from-source": "six", "system-packages": "libpq-devel"})
    assert done.build_from_source == ("psycopg2", "six")
    table = the_table(root)
    assert (table["build-from-source"], table["system-packages"]) == (["psycopg2", "six"], ["libpq-devel"])
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    assert "TODO" not in text
    assert "#   six: asked for" in text


def test_nothing_to_compile_says_so(tmp_path: Path) -> None:
    lock = f"""\
lock-version = "1.0"
created-by = "hand"
[[packages]]
name = "six"
version = "1.16.0"
wheels = [{entry("six-1.16.0-py2.py3-none-any.whl", SIX_WHEEL)}]
"""
    root = project(tmp_path / "svc", PYPROJECT.replace('"psycopg2==2.9.13",  # compiled\n', ""), lock)
    done, _ = run_init(root)
    assert done.build_from_source == ()
    assert the_table(root) == {"python": "3.11", "build-from-source": []}
    assert "the lock has a wheel of every package" in (root / "pyproject.toml").read_text(encoding="utf-8")


def test_a_requirements_lock_learns_its_file_names_from_the_index(tmp_path: Path) -> None:
    requirements = (
        f"psycopg2==2.9.13 --hash=sha256:{PSYCOPG2_SDIST} --hash=sha256:{PSYCOPG2_WIN}\n"
        f"six==1.16.0 --hash=sha256:{SIX_WHEEL}\n"
    )
    root = project(tmp_path / "svc", lock=None)
    (root / "requirements.txt").write_text(requirements, encoding="utf-8")
    index = {  # what the index lists, a file with another hash among them (not the locked one: ignored)
        "psycopg2": (
            LockedFile("psycopg2-2.9.13.tar.gz", PSYCOPG2_SDIST),
            LockedFile("psycopg2-2.9.13-cp311-cp311-manylinux_2_17_x86_64.whl", "9" * 64),
        ),
        "six": (LockedFile("six-1.16.0-py2.py3-none-any.whl", SIX_WHEEL),),
    }
    asked: list[str] = []

    def lister(package: LockedPackage) -> tuple[LockedFile, ...]:
        asked.append(package.name)
        return index[package.name]

    lines, log = lines_of()
    config = load_config(root, environ={})
    done = init_project(config, log, machine="x86_64", lister=lister)
    assert sorted(asked) == ["psycopg2", "six"]
    assert done.build_from_source == ("psycopg2",)
    assert any("names no files: asking the index" in line for line in lines)


def test_a_package_the_index_has_no_locked_file_of_is_said(tmp_path: Path) -> None:
    lines, log = lines_of()
    package = LockedPackage("psycopg2", "2.9.13", (PSYCOPG2_SDIST,))  # type: ignore[arg-type]
    lock = Lock(tmp_path / "requirements.txt", "requirements", (package,))
    result = with_files(lock, log, lambda _p: ())
    assert result.packages[0].files == ()
    assert any("no file of psycopg2==2.9.13 was found by its locked sha256" in line for line in lines)


UV_LOCK = f"""\
version = 1
requires-python = ">=3.11"

[[package]]
name = "svc"
version = "2.0"
source = {{ editable = "." }}

[[package]]
name = "psycopg2"
version = "2.9.13"
source = {{ registry = "https://x.invalid/simple" }}
sdist = {{ url = "https://x.invalid/p/psycopg2-2.9.13.tar.gz", hash = "sha256:{PSYCOPG2_SDIST}", size = 1 }}
wheels = [
    {{ url = "https://x.invalid/p/psycopg2-2.9.13-cp311-cp311-win_amd64.whl", hash = "sha256:{PSYCOPG2_WIN}" }},
]

[[package]]
name = "Local.Thing"
version = "0.1"
source = {{ path = "vendor/local_thing-0.1.tar.gz" }}
sdist = {{ path = "vendor/local_thing-0.1.tar.gz", hash = "sha256:{NEW_WHEEL}" }}

[[package]]
name = "dynamic"
source = {{ virtual = "." }}
"""


def test_uv_lock_files_are_read_from_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "uv.lock"
    path.write_text(UV_LOCK, encoding="utf-8")
    files = uv_lock_files(path)
    assert files[("psycopg2", "2.9.13")] == (
        LockedFile("psycopg2-2.9.13.tar.gz", PSYCOPG2_SDIST),
        LockedFile("psycopg2-2.9.13-cp311-cp311-win_amd64.whl", PSYCOPG2_WIN),
    )
    assert files[("local-thing", "0.1")] == (LockedFile("local_thing-0.1.tar.gz", NEW_WHEEL),)
    assert files[("svc", "2.0")] == ()
    assert len(files) == 3  # the entry with no version is skipped
    # Joined with what `uv export` gives (hashes only), the plan can tell the sdist-only package.
    exported = Lock(path, "uv", (LockedPackage("psycopg2", "2.9.13", (PSYCOPG2_SDIST, PSYCOPG2_WIN)),))  # type: ignore[arg-type]
    assert [f.filename for f in with_files(exported, Log(sink=lambda _l: None)).packages[0].files] == [
        "psycopg2-2.9.13.tar.gz",
        "psycopg2-2.9.13-cp311-cp311-win_amd64.whl",
    ]


def test_a_uv_lock_file_name_that_is_a_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "uv.lock"
    path.write_text(UV_LOCK.replace('local_thing-0.1.tar.gz", hash', '..", hash'), encoding="utf-8")
    with pytest.raises(LockError, match="is not a distribution file name"):
        uv_lock_files(path)


def test_the_noxfile_declares_nox_and_this_wheelbarrow_in_its_script_block(tmp_path: Path) -> None:
    path = tmp_path / "noxfile.py"
    path.write_text(noxfile_text(), encoding="utf-8")
    block = nox.project.load_toml(path)  # nox's own reader of the block
    assert block["dependencies"] == ["nox>=2025.2.9", f"wheelbarrow[poetry,uv]=={__version__}"]
    compile(noxfile_text(), str(path), "exec")
    assert "nox.session(wheelbarrow.nox.build_wheels)\n" in noxfile_text()


def test_the_noxfile_names_where_the_running_wheelbarrow_came_from(tmp_path: Path) -> None:
    """Installed from a path or a git URL (pip's direct_url.json), the noxfile installs from there too."""
    path = tmp_path / "noxfile.py"
    for requirement in (
        "wheelbarrow[poetry,uv] @ file:///src/wheelbarrow",
        "wheelbarrow[poetry,uv] @ git+https://git.example.invalid/wheelbarrow.git@" + "0" * 40,
    ):
        path.write_text(noxfile_text(requirement), encoding="utf-8")
        assert nox.project.load_toml(path)["dependencies"] == ["nox>=2025.2.9", requirement]


def test_the_readme_noxfile_is_the_one_init_writes() -> None:
    """The README's "Use it in your project" shows exactly the noxfile init writes, version included."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    text = readme[readme.index("## Use it in your project") : readme.index("### Commands")]
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks == [noxfile_text()]


def test_create_new_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "noxfile.py"
    assert create_new(target, "first\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not create_new(target, "second\n")
    assert target.read_text(encoding="utf-8") == "first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["noxfile.py"]  # no temporary file left


def test_replace_text_refuses_a_file_that_changed_meanwhile(tmp_path: Path) -> None:
    target = tmp_path / "pyproject.toml"
    target.write_bytes(b"edited by someone else\n")
    with pytest.raises(ConfigError, match="changed while wheelbarrow init was reading the lock"):
        replace_text(target, b"what init read\n", b"what init read\nand its table\n")
    assert target.read_bytes() == b"edited by someone else\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]


def test_replace_text_keeps_the_mode_and_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real" / "pyproject.toml"
    real.parent.mkdir()
    real.write_bytes(b"old\n")
    real.chmod(0o640)
    link = tmp_path / "pyproject.toml"
    link.symlink_to(real)
    replace_text(link, b"old\n", b"old\nnew\n")
    assert link.is_symlink()
    assert real.read_bytes() == b"old\nnew\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_the_index_lister_reads_the_simple_pages_and_keeps_the_locked_files(tmp_path: Path) -> None:
    """A PEP 503 index on disk: the locked files are found by hash and name; another project's file is not."""
    page = tmp_path / "simple" / "psycopg2"
    page.mkdir(parents=True)
    links = [
        ("psycopg2-2.9.13.tar.gz", PSYCOPG2_SDIST),
        ("psycopg2-2.9.13-cp311-cp311-win_amd64.whl", PSYCOPG2_WIN),
        ("psycopg2-2.9.12.tar.gz", "8" * 64),  # another version: not locked
        ("other-1.0.tar.gz", PSYCOPG2_SDIST),  # the locked hash under another project's name
    ]
    anchors = "".join(f'<a href="../../files/{name}#sha256={sha}">{name}</a>\n' for name, sha in links)
    (page / "index.html").write_text(f"<html><body>\n{anchors}</body></html>\n", encoding="utf-8")
    log = Log(sink=lambda _line: None)
    settings = Settings(indexes=((tmp_path / "simple").as_uri(),))
    client = Client(settings, log)
    lister = _init.index_lister(client, lambda _name: tuple(Index(url) for url in settings.indexes))
    package = LockedPackage("psycopg2", "2.9.13", (PSYCOPG2_SDIST, PSYCOPG2_WIN))  # type: ignore[arg-type]
    assert lister(package) == (
        LockedFile("psycopg2-2.9.13.tar.gz", PSYCOPG2_SDIST),
        LockedFile("psycopg2-2.9.13-cp311-cp311-win_amd64.whl", PSYCOPG2_WIN),
    )
    absent = LockedPackage("six", "1.16.0", (SIX_WHEEL,))  # type: ignore[arg-type]
    assert lister(absent) == ()


def test_init_writes_all_or_nothing_and_never_through_a_link_out_of_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while writing pyproject.toml takes back the noxfile just written; a pyproject.toml that
    links outside the project (a repository planting pyproject.toml -> ~/.bashrc) is never written."""
    root = project(tmp_path / "svc")
    before = (root / "pyproject.toml").read_bytes()

    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_init, "replace_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_init(root)
    assert not (root / "noxfile.py").exists()
    assert (root / "pyproject.toml").read_bytes() == before
    monkeypatch.undo()
    outside = tmp_path / "bashrc"
    outside.write_bytes(before)
    (root / "pyproject.toml").unlink()
    (root / "pyproject.toml").symlink_to(outside)
    with pytest.raises(ConfigError, match="outside the project"):
        run_init(root)
    assert outside.read_bytes() == before
    assert not (root / "noxfile.py").exists()


class Recorded:
    """A distribution whose direct_url.json (PEP 610) says ``recorded``."""

    def __init__(self, recorded: str | None) -> None:
        self.recorded = recorded

    def read_text(self, name: str) -> str | None:
        return self.recorded if name == "direct_url.json" else None


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        ('{"url": "file:///src/wheelbarrow", "dir_info": {}}', "wheelbarrow[poetry,uv] @ file:///src/wheelbarrow"),
        ('{"url": "file:///src/wheelbarrow", "dir_info": {"editable": true}}', "wheelbarrow[poetry,uv] @ file:///src/wheelbarrow"),
        (
            '{"url": "https://git.example.invalid/w.git", "vcs_info": {"vcs": "git", "commit_id": "' + "a" * 40 + '"}}',
            "wheelbarrow[poetry,uv] @ git+https://git.example.invalid/w.git@" + "a" * 40,
        ),
        ('{"url": "file:///tmp/w-1.0-py3-none-any.whl", "archive_info": {}}', f"wheelbarrow[poetry,uv]=={__version__}"),
        (None, f"wheelbarrow[poetry,uv]=={__version__}"),  # from an index: no record
        ("not json", f"wheelbarrow[poetry,uv]=={__version__}"),
    ],
)  # fmt: skip
def test_the_running_wheelbarrow_says_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch, recorded: str | None, expected: str
) -> None:
    monkeypatch.setattr(importlib.metadata, "distribution", lambda _name: Recorded(recorded))
    assert source_requirement() == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/src/wheelbarrow", "/src/wheelbarrow[poetry,uv]"),
        ("/src/wheelbarrow[uv]", "/src/wheelbarrow[uv]"),
        ("0.2.0", "wheelbarrow[poetry,uv]==0.2.0"),
        ("wheelbarrow==0.2.0", "wheelbarrow[poetry,uv]==0.2.0"),
        ("wheelbarrow[poetry]>=0.2", "wheelbarrow[poetry]>=0.2"),
        ("git+https://git.example.invalid/w.git@v1", "wheelbarrow[poetry,uv] @ git+https://git.example.invalid/w.git@v1"),
        ("wheelbarrow @ file:///src/w", "wheelbarrow[poetry,uv] @ file:///src/w"),
        ("dist/wheelbarrow-0.1.0-py3-none-any.whl", "dist/wheelbarrow-0.1.0-py3-none-any.whl[poetry,uv]"),
    ],
)  # fmt: skip
def test_an_install_override_gets_the_lock_tools(monkeypatch: pytest.MonkeyPatch, given: str, expected: str) -> None:
    """NOX_WHEELBARROW_INSTALL=/path installed wheelbarrow without uv and Poetry: the extras are added."""
    from wheelbarrow import nox as wheelbarrow_nox

    assert with_tools(given) == expected
    monkeypatch.setenv("NOX_WHEELBARROW_INSTALL", given)
    assert wheelbarrow_nox.install_spec() == expected


def test_the_table_says_which_compiled_packages_need_runtime_packages(tmp_path: Path) -> None:
    """python-ldap (and pycurl, through Debian's libcurl and OpenLDAP) load SASL plugins, mysqlclient its
    client plugins, uWSGI embeds the interpreter: the wheels cannot carry those, and init says which
    Debian package gives each."""
    from wheelbarrow._plan import SdistBuild

    root = project(tmp_path / "svc")
    config = load_config(root, environ={}, overrides={"python": "3.13"})
    builds = tuple(
        SdistBuild(name, "1.0", LockedFile(f"{name}-1.0.tar.gz", "0" * 64), ("0" * 64,), "no compatible wheel")
        for name in ("python-ldap", "uwsgi", "six", "pycurl")
    )
    text, values = _init.table(config, builds, "x86_64")
    todos = [line for line in text.splitlines() if "runtime-packages" in line]
    said = "loads at run time what its wheel cannot carry: on Debian, add runtime-packages"
    assert todos == [
        f'# TODO: python-ldap {said} = ["libsasl2-modules"] (see the README, "Libraries loaded at run time")',
        f'# TODO: uwsgi {said} = ["libpython3.13"] (see the README, "Libraries loaded at run time")',
        f'# TODO: pycurl {said} = ["libsasl2-modules"] (see the README, "Libraries loaded at run time")',
    ]
    assert "runtime-packages" not in values  # a hint, never a guess written as a value


def test_a_reused_nox_session_reinstalls_wheelbarrow_only_when_what_it_installs_from_changed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A release or a pinned commit is installed once; a local folder again only when its source files
    changed (not its .git, .nox or caches); anything else (an unpinned URL) every time."""
    from types import SimpleNamespace

    from wheelbarrow import nox as wheelbarrow_nox

    tree = tmp_path / "wheelbarrow"
    (tree / "src").mkdir(parents=True)
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    (tree / "src" / "a.py").write_text("A = 1\n", encoding="utf-8")
    installed: list[str] = []
    session = SimpleNamespace(
        virtualenv=SimpleNamespace(location=str(tmp_path / "venv")),
        install=installed.append,
        log=lambda _message: None,
    )
    (tmp_path / "venv").mkdir()

    def runs(spec: str, n: int) -> int:
        monkeypatch.setattr(wheelbarrow_nox, "install_spec", lambda: spec)
        before = len(installed)
        for _ in range(n):
            wheelbarrow_nox._install(session)  # type: ignore[arg-type]  # noqa: SLF001
        return len(installed) - before

    local = f"{tree}[poetry,uv]"
    assert runs(local, 3) == 1
    (tree / ".nox").mkdir()
    (tree / ".nox" / "log").write_text("x", encoding="utf-8")
    (tree / "src" / "__pycache__").mkdir()
    assert runs(local, 2) == 0  # what pip does not build from changed: still the same install
    (tree / "src" / "a.py").write_text("A = 2\n", encoding="utf-8")
    assert runs(local, 2) == 1  # the source changed: installed again, once
    assert runs(f"wheelbarrow[poetry,uv] @ file://{tree}", 2) == 1  # pip's record of a path install
    assert runs("wheelbarrow[poetry,uv]==0.2.0", 3) == 1
    assert runs("wheelbarrow[poetry,uv] @ git+https://git.example.invalid/w.git@" + "a" * 40, 2) == 1
    assert runs("wheelbarrow[poetry,uv] @ git+https://git.example.invalid/w.git@main", 2) == 2
