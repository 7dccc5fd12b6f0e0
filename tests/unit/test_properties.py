"""Property-based: arbitrary input to the config reader, the lock readers and the manifest never
produces a traceback, only a parsed result or a WheelbarrowError."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.conftest import sample_manifest
from wheelbarrow._config import OPTIONS, load_config
from wheelbarrow._lock import marker_environment, parse_pylock, parse_requirements, poetry_lock_files
from wheelbarrow._manifest import FileRef, Manifest, WheelEntry
from wheelbarrow.errors import WheelbarrowError

ENV = marker_environment("3.11", "x86_64")
KEYS = [o.key for o in OPTIONS]
toml_scalar = st.one_of(
    st.text(max_size=20).map(json.dumps),
    st.integers(-5, 70000).map(str),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
toml_value = st.one_of(toml_scalar, st.lists(toml_scalar, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"))


def outcome(call: Any) -> None:
    try:
        call()
    except WheelbarrowError as err:  # an accepted outcome, so pytest.raises does not fit
        assert err.message  # noqa: PT017
        assert "\n" not in err.tip  # noqa: PT017


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=12)), toml_value, max_size=6))
def test_config_table(table: dict[str, str]) -> None:
    lines = [f"{json.dumps(key)} = {value}" for key, value in table.items()]
    text = '[project]\nname = "demo"\nversion = "1"\n\n[tool.wheelbarrow]\n' + "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pyproject.toml").write_text(text, encoding="utf-8")
        outcome(lambda: load_config(Path(tmp), environ={}))


@settings(max_examples=100, deadline=None)
@given(
    st.text(max_size=200), st.dictionaries(st.sampled_from([o.env for o in OPTIONS]), st.text(max_size=12), max_size=3)
)
def test_any_pyproject_and_environment(text: str, environ: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pyproject.toml").write_text(text, encoding="utf-8")
        outcome(lambda: load_config(Path(tmp), environ=environ))


requirement_line = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda name, op, version, marker, hashes: f"{name}{op}{version}{marker} " + " ".join(hashes),
        st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,10}", fullmatch=True),
        st.sampled_from(["==", ">=", "===", "~=", "", "=="]),
        st.from_regex(r"[0-9][0-9.*a-z]{0,6}", fullmatch=True),
        st.sampled_from(["", " ; python_version < '3.8'", " ; extra == 'x'", " ; sys_platform == 'linux'", " ; bogus"]),
        st.lists(st.from_regex(r"--hash=sha256:[0-9a-f]{0,64}", fullmatch=True), max_size=2),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(requirement_line, max_size=5))
def test_requirements_reader(lines: list[str]) -> None:
    outcome(lambda: parse_requirements("\n".join(lines), ENV, Path("req.txt")))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_pylock_and_poetry_lock_readers(text: str) -> None:
    outcome(lambda: parse_pylock(text, ENV, Path("pylock.toml")))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "poetry.lock"
        path.write_text(text, encoding="utf-8")
        outcome(lambda: poetry_lock_files(path))


pylock_package = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=8), st.integers())},
    optional={
        "version": st.one_of(st.text(max_size=6), st.integers()),
        "marker": st.one_of(st.text(max_size=20), st.just("python_version >= '3'")),
        "sdist": st.dictionaries(
            st.sampled_from(["name", "url", "path", "hashes"]),
            st.one_of(st.text(max_size=10), st.dictionaries(st.just("sha256"), st.text(max_size=5))),
        ),
        "wheels": st.lists(
            st.dictionaries(st.sampled_from(["name", "url", "hashes"]), st.text(max_size=10)), max_size=2
        ),
    },
)


def to_toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {to_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=150, deadline=None)
@given(st.lists(pylock_package, max_size=3))
def test_structured_pylock(packages: list[dict[str, Any]]) -> None:
    body = "".join("[[packages]]\n" + "".join(f"{k} = {to_toml(v)}\n" for k, v in p.items()) for p in packages)
    outcome(lambda: parse_pylock('lock-version = "1.0"\n' + body, ENV, Path("pylock.toml")))


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=200), st.dictionaries(st.text(max_size=10), st.text(max_size=5)).map(json.dumps)))
def test_manifest_reader(text: str) -> None:
    outcome(lambda: Manifest.from_json(text))
    outcome(lambda: Manifest.from_json(json.dumps({"manifest_version": 1, "wheels": [json.loads(json.dumps(text))]})))


#: Text a manifest may hold: anything printable (control characters are refused: tests/unit/test_bases.py).
plain = st.characters(exclude_categories=("Cc", "Cs"))
entries = st.builds(
    WheelEntry,
    name=st.from_regex(r"[a-z][a-z0-9_-]{0,8}[a-z0-9]", fullmatch=True),
    version=st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", fullmatch=True),
    file=st.from_regex(r"[a-z][a-z0-9_.-]{0,18}\.whl", fullmatch=True),
    sha256=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    size=st.integers(0, 10**9),
    origin=st.sampled_from(["index", "built"]),
    platform_tag=st.from_regex(r"[a-z0-9_.]{1,20}", fullmatch=True),
    sdist=st.none() | st.builds(FileRef, file=st.text(plain, max_size=10), sha256=st.text(plain, max_size=64)),
    builder_image_id=st.none() | st.text(plain, max_size=20),
    grafted_libraries=st.lists(st.text(plain, max_size=10), max_size=3).map(tuple),
    expected_from_base=st.lists(st.text(plain, max_size=10), max_size=2).map(tuple),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(entries, max_size=4), st.integers(0, 2**31))
def test_manifest_round_trip(wheels: list[WheelEntry], epoch: int) -> None:
    manifest = sample_manifest(*wheels, source_date_epoch=epoch)
    assert Manifest.from_json(manifest.to_json()) == manifest
