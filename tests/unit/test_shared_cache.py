"""The shared build cache against a fake engine and registry: what is fetched is checked, what is
written was built here. (The real registry and two engines: tests/integration/test_shared_cache.py.)"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.unit.conftest import quiet, write_project
from wheelbarrow import _engine
from wheelbarrow._cache import Cache
from wheelbarrow._cmd import CommandFailed, Result
from wheelbarrow._config import load_config
from wheelbarrow._log import Log
from wheelbarrow._shared import KEY_LABEL, SHA_LABEL, SharedCache
from wheelbarrow.errors import ConfigError

KEY = "a" * 64
REPO = "127.0.0.1:5000/team/cache"
WHEEL = "demo-1.0-cp311-cp311-manylinux_2_34_x86_64.whl"


@dataclass
class Image:
    files: dict[str, bytes]  # b"SYMLINK:<target>" is copied out as a symbolic link, as docker cp does
    labels: dict[str, str] = field(default_factory=dict)
    size: int | None = None  # what the engine reports (the files' total when None)


@dataclass
class FakeEngine:
    """A registry (refs pushed) and a local store, driven by the engine's command lines."""

    registry: dict[str, Image] = field(default_factory=dict)
    local: dict[str, Image] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)
    ran: list[list[str]] = field(default_factory=list)

    refuse_push: bool = False

    def __call__(self, argv: list[str], *_args: object, **kwargs: object) -> Result:
        result = self.answer(argv)
        if kwargs.get("check", True) and result.returncode != 0:
            raise CommandFailed(result)
        return result

    def answer(self, argv: list[str]) -> Result:  # noqa: PLR0911 - one answer per engine command
        self.ran.append(list(argv))
        verb, rest = argv[1], argv[2:]
        ok, no = Result(tuple(argv), 0, ""), Result(tuple(argv), 1, "Error: manifest unknown\n")
        if verb == "pull":
            if rest[0] not in self.registry:
                return no
            self.local[rest[0]] = self.registry[rest[0]]
            return ok
        if verb == "push" and self.refuse_push:
            return Result(tuple(argv), 1, "denied: requested access to the resource is denied\n")
        if verb == "push":
            self.registry[rest[0]] = self.local[rest[0]]
            return Result(tuple(argv), 0, "latest: digest: sha256:" + "f" * 64 + " size: 1\n")
        if verb == "tag":
            self.local[rest[1]] = self.local[rest[0]]
            return ok
        if verb == "rmi":
            self.local.pop(rest[0], None)
            return ok
        if verb == "create":
            self.containers[rest[rest.index("--name") + 1]] = rest[-2]
            return ok
        if verb == "cp":
            name, src = rest[0].split(":", 1)
            prefix = src.removesuffix("/.").lstrip("/") + "/"
            for path, data in self.local[self.containers[name]].files.items():
                if path.startswith(prefix):
                    dest = Path(rest[1]) / path.removeprefix(prefix)
                    if data.startswith(b"SYMLINK:"):
                        dest.symlink_to(data.removeprefix(b"SYMLINK:").decode())
                    elif data == b"DIR":
                        dest.mkdir()
                    else:
                        dest.write_bytes(data)
            return ok
        if verb == "image" and rest[0] == "inspect":
            image = self.local.get(rest[-1])
            if image is None:
                return no
            if "{{.Size}}" in rest[2]:
                size = image.size if image.size is not None else sum(len(d) for d in image.files.values())
                return Result(tuple(argv), 0, f"{size}\n")
            key = rest[2].split('"')[1] if "Labels" in rest[2] else ""
            return Result(tuple(argv), 0, (image.labels.get(key, "<no value>") if key else "sha256:1") + "\n")
        if verb == "build":
            tag = rest[rest.index("-t") + 1]
            context = Path(rest[-1])
            files = {f"wheel/{p.relative_to(context / 'wheel')}": p.read_bytes() for p in (context / "wheel").iterdir()}
            files["wheel/entry.json"] = (context / "entry.json").read_bytes()
            labels = dict(rest[i + 1].split("=", 1) for i, a in enumerate(rest) if a == "--label")
            self.local[tag] = Image(files, labels)
            return ok
        return ok


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(_engine, "run", fake)
    return fake


def shared(source: str = REPO, dest: str = REPO, lines: list[str] | None = None) -> SharedCache:
    log = Log(sink=lines.append) if lines is not None else quiet()
    return SharedCache(_engine.Engine(log), log, source, dest)


def built_here(tmp_path: Path) -> Cache:
    """A local cache that holds the wheel this machine built under KEY."""
    cache = Cache(tmp_path / "cache-a", quiet())
    wheel = tmp_path / WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/__init__.py", "")
    cache.store_wheel(
        KEY,
        wheel,
        {"platform_tag": "manylinux_2_34_x86_64", "grafted": ["libpq-1.so.5"], "expected_from_base": ["libssl.so.3"]},
    )
    return cache


def test_a_wheel_built_on_one_machine_is_fetched_checked_and_cached_on_another(
    engine: FakeEngine, tmp_path: Path
) -> None:
    here = built_here(tmp_path)
    stored = here.wheel(KEY)
    assert stored is not None
    shared().store_wheel(KEY, stored)
    entry = engine.registry[f"{REPO}:wheel-{KEY}"]
    assert entry.labels[SHA_LABEL] == stored.sha256
    assert entry.labels[KEY_LABEL] == KEY
    engine.local.clear()

    there = Cache(tmp_path / "cache-b", quiet())
    fetched = shared().fetch_wheel(KEY, there)
    assert fetched is not None
    assert fetched.sha256 == stored.sha256
    assert (fetched.platform_tag, fetched.grafted, fetched.expected_from_base) == (
        "manylinux_2_34_x86_64",
        ("libpq-1.so.5",),
        ("libssl.so.3",),
    )
    assert there.wheel(KEY) is not None  # in the local cache now
    assert engine.local == {}  # the pulled entry is not left behind


def poisoned(engine: FakeEngine, tmp_path: Path, how: str) -> None:
    here = built_here(tmp_path)
    stored = here.wheel(KEY)
    assert stored is not None
    shared().store_wheel(KEY, stored)
    entry = engine.registry[f"{REPO}:wheel-{KEY}"]
    meta = json.loads(entry.files["wheel/entry.json"])
    if how == "bytes":
        entry.files[f"wheel/{WHEEL}"] = b"PK\x03\x04 someone else's code"
    elif how == "bytes and entry":
        entry.files[f"wheel/{WHEEL}"] = b"evil"
        meta["sha256"] = sha256_of_bytes(b"evil")
    elif how == "label":
        entry.labels[SHA_LABEL] = "0" * 64
    elif how == "file name":
        entry.files["wheel/../../escape.whl"] = entry.files.pop(f"wheel/{WHEEL}")
        meta["file"] = "../../escape.whl"
    elif how == "not a wheel":
        entry.files["wheel/demo.sh"] = entry.files.pop(f"wheel/{WHEEL}")
        meta["file"] = "demo.sh"
    elif how == "entry":
        entry.files["wheel/entry.json"] = b"{not json"
        return
    elif how == "a host file":  # the wheel a link to a file of the host, whose sha256 the entry records
        entry.files[f"wheel/{WHEEL}"] = b"SYMLINK:/etc/hostname"
        meta["sha256"] = entry.labels[SHA_LABEL] = sha256_of_bytes(Path("/etc/hostname").read_bytes())
    elif how == "an endless entry":
        entry.files["wheel/entry.json"] = b"SYMLINK:/dev/zero"
        return
    elif how == "a folder too":
        entry.files["wheel/extra"] = b"DIR"
    elif how == "huge":
        entry.size = 1 << 40
    elif how == "a zip that is not named":
        meta["file"] = "x.whl"
    elif how == "escapes":
        meta["platform_tag"] = "x\x1b[31mRED\x1b]0;title\x07"
        meta["grafted"] = ["libevil.so\n\x1b[2J"]
    elif how == "shape":
        meta["grafted"] = 7
    entry.files["wheel/entry.json"] = json.dumps(meta).encode()
    engine.local.clear()


def sha256_of_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "how",
    [
        "bytes",
        "bytes and entry",
        "label",
        "file name",
        "not a wheel",
        "entry",
        "shape",
        "a host file",
        "an endless entry",
        "a folder too",
        "huge",
        "a zip that is not named",
        "escapes",
    ],
)
def test_a_poisoned_entry_is_ignored_with_a_warning_and_nothing_reaches_the_cache(
    engine: FakeEngine, tmp_path: Path, how: str
) -> None:
    poisoned(engine, tmp_path, how)
    lines: list[str] = []
    there = Cache(tmp_path / "cache-b", quiet())
    assert shared(lines=lines).fetch_wheel(KEY, there) is None
    assert there.wheel(KEY) is None
    assert any("ignored, building it here" in line for line in lines), lines
    assert not (tmp_path / "escape.whl").exists()
    assert engine.local == {}


def test_a_miss_is_quiet_and_a_run_with_no_source_asks_nothing(engine: FakeEngine, tmp_path: Path) -> None:
    there = Cache(tmp_path / "cache-b", quiet())
    assert shared().fetch_wheel(KEY, there) is None
    assert [a[1] for a in engine.ran] == ["pull"]
    engine.ran.clear()
    assert shared(source="").fetch_wheel(KEY, there) is None
    assert not shared(source="").fetch_image("localhost/wheelbarrow/builder:demo-0123", KEY)
    assert engine.ran == []


def test_a_builder_image_is_used_only_with_its_key(engine: FakeEngine) -> None:
    tag = "localhost/wheelbarrow/derived-builder:0123456789abcdef"
    engine.local[tag] = Image({}, {KEY_LABEL: KEY})
    shared().store_images(tag, "python:3.11-slim")  # a pulled base carries no key: not pushed
    remote = f"{REPO}:derived-builder-0123456789abcdef"
    assert remote in engine.registry
    assert len(engine.registry) == 1
    assert remote not in engine.local  # the push's own tag is not left behind
    del engine.local[tag]
    assert shared().fetch_image(tag, KEY)
    assert tag in engine.local
    del engine.local[tag]
    lines: list[str] = []
    assert not shared(lines=lines).fetch_image(tag, "b" * 64)  # another key: not this image
    assert tag not in engine.local
    assert any("not labelled with its key" in line for line in lines)


def test_a_failed_push_is_a_warning_and_the_build_stands(engine: FakeEngine, tmp_path: Path) -> None:
    stored = built_here(tmp_path).wheel(KEY)
    assert stored is not None

    engine.refuse_push = True
    lines: list[str] = []
    shared(lines=lines).store_wheel(KEY, stored)
    assert any("pushing" in line and "failed; the build stands" in line for line in lines)


@pytest.mark.parametrize(
    "value", ["registry:5000/team/cache:latest", "team/cache@sha256:" + "0" * 64, "Team/Cache", "a b"]
)
def test_cache_from_and_to_name_a_repository(tmp_path: Path, value: str) -> None:
    project = write_project(tmp_path, f'cache-from = "{value}"')
    with pytest.raises(ConfigError, match="cache-from"):
        load_config(project, environ={})
    ok = load_config(write_project(tmp_path / "ok", f'cache-to = "{REPO}"'), environ={})
    assert (ok.cache_from, ok.cache_to) == ("", REPO)
    shutil.rmtree(tmp_path / "ok")
