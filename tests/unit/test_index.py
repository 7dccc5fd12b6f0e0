"""The index client: pip's settings as data, simple pages, credentials, file choice, verified downloads.

No network but a loopback HTTP server started here, no subprocess: pip's configuration is given as the
text ``pip config list`` prints.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wheelbarrow import _fetch
from wheelbarrow._cache import Cache
from wheelbarrow._fetch import build_requires_of_sdist, choose, fetch_locked
from wheelbarrow._index import (
    ACCEPT,
    JSON_TYPE,
    Client,
    IndexFile,
    Settings,
    parse_page,
    redact,
)
from wheelbarrow._lock import LockedFile
from wheelbarrow._log import Log
from wheelbarrow._plan import BuildPlan, IndexWheel, ProjectBuild, SdistBuild, target_tags
from wheelbarrow.errors import (
    FetchError,
    HashMismatchError,
    IndexAuthError,
    IndexTLSError,
    IndexUnreachableError,
    NoLockedFileError,
    ProjectNotFoundError,
)

DEFAULT = "https://index.invalid/simple"
SECRET = "s3cr3t-pa55"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# pip's configuration ---------------------------------------------------------------------------


CONFIG_LIST = """\
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.extra-index-url='file:///opt/one/simple file:///opt/two/simple'
global.index-url='https://mirror.invalid/simple'
global.timeout='30'
download.index-url='https://download-section.invalid/simple'
install.index-url='https://install-section.invalid/simple'
:env:.index-url='ignored: the environment is read directly'
"""


def test_settings_from_pip_config_files() -> None:
    settings = Settings.from_pip(CONFIG_LIST, {"HOME": "/home/u"}, DEFAULT)
    assert settings.indexes == (
        "https://download-section.invalid/simple",  # [download] beats [global], [install] does not count
        "file:///opt/one/simple",
        "file:///opt/two/simple",
    )
    assert settings.cert == "/etc/ssl/certs/ca-certificates.crt"
    assert settings.timeout == 30.0
    assert settings.retries == 2
    assert settings.netrc_file == "/home/u/.netrc"


def test_the_environment_wins_over_config_files() -> None:
    environ = {
        "PIP_INDEX_URL": "http://user:pw@127.0.0.1:3141/root/simple",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_CERT": "/etc/corp-ca.pem",
        "PIP_CLIENT_CERT": "/etc/me.pem",
        "PIP_TRUSTED_HOST": "a.invalid b.invalid:8443",
        "PIP_DEFAULT_TIMEOUT": "7",
        "PIP_RETRIES": "1",
        "PIP_PROXY": "http://proxy.invalid:3128",
        "NETRC": "/run/secrets/netrc",
    }
    settings = Settings.from_pip(CONFIG_LIST, environ, DEFAULT)
    assert settings.indexes == ("http://user:pw@127.0.0.1:3141/root/simple",)
    assert settings.cert == "/etc/corp-ca.pem"
    assert settings.client_cert == "/etc/me.pem"
    assert settings.trusted_hosts == {"a.invalid", "b.invalid:8443"}
    assert (settings.timeout, settings.retries) == (7.0, 1)
    assert settings.proxy == "http://proxy.invalid:3128"
    assert settings.netrc_file == "/run/secrets/netrc"


def test_defaults_no_index_and_ca_bundle_from_the_environment() -> None:
    bare = Settings.from_pip("", {"HOME": "/h", "REQUESTS_CA_BUNDLE": "/ca.pem"}, DEFAULT)
    assert bare.indexes == (DEFAULT,)
    assert bare.cert == "/ca.pem"
    assert bare.timeout == 60.0
    assert Settings.from_pip(CONFIG_LIST, {"PIP_NO_INDEX": "true", "HOME": "/h"}, DEFAULT).indexes == ()


# pages -----------------------------------------------------------------------------------------

HTML = b"""<!DOCTYPE html><html><body>
<a href="../../files/demo-1.0.tar.gz#sha256=AAAA">demo-1.0.tar.gz</a>
<a href="https://files.invalid/p/demo-1.0-py3-none-any.whl#sha256=bbbb" data-requires-python="&gt;=3.8">w</a>
<a href="demo-0.9.tar.gz#md5=cccc" data-yanked="broken metadata">demo-0.9.tar.gz</a>
<a data-yanked href="demo%2B0.8.zip">demo+0.8.zip</a>
<a>no href</a>
</body></html>"""


def test_html_page_relative_urls_fragments_and_yanked() -> None:
    files = parse_page(HTML, "text/html", "https://index.invalid/simple/demo/")
    assert files == [
        IndexFile("demo-1.0.tar.gz", "https://index.invalid/files/demo-1.0.tar.gz", "aaaa"),
        IndexFile("demo-1.0-py3-none-any.whl", "https://files.invalid/p/demo-1.0-py3-none-any.whl", "bbbb"),
        IndexFile("demo-0.9.tar.gz", "https://index.invalid/simple/demo/demo-0.9.tar.gz", None, "broken metadata"),
        IndexFile("demo+0.8.zip", "https://index.invalid/simple/demo/demo%2B0.8.zip", None, ""),
    ]


def test_html_base_tag_is_honoured() -> None:
    page = b'<html><head><base href="https://cdn.invalid/x/"></head><a href="f-1.0.tar.gz#sha256=01">f</a></html>'
    (file,) = parse_page(page, "text/html", "https://index.invalid/simple/f/")
    assert file.url == "https://cdn.invalid/x/f-1.0.tar.gz"


def test_json_page() -> None:
    page = {
        "meta": {"api-version": "1.1"},
        "name": "demo",
        "files": [
            {"filename": "demo-1.0.tar.gz", "url": "../../f/demo-1.0.tar.gz", "hashes": {"sha256": "AB"}},
            {"filename": "demo-0.9.tar.gz", "url": "https://x.invalid/demo-0.9.tar.gz#sha256=cd", "hashes": {}},
            {"filename": "demo-0.8.tar.gz", "url": "/demo-0.8.tar.gz", "hashes": {}, "yanked": True},
            {"filename": "demo-0.7.tar.gz", "url": "/demo-0.7.tar.gz", "hashes": {}, "yanked": "CVE"},
        ],
    }
    files = parse_page(json.dumps(page).encode(), JSON_TYPE, "https://index.invalid/simple/demo/")
    assert files == [
        IndexFile("demo-1.0.tar.gz", "https://index.invalid/f/demo-1.0.tar.gz", "ab"),
        IndexFile("demo-0.9.tar.gz", "https://x.invalid/demo-0.9.tar.gz", "cd"),
        IndexFile("demo-0.8.tar.gz", "https://index.invalid/demo-0.8.tar.gz", None, ""),
        IndexFile("demo-0.7.tar.gz", "https://index.invalid/demo-0.7.tar.gz", None, "CVE"),
    ]
    with pytest.raises(FetchError, match="not a valid PEP 691 project page"):
        parse_page(b'{"files": [{"url": "x"}]}', JSON_TYPE, f"https://u:{SECRET}@index.invalid/simple/demo/")


# credentials -----------------------------------------------------------------------------------


def test_redact_strips_only_the_userinfo() -> None:
    assert redact(f"https://me:{SECRET}@index.invalid:8443/simple/?q#f") == "https://index.invalid:8443/simple/?q#f"
    assert redact("https://token@index.invalid/simple") == "https://index.invalid/simple"
    assert redact("file:///opt/simple") == "file:///opt/simple"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_from_the_index_url_and_netrc(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine other.invalid login alice password wonderland\ndefault login anon password guest\n",
        encoding="utf-8",
    )
    settings = Settings(
        ("https://bob:b%40d@index.invalid/simple", "https://other.invalid/simple"), netrc_file=str(netrc)
    )
    client = Client(settings, Log(sink=lambda _: None))
    # the index URL's own credentials, also for files it links on the same host, but not another port
    assert client.authorization("https://index.invalid/files/x.whl") == basic("bob", "b@d")
    assert client.authorization("https://index.invalid:444/files/x.whl") == basic("anon", "guest")
    # netrc, by host
    assert client.authorization("https://other.invalid/simple/demo/") == basic("alice", "wonderland")
    assert client.authorization("https://files.invalid/x.whl") == basic("anon", "guest")
    netrc.write_text("machine other.invalid login alice password wonderland\n", encoding="utf-8")
    assert Client(settings, Log(sink=lambda _: None)).authorization("https://files.invalid/x.whl") is None


# choosing a file -------------------------------------------------------------------------------

TAGS = {tag: i for i, tag in enumerate(target_tags("3.11", (2, 36), "x86_64"))}
PAGE = [
    IndexFile("demo-1.0.tar.gz", "u/sdist", "a" * 64),
    IndexFile("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "u/old", "b" * 64),
    IndexFile("demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl", "u/new", "c" * 64),
    IndexFile("demo-1.0-cp311-cp311-manylinux_2_39_x86_64.whl", "u/too-new", "d" * 64),
    IndexFile("demo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "u/cp312", "e" * 64),
    IndexFile("demo-1.0-py3-none-any.whl", "u/pure", None),
]


def test_choose_by_name_and_hash() -> None:
    named = LockedFile("demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl", "c" * 64)
    assert choose(PAGE, IndexWheel("demo", "1.0", named, ("c" * 64,)), TAGS) == PAGE[2]
    # the right name with another hash is not taken; nor the right hash under another name
    assert choose(PAGE, IndexWheel("demo", "1.0", named, ("0" * 64,)), TAGS) is None
    renamed = LockedFile("demo-1.0.tar.gz", "c" * 64)
    assert choose(PAGE, SdistBuild("demo", "1.0", renamed, ("c" * 64,), "x"), TAGS) is None
    # a named file the index gives no hash for is taken, and verified when downloaded
    pure = LockedFile("demo-1.0-py3-none-any.whl", "f" * 64)
    assert choose(PAGE, IndexWheel("demo", "1.0", pure, ("f" * 64,)), TAGS) == PAGE[5]


def test_choose_for_a_lock_without_file_names() -> None:
    every = tuple(f.sha256 or "" for f in PAGE[:5])
    # the best wheel for cp311, glibc 2.36, among those with a locked hash
    assert choose(PAGE, IndexWheel("demo", "1.0", None, every), TAGS) == PAGE[2]
    assert choose(PAGE, IndexWheel("demo", "1.0", None, ("b" * 64, "d" * 64)), TAGS) == PAGE[1]
    assert choose(PAGE, IndexWheel("demo", "1.0", None, ("d" * 64, "e" * 64)), TAGS) is None  # none fits
    assert choose(PAGE, SdistBuild("demo", "1.0", None, ("c" * 64,), "build-from-source"), TAGS) is None
    assert choose(PAGE, SdistBuild("demo", "1.0", None, every, "build-from-source"), TAGS) == PAGE[0]
    # no locked hash on the page: a file without a hash, of the locked version, is tried
    assert choose(PAGE, IndexWheel("demo", "1.0", None, ("9" * 64,)), TAGS) == PAGE[5]
    assert choose(PAGE, IndexWheel("demo", "2.0", None, ("9" * 64,)), TAGS) is None


# a loopback index ------------------------------------------------------------------------------


@dataclass
class Index:
    """A simple index on 127.0.0.1: ``routes`` maps a path to (status, content type, body)."""

    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    credentials: str | None = None  # "user:password" required on every request
    seen: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # path, Authorization, Accept
    fail_first: set[str] = field(default_factory=set)  # paths that answer 503 once
    url: str = ""


@pytest.fixture
def index() -> Iterator[Index]:
    state = Index()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append((self.path, self.headers.get("Authorization"), self.headers.get("Accept")))
            if state.credentials and self.headers.get("Authorization") != basic(*state.credentials.split(":")):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.end_headers()
                return
            if self.path in state.fail_first:
                state.fail_first.discard(self.path)
                self.send_error(503)
                return
            status, content_type, body = state.routes.get(self.path, (404, "text/plain", b"not found"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def html_page(*links: str) -> tuple[int, str, bytes]:
    return 200, "text/html", "".join(f'<a href="{link}">x</a>\n' for link in links).encode()


def plan_for(tmp_path: Path, wheels: tuple[IndexWheel, ...] = (), sdists: tuple[SdistBuild, ...] = ()) -> BuildPlan:
    return BuildPlan(
        python="3.11",
        python_tag="cp311",
        machine="x86_64",
        glibc=(2, 36),
        builder_base="b",
        debian_suite="bookworm",
        system_packages=(),
        index_wheels=wheels,
        sdist_builds=sdists,
        project=ProjectBuild("app", "1.0", tmp_path, "pure"),
        wheelhouse=tmp_path / "wheelhouse",
        lock=tmp_path / "requirements.txt",
    )


@dataclass
class Run:
    lines: list[str]
    cache: Cache


def fetch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings, plan: BuildPlan) -> Run:
    """fetch_locked with ``settings`` as pip's configuration; log lines kept."""
    lines: list[str] = []
    log = Log(sink=lines.append)
    monkeypatch.setattr(_fetch, "read_settings", lambda _log: settings)
    cache = Cache(tmp_path / "cache", log)
    try:
        fetch_locked(plan, cache, log)
    finally:
        lines.extend(f"cache: {p.relative_to(cache.root)}" for p in sorted(cache.root.rglob("*")) if p.is_file())
    return Run(lines, cache)


SDIST = b"pretend sdist bytes"
WHEEL = b"pretend wheel bytes"


def test_fetch_from_html_and_json_indexes_in_parallel(
    index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = [f"pkg{n}" for n in range(12)]
    for name in names:
        index.routes[f"/simple/{name}/"] = html_page(
            f"../../files/{name}-1.0.tar.gz#sha256={sha(SDIST + name.encode())}"
        )
        index.routes[f"/files/{name}-1.0.tar.gz"] = (200, "application/octet-stream", SDIST + name.encode())
    wheel_name = "w-2.0-py3-none-any.whl"
    json_page = {"files": [{"filename": wheel_name, "url": f"/f/{wheel_name}", "hashes": {"sha256": sha(WHEEL)}}]}
    index.routes["/other/w/"] = (200, JSON_TYPE, json.dumps(json_page).encode())
    index.routes[f"/f/{wheel_name}"] = (200, "application/octet-stream", WHEEL)
    sdists = tuple(SdistBuild(n, "1.0", None, (sha(SDIST + n.encode()),), "build-from-source") for n in names)
    wheels = (IndexWheel("w", "2.0", LockedFile(wheel_name, sha(WHEEL)), (sha(WHEEL),)),)
    settings = Settings((f"{index.url}/simple", f"{index.url}/other"), retries=0)
    monkeypatch.setattr(_fetch, "read_settings", lambda _log: settings)
    cache = Cache(tmp_path / "cache", Log(sink=lambda _: None))
    got_wheels, got_sdists = fetch_locked(plan_for(tmp_path, wheels, sdists), cache, Log(sink=lambda _: None))
    assert [(f.filename, f.sha256) for f in got_sdists] == [(f"{n}-1.0.tar.gz", sha(SDIST + n.encode())) for n in names]
    assert got_wheels[0].path.read_bytes() == WHEEL
    assert got_wheels[0].path.parent.parent == cache.root / "artifacts"
    assert ("/other/w/", None, ACCEPT) in index.seen
    # the first index was asked for w and did not have it; nothing was left in the scratch area
    assert ("/simple/w/", None, ACCEPT) in index.seen
    assert not [p.name for p in cache.root.iterdir() if p.name.startswith("wheelbarrow-")]


def test_a_hash_mismatch_is_refused_and_never_stored(
    index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    locked = sha(SDIST)
    index.routes["/simple/demo/"] = html_page(f"/files/demo-1.0.tar.gz#sha256={locked}")
    index.routes["/files/demo-1.0.tar.gz"] = (200, "application/octet-stream", b"tampered")  # the page lies
    sdist = SdistBuild("demo", "1.0", LockedFile("demo-1.0.tar.gz", locked), (locked,), "x")
    settings = Settings((f"{index.url}/simple",), retries=0)
    with pytest.raises(HashMismatchError, match="sha256 is not the locked one") as caught:
        fetch(monkeypatch, tmp_path, settings, plan_for(tmp_path, sdists=(sdist,)))
    assert f"expected sha256 {locked}, got {sha(b'tampered')}" in caught.value.message
    assert "re-lock" in caught.value.tip
    assert not list((tmp_path / "cache").rglob("demo-1.0.tar.gz"))


def test_no_file_with_a_locked_hash_names_what_the_index_has(
    index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    index.routes["/simple/six/"] = html_page(
        f"/f/six-1.16.0-py2.py3-none-any.whl#sha256={'8' * 64}", f"/f/six-1.16.0.tar.gz#sha256={'9' * 64}"
    )
    wheel = IndexWheel("six", "1.16.0", None, ("0" * 64,))
    with pytest.raises(NoLockedFileError) as caught:
        fetch(monkeypatch, tmp_path, Settings((f"{index.url}/simple",), retries=0), plan_for(tmp_path, (wheel,)))
    assert caught.value.message == (
        "the index served a file whose sha256 is not the locked one: six==1.16.0 "
        f"(six-1.16.0-py2.py3-none-any.whl): expected sha256 {'0' * 64}, got {'8' * 64}"
    )
    assert not any(path.startswith("/f/") for path, _, _ in index.seen)  # nothing downloaded


def test_a_project_on_no_index(index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wheel = IndexWheel("nowhere", "1.0", None, ("0" * 64,))
    settings = Settings((f"{index.url}/simple", f"{index.url}/extra"), retries=0)
    with pytest.raises(ProjectNotFoundError, match="nowhere is on none of the indexes") as caught:
        fetch(monkeypatch, tmp_path, settings, plan_for(tmp_path, (wheel,)))
    assert f"{index.url}/extra" in caught.value.message
    assert "extra-index-url" in caught.value.tip


def test_basic_auth_on_pages_and_files_and_never_in_the_log(
    index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    index.credentials = f"wb:{SECRET}"
    index.routes["/simple/demo/"] = html_page(f"../../files/demo-1.0.tar.gz#sha256={sha(SDIST)}")
    index.routes["/files/demo-1.0.tar.gz"] = (200, "application/octet-stream", SDIST)
    sdist = SdistBuild("demo", "1.0", None, (sha(SDIST),), "x")
    plan = plan_for(tmp_path, sdists=(sdist,))
    host = index.url.removeprefix("http://")
    # without credentials: a clear error
    with pytest.raises(IndexAuthError, match="401") as caught:
        fetch(monkeypatch, tmp_path / "a", Settings((f"{index.url}/simple",), retries=0), plan)
    assert "netrc" in caught.value.tip
    # with wrong ones: said so
    wrong = Settings((f"http://wb:wrong@{host}/simple",), retries=0)
    with pytest.raises(IndexAuthError, match="refused the credentials given") as caught:
        fetch(monkeypatch, tmp_path / "w", wrong, plan)
    assert "wrong" not in caught.value.message
    # with credentials in the URL
    in_url = Settings((f"http://wb:{SECRET}@{host}/simple",), retries=0)
    run = fetch(monkeypatch, tmp_path / "b", in_url, plan)
    assert SECRET not in "\n".join(run.lines)
    assert any(line.startswith(f"downloading demo-1.0.tar.gz from {index.url}/files/") for line in run.lines)
    assert {(path, auth) for path, auth, _ in index.seen[-2:]} == {
        ("/simple/demo/", basic("wb", SECRET)),
        ("/files/demo-1.0.tar.gz", basic("wb", SECRET)),
    }
    # with credentials in netrc
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login wb password {SECRET}\n", encoding="utf-8")
    run = fetch(monkeypatch, tmp_path / "c", Settings((f"{index.url}/simple",), retries=0, netrc_file=str(netrc)), plan)
    assert SECRET not in "\n".join(run.lines)
    assert index.seen[-1] == ("/files/demo-1.0.tar.gz", basic("wb", SECRET), None)


def declare(project: Path, toml: str) -> None:
    (project / "pyproject.toml").write_text(f'[project]\nname = "app"\nversion = "1.0"\n\n{toml}', encoding="utf-8")


def test_a_package_pinned_to_a_poetry_source_is_asked_there_alone_with_its_credentials(
    index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    index.credentials = f"wb:{SECRET}"
    index.routes["/private/simple/demo/"] = html_page(f"../../files/demo-1.0.tar.gz#sha256={sha(SDIST)}")
    index.routes["/private/files/demo-1.0.tar.gz"] = (200, "application/octet-stream", SDIST)
    declare(
        tmp_path,
        '[tool.poetry.dependencies]\ndemo = { version = "1.0", source = "corp" }\n'
        f'[[tool.poetry.source]]\nname = "corp"\nurl = "{index.url}/private/simple"\npriority = "explicit"\n',
    )
    monkeypatch.setenv("POETRY_HTTP_BASIC_CORP_USERNAME", "wb")
    monkeypatch.setenv("POETRY_HTTP_BASIC_CORP_PASSWORD", SECRET)
    plan = plan_for(tmp_path, sdists=(SdistBuild("demo", "1.0", None, (sha(SDIST),), "x"),))
    # pip's own index is on the same server: it is never asked for a package pinned elsewhere
    run = fetch(monkeypatch, tmp_path / "run", Settings((f"{index.url}/public/simple",), retries=0), plan)
    assert [(path, auth) for path, auth, _ in index.seen] == [
        ("/private/simple/demo/", basic("wb", SECRET)),
        ("/private/files/demo-1.0.tar.gz", basic("wb", SECRET)),
    ]
    assert f"demo only from: {index.url}/private/simple (Poetry source 'corp')" in run.lines
    assert SECRET not in "\n".join(run.lines)


def test_uv_index_credentials_and_wrong_ones_name_the_index_and_its_variables(
    index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    index.credentials = f"wb:{SECRET}"
    index.routes["/uv/demo/"] = html_page(f"/files/demo-1.0.tar.gz#sha256={sha(SDIST)}")
    index.routes["/files/demo-1.0.tar.gz"] = (200, "application/octet-stream", SDIST)
    declare(tmp_path, f'[[tool.uv.index]]\nname = "corp.uv-idx"\nurl = "{index.url}/uv"\n')
    plan = plan_for(tmp_path, sdists=(SdistBuild("demo", "1.0", None, (sha(SDIST),), "x"),))
    settings = Settings((f"{index.url}/pip",), retries=0)
    monkeypatch.setenv("UV_INDEX_CORP_UV_IDX_USERNAME", "wb")
    monkeypatch.setenv("UV_INDEX_CORP_UV_IDX_PASSWORD", "not-" + SECRET)
    with pytest.raises(IndexAuthError) as caught:
        fetch(monkeypatch, tmp_path / "wrong", settings, plan)
    assert caught.value.message == (
        f"{index.url}/uv/demo/ answered HTTP 401 Unauthorized: the index {index.url}/uv (uv index 'corp.uv-idx') "
        "refused the credentials given"
    )
    assert "UV_INDEX_CORP_UV_IDX_USERNAME and UV_INDEX_CORP_UV_IDX_PASSWORD" in caught.value.tip
    assert caught.value.tip.startswith("Check the index's user and password")
    assert SECRET not in caught.value.message + caught.value.tip
    monkeypatch.setenv("UV_INDEX_CORP_UV_IDX_PASSWORD", SECRET)
    run = fetch(monkeypatch, tmp_path / "right", settings, plan)
    assert f"cache: artifacts/{sha(SDIST)}/demo-1.0.tar.gz" in run.lines
    assert index.seen[-1] == ("/files/demo-1.0.tar.gz", basic("wb", SECRET), None)


def test_a_project_on_none_of_the_declared_indexes_names_them_and_their_declarations(
    index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    declare(tmp_path, f'[[tool.uv.index]]\nname = "corp"\nurl = "http://u:{SECRET}@{index.url[7:]}/corp"\n')
    plan = plan_for(tmp_path, (IndexWheel("nowhere", "1.0", None, ("0" * 64,)),))
    with pytest.raises(ProjectNotFoundError) as caught:
        fetch(monkeypatch, tmp_path / "run", Settings((f"{index.url}/pip",), retries=0), plan)
    assert caught.value.message == (
        f"nowhere is on none of the indexes searched for it: {index.url}/corp (uv index 'corp'), {index.url}/pip"
    )
    assert "a uv index" in caught.value.tip
    assert [path for path, _, _ in index.seen] == ["/corp/nowhere/", "/pip/nowhere/"]


def test_keyring_is_asked_after_a_401_and_its_answer_used(
    index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys
    import types

    index.credentials = f"kr:{SECRET}"
    index.routes["/simple/demo/"] = html_page(f"../../files/demo-1.0.tar.gz#sha256={sha(SDIST)}")
    index.routes["/files/demo-1.0.tar.gz"] = (200, "application/octet-stream", SDIST)
    asked: list[tuple[str, str | None]] = []

    class Keyring(types.ModuleType):
        @staticmethod
        def get_credential(key: str, username: str | None) -> types.SimpleNamespace | None:
            asked.append((key, username))
            return types.SimpleNamespace(username="kr", password=SECRET) if key.endswith("/simple/") else None

    monkeypatch.setitem(sys.modules, "keyring", Keyring("keyring"))
    plan = plan_for(tmp_path, sdists=(SdistBuild("demo", "1.0", None, (sha(SDIST),), "x"),))
    run = fetch(monkeypatch, tmp_path / "run", Settings((f"{index.url}/simple",), retries=0), plan)
    assert asked == [(f"{index.url}/simple/", None)]
    assert [(path, auth) for path, auth, _ in index.seen] == [
        ("/simple/demo/", None),  # the first request carries none: keyring is asked only after its 401
        ("/simple/demo/", basic("kr", SECRET)),
        ("/files/demo-1.0.tar.gz", basic("kr", SECRET)),
    ]
    assert SECRET not in "\n".join(run.lines)


def test_transient_errors_are_retried(index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    index.routes["/simple/demo/"] = html_page(f"/files/demo-1.0.tar.gz#sha256={sha(SDIST)}")
    index.routes["/files/demo-1.0.tar.gz"] = (200, "application/octet-stream", SDIST)
    index.fail_first = {"/simple/demo/", "/files/demo-1.0.tar.gz"}
    sdist = SdistBuild("demo", "1.0", None, (sha(SDIST),), "x")
    fetch(monkeypatch, tmp_path, Settings((f"{index.url}/simple",), retries=1), plan_for(tmp_path, sdists=(sdist,)))
    assert [path for path, _, _ in index.seen] == ["/simple/demo/"] * 2 + ["/files/demo-1.0.tar.gz"] * 2
    index.fail_first = {"/simple/demo/"}
    with pytest.raises(FetchError, match="answered HTTP 503"):
        fetch(
            monkeypatch,
            tmp_path / "again",
            Settings((f"{index.url}/simple",), retries=0),
            plan_for(tmp_path, sdists=(sdist,)),
        )


def test_an_unreachable_index_is_named_without_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    wheel = IndexWheel("six", "1.16.0", None, ("0" * 64,))
    settings = Settings((f"http://wb:{SECRET}@127.0.0.1:{port}/simple",), retries=0)
    with pytest.raises(IndexUnreachableError) as caught:
        fetch(monkeypatch, tmp_path, settings, plan_for(tmp_path, (wheel,)))
    assert caught.value.message.startswith(
        f"the index cannot be reached from this host: http://127.0.0.1:{port}/simple"
    )
    assert SECRET not in caught.value.message
    assert "pip config list" in caught.value.tip


def test_tls_failures_name_the_cert_setting(index: Index, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wheel = IndexWheel("six", "1.16.0", None, ("0" * 64,))
    https = index.url.replace("http://", "https://")  # TLS spoken to a plain HTTP server fails its handshake
    with pytest.raises(IndexTLSError, match=r"TLS verification of https://127\.0\.0\.1") as caught:
        fetch(monkeypatch, tmp_path, Settings((f"{https}/simple",), retries=2), plan_for(tmp_path, (wheel,)))
    assert "'cert'" in caught.value.tip
    assert len(index.seen) == 0  # not an HTTP request, and not retried
    with pytest.raises(IndexTLSError, match="CA bundle") as caught:
        fetch(
            monkeypatch,
            tmp_path,
            Settings((f"{https}/simple",), cert=str(tmp_path / "absent.pem")),
            plan_for(tmp_path, (wheel,)),
        )
    assert "PIP_CERT" in caught.value.tip


def test_a_local_file_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """pip's file:// indexes: a project directory with index.html, files linked relatively."""
    root = tmp_path / "idx"
    (root / "simple" / "demo").mkdir(parents=True)
    (root / "files").mkdir()
    (root / "files" / "demo-1.0.tar.gz").write_bytes(SDIST)
    (root / "simple" / "demo" / "index.html").write_text(
        f'<a href="../../files/demo-1.0.tar.gz#sha256={sha(SDIST)}">demo-1.0.tar.gz</a>', encoding="utf-8"
    )
    sdist = SdistBuild("demo", "1.0", None, (sha(SDIST),), "x")
    settings = Settings((f"file://{tmp_path}/absent/simple", f"file://{root}/simple"), retries=0)
    run = fetch(monkeypatch, tmp_path / "run", settings, plan_for(tmp_path, sdists=(sdist,)))
    assert f"cache: artifacts/{sha(SDIST)}/demo-1.0.tar.gz" in run.lines


def test_every_pip_download_is_wheels_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def record(argv: list[str], *_args: object, **_kwargs: object) -> None:
        calls.append([str(a) for a in argv])

    monkeypatch.setattr(_fetch, "run", record)
    _fetch.pip_download(["setuptools>=61"], tmp_path, Log(sink=lambda _: None))
    _fetch.pip_download([*_fetch.target_flags("3.11", (2, 36), "x86_64"), "cython"], tmp_path, Log(sink=lambda _: None))
    assert [argv[-1] for argv in calls] == ["--only-binary=:all:"] * 2  # last: nothing before it undoes it
    assert not [a for argv in calls for a in argv if a.startswith("--no-binary")]


# build requirements are read, never run ----------------------------------------------------------


def sdist_with(tmp_path: Path, name: str, pyproject: bytes | None) -> Path:
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as archive:
        for member, data in (("setup.py", b"raise SystemExit('never run')\n"), ("pyproject.toml", pyproject)):
            if data is not None:
                info = tarfile.TarInfo(f"{name.removesuffix('.tar.gz')}/{member}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def test_build_requirements_of_broken_sdists_are_clear_errors(tmp_path: Path) -> None:
    assert build_requires_of_sdist(sdist_with(tmp_path, "a-1.tar.gz", None)) == ("setuptools>=40.8.0",)
    with pytest.raises(FetchError, match=r"not valid TOML \(UTF-8\)"):
        build_requires_of_sdist(sdist_with(tmp_path, "b-1.tar.gz", b"[build-system]\nrequires = ['\xff']\n"))
    with pytest.raises(FetchError, match=r"not valid TOML \(UTF-8\)"):
        build_requires_of_sdist(sdist_with(tmp_path, "c-1.tar.gz", b"[build-system\n"))
    with pytest.raises(FetchError, match="not a list of strings"):
        build_requires_of_sdist(sdist_with(tmp_path, "d-1.tar.gz", b"[build-system]\nrequires = 'setuptools'\n"))
    assert build_requires_of_sdist(sdist_with(tmp_path, "e-1.tar.gz", b"build-system = 3\n")) == ("setuptools>=40.8.0",)
    whole = sdist_with(tmp_path, "f-1.tar.gz", b"[build-system]\nrequires = ['x']\n").read_bytes()
    truncated = tmp_path / "g-1.tar.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    garbage = tmp_path / "h-1.zip"
    garbage.write_bytes(b"not a zip")
    for broken in (truncated, garbage):
        with pytest.raises(FetchError, match="cannot be read as an sdist") as caught:
            build_requires_of_sdist(broken)
        assert "re-lock" in caught.value.tip
