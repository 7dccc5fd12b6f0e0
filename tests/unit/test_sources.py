"""The project's own index declarations (Poetry sources, uv indexes), the search order they make, and credentials.

No network and no subprocess: pyproject.toml files are written here, the environment is a dict, keyring
is a stand-in module put in ``sys.modules``.
"""

from __future__ import annotations

import base64
import sys
import types
from pathlib import Path

import pytest

from wheelbarrow._lock import marker_environment
from wheelbarrow._log import Log, scrub
from wheelbarrow._sources import Credentials, Index, Sources, read_sources, redact, uv_env_name
from wheelbarrow.errors import ConfigError

PIP = ("https://mirror.invalid/simple", "file:///opt/extra/simple")
LINUX = marker_environment("3.11", "x86_64")
SECRET = "s3cr3t-pa55"


def sources(
    tmp_path: Path, toml: str, environ: dict[str, str] | None = None, lock: str = "requirements.txt"
) -> tuple[Sources, list[str]]:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "app"\nversion = "1"\n\n{toml}', encoding="utf-8")
    lines: list[str] = []
    found = read_sources(tmp_path, PIP, environ or {}, LINUX, Log(sink=lines.append), lock=tmp_path / lock)
    return found, lines


def urls(indexes: tuple[Index, ...]) -> list[str]:
    return [i.url for i in indexes]


# no declarations ---------------------------------------------------------------------------------


def test_a_project_that_declares_nothing_uses_pips_indexes(tmp_path: Path) -> None:
    found, _ = sources(tmp_path, "[tool.poetry]\npackages = []\n")
    assert urls(found.for_project("anything")) == list(PIP)
    assert found.declared == ()
    assert urls(read_sources(tmp_path / "absent", PIP, {}, LINUX, Log(sink=lambda _: None)).searched) == list(PIP)


# Poetry ------------------------------------------------------------------------------------------

POETRY = """
[tool.poetry.dependencies]
python = "^3.11"
pinned = { version = "*", source = "private" }
plain = "^1"
both-ways = [
    { version = "1", markers = "sys_platform == 'darwin'", source = "mac" },
    { version = "1", markers = "sys_platform == 'linux'", source = "Supp" },
]

[tool.poetry.group.dev.dependencies]
dev-pinned = { version = "*", source = "PRIMARY-two" }

[[tool.poetry.source]]
name = "primary-one"
url = "https://one.invalid/simple/"

[[tool.poetry.source]]
name = "supp"
url = "https://supp.invalid/simple"
priority = "supplemental"

[[tool.poetry.source]]
name = "private"
url = "https://private.invalid/simple"
priority = "explicit"

[[tool.poetry.source]]
name = "mac"
url = "https://mac.invalid/simple"
priority = "explicit"

[[tool.poetry.source]]
name = "primary-two"
url = "https://two.invalid/simple"
priority = "Primary"
"""


def test_poetry_primary_then_supplemental_explicit_only_when_named(tmp_path: Path) -> None:
    found, _ = sources(tmp_path, POETRY)
    # a primary source disables the implicit PyPI (pip's indexes here); explicit sources are never searched
    assert urls(found.searched) == [
        "https://one.invalid/simple/",
        "https://two.invalid/simple",
        "https://supp.invalid/simple",
    ]
    assert urls(found.for_project("Plain")) == urls(found.searched)
    # a package that names its source is looked up there alone, whatever the source's priority
    assert urls(found.for_project("pinned")) == ["https://private.invalid/simple"]
    assert urls(found.for_project("dev_pinned")) == ["https://two.invalid/simple"]  # names are case-insensitive
    # of a list of constraints, those whose markers hold for the target (Linux) count
    assert urls(found.for_project("both-ways")) == ["https://supp.invalid/simple"]
    assert {i.label for i in found.declared} >= {"Poetry source 'private'", "Poetry source 'mac'"}


def test_poetry_pypi_is_implicit_only_without_a_primary_source(tmp_path: Path) -> None:
    supplemental = '[[tool.poetry.source]]\nname = "corp"\nurl = "https://corp.invalid/simple"\npriority = "%s"\n'
    found, _ = sources(tmp_path, supplemental % "supplemental")
    assert urls(found.searched) == [*PIP, "https://corp.invalid/simple"]
    found, _ = sources(tmp_path, supplemental % "explicit")
    assert urls(found.searched) == list(PIP)
    # PyPI declared (without a url) takes its declared place
    declared = supplemental % "primary" + '[[tool.poetry.source]]\nname = "PyPI"\npriority = "supplemental"\n'
    found, _ = sources(tmp_path, declared)
    assert urls(found.searched) == ["https://corp.invalid/simple", *PIP]
    found, _ = sources(tmp_path, declared + '\n[tool.poetry.dependencies]\nsix = { version = "1", source = "pypi" }\n')
    assert urls(found.for_project("six")) == list(PIP)


def test_poetry_source_without_a_source_constraint_in_one_group_searches_the_defaults_too(tmp_path: Path) -> None:
    toml = (
        '[tool.poetry.dependencies]\nlib = { version = "1", source = "corp" }\n'
        '[tool.poetry.group.test.dependencies]\nlib = "1"\n'
        '[[tool.poetry.source]]\nname = "corp"\nurl = "https://corp.invalid/simple"\npriority = "explicit"\n'
    )
    found, _ = sources(tmp_path, toml)
    assert urls(found.for_project("lib")) == ["https://corp.invalid/simple", *PIP]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[tool.poetry.source]]\nname = "a"\nurl = "https://a.invalid/"\npriority = "default"\n', "'default' is not"),
        ('[[tool.poetry.source]]\nname = "a"\nurl = "https://a.invalid/"\npriority = "secondary"\n', "'secondary'"),
        ('[[tool.poetry.source]]\nurl = "https://a.invalid/"\n', "has no name"),
        ('[[tool.poetry.source]]\nname = "a"\n', "Poetry source 'a' has no url"),
        ('[[tool.poetry.source]]\nname = "PyPI"\nurl = "https://x.invalid/"\n', "PyPI source takes none"),
        ('[[tool.poetry.source]]\nname = "a"\nurl = "./wheels"\n', "not an http, https or file URL"),
        (
            (
                '[[tool.poetry.source]]\nname = "a"\nurl = "https://a.invalid/"\n'
                '[[tool.poetry.source]]\nname = "A"\nurl = "https://b.invalid/"\n'
            ),
            "declared twice",
        ),
        (
            (
                '[tool.poetry.dependencies]\nx = { version = "1", source = "nope" }\n'
                '[[tool.poetry.source]]\nname = "a"\nurl = "https://a.invalid/"\n'
            ),
            "x names the source 'nope', which no [[tool.poetry.source]] declares",
        ),
        ("[tool.poetry]\nsource = [1]\n", "must be a table or an array of tables"),
    ],
)
def test_poetry_declarations_wheelbarrow_cannot_follow_are_config_errors(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        sources(tmp_path, toml)
    assert message in caught.value.message
    assert "pyproject.toml" in caught.value.message
    assert caught.value.return_code == 2


def test_a_poetry_single_page_source_is_not_searched_and_cannot_be_pinned(tmp_path: Path) -> None:
    page = f'[[tool.poetry.source]]\nname = "links"\nurl = "https://u:{SECRET}@links.invalid/wheels.html"\n'
    found, lines = sources(tmp_path, page + '[[tool.poetry.source]]\nname = "a"\nurl = "https://a.invalid/s"\n')
    assert urls(found.searched) == ["https://a.invalid/s"]
    assert lines == [
        (
            "WARNING: pyproject.toml: Poetry source 'links': https://links.invalid/wheels.html is a single page of "
            "links, not an index: it is not searched"
        )
    ]
    with pytest.raises(ConfigError, match="pinned to 'links', a single-page"):
        sources(tmp_path, page + '[tool.poetry.dependencies]\nx = { version = "1", source = "links" }\n')


def test_poetry_credentials_from_its_environment_variables(tmp_path: Path) -> None:
    toml = (
        '[[tool.poetry.source]]\nname = "my-repo"\nurl = "https://a.invalid/simple"\n'
        '[[tool.poetry.source]]\nname = "corp.repo"\nurl = "https://b.invalid/simple"\n'
        '[[tool.poetry.source]]\nname = "token-only"\nurl = "https://c.invalid/simple"\n'
    )
    environ = {
        "POETRY_HTTP_BASIC_MY_REPO_USERNAME": "me",
        "POETRY_HTTP_BASIC_MY_REPO_PASSWORD": SECRET,
        "POETRY_HTTP_BASIC_CORP.REPO_USERNAME": "dotted",  # Poetry upper-cases the name and turns only - into _
        "POETRY_HTTP_BASIC_CORP.REPO_PASSWORD": "pw2",
        "POETRY_HTTP_BASIC_TOKEN_ONLY_PASSWORD": "tok",
    }
    found, _ = sources(tmp_path, toml, environ)
    one, two, three = found.searched
    assert (one.username, one.password, two.username, two.password) == ("me", SECRET, "dotted", "pw2")
    assert (three.username, three.password) == (None, "tok")
    assert one.hint == "POETRY_HTTP_BASIC_MY_REPO_USERNAME and POETRY_HTTP_BASIC_MY_REPO_PASSWORD"
    assert SECRET not in repr(found)
    keys = Credentials(found.declared, "/nonexistent", Log(sink=lambda _: None))
    assert keys.lookup("https://a.invalid/simple/x/") == ("me", SECRET)
    assert keys.lookup("https://c.invalid/files/x.whl") == ("", "tok")  # an empty user, as Poetry allows


# uv ----------------------------------------------------------------------------------------------

UV = """
[tool.uv.sources]
torch = [
  { index = "cpu", marker = "sys_platform == 'darwin'" },
  { index = "cu.130", marker = "sys_platform == 'linux'" },
]
internal = { index = "corp-private" }
local = { path = "../local" }

[[tool.uv.index]]
name = "corp-private"
url = "https://corp.invalid/simple"
explicit = true

[[tool.uv.index]]
name = "mirror"
url = "https://mirror2.invalid/simple"
default = true

[[tool.uv.index]]
name = "cpu"
url = "https://cpu.invalid/whl"
explicit = true

[[tool.uv.index]]
name = "cu.130"
url = "https://gpu.invalid/whl"
explicit = true

[[tool.uv.index]]
url = "https://unnamed.invalid/simple"
"""


def test_uv_indexes_in_order_the_default_last_explicit_only_when_pinned(tmp_path: Path) -> None:
    found, _ = sources(tmp_path, UV, lock="uv.lock")
    # default = true replaces PyPI (pip's indexes) and comes last, after the indexes written after it
    assert urls(found.searched) == ["https://unnamed.invalid/simple", "https://mirror2.invalid/simple"]
    assert urls(found.for_project("internal")) == ["https://corp.invalid/simple"]
    assert urls(found.for_project("torch")) == ["https://gpu.invalid/whl"]  # the marker that holds on Linux
    assert urls(found.for_project("local")) == urls(found.searched)  # a path source pins no index
    searched = "https://unnamed.invalid/simple (uv index), https://mirror2.invalid/simple (uv index 'mirror')"
    assert found.describe()[0] == f"indexes searched: {searched}"
    assert "internal only from: https://corp.invalid/simple (uv index 'corp-private')" in found.describe()


def test_uv_pypi_is_the_default_unless_an_index_is(tmp_path: Path) -> None:
    one = '[[tool.uv.index]]\nname = "corp"\nurl = "https://corp.invalid/simple"\n'
    found, _ = sources(tmp_path, one)
    assert urls(found.searched) == ["https://corp.invalid/simple", *PIP]
    found, _ = sources(tmp_path, one + "default = true\nexplicit = true\n")  # explicit, and PyPI is gone
    assert urls(found.searched) == []


def test_uv_credentials_from_its_environment_variables(tmp_path: Path) -> None:
    assert uv_env_name("corp.private-idx_2") == "CORP_PRIVATE_IDX_2"
    toml = '[[tool.uv.index]]\nname = "corp.private-idx"\nurl = "https://corp.invalid/simple"\n'
    environ = {"UV_INDEX_CORP_PRIVATE_IDX_USERNAME": "ci", "UV_INDEX_CORP_PRIVATE_IDX_PASSWORD": SECRET}
    index = sources(tmp_path, toml, environ)[0].searched[0]
    assert (index.username, index.password, index.label) == ("ci", SECRET, "uv index 'corp.private-idx'")
    assert index.hint.startswith("UV_INDEX_CORP_PRIVATE_IDX_USERNAME")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[tool.uv.index]]\nname = "a b"\nurl = "https://a.invalid/"\n', "is not letters, digits"),
        ('[[tool.uv.index]]\nname = "a"\nurl = "https://a.invalid/"\ndefault = "yes"\n', "must be true or false"),
        ('[[tool.uv.index]]\nname = "a"\nurl = "ftp://a.invalid/"\n', "not an http, https or file URL"),
        ('[tool.uv.sources]\nx = { index = "b" }\n[[tool.uv.index]]\nname = "a"\nurl = "https://a.invalid/"\n', "b'"),
        (
            (
                '[tool.uv.sources]\nx = { index = "a", marker = "python_version >>> \'3\'" }\n'
                '[[tool.uv.index]]\nname = "a"\nurl = "https://a.invalid/"\n'
            ),
            "is not valid",
        ),
    ],
)
def test_uv_declarations_wheelbarrow_cannot_follow_are_config_errors(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sources(tmp_path, toml)
    assert message in caught.value.message


def test_a_uv_flat_index_is_not_searched(tmp_path: Path) -> None:
    flat = '[[tool.uv.index]]\nname = "flat"\nurl = "file:///opt/wheels"\nformat = "flat"\n'
    found, lines = sources(tmp_path, flat)
    assert urls(found.searched) == list(PIP)
    assert "it is not searched" in lines[0]
    with pytest.raises(ConfigError, match="pinned to 'flat'"):
        sources(tmp_path, flat + '[tool.uv.sources]\nx = { index = "flat" }\n')


# both tools --------------------------------------------------------------------------------------

BOTH = (
    '[[tool.poetry.source]]\nname = "p"\nurl = "https://poetry.invalid/simple"\n'
    '[[tool.uv.index]]\nname = "u"\nurl = "https://uv.invalid/simple"\n'
)


@pytest.mark.parametrize(
    ("lock", "expected"),
    [
        ("poetry.lock", ["https://poetry.invalid/simple"]),
        ("uv.lock", ["https://uv.invalid/simple", *PIP]),
        ("pylock.toml", ["https://poetry.invalid/simple", "https://uv.invalid/simple", *PIP]),
        ("requirements.txt", ["https://poetry.invalid/simple", "https://uv.invalid/simple", *PIP]),
    ],
)
def test_the_lock_decides_whose_declarations_count(tmp_path: Path, lock: str, expected: list[str]) -> None:
    assert urls(sources(tmp_path, BOTH, lock=lock)[0].searched) == expected


# credentials -------------------------------------------------------------------------------------


def quiet() -> Log:
    return Log(sink=lambda _: None)


def test_redact_and_scrub_leave_no_userinfo() -> None:
    assert redact("https://u:p@ss@index.invalid/simple") == "https://index.invalid/simple"  # an unquoted @
    assert redact("https://u:p@[::1/simple").startswith("https://[")  # not a URL urllib can split
    assert SECRET not in redact(f"https://u:{SECRET}@[::1/simple")
    text = f"failed: http://me:{SECRET}@a.invalid/x and HTTPS://t0k@b.invalid?q=http://x:{SECRET}@c.invalid"
    assert scrub(text) == "failed: http://a.invalid/x and HTTPS://b.invalid?q=http://c.invalid"


def test_the_order_credentials_are_taken_in(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine a.invalid login n password from-netrc\n", encoding="utf-8")
    env = Index("https://a.invalid/private/simple", "uv index 'p'", "env-user", "from-env")
    in_url = Index("https://url:from-url@a.invalid/simple")
    wide = Index("https://wide:from-wide@a.invalid/")
    keys = Credentials((wide, in_url, env), str(netrc), quiet())
    # the URL's own, then the index it is under (the longest URL first), then another index of the host
    assert keys.lookup("https://x:own@a.invalid/private/simple/p/") == ("x", "own")
    assert keys.lookup("https://a.invalid/private/simple/p/") == ("env-user", "from-env")
    assert keys.lookup("https://a.invalid/simple/p/") == ("url", "from-url")
    assert keys.lookup("https://a.invalid/files/p.whl") == ("wide", "from-wide")
    assert Credentials((in_url, env), "", quiet()).lookup("https://a.invalid/files/p.whl") == ("url", "from-url")
    # never an index's for another host or port; netrc's for its host
    assert keys.lookup("https://a.invalid:8443/simple/p/") == ("n", "from-netrc")
    assert keys.lookup("https://cdn.invalid/p.whl") is None
    # an index with only a user from the environment sends nothing of its own
    lone = Credentials((Index("https://b.invalid/simple", "Poetry source 'b'", "only-user", None),), "/none", quiet())
    assert lone.lookup("https://b.invalid/simple/p/") is None


def test_a_netrc_that_cannot_be_parsed_is_ignored_without_quoting_it(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine a.invalid login n password {SECRET} bogus {SECRET}\n", encoding="utf-8")
    lines: list[str] = []
    keys = Credentials((), str(netrc), Log(sink=lines.append))
    assert keys.lookup("https://a.invalid/simple/") is None
    assert lines == [f"WARNING: ignoring {netrc}: it cannot be parsed (line 1)"]


class FakeKeyring(types.ModuleType):
    """``keyring``, as far as pip uses it: ``get_credential(url_or_host, username)``."""

    def __init__(self, known: dict[str, tuple[str, str]], fail: bool = False) -> None:
        super().__init__("keyring")
        self.known, self.fail, self.asked = known, fail, list[tuple[str, str | None]]()

    def get_credential(self, key: str, username: str | None) -> types.SimpleNamespace | None:
        self.asked.append((key, username))
        if self.fail:
            raise RuntimeError(f"backend exploded for {key} with {SECRET}")
        found = self.known.get(key)
        return types.SimpleNamespace(username=found[0], password=found[1]) if found else None


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_keyring_is_asked_as_pip_asks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKeyring({"a.invalid:8080": ("kr", SECRET)})
    monkeypatch.setitem(sys.modules, "keyring", fake)
    index = Index("http://a.invalid:8080/simple", "uv index 'a'", "ci", None)
    keys = Credentials((index,), "/none", quiet())
    assert keys.lookup("http://a.invalid:8080/simple/p/") is None  # not asked before a 401
    assert fake.asked == []
    # after a 401: the index's URL, then its host, with the user the environment gave
    assert keys.ask_keyring("http://a.invalid:8080/simple/p/") == basic("kr", SECRET)
    assert fake.asked == [("http://a.invalid:8080/simple/", "ci"), ("a.invalid:8080", "ci")]
    # the answer is kept: the files the page links are fetched with it, keyring is not asked again
    assert keys.lookup("http://a.invalid:8080/packages/p.whl") == ("kr", SECRET)
    assert keys.ask_keyring("http://a.invalid:8080/packages/p.whl") == basic("kr", SECRET)
    assert len(fake.asked) == 2


def test_a_failing_or_absent_keyring_is_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setitem(sys.modules, "keyring", FakeKeyring({}, fail=True))
    keys = Credentials((Index("https://a.invalid/simple"),), "/none", Log(sink=lines.append))
    assert keys.ask_keyring("https://a.invalid/simple/p/") is None
    assert lines == [
        "WARNING: keyring could not be asked for https://a.invalid/simple/'s credentials: RuntimeError",
        "WARNING: keyring could not be asked for a.invalid's credentials: RuntimeError",
    ]
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring raises ImportError
    assert Credentials((), "/none", quiet()).ask_keyring("https://a.invalid/simple/p/") is None


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("corp-lib @ git+https://x-access-token:ghp_SECRET42@github.example/corp/corp-lib.git@v1.2.0", "ghp_SECRET42"),
        ("-r https://user:PW-SECRET@files.corp.example/reqs.txt", "PW-SECRET"),
        ("-e git+https://oauth2:GL-SECRET@gitlab.example/x.git#egg=x", "GL-SECRET"),
        ("--extra-index-url https://user:pa/ss-SECRET@host.example/simple", "ss-SECRET"),
        ("--index-url https://TOKEN-SECRET@host.example/simple", "TOKEN-SECRET"),
    ],
)
def test_a_lock_line_with_credentials_never_reaches_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, secret: str
) -> None:
    """Whatever error a lock's line causes, its URL's user:password is in neither stderr nor --json:
    every line wheelbarrow prints goes through one scrub."""
    from wheelbarrow._cli import main

    project = tmp_path / "p"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1.0"\ndependencies = []\n\n[tool.wheelbarrow]\nlock = "requirements.txt"\n'
    )
    (project / "requirements.txt").write_text(line + "\n")
    code = main(["plan", "--json", "--project", str(project)])
    out, err = capsys.readouterr()
    assert (code != 0) is ("ERROR: " in err)
    assert secret not in out + err
    assert secret not in scrub(line)
