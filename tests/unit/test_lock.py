from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.conftest import write_project
from wheelbarrow._config import load_config
from wheelbarrow._lock import (
    LockedFile,
    _attach_files,
    find_lock,
    marker_environment,
    parse_pylock,
    parse_requirements,
    poetry_lock_files,
)
from wheelbarrow.errors import LockError, MissingLockError, UnhashedRequirementError

ENV = marker_environment("3.11", "x86_64")
H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64

# What `poetry export -f requirements.txt` prints (shape copied from a real export).
EXPORT = f"""\
gunicorn==23.0.0 ; python_version >= "3.11" and python_version < "4.0" \\
    --hash=sha256:{H1} \\
    --hash=sha256:{H2}
packaging==26.4 ; python_version >= "3.11" and python_version < "4.0" \\
    --hash=sha256:{H3}
tomli==2.0.1 ; python_version < "3.11" \\
    --hash=sha256:{H3}
pywin32==306 ; sys_platform == "win32" \\
    --hash=sha256:{H3}
"""


def test_poetry_export_is_parsed_for_the_target() -> None:
    packages = parse_requirements(EXPORT, ENV, Path("export.txt"))
    assert [(p.name, p.version) for p in packages] == [("gunicorn", "23.0.0"), ("packaging", "26.4")]
    assert packages[0].hashes == (H1, H2)


def test_requirement_without_hash_names_its_line() -> None:
    with pytest.raises(UnhashedRequirementError, match=r"req.txt:2: six==1.16.0 has no --hash") as caught:
        parse_requirements(f"a==1 --hash=sha256:{H1}\nsix==1.16.0\n", ENV, Path("req.txt"))
    assert "--generate-hashes" in caught.value.tip


@pytest.mark.parametrize("spec", ["six>=1.16", "six", "six==1.*"])
def test_unpinned_requirement_is_refused(spec: str) -> None:
    with pytest.raises(LockError, match="not pinned"):
        parse_requirements(f"{spec} --hash=sha256:{H1}\n", ENV, Path("req.txt"))


def test_index_options_and_comments_are_skipped() -> None:
    text = f"# a comment\n--index-url https://example.invalid/simple\nsix==1.16.0 --hash=sha256:{H1}  # trailing\n"
    packages = parse_requirements(text, ENV, Path("req.txt"))
    assert [p.requirement for p in packages] == ["six==1.16.0"]


def test_poetry_lock_files_are_joined_by_hash(tmp_path: Path) -> None:
    lock = tmp_path / "poetry.lock"
    lock.write_text(
        '[[package]]\nname = "Gunicorn"\nversion = "23.0.0"\n'
        f'files = [\n  {{file = "gunicorn-23.0.0-py3-none-any.whl", hash = "sha256:{H1}"}},\n'
        f'  {{file = "gunicorn-23.0.0.tar.gz", hash = "sha256:{H2}"}},\n]\n',
        encoding="utf-8",
    )
    files = poetry_lock_files(lock)
    assert files[("gunicorn", "23.0.0")] == (
        LockedFile("gunicorn-23.0.0-py3-none-any.whl", H1),
        LockedFile("gunicorn-23.0.0.tar.gz", H2),
    )
    package = parse_requirements(f"gunicorn==23.0.0 --hash=sha256:{H1}\n", ENV, lock)[0]
    assert [f.filename for f in _attach_files(package, files[("gunicorn", "23.0.0")]).files] == [
        "gunicorn-23.0.0-py3-none-any.whl"
    ]


PYLOCK = f"""\
lock-version = "1.0"
created-by = "test"

[[packages]]
name = "demo"
directory = {{ path = "." }}

[[packages]]
name = "psycopg2"
version = "2.9.13"
sdist = {{ name = "psycopg2-2.9.13.tar.gz", path = "files/psycopg2-2.9.13.tar.gz", hashes = {{ sha256 = "{H1}" }} }}

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
wheels = [{{ path = "colorama-0.4.6-py2.py3-none-any.whl", hashes = {{ sha256 = "{H2}" }} }}]
"""


def test_pylock_entries_files_and_markers(tmp_path: Path) -> None:
    packages = parse_pylock(PYLOCK, ENV, tmp_path / "pylock.toml")
    assert [p.name for p in packages] == ["psycopg2"]
    (sdist,) = packages[0].files
    assert sdist.filename == "psycopg2-2.9.13.tar.gz"
    assert sdist.path == tmp_path / "files" / "psycopg2-2.9.13.tar.gz"


def test_pylock_file_without_hash_is_refused(tmp_path: Path) -> None:
    text = (
        'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "six"\nversion = "1"\n'
        'wheels = [{ name = "six-1-py3-none-any.whl" }]\n'
    )
    with pytest.raises(UnhashedRequirementError, match=r"wheels\[0\]\.hashes"):
        parse_pylock(text, ENV, tmp_path / "pylock.toml")
    md5_only = text.replace("}]", ', path = "six-1-py3-none-any.whl", hashes = { md5 = "0" }}]')
    with pytest.raises(UnhashedRequirementError, match="no sha256"):
        parse_pylock(md5_only, ENV, tmp_path / "pylock.toml")


def test_pylock_wrong_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="lock-version"):
        parse_pylock('lock-version = "2.0"\n', ENV, tmp_path / "pylock.toml")


def test_no_lock_is_a_clear_error(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path), environ={})
    with pytest.raises(MissingLockError, match="no lock in") as caught:
        find_lock(config)
    assert "poetry lock" in caught.value.tip


def test_lock_kinds_are_found_in_order(tmp_path: Path) -> None:
    project = write_project(tmp_path)
    (project / "requirements.txt").write_text("", encoding="utf-8")
    (project / "pylock.toml").write_text("", encoding="utf-8")
    config = load_config(project, environ={})
    assert find_lock(config)[1] == "pylock"
    (project / "poetry.lock").write_text("", encoding="utf-8")
    assert find_lock(config)[1] == "poetry"
    configured = load_config(project, environ={}, overrides={"lock": "requirements.txt"})
    assert find_lock(configured)[1] == "requirements"


def test_a_uv_lock_names_its_files_so_an_sdist_only_package_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv export pins hashes only; uv.lock names the files: an sdist-only package is planned as a build."""
    from wheelbarrow import _lock
    from wheelbarrow._log import Log
    from wheelbarrow._plan import make_plan

    project = write_project(tmp_path, name="uvdemo")
    (project / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "psycopg2"\nversion = "2.9.13"\n'
        f'sdist = {{ url = "https://example.invalid/p/psycopg2-2.9.13.tar.gz", hash = "sha256:{H1}" }}\n'
    )
    monkeypatch.setattr(_lock, "_export_cached", lambda *_a, **_k: f"psycopg2==2.9.13 --hash=sha256:{H1}\n")
    config = load_config(project, environ={})
    lock = _lock.read_lock(config, Log(sink=lambda _line: None), machine="x86_64")
    assert lock.packages[0].files == (LockedFile("psycopg2-2.9.13.tar.gz", H1),)
    plan = make_plan(config, lock, machine="x86_64")
    assert [(b.name, b.reason) for b in plan.sdist_builds] == [("psycopg2", "no compatible wheel")]
    assert plan.index_wheels == ()
