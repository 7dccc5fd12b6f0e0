"""What makes a run faster must not make it wrong: the engine's kept answers, the stages and commands that
run at the same time, and the installer of the builds' isolated environments."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
from rich.console import Console

from tests.unit.conftest import demo_plan, quiet, write_project
from wheelbarrow import _build, _engine, _fetch, _lock, _pipeline
from wheelbarrow._cache import Cache
from wheelbarrow._cmd import Cancel, Cancelled, CommandFailed, Result
from wheelbarrow._cmd import run as run_command
from wheelbarrow._config import load_config
from wheelbarrow._log import Log
from wheelbarrow._parallel import in_threads
from wheelbarrow._report import ConsoleLog, summary_table
from wheelbarrow.errors import BootstrapError, FetchError, FileSystemError, LockError, StaleLockError

# -- the engine keeps what image inspect said, until something may have changed an image ------------------


def store_engine(monkeypatch: pytest.MonkeyPatch, images: dict[str, str]) -> list[list[str]]:
    """An engine whose store holds ``images`` (name: id); ``tag``, ``rmi``, ``pull`` and ``build`` change
    it as the real one would. Returns every command run."""
    ran: list[list[str]] = []

    def answer(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        ran.append(list(argv))
        words = argv[1:]
        if words[:2] == ["image", "inspect"]:
            ref = words[-1]
            return Result(tuple(argv), 0, images[ref] + "\n") if ref in images else Result(tuple(argv), 1, "No such")
        if words[0] == "tag":
            images[words[2]] = images[words[1]]
        elif words[0] == "rmi":
            images.pop(words[1], None)
        elif words[0] == "pull":
            images[words[1]] = "sha256:pulled"
        return Result(tuple(argv), 0, "")

    monkeypatch.setattr(_engine, "run", answer)
    return ran


def inspections(ran: list[list[str]]) -> int:
    return sum(argv[1:3] == ["image", "inspect"] for argv in ran)


def test_an_engine_asks_once_until_a_command_may_change_an_image(monkeypatch: pytest.MonkeyPatch) -> None:
    images = {"base:1": "sha256:b"}
    ran = store_engine(monkeypatch, images)
    engine = _engine.Engine(quiet())
    assert [engine.image_id("base:1") for _ in range(3)] == ["sha256:b"] * 3
    assert engine.image_id("app:1") is None
    assert engine.image_id("app:1") is None
    assert inspections(ran) == 2  # one per image
    engine.sweep()  # listing containers, removing dead ones: no image changes
    engine._run("logs", "x", check=False)  # noqa: SLF001 - the seam every command goes through
    assert engine.image_id("base:1") == "sha256:b"
    assert inspections(ran) == 2
    # each command that may change an image makes the next question go to the engine again
    engine.tag("base:1", "app:1")
    assert engine.image_id("app:1") == "sha256:b"
    engine.discard_image("app:1")
    assert engine.image_id("app:1") is None
    engine.pull("app:1")
    assert engine.image_id("app:1") == "sha256:pulled"
    engine.run_image("app:1", ["true"])  # a run may pull its image
    engine.image_id("app:1")
    assert inspections(ran) == 6


def test_each_engine_asks_for_itself_and_only_quiet_inspects_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    images = {"base:1": "sha256:b"}
    ran = store_engine(monkeypatch, images)
    first = _engine.Engine(quiet())
    first.image_id("base:1")
    images["base:1"] = "sha256:moved"  # another process moved the tag: the next run sees it
    assert _engine.Engine(quiet()).image_id("base:1") == "sha256:moved"
    assert first.image_id("base:1") == "sha256:b"  # within one run: the answer it had
    before = inspections(ran)
    first.repo_digests("base:1")  # an inspect whose failure raises (check=True) is asked each time
    first.repo_digests("base:1")
    assert inspections(ran) == before + 2
    before = inspections(ran)
    first.label("base:1", "x")
    first.label("base:1", "x")
    assert inspections(ran) == before + 1
    assert _engine.changes_no_image(["image", "inspect", "x"])
    assert _engine.changes_no_image(["ps", "-a"])
    for words in (["build", "."], ["tag", "a", "b"], ["rmi", "a"], ["pull", "a"], ["run", "a"], ["load"], []):
        assert not _engine.changes_no_image(words), words


def test_an_engine_asks_again_once_it_holds_an_images_lock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A run that waited for another to make a base must see what that run made, not what it was told
    before it waited."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    images: dict[str, str] = {}
    ran = store_engine(monkeypatch, images)
    engine = _engine.Engine(quiet())
    assert engine.image_id("localhost/wheelbarrow/runtime-base:bullseye") is None
    images["localhost/wheelbarrow/runtime-base:bullseye"] = "sha256:made"  # the other run made it meanwhile
    with engine.image_lock("localhost/wheelbarrow/runtime-base:bullseye", quiet()):
        assert engine.image_id("localhost/wheelbarrow/runtime-base:bullseye") == "sha256:made"
    assert inspections(ran) == 2


def test_the_end_of_a_run_removes_its_own_containers_and_dead_runs_in_one_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[list[str]] = []
    now = time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime())
    monkeypatch.setattr(_engine, "is_dead", lambda owner, _created: owner == "dead")

    def answer(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        ran.append(list(argv))
        if argv[1] == "ps":
            rows = [("c1", "live", "me"), ("c2", "live", "other"), ("c3", "dead", "old"), ("c4", "live", "me")]
            return Result(tuple(argv), 0, "".join(f"{i}\t{o}\t{now}\t{r}\n" for i, o, r in rows))
        return Result(tuple(argv), 0, "")

    monkeypatch.setattr(_engine, "run", answer)
    engine = _engine.Engine(quiet(), run_id="me")
    engine.sweep()  # the start of a run: only the dead run's
    assert ran[-1] == ["docker", "rm", "-f", "c3"]
    ran.clear()
    engine.remove_leftovers()
    assert [argv[1] for argv in ran] == ["ps", "rm"]
    assert ran[-1] == ["docker", "rm", "-f", "c1", "c4", "c3"]  # never another live run's (c2)


# -- stages that run at the same time ----------------------------------------------------------------------


def test_stages_marked_with_next_form_one_group() -> None:
    a, b, c, d = (_pipeline.Stage(n, lambda _r: None) for n in "abcd")
    linked = _pipeline.Stage("b", lambda _r: None, with_next=True)
    assert _pipeline.groups((a, linked, c, d)) == [(a,), (linked, c), (d,)]
    assert _pipeline.groups((a, b)) == [(a,), (b,)]
    names = [[s.name for s in g] for g in _pipeline.groups(_pipeline.BUILD)]
    assert ["fetch", "bases"] in names  # the index and the engine at once
    assert ["wheels", "build + repair"] in names  # the index's wheels come while the sdists build; a wrong
    # hash from the index is said before a failed build, as when the fetch came first
    assert [n for n in names if len(n) > 1] == [["fetch", "bases"], ["wheels", "build + repair"]]


def run_of(tmp_path: Path) -> _pipeline.Run:
    config = load_config(write_project(tmp_path / "p"), environ={})
    return _pipeline.Run(
        config=config, log=quiet(), engine=_engine.Engine(quiet()), cache=Cache(tmp_path / "c", quiet())
    )


def test_a_group_runs_at_once_and_each_stage_is_timed(tmp_path: Path) -> None:
    run = run_of(tmp_path)
    both = threading.Barrier(2, timeout=5)  # each waits for the other: only stages at the same time pass

    def meet(_run: _pipeline.Run) -> None:
        both.wait()
        time.sleep(0.2)

    group = (_pipeline.Stage("x", meet, with_next=True), _pipeline.Stage("y", meet))
    began = time.monotonic()
    _pipeline.run_group(run, group)
    assert time.monotonic() - began < 0.39
    assert set(run.timings) == {"x", "y"}
    assert all(0.19 < t < 0.39 for t in run.timings.values())


class FakeProcess:
    """A host command without a process: ``sleep N`` runs until it is signalled, anything else ends at once
    with 0. Every one started is kept in ``STARTED``."""

    STARTED: ClassVar[list[list[str]]] = []

    def __init__(self, args: list[str], **_kwargs: object) -> None:
        FakeProcess.STARTED.append(list(args))
        self.args, self.ended = args, threading.Event()
        self.returncode: int | None = None
        self.stdin = None
        if "sleep" not in args[0]:
            self._end(0)
        self.stdout = self

    def _end(self, code: int) -> None:
        self.returncode = self.returncode if self.returncode is not None else code
        self.ended.set()

    def __iter__(self) -> FakeProcess:
        return self

    def __next__(self) -> bytes:
        self.ended.wait()
        raise StopIteration

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self._end(-signum)

    def kill(self) -> None:
        self._end(-9)

    def wait(self, timeout: float | None = None) -> int:
        self.ended.wait(timeout)
        return self.returncode if self.returncode is not None else -1

    def close(self) -> None:
        pass


@pytest.fixture
def processes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    import subprocess

    FakeProcess.STARTED = []
    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    return FakeProcess.STARTED


def sleeper(seconds: int = 30) -> Callable[[_pipeline.Run], None]:
    """A stage running a long host command (a pull that hangs, a debootstrap), then another one."""

    def stage(_run: _pipeline.Run) -> None:
        run_command(["sleep", str(seconds)], quiet(), check=False)
        run_command(["true"], quiet())  # a fallback it would start next (a bootstrap after a failed pull)

    return stage


def fails_after(seconds: float, error: Exception) -> Callable[[_pipeline.Run], None]:
    def stage(_run: _pipeline.Run) -> None:
        time.sleep(seconds)
        raise error

    return stage


def test_an_earlier_stages_failure_cancels_the_later_ones_commands_and_starts_none(
    tmp_path: Path, processes: list[list[str]]
) -> None:
    run = run_of(tmp_path)
    group = (
        _pipeline.Stage("fetch", fails_after(0.3, FetchError("the index said no", tip="t")), with_next=True),
        _pipeline.Stage("bases", sleeper()),
    )
    began = time.monotonic()
    with pytest.raises(FetchError, match="the index said no"):
        _pipeline.run_group(run, group)
    assert time.monotonic() - began < 3  # the sleep was interrupted
    assert [argv[-1] for argv in processes] == ["30"]  # and `true`, the fallback, never started
    disk = _pipeline.Stage("fetch", fails_after(0, OSError(28, "No space left")), with_next=True)
    with pytest.raises(FileSystemError, match="fetch: could not read or write"):  # as when alone
        _pipeline.run_group(run, (disk, _pipeline.Stage("bases", sleeper())))


@pytest.mark.parametrize("earlier_fails", [True, False])
def test_the_error_said_is_the_earliest_stages_whichever_failed_first(
    tmp_path: Path, earlier_fails: bool, processes: list[list[str]]
) -> None:
    """A later stage that fails at once (a base that cannot be had) does not hide an earlier one's failure
    (a wrong hash from the index): the earlier stage runs to its end, and its error is the one said."""
    run = run_of(tmp_path)
    fetch = fails_after(0.5, FetchError("wrong sha256", tip="t")) if earlier_fails else (lambda _r: None)
    group = (
        _pipeline.Stage("fetch", fetch, with_next=True),
        _pipeline.Stage("bases", fails_after(0, BootstrapError("no base", tip="t"))),
    )
    for _ in range(3):
        with pytest.raises(FetchError if earlier_fails else BootstrapError):
            _pipeline.run_group(run, group)


def test_ctrl_c_cancels_every_stage_of_a_group(tmp_path: Path, processes: list[list[str]]) -> None:
    import _thread

    run = run_of(tmp_path)

    def interrupts(_run: _pipeline.Run) -> None:
        time.sleep(0.3)
        _thread.interrupt_main()  # as the signal handler does in the main thread
        sleeper()(_run)

    group = (_pipeline.Stage("fetch", interrupts, with_next=True), _pipeline.Stage("bases", sleeper()))
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _pipeline.run_group(run, group)
    assert time.monotonic() - began < 3
    assert [argv[-1] for argv in processes] == ["30", "30"]  # both sleeps stopped, no fallback started


def test_a_cancelled_thread_starts_no_command_and_its_jobs_stop(processes: list[list[str]]) -> None:
    token = Cancel()
    outcome: list[object] = []

    def work() -> None:
        with token.applies():
            try:
                in_threads([("a", lambda: run_command(["sleep", "30"], quiet(), check=False))], workers=1)
            except Cancelled as err:
                outcome.append(err)
            try:
                run_command(["true"], quiet())
            except Cancelled as err:
                outcome.append(err)

    thread = threading.Thread(target=work)
    began = time.monotonic()
    thread.start()
    time.sleep(0.3)
    token.cancel()
    thread.join(10)
    assert time.monotonic() - began < 5  # the sleep in a job's own thread was interrupted with its caller
    assert [type(o) for o in outcome] == [Cancelled, Cancelled]
    assert "not started" in str(outcome[1])
    assert [argv[-1] for argv in processes] == ["30"]
    assert Cancel.current() is None  # this thread was never under it


def test_stages_at_once_show_one_spinner_and_the_summary_says_the_runs_own_time() -> None:
    console = Console(file=open("/dev/null", "w"), force_terminal=True)  # noqa: SIM115, PTH123 - closed with console
    log = ConsoleLog(console, quiet=True)
    both = threading.Barrier(2, timeout=5)

    def stage(name: str) -> None:
        with log.stage(name):
            both.wait()  # both stages are open at once; rich allows one live display only

    in_threads([("a", lambda: stage("a")), ("b", lambda: stage("b"))], workers=2)
    console.file.close()
    table = summary_table([], {"fetch": 2.0, "bases": 0.5, "build": 3.0}, wall=5.0)
    assert str(table.caption).startswith("total 5.0 s: fetch 2.0s, bases 0.5s, build 3.0s (some at the same time)")
    assert "same time" not in str(summary_table([], {"fetch": 2.0}, wall=2.0).caption)
    assert in_threads([], workers=3) == {}


# -- commands that run at the same time -------------------------------------------------------------------


def test_build_requirement_sets_resolve_at_once_and_a_shared_wheel_is_copied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = demo_plan(tmp_path / "p")
    both = threading.Barrier(2, timeout=5)
    calls: list[list[str]] = []

    def pip_download(args: list[str], dest: Path, _log: object) -> None:
        calls.append(args)
        both.wait()  # the two sets' pips run at the same time
        dest.mkdir(parents=True)
        (dest / "setuptools-80.0-py3-none-any.whl").write_bytes(b"shared")
        if "poetry-core>=2" in args:
            (dest / "poetry_core-2.0-py3-none-any.whl").write_bytes(b"poetry")

    monkeypatch.setattr(_fetch, "pip_download", pip_download)
    cache = Cache(tmp_path / "cache", quiet())
    sets = [("setuptools>=40",), ("poetry-core>=2",), ("setuptools>=40",), ()]
    dest = tmp_path / "work" / "buildreqs"
    found = _fetch.fetch_build_requirements(plan, sets, dest, cache, quiet())
    assert [p.name for p in found] == ["poetry_core-2.0-py3-none-any.whl", "setuptools-80.0-py3-none-any.whl"]
    assert len(calls) == 2  # each set once, the empty one never
    assert (dest / "setuptools-80.0-py3-none-any.whl").read_bytes() == b"shared"
    # the next run takes both sets from the cache, without pip
    monkeypatch.setattr(_fetch, "pip_download", lambda *_a: pytest.fail("resolved again"))
    again = _fetch.fetch_build_requirements(plan, sets, tmp_path / "work2" / "buildreqs", cache, quiet())
    assert [p.name for p in again] == [p.name for p in found]


@pytest.mark.parametrize(
    ("check_fails", "export_fails", "raised"),
    [
        (True, False, StaleLockError),
        (True, True, StaleLockError),  # a stale lock is what is said, whatever the export did
        (False, True, LockError),
        (False, False, None),
    ],
)
def test_the_lock_check_and_export_run_at_once_and_a_stale_lock_is_the_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    check_fails: bool,
    export_fails: bool,
    raised: type[Exception] | None,
) -> None:
    project = write_project(tmp_path / "p")
    (project / "poetry.lock").write_text("# lock\n", encoding="utf-8")
    config = load_config(project, environ={})
    both = threading.Barrier(2, timeout=5)
    monkeypatch.setattr(_lock, "which", lambda tool, **_k: f"/usr/bin/{tool}")

    def run(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        both.wait()  # the check and the export are running at the same time
        failing = check_fails if "check" in argv else export_fails
        result = Result(tuple(argv), 1 if failing else 0, "requests==2.0 --hash=sha256:aa\n" if not failing else "no")
        if failing:
            raise CommandFailed(result)
        return result

    monkeypatch.setattr(_lock, "run", run)
    if raised is None:
        assert _lock.export_poetry(config, quiet()).startswith("requests==2.0")
    else:
        with pytest.raises(raised) as caught:
            _lock.export_poetry(config, quiet())
        assert type(caught.value) is raised


# -- the installer of the builds' isolated environments ---------------------------------------------------


def test_a_builder_with_uv_builds_with_it_offline_and_one_without_uses_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = demo_plan(tmp_path / "p")
    engine = _engine.Engine(quiet(), run_id="abc123")
    asked: list[str] = []

    def run_image(_self: object, image: str, argv: list[str], **_kwargs: object) -> Result:
        asked.append(image)
        return Result(tuple(argv), 0 if image.endswith("with-uv") else 1, "")

    monkeypatch.setattr(_engine.Engine, "run_image", run_image)
    cache = Cache(tmp_path / "cache", quiet())
    with_uv = _build.with_installer(_build.Builder("b:with-uv", "sha256:1"), engine, cache)
    without = _build.with_installer(_build.Builder("b:without", "sha256:2"), engine, cache)
    assert (with_uv.uv, without.uv) == (True, False)
    assert _build.with_installer(_build.Builder("b:with-uv", "sha256:1"), engine, cache).uv
    assert asked == ["b:with-uv", "b:without"]  # asked once per image id
    env = _build.cibuildwheel_env(plan, with_uv, engine, 315532800)
    assert env["CIBW_BUILD_FRONTEND"] == "build[uv]"
    inner = env["CIBW_ENVIRONMENT_LINUX"].split()
    for setting in ("UV_NO_INDEX=1", "UV_OFFLINE=1", f"UV_FIND_LINKS={_build.WHEELS_IN_IMAGE}", "PIP_NO_INDEX=1"):
        assert setting in inner
    assert "UV_PYTHON_DOWNLOADS=never" in inner
    assert "UV_NO_CONFIG=1" in inner  # the sdist's own [tool.uv] (its find-links, its required-version) is not read
    plain = _build.cibuildwheel_env(plan, without, engine, 315532800)
    assert plain["CIBW_BUILD_FRONTEND"] == "build"
    assert not [s for s in plain["CIBW_ENVIRONMENT_LINUX"].split() if s.startswith("UV_")]


def test_each_build_reports_its_own_seconds_and_a_cached_one_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from wheelbarrow import _schedule
    from wheelbarrow._repair import RepairedWheel

    naps = {"slow": 0.4, "quick": 0.1}
    sdists = [
        SimpleNamespace(name=n, filename=f"{n}-1.0.tar.gz", path=tmp_path / f"{n}.tar.gz")
        for n in ("slow", "quick", "cached")
    ]
    monkeypatch.setattr(_schedule, "sdist_key", lambda s, _ctx, _cache: s.name)
    monkeypatch.setattr(_schedule, "project_key", lambda _ctx: "project")
    hit = RepairedWheel(tmp_path / "cached.whl", "any", (), ())
    monkeypatch.setattr(_schedule, "_from_cache", lambda _c, key: hit if key in {"cached", "project"} else None)

    def build_one(sdist: SimpleNamespace, *_args: object) -> RepairedWheel:
        time.sleep(naps[sdist.name])
        return RepairedWheel(tmp_path / f"{sdist.name}.whl", "any", (), ())

    monkeypatch.setattr(_schedule, "_build_one", build_one)
    ctx = SimpleNamespace(log=quiet(), shared=None)
    built = _schedule.build_all(tuple(sdists), ctx, Cache(tmp_path / "c", quiet()), jobs=2)  # type: ignore[arg-type]
    seconds = {b.name: b.seconds for b in built}
    assert seconds["slow"] == pytest.approx(0.4, abs=0.15)
    assert seconds["quick"] == pytest.approx(0.1, abs=0.09)
    assert (seconds["cached"], seconds["project"], built[2].from_cache) == (0.0, 0.0, True)


# -- what a no-op remembers instead of reading again -------------------------------------------------------


def test_an_sdists_epoch_is_remembered_by_its_sha256_and_the_environment_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import tarfile

    sdist = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        info = tarfile.TarInfo("demo-1.0/PKG-INFO")
        info.mtime, info.size = 1_700_000_000, 4
        archive.addfile(info, io.BytesIO(b"data"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    cache = Cache(tmp_path / "cache", quiet())
    assert _build.sdist_epoch(sdist, cache, "1" * 64) == 1_700_000_000
    sdist.write_bytes(b"not read again")  # the same sha256 names the same bytes: the answer is remembered
    assert _build.sdist_epoch(sdist, cache, "1" * 64) == 1_700_000_000
    with pytest.raises(FetchError, match="not a readable sdist"):  # another sha256 is read
        _build.sdist_epoch(sdist, cache, "2" * 64)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "315532800")
    assert _build.sdist_epoch(sdist, cache, "1" * 64) == 315532800
    monkeypatch.delenv("SOURCE_DATE_EPOCH")  # the sdist's bytes are still not an archive
    (memo,) = [m for m in (tmp_path / "cache" / "memo").glob("*.json") if m.read_text().strip() == "1700000000"]
    for bad in ("true", "-5", "1e20", '"1700000000"'):  # a bool is an int to Python; none is an epoch
        memo.write_text(bad)
        with pytest.raises(FetchError):  # not used: the sdist is read again (and is no archive)
            _build.sdist_epoch(sdist, cache, "1" * 64)


def test_a_build_gets_the_epoch_its_key_was_made_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from wheelbarrow import _schedule

    asked: list[tuple[Path, object, str]] = []
    built: list[object] = []

    def sdist_epoch(path: Path, cache: object, sha: str) -> int:
        asked.append((path, cache, sha))
        return 1234

    def build_sdist(_sdist: object, _ctx: object, epoch: int) -> None:
        built.append(epoch)
        pytest.fail("built")

    monkeypatch.setattr(_schedule, "sdist_epoch", sdist_epoch)
    monkeypatch.setattr(_schedule, "build_sdist", build_sdist)
    sdist = SimpleNamespace(name="demo", filename="demo-1.0.tar.gz", path=tmp_path / "demo-1.0.tar.gz", sha256="9" * 64)

    @dataclasses.dataclass
    class Context:
        log: Log
        plan: object = None
        engine: object = None

    ctx = Context(quiet())
    cache = Cache(tmp_path / "cache", quiet())
    monkeypatch.setattr(_schedule, "_engine_still_there", lambda *_a: None)
    with pytest.raises(pytest.fail.Exception):
        _schedule._build_one(sdist, ctx, cache, "key")  # type: ignore[arg-type]  # noqa: SLF001
    assert built == [1234]  # what sdist_epoch answered for the key, from the same cache and sha256
    assert asked == [(sdist.path, cache, "9" * 64)]


def test_a_locks_files_are_remembered_for_that_lock_and_a_bad_memory_is_not_used(tmp_path: Path) -> None:
    import json

    lock = tmp_path / "poetry.lock"
    entry = '[[package]]\nname = "six"\nversion = "1.16.0"\nfiles = [{file = "FILE", hash = "sha256:HASH"}]\n'
    lock.write_text(entry.replace("FILE", "six-1.16.0-py2.py3-none-any.whl").replace("HASH", "a" * 64))
    cache = Cache(tmp_path / "cache", quiet())
    parsed: list[Path] = []

    def poetry_lock_files(path: Path) -> _lock.LockFiles:  # the parser's name is part of the key
        parsed.append(path)
        return _lock.poetry_lock_files(path)

    first = _lock._files_cached(lock, cache, poetry_lock_files)  # noqa: SLF001 - the memo under test
    assert first == {("six", "1.16.0"): (_lock.LockedFile("six-1.16.0-py2.py3-none-any.whl", "a" * 64),)}
    assert _lock._files_cached(lock, cache, poetry_lock_files) == first  # noqa: SLF001
    assert len(parsed) == 1
    lock.write_text(lock.read_text().replace("a" * 64, "b" * 64))  # another lock: parsed
    assert _lock._files_cached(lock, cache, poetry_lock_files)[("six", "1.16.0")][0].sha256 == "b" * 64  # noqa: SLF001
    assert len(parsed) == 2
    (memo,) = [m for m in (tmp_path / "cache" / "memo").glob("*.json") if "b" * 64 in m.read_text()]
    for bad in (
        [["six", "1.16.0", [["../../evil.whl", "b" * 64]]]],  # a path, not a file name
        [["six", "1.16.0", [["six-1.16.0-py2.py3-none-any.whl", "zz"]]]],  # not a sha256
        [["six", "1.16.0"]],  # another shape
        [1],
        [["six", "1.16.0", [["six-1.16.0-py2.py3-none-any.whl", "a" * 64]]]],  # a hash the lock no longer pins
        [["six", "1.16.0", [["six-1.16.0.tar.gz", "b" * 64]]]],  # a file the lock does not name with it
    ):
        memo.write_text(json.dumps(bad))
        again = _lock._files_cached(lock, cache, poetry_lock_files)  # noqa: SLF001
        assert again == {("six", "1.16.0"): (_lock.LockedFile("six-1.16.0-py2.py3-none-any.whl", "b" * 64),)}
    assert len(parsed) == 8  # each bad memory: the lock itself was read


def test_an_sdists_build_requirements_are_remembered_and_a_bad_memory_never_becomes_an_option(
    tmp_path: Path,
) -> None:
    import io
    import json
    import tarfile

    from wheelbarrow._fetch import Fetched

    sdist = tmp_path / "demo-1.0.tar.gz"
    data = b'[build-system]\nrequires = ["setuptools>=40"]\n'
    with tarfile.open(sdist, "w:gz") as archive:
        info = tarfile.TarInfo("demo-1.0/pyproject.toml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    fetched = Fetched("demo", "1.0", sdist, "3" * 64)
    cache = Cache(tmp_path / "cache", quiet())
    assert _fetch.build_requires_remembered(fetched, cache) == ("setuptools>=40",)
    (memo,) = (tmp_path / "cache" / "memo").glob("*.json")
    for bad in (["--index-url=http://127.0.0.1:9/simple"], ["./local/path"], ["x @ file:///etc"], [7]):
        memo.write_text(json.dumps(bad))
        assert _fetch.build_requires_remembered(fetched, cache) == ("setuptools>=40",)  # read from the sdist
    sdist.write_bytes(b"gone")  # remembered: the sdist of that sha256 is not read again
    assert _fetch.build_requires_remembered(fetched, cache) == ("setuptools>=40",)


def test_the_longest_build_starts_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With fewer jobs than builds, the longest started last keeps a core idle at the end: builds start by
    their last build's seconds, else by their sdist's size."""
    from types import SimpleNamespace

    from wheelbarrow import _schedule
    from wheelbarrow._repair import RepairedWheel

    sizes = {"aaa-small": 10_000, "mmm-large": 900_000, "zzz-medium": 200_000}
    sdists = []
    for name, size in sizes.items():
        (tmp_path / f"{name}.tar.gz").write_bytes(b"x" * size)
        sdists.append(SimpleNamespace(name=name, filename=f"{name}.tar.gz", path=tmp_path / f"{name}.tar.gz"))
    monkeypatch.setattr(_schedule, "sdist_key", lambda s, _ctx, _cache: s.name)
    monkeypatch.setattr(_schedule, "project_key", lambda _ctx: "project")
    monkeypatch.setattr(_schedule, "_from_cache", lambda _c, _key: None)
    started: list[str] = []
    took = {"aaa-small": 0.3, "mmm-large": 0.0, "zzz-medium": 0.1}

    def build_one(sdist: SimpleNamespace | None, *_args: object) -> RepairedWheel:
        name = sdist.name if sdist else "project"
        started.append(name)
        time.sleep(took.get(name, 0.0))
        return RepairedWheel(tmp_path / f"{name}.whl", "any", (), ())

    monkeypatch.setattr(_schedule, "_build_one", build_one)
    ctx = SimpleNamespace(log=quiet(), shared=None)
    cache = Cache(tmp_path / "c", quiet())
    _schedule.build_all(tuple(sdists), ctx, cache, jobs=1)  # type: ignore[arg-type]
    sdists_started = [n for n in started if n != "project"]
    assert sdists_started == ["mmm-large", "zzz-medium", "aaa-small"]  # never built: the largest sdist first
    started.clear()
    _schedule.build_all(tuple(sdists), ctx, cache, jobs=1)  # type: ignore[arg-type]
    assert started[:3] == ["aaa-small", "zzz-medium", "mmm-large"]  # then by how long each took last time
    assert started[-1] == "project"  # the quickest last time
