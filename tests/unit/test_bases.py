"""The bases on the runner path: the builder derived from the runtime base, digests of pulled bases, and a
wheelhouse that is never installed into a base other than the one it was repaired against.

The engine is Docker's CLI behind a recording stand-in (no process is started): each test says what the
engine answers and checks what wheelbarrow asked of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.conftest import quiet, sample_manifest, write_project
from wheelbarrow import _bootstrap, _engine
from wheelbarrow._cmd import Result
from wheelbarrow._config import load_config
from wheelbarrow._image import check_same_base
from wheelbarrow._manifest import Manifest
from wheelbarrow.errors import ImageBuildError, WheelhouseError

Answer = Callable[[list[str]], tuple[int, str]]
PULLED = "python@sha256:" + "a" * 64
MOVED = "python@sha256:" + "b" * 64


def engine_answering(monkeypatch: pytest.MonkeyPatch, answer: Answer) -> tuple[_engine.Engine, list[list[str]]]:
    ran: list[list[str]] = []

    def recording(argv: list[str], *_args: object, **_kwargs: object) -> Result:
        ran.append(list(argv))
        code, output = answer(list(argv))
        return Result(tuple(argv), code, output)

    monkeypatch.setattr(_engine, "run", recording)
    return _engine.Engine(quiet()), ran


def images(present: dict[str, str], digests: dict[str, list[str]] | None = None) -> Answer:
    """An engine with the images ``present`` (reference: id) and their repository digests."""

    def answer(argv: list[str]) -> tuple[int, str]:
        ref = argv[-1]
        if argv[1:3] == ["image", "inspect"] and "{{.Id}}" in argv:
            return (0, present[ref] + "\n") if ref in present else (1, "Error: No such image\n")
        if argv[1:3] == ["image", "inspect"] and "{{json .RepoDigests}}" in argv:
            return 0, "[" + ",".join(f'"{d}"' for d in (digests or {}).get(ref, [])) + "]\n"
        return 0, ""

    return answer


@pytest.mark.parametrize(
    ("ref", "present", "digests", "expected"),
    [
        ("python:3.11-slim", {"python:3.11-slim": "sha256:1"}, {"python:3.11-slim": [PULLED]}, PULLED),
        (  # several names: the digest of the name the config gives
            "127.0.0.1:5000/library/python:3.11-slim",
            {"127.0.0.1:5000/library/python:3.11-slim": "sha256:1"},
            {"127.0.0.1:5000/library/python:3.11-slim": [PULLED, "127.0.0.1:5000/library/python@sha256:" + "c" * 64]},
            "127.0.0.1:5000/library/python@sha256:" + "c" * 64,
        ),
        ("python:3.11-slim", {}, {}, ""),  # not here (a bootstrapped base stood in for it): no digest
        ("localhost/wheelbarrow/runtime-base:bookworm", {"localhost/wheelbarrow/runtime-base:bookworm": "s"}, {}, ""),
        ("python:3.11-slim", {"python:3.11-slim": "sha256:1"}, {"python:3.11-slim": []}, ""),  # loaded, not pulled
        (PULLED, {PULLED: "sha256:1"}, {}, PULLED),  # pinned by digest: the pin is the digest
    ],
)
def test_a_pulled_base_is_known_by_its_digest_and_any_other_by_none(
    monkeypatch: pytest.MonkeyPatch, ref: str, present: dict[str, str], digests: dict[str, list[str]], expected: str
) -> None:
    engine, _ = engine_answering(monkeypatch, images(present, digests))
    assert _bootstrap.pulled_digest(ref, engine) == expected


def recorded(image_id: str = "sha256:1", digest: str = PULLED) -> Manifest:
    manifest = sample_manifest()
    base = dataclasses.replace(manifest.runtime_base, image="python:3.11-slim", image_id=image_id, digest=digest)
    return dataclasses.replace(manifest, runtime_base=base)


def test_the_base_a_wheelhouse_was_repaired_against_is_the_only_one_it_goes_into() -> None:
    check_same_base(recorded(), "python:3.11-slim", "sha256:1", PULLED)  # the same image: nothing to say
    check_same_base(recorded(image_id=""), "python:3.11-slim", "sha256:2", MOVED)  # a 1.0 manifest: no id to hold
    with pytest.raises(WheelhouseError) as moved:  # the tag moved on the registry and was pulled again
        check_same_base(recorded(), "python:3.11-slim", "sha256:2", MOVED)
    assert "has moved" in moved.value.message
    assert MOVED in moved.value.message
    assert PULLED in moved.value.message
    assert f'runtime-base = "{PULLED}"' in moved.value.tip
    assert "wheelbarrow build" in moved.value.tip
    with pytest.raises(WheelhouseError) as rebuilt:  # a local base rebuilt (bootstrapped again): no digests
        check_same_base(recorded(digest=""), "localhost/wheelbarrow/runtime-base:bookworm", "sha256:2", "")
    assert "sha256:2" in rebuilt.value.message
    assert "sha256:1" in rebuilt.value.message
    assert "wheelbarrow build" in rebuilt.value.tip


def test_the_default_builder_is_derived_from_the_runtime_base_once_per_base_image(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The derived builder's tag is a key of the runtime base's image id (and of what it is made with): the
    same base finds it, another base (a moved tag) gets its own, and no pull or bootstrap happens."""
    project = write_project(tmp_path / "p", f'cache-dir = "{tmp_path / "cache"}"\n')
    config = load_config(project, environ={})
    assert config.builder_base == "runtime"
    built: list[dict[str, str]] = []

    def build(_self: object, _context: Path, tag: str, **kwargs: object) -> str:
        args = kwargs["build_args"]
        assert isinstance(args, dict)
        built.append(args)
        present[tag] = "sha256:derived"
        return "sha256:derived"

    present = {"python:3.11-slim": "sha256:base1"}
    engine, ran = engine_answering(monkeypatch, images(present))
    monkeypatch.setattr(_engine.Engine, "build", build)
    monkeypatch.setattr(_bootstrap, "_tool_wheels", lambda *_a: tmp_path)
    first = _bootstrap.resolve_builder_base(config, engine, quiet(), runtime="python:3.11-slim")
    assert first.startswith("localhost/wheelbarrow/derived-builder:")
    assert built == [{"BASE": "python:3.11-slim", "PYTHON_VERSION": "3.11", "PYTHON_TAG": "cp311-cp311"}]
    again = _bootstrap.resolve_builder_base(config, engine, quiet(), runtime="python:3.11-slim")
    assert (again, len(built)) == (first, 1)  # found by its tag, not built again
    present["python:3.11-slim"] = "sha256:base2"  # the base's tag now names another image
    other = _bootstrap.resolve_builder_base(config, engine, quiet(), runtime="python:3.11-slim")
    assert other != first
    assert len(built) == 2
    assert not [argv for argv in ran if "pull" in argv or "import" in argv]


def test_a_base_no_builder_can_be_derived_from_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "p", f'cache-dir = "{tmp_path / "cache"}"\n')
    config = load_config(project, environ={})

    def build(*_args: object, **_kwargs: object) -> str:
        raise ImageBuildError("building image x failed:\nwheelbarrow: the runtime base has neither apt-get nor dnf/yum")

    engine, _ = engine_answering(monkeypatch, images({"alpine:3": "sha256:a"}))
    monkeypatch.setattr(_engine.Engine, "build", build)
    monkeypatch.setattr(_bootstrap, "_tool_wheels", lambda *_a: tmp_path)
    with pytest.raises(ImageBuildError) as caught:
        _bootstrap.resolve_builder_base(config, engine, quiet(), runtime="alpine:3")
    assert "cannot be derived from alpine:3" in caught.value.message
    assert "neither apt-get nor dnf" in caught.value.message
    assert "builder-base" in caught.value.tip
    assert "manylinux_2_28" in caught.value.tip


def test_a_builder_whose_openssl_is_not_the_runtimes_leaves_its_own_to_be_grafted() -> None:
    """A manylinux_2_28 builder links libssl.so.1.1; python:3.11-slim has libssl.so.3. exclude-base leaves to
    the base only the sonames it has, so the repair grafts 1.1 (and verify's one-libssl check then fails)."""
    from wheelbarrow._repair import base_exclusions

    runtime = frozenset({"libssl.so.3", "libcrypto.so.3", "libc.so.6", "libz.so.1"})
    left = base_exclusions("exclude-base", runtime, python="3.11")
    assert left == ("libcrypto.so.3", "libpython3.11.so.1.0", "libssl.so.3")
    assert "libssl.so.1.1" not in left
    assert base_exclusions("vendor-all", runtime, python="3.11") == ("libpython3.11.so.1.0",)
