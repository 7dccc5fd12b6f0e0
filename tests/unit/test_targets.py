"""Several targets: the setting, each target's configuration, the image tags, and the folder of targets."""

from __future__ import annotations

import json
import platform
import resource
from pathlib import Path

import pytest

from tests.unit.conftest import write_project
from wheelbarrow import _bootstrap, _engine, _pipeline, _targets
from wheelbarrow._cmd import CommandFailed, Result
from wheelbarrow._config import Config, load_config
from wheelbarrow._guard import MARKER, is_marked, mark
from wheelbarrow._image import target_tag
from wheelbarrow._log import Log
from wheelbarrow.errors import BootstrapError, BuildError, ConfigError, EngineError, WheelhouseError

TWO = 'targets = ["cp311-x86_64", "cp313-x86_64"]\ndebian-suite = "bookworm"'


def quiet() -> Log:
    return Log(sink=lambda _line: None)


def test_without_targets_the_project_is_one_target_in_the_wheelhouse_itself(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path), environ={})
    assert config.targets == ()
    assert config.per_target == ()
    assert config.target == ""
    assert config.runtime_base == "python:3.11-slim"  # python:{python}-slim
    assert target_tag("demo:1.0", config.target) == "demo:1.0"


def test_each_target_gets_its_python_suite_base_folders_and_architecture(tmp_path: Path) -> None:
    table = 'targets = ["cp311-x86_64", "cp313-aarch64"]\ndebian-suite = "bookworm"\ndist-dir = "out"'
    config = load_config(write_project(tmp_path, table), environ={})
    first, second = config.per_target
    assert (first.target, first.python, first.arch, first.debian_suite) == (
        "cp311-x86_64",
        "3.11",
        "x86_64",
        "bookworm",
    )
    assert (second.target, second.python, second.arch, second.debian_suite) == (
        "cp313-aarch64",
        "3.13",
        "aarch64",
        "trixie",
    )
    assert second.glibc == "2.41"  # trixie's, not bookworm's
    assert second.runtime_base == "python:3.13-slim"
    assert second.platform == "linux/arm64"
    root = tmp_path.resolve()
    assert first.wheelhouse == root / "wheelhouse" / "cp311-x86_64"
    assert second.dist_dir == root / "out" / "cp313-aarch64"
    assert config.wheelhouse == root / "wheelhouse"  # the root of the targets
    assert all(c.per_target == () and c.targets == () for c in config.per_target)


def test_targets_come_from_the_environment_and_the_command_line_too(tmp_path: Path) -> None:
    project = write_project(tmp_path, TWO)
    from_env = load_config(project, environ={"WHEELBARROW_TARGETS": "cp313-x86_64"})
    assert [c.target for c in from_env.per_target] == ["cp313-x86_64"]
    from_cli = load_config(project, environ={}, overrides={"targets": "cp311-x86_64, cp313-x86_64"})
    assert [c.python for c in from_cli.per_target] == ["3.11", "3.13"]


def test_an_explicit_base_with_the_python_placeholder_follows_each_target(tmp_path: Path) -> None:
    table = TWO + '\nruntime-base = "registry.example:5000/team/python:{python}-slim"'
    config = load_config(write_project(tmp_path, table), environ={})
    assert [c.runtime_base for c in config.per_target] == [
        "registry.example:5000/team/python:3.11-slim",
        "registry.example:5000/team/python:3.13-slim",
    ]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ('["cp311"]', "is not a target"),
        ('["cp311-armv7l"]', "is not a target"),
        ('["py311-x86_64"]', "is not a target"),
        ('["cp311_x86_64"]', "is not a target"),
        ('["cp311-x86_64; rm -rf /"]', "is not a target"),
        ('["../../etc-x86_64"]', "is not a target"),
        ('["cp311-x86_64", "cp311-x86_64"]', "names a target twice"),
        ("3", "must be a list"),
        ('[""]', "is not a target"),
    ],
)
def test_a_bad_target_is_a_config_error_naming_the_form(tmp_path: Path, targets: str, message: str) -> None:
    project = write_project(tmp_path, f"targets = {targets}")
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(project, environ={})
    assert caught.value.return_code == 2
    assert "targets" in caught.value.tip


def test_a_python_no_debian_suite_ships_cannot_fall_back_to_a_bootstrap(tmp_path: Path) -> None:
    project = write_project(tmp_path, 'targets = ["cp311-x86_64", "cp312-x86_64"]\ndebian-suite = "bookworm"')
    with pytest.raises(ConfigError, match=r"cp312-x86_64: no Debian suite ships CPython 3\.12"):
        load_config(project, environ={})
    pulled_only = load_config(project, environ={"WHEELBARROW_DEBIAN_SUITE": ""})
    assert [c.debian_suite for c in pulled_only.per_target] == ["", ""]


def test_each_target_folder_is_checked_like_the_wheelhouse(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", TWO + '\nwheelhouse = ".."')  # the root holds the project
    with pytest.raises(ConfigError, match="wheelhouse"):
        load_config(project, environ={})


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("app:1.0", "app:1.0-cp313-x86_64"),
        ("app", "app:cp313-x86_64"),
        ("localhost:5000/team/app", "localhost:5000/team/app:cp313-x86_64"),
        ("localhost:5000/team/app:v2", "localhost:5000/team/app:v2-cp313-x86_64"),
    ],
)
def test_a_target_adds_its_name_to_the_tag(ref: str, expected: str) -> None:
    assert target_tag(ref, "cp313-x86_64") == expected


def test_a_tag_too_long_to_carry_its_target_is_refused_never_cut() -> None:
    """Cut to 128 characters, two tags that differ only at their end would name one image."""
    longest = "app:" + "v" * (127 - len("cp313-aarch64"))
    assert len(target_tag(longest, "cp313-aarch64").split(":", 1)[1]) == 128
    for tag in ("v" * 115 + "-release", "v" * 115 + "-rc1"):
        with pytest.raises(ConfigError, match="too long to carry the target"):
            target_tag(f"registry:5000/app:{tag}", "cp313-aarch64")


# --- the folder of targets ------------------------------------------------------------------------


def single_wheelhouse(path: Path) -> None:
    path.mkdir(parents=True)
    mark(path, "wheelhouse")
    (path / "requirements.txt").write_text("x==1 \\\n    --hash=sha256:" + "0" * 64 + "\n", encoding="utf-8")
    (path / "manifest.json").write_text("{}", encoding="utf-8")


def test_check_root_replaces_only_what_is_wheelbarrows_and_names_any_stranger(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    protected = (project, tmp_path / "cache")
    _targets.check_root(project / "absent", "wheelhouse", "wheelhouse", protected)  # absent: fine
    single = project / "single"
    single_wheelhouse(single)
    (single / "NOTES.txt").write_text("a single-target wheelhouse is replaced as a whole", encoding="utf-8")
    _targets.check_root(single, "wheelhouse", "wheelhouse", protected)

    roots = project / "roots"
    single_wheelhouse(roots / "cp311-x86_64")
    mark(roots, "wheelhouse")
    (roots / _targets.INDEX).write_text("{}", encoding="utf-8")
    _targets.check_root(roots, "wheelhouse", "wheelhouse", protected)  # only what wheelbarrow writes there
    for stranger in ("NOTES.txt", "cp312-x86_64", "link"):
        path = roots / stranger
        if stranger == "link":
            path.symlink_to(roots / "cp311-x86_64")
        elif stranger.endswith(".txt"):
            path.write_text("mine", encoding="utf-8")
        else:
            path.mkdir()  # named like a target, but not wheelbarrow's
        with pytest.raises(ConfigError, match=f"also holds what wheelbarrow did not write there: {stranger}"):
            _targets.check_root(roots, "wheelhouse", "wheelhouse", protected)
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            path.rmdir()

    theirs = project / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a wheelhouse wheelbarrow wrote"):
        _targets.check_root(theirs, "wheelhouse", "wheelhouse", protected)
    for place in (project, tmp_path):  # the project, and what holds it
        with pytest.raises(ConfigError):
            _targets.check_root(place, "wheelhouse", "wheelhouse", protected)
    assert (theirs / "notes.txt").read_text(encoding="utf-8") == "mine"


def configs(tmp_path: Path, table: str = TWO) -> Config:
    return load_config(write_project(tmp_path, table), environ={})


def test_the_index_lists_each_target_with_its_requirements_hash(tmp_path: Path) -> None:
    config = configs(tmp_path)
    root = config.wheelhouse
    for each in config.per_target:
        single_wheelhouse(each.wheelhouse)
    _targets.write_index(root, config.per_target)
    index = json.loads((root / _targets.INDEX).read_text(encoding="utf-8"))
    assert [t["target"] for t in index["targets"]] == ["cp311-x86_64", "cp313-x86_64"]
    assert [t["wheelhouse"] for t in index["targets"]] == ["cp311-x86_64", "cp313-x86_64"]
    assert all(len(t["requirements_sha256"]) == 64 for t in index["targets"])
    (config.per_target[1].wheelhouse / "requirements.txt").unlink()
    with pytest.raises(WheelhouseError, match="cp313-x86_64"):
        _targets.write_index(root, config.per_target)


def fake_targets(monkeypatch: pytest.MonkeyPatch, fail_on: str = "") -> list[str]:
    """``execute`` replaced: each target writes a wheelhouse where its configuration says (or fails)."""
    seen: list[str] = []

    def fake_execute(each: Config, log: Log, stages: object, options: object = None) -> _pipeline.Run:
        seen.append(each.target)
        if fail_on and each.target == fail_on:
            raise BuildError("psycopg2 did not compile", tip="Read the compiler's errors.")
        if stages is _pipeline.BUILD:
            single_wheelhouse(each.wheelhouse)
        if stages is _pipeline.PUBLISH:
            each.dist_dir.mkdir(parents=True)
            mark(each.dist_dir, "dist/ directory")
        return _pipeline.Run.__new__(_pipeline.Run)

    monkeypatch.setattr(_pipeline, "execute", fake_execute)
    return seen


def test_execute_all_writes_the_root_as_one_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = configs(tmp_path)
    seen = fake_targets(monkeypatch)
    runs = _pipeline.execute_all(config, quiet(), _pipeline.BUILD)
    assert seen == ["cp311-x86_64", "cp313-x86_64"]
    assert len(runs) == 2
    root = config.wheelhouse
    assert {p.name for p in root.iterdir()} == {MARKER, "README.md", _targets.INDEX, "cp311-x86_64", "cp313-x86_64"}
    assert [r.config.wheelhouse for r in runs] == [c.wheelhouse for c in config.per_target]  # reported as swapped
    assert [p.name for p in root.parent.iterdir() if p.name.startswith(".wheelhouse")] == []  # no staging left
    seen.clear()
    _pipeline.execute_all(config, quiet(), _pipeline.CACHE)  # not a per-target command: once
    assert seen == [""]
    seen.clear()
    _pipeline.execute_all(config, quiet(), _pipeline.PUBLISH)
    assert seen == ["cp311-x86_64", "cp313-x86_64"]
    assert is_marked(config.dist_dir, "dist/ directory")
    assert {p.name for p in config.dist_dir.iterdir()} == {
        MARKER,
        "SHA256SUMS",
        _targets.INDEX,
        "cp311-x86_64",
        "cp313-x86_64",
    }


@pytest.mark.parametrize("previous", ["single", "targets"])
def test_a_target_that_fails_leaves_the_previous_wheelhouse_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, previous: str
) -> None:
    """From one target to several, or several again: the second target fails, and the wheelhouse the
    previous run wrote is there, whole, with no staging folder beside it."""
    config = configs(tmp_path)
    root = config.wheelhouse
    if previous == "single":
        single_wheelhouse(root)
    else:
        fake_targets(monkeypatch)
        _pipeline.execute_all(config, quiet(), _pipeline.BUILD)
    before = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    seen = fake_targets(monkeypatch, fail_on="cp313-x86_64")
    with pytest.raises(BuildError):
        _pipeline.execute_all(config, quiet(), _pipeline.BUILD)
    assert seen == ["cp311-x86_64", "cp313-x86_64"]
    assert {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert [p.name for p in root.parent.iterdir() if p.name.startswith(".wheelhouse")] == []


def test_a_target_that_cannot_run_stops_the_run_before_any_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    config = configs(tmp_path, f'targets = ["cp311-{platform.machine()}", "cp311-{other}"]')
    seen = fake_targets(monkeypatch)
    monkeypatch.setattr(_bootstrap, "check_emulation", _refuse_foreign)
    with pytest.raises(BootstrapError, match="cannot run"):
        _pipeline.execute_all(config, quiet(), _pipeline.BUILD)
    assert seen == []  # not even the native target ran
    assert not config.wheelhouse.exists()


def _refuse_foreign(config: Config) -> None:
    if config.foreign:
        raise BootstrapError(f"target {config.target}: containers cannot run here", tip="Register QEMU.")


# --- a target of another architecture --------------------------------------------------------------


def foreign(tmp_path: Path) -> Config:
    other = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    config = load_config(write_project(tmp_path, f'targets = ["cp311-{other}"]'), environ={})
    (each,) = config.per_target
    assert each.foreign
    return each


def test_emulation_is_checked_before_anything_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = foreign(tmp_path / "p")
    handlers = tmp_path / "binfmt_misc"
    handlers.mkdir()
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(BootstrapError, match=f"{config.arch} containers cannot run") as caught:
        _bootstrap.check_emulation(config, handlers)
    assert f"update-binfmts --enable qemu-{config.arch}" in caught.value.tip
    (handlers / f"qemu-{config.arch}").write_text("disabled\ninterpreter /x\n", encoding="utf-8")
    with pytest.raises(BootstrapError):
        _bootstrap.check_emulation(config, handlers)
    (handlers / f"qemu-{config.arch}").write_text("enabled\ninterpreter /x\n", encoding="utf-8")
    _bootstrap.check_emulation(config, handlers)
    (handlers / f"qemu-{config.arch}").unlink()
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")  # a remote engine's host emulates, or not
    _bootstrap.check_emulation(config, handlers)
    native = load_config(write_project(tmp_path / "n"), environ={})
    monkeypatch.delenv("DOCKER_HOST")
    _bootstrap.check_emulation(native, handlers)  # no target of another architecture: nothing to check


def test_the_engine_of_a_foreign_target_names_its_platform_on_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []

    def recording(argv: list[str], *_args: object, **kwargs: object) -> Result:
        env = kwargs.get("env") or {}
        seen.append((list(argv), dict(env)))  # type: ignore[call-overload]
        return Result(tuple(argv), 0, "linux/arm64\n")

    monkeypatch.setattr(_engine, "run", recording)
    engine = _engine.Engine(quiet(), platform="linux/arm64")
    engine.import_tarball(tmp_path / "rootfs.tar", "localhost/wheelbarrow/debian:bookworm-aarch64")
    engine.build(tmp_path, "t", dockerfile=tmp_path / "Dockerfile")
    engine.run_image("img", ["true"])
    assert engine.fits("img")
    assert all(env.get("DOCKER_DEFAULT_PLATFORM") == "linux/arm64" for _argv, env in seen)
    assert seen[0][0][:4] == ["docker", "import", "--platform", "linux/arm64"]
    native = _engine.Engine(quiet())
    seen.clear()
    native.run_image("img", ["true"])
    assert "DOCKER_DEFAULT_PLATFORM" not in seen[0][1]
    assert not native.fits("img") or _engine.native_platform() == "linux/arm64"  # the image is arm64


@pytest.mark.parametrize(
    "answer",
    [
        "not json",
        '{"digest": "sha256:1"}',
        '{"digest": "sha256:1", "manifests": [{"digest": "sha256:2"}]}',
        '{"digest": "sha256:1", "manifests": [{"digest": "sha256:2", "platform": "linux"}]}',
    ],
)
def test_an_index_the_registry_describes_oddly_is_an_engine_error(answer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def registry(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        return Result(tuple(argv), 0, answer if "inspect" in argv else "")

    monkeypatch.setattr(_engine, "run", registry)
    with pytest.raises(EngineError, match="cannot be read"):
        _engine.Engine(quiet()).create_index("r:1-cp311", ["r@sha256:" + "0" * 64])
    with pytest.raises(EngineError, match="not podman"):
        _engine.Engine(quiet(), name="podman").create_index("r:1-cp311", ["r@sha256:" + "0" * 64])


def test_an_index_lists_each_platform_with_its_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = json.dumps(
        {
            "digest": "sha256:i",
            "manifests": [
                {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64"}},
            ],
        }
    )
    ran: list[list[str]] = []

    def registry(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        ran.append(list(argv))
        return Result(tuple(argv), 0, answer if "inspect" in argv else "")

    monkeypatch.setattr(_engine, "run", registry)
    digest, platforms = _engine.Engine(quiet()).create_index("r:1-cp311", ["r:1-cp311-x86_64@sha256:a"])
    assert (digest, platforms) == ("sha256:i", {"linux/amd64": "sha256:a", "linux/arm64": "sha256:b"})
    assert ran[0][1:] == ["buildx", "imagetools", "create", "-t", "r:1-cp311", "r:1-cp311-x86_64@sha256:a"]


def test_podman_containers_and_builds_get_limits_a_host_without_cap_sys_resource_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []

    def recording(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        ran.append(list(argv))
        return Result(tuple(argv), 0, "sha256:1\n")

    monkeypatch.setattr(_engine, "run", recording)
    monkeypatch.setattr(
        resource, "getrlimit", lambda which: (1024, 20000) if which == resource.RLIMIT_NOFILE else (9, 96551)
    )
    podman = _engine.Engine(quiet(), name="podman")
    podman.run_image("img", ["true"])
    podman.build(tmp_path, "t", dockerfile=tmp_path / "Dockerfile")
    with podman.container("img"):
        pass
    limits = ["--ulimit", "nofile=20000:20000", "--ulimit", f"nproc={_engine.PODMAN_PROCS}:{_engine.PODMAN_PROCS}"]
    made = [argv for argv in ran if argv[1] in ("run", "build", "create")]
    assert len(made) == 3
    for argv in made:
        at = argv.index("--ulimit")
        assert argv[at : at + 4] == limits, argv
    ran.clear()
    _engine.Engine(quiet()).run_image("img", ["true"])
    assert "--ulimit" not in ran[0]  # docker's daemon sets its own


def test_a_local_base_of_another_platform_is_never_used_for_a_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image store keeps one platform per name: after the aarch64 target pulled python:3.11-slim, the
    name holds the arm64 image. Each target's base must be of its own platform: pulled again, else an
    error, never the other one; the same goes the other way round."""
    other = "linux/arm64" if _engine.native_platform() != "linux/arm64" else "linux/amd64"
    local = {"python:3.11-slim": other}
    ran: list[list[str]] = []

    def store(argv: list[str], *_args: object, **kwargs: object) -> Result:
        ran.append(list(argv))
        env = kwargs.get("env")
        wanted = (env if isinstance(env, dict) else {}).get("DOCKER_DEFAULT_PLATFORM", _engine.native_platform())
        if argv[1:3] == ["image", "inspect"]:
            ref = argv[-1]
            if ref not in local:
                return Result(tuple(argv), 1, "Error: No such image\n")
            return Result(tuple(argv), 0, (local[ref] if "{{.Os}}" in argv[4] else "sha256:1") + "\n")
        if argv[1] == "pull":
            local[argv[2]] = str(wanted)
            return Result(tuple(argv), 0, "")
        return Result(tuple(argv), 0, "")

    monkeypatch.setattr(_engine, "run", store)
    project = write_project(tmp_path / "p", 'runtime-base = "python:3.11-slim"')
    native = load_config(project, environ={})
    engine = _engine.Engine(quiet())
    assert _bootstrap.resolve_runtime_base(native, engine, quiet()) == "python:3.11-slim"
    assert [a for a in ran if a[1] == "pull"] == [["docker", "pull", "python:3.11-slim"]]
    assert local["python:3.11-slim"] == _engine.native_platform()  # pulled again, for this machine
    ran.clear()
    assert _bootstrap.resolve_runtime_base(native, engine, quiet()) == "python:3.11-slim"
    assert [a for a in ran if a[1] == "pull"] == []  # of this platform now: used as it is

    def refused(argv: list[str], *args: object, **kwargs: object) -> Result:
        if argv[1] == "pull":
            return Result(tuple(argv), 1, "Error response from daemon: manifest unknown\n")
        return store(argv, *args, **kwargs)

    monkeypatch.setattr(_engine, "run", refused)
    local["python:3.11-slim"] = "linux/s390x"  # another target's run pulled its own platform under the name
    with pytest.raises(BootstrapError, match="not on this machine and cannot be pulled"):
        _bootstrap.resolve_runtime_base(native, _engine.Engine(quiet()), quiet())


def test_one_maker_per_image_name_and_the_second_finds_it_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs that would make one image (a bootstrapped base, a derived builder) at once: the second waits,
    says why, and then uses what the first made instead of tagging an image of its own over it."""
    import threading
    import time

    from wheelbarrow._guard import image_lock

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    order: list[str] = []
    lines: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with image_lock("localhost/wheelbarrow/runtime-base:bookworm", quiet()):
            first_in.set()
            time.sleep(0.3)
            order.append("first made it")

    maker = threading.Thread(target=first)
    maker.start()
    first_in.wait()
    with image_lock("localhost/wheelbarrow/runtime-base:bookworm", Log(sink=lines.append)):
        order.append("second")
    maker.join()
    assert order == ["first made it", "second"]
    assert any(
        "waiting for another wheelbarrow run to finish making localhost/wheelbarrow/runtime-base" in x for x in lines
    )
    with image_lock("localhost/wheelbarrow/other:1", quiet()):  # another name: no wait
        pass

    # Two runs deriving one builder at once: one build; the other waits and finds it made.
    made: list[str] = []

    def engine_run(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        if argv[1:3] == ["image", "inspect"] and "derived-builder" in argv[-1]:
            return Result(tuple(argv), 0, "sha256:2\n") if made else Result(tuple(argv), 1, "No such image\n")
        if argv[1] == "build":
            time.sleep(0.3)
            made.append(argv[argv.index("-t") + 1])
        return Result(tuple(argv), 0, "sha256:1\n")

    monkeypatch.setattr(_engine, "run", engine_run)
    config = load_config(write_project(tmp_path / "p", f'cache-dir = "{tmp_path / "cache"}"'), environ={})
    tools = tmp_path / "cache" / "tools" / f"cp3.11-glibc{config.glibc}-{config.arch}"
    tools.mkdir(parents=True)
    (tools / ".complete").write_text("\n".join(_bootstrap.BUILDER_TOOLS), encoding="utf-8")
    (tmp_path / "cache" / ".wheelbarrow-owned").write_text("wheelbarrow cache: made by wheelbarrow\n", encoding="utf-8")
    tags: list[str] = []

    def derive() -> None:
        tags.append(_bootstrap.derived_builder("python:3.11-slim", config, _engine.Engine(quiet()), quiet()))

    runs = [threading.Thread(target=derive) for _ in range(2)]
    for each in runs:
        each.start()
    for each in runs:
        each.join()
    assert len(made) == 1, made
    assert tags == [made[0], made[0]]


@pytest.mark.parametrize(
    "ref", ["example-service:0.1.0", "localhost/theirs/victim:keep", "registry.example:5000/new:1"]
)
def test_a_failed_push_never_removes_a_name_that_was_there_before(ref: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from wheelbarrow._publish import push_image

    present = {"example-service:0.1.0", "localhost/theirs/victim:keep"}
    removed: list[str] = []

    def engine_run(argv: list[str], *_args: object, **kwargs: object) -> Result:
        if argv[1:3] == ["image", "inspect"]:
            return Result(tuple(argv), 0, "sha256:1\n") if argv[-1] in present else Result(tuple(argv), 1, "")
        if argv[1] == "tag":
            present.add(argv[3])
        if argv[1] == "rmi":
            removed.append(argv[2])
        if argv[1] == "push":
            result = Result(tuple(argv), 1, "unauthorized: authentication required\n")
            if kwargs.get("check", True):
                raise CommandFailed(result)
            return result
        return Result(tuple(argv), 0, "")

    monkeypatch.setattr(_engine, "run", engine_run)
    with pytest.raises(EngineError, match="pushing"):
        push_image(_engine.Engine(quiet()), "example-service:0.1.0", ref, quiet())
    assert removed == ([ref] if ref.startswith("registry.example") else [])  # only the tag made for the push


@pytest.mark.parametrize(
    "ref", ["--help", "-q", "Upper/Case:1", "a b", "x;rm -rf /", "registry:5000/team/app@sha256:" + "a" * 64]
)
@pytest.mark.parametrize("command", ["publish", "merge"])
def test_push_takes_an_image_tag_never_an_option_or_a_digest(
    ref: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wheelbarrow._cli import main

    project = write_project(tmp_path / "p", 'targets = ["cp311-x86_64"]')
    parts = [str(tmp_path)] if command == "merge" else []
    assert main([command, "--project", str(project), f"--push={ref}", *parts]) == 2
    assert "ERROR: --push" in capsys.readouterr().err


def test_init_keeps_the_targets_it_was_given(tmp_path: Path) -> None:
    from wheelbarrow._init import target_values

    config = load_config(write_project(tmp_path), environ={}, overrides={"targets": "cp311-x86_64,cp313-x86_64"})
    assert target_values(config)["targets"] == ["cp311-x86_64", "cp313-x86_64"]
    assert "python" not in target_values(config)  # each target names its CPython: python would go unused
    single = target_values(load_config(write_project(tmp_path / "one"), environ={}))
    assert "targets" not in single
    assert single["python"] == "3.11"


def test_a_python_that_no_target_names_is_said_to_be_unused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = configs(tmp_path, TWO + '\npython = "3.12"')
    fake_targets(monkeypatch)
    lines: list[str] = []
    _pipeline.execute_all(config, Log(sink=lines.append), _pipeline.PLAN)
    assert any("python = 3.12 is not used: with targets, each target names its CPython" in line for line in lines)
