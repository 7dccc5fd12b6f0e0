"""Fetching runs nothing from the index on the host: an sdist's setup.py runs only in the builder.

The fixture sdist (``tests/projects/hostile-sdist/sdist``, packed here) is a C extension whose
setup.py, run anywhere but in the builder container, leaves a marker file on the host and fails,
as an sdist that needs the builder's libraries at metadata time would. It is served from a PEP 503
index on a loopback port, which the run is pointed at with ``PIP_INDEX_URL``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.conftest import PROJECTS, Runner, copy_project, run_installed, sh, tool, uv

FIXTURE = PROJECTS / "hostile-sdist"
SDIST_NAME = "wheelbarrow_hostile-1.0"
PKG_INFO = b"Metadata-Version: 2.1\nName: wheelbarrow-hostile\nVersion: 1.0\n"


def pack_sdist(dest: Path, marker: Path) -> Path:
    """The fixture's sdist, with ``marker`` as the file its setup.py leaves when it runs outside the builder."""
    dest.mkdir(parents=True, exist_ok=True)
    members = {p.name: p.read_bytes() for p in sorted((FIXTURE / "sdist").iterdir()) if p.is_file()}
    members |= {"PKG-INFO": PKG_INFO, "MARKER": f"{marker}\n".encode()}
    sdist = dest / f"{SDIST_NAME}.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(f"{SDIST_NAME}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 315532800
            archive.addfile(info, io.BytesIO(data))
    return sdist


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Index:
    url: str
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # path, Authorization


@contextlib.contextmanager
def serving_index(sdist: Path, credentials: tuple[str, str] | None = None) -> Iterator[Index]:
    """A PEP 503 index of ``sdist`` alone on 127.0.0.1 (relative links, sha256 fragments), maybe behind basic auth."""
    root = sdist.parent.parent
    page = root / "simple" / "wheelbarrow-hostile" / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(
        f'<!DOCTYPE html><html><body><a href="../../{sdist.parent.name}/{sdist.name}#sha256={sha256(sdist)}">'
        f"{sdist.name}</a></body></html>\n",
        encoding="utf-8",
    )
    expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode() if credentials else None
    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            if expected is not None and self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="wheelbarrow test index"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Index(f"http://127.0.0.1:{server.server_address[1]}/simple", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@functools.cache
def host_indexes() -> str:
    """The indexes pip is configured with on this host, as wheelbarrow reads them."""
    script = "from wheelbarrow._index import read_settings as r; from wheelbarrow._log import Log as L; "
    script += "print(' '.join(r(L(sink=lambda _: None)).indexes))"
    return sh([sys.executable, "-c", script]).output.strip()


def index_env(index: Index) -> dict[str, str]:
    """The loopback index first; the host's own indexes after it, for the build requirements (setuptools...)."""
    return {"PIP_INDEX_URL": index.url, "PIP_EXTRA_INDEX_URL": host_indexes()}


def locked_project(tmp_path: Path, sdist: Path) -> Path:
    project = copy_project(FIXTURE / "app", tmp_path / "hostile-app")
    lock = f"wheelbarrow-hostile==1.0 \\\n    --hash=sha256:{sha256(sdist)}\n"
    (project / "requirements.txt").write_text(lock, encoding="utf-8")
    return project


@pytest.fixture
def marker() -> Iterator[Path]:
    path = Path(f"/tmp/wheelbarrow-hostile-marker-{uuid.uuid4().hex}")
    yield path
    path.unlink(missing_ok=True)


def test_the_fixture_sdist_is_hostile_on_the_host(tmp_path: Path, marker: Path) -> None:
    """What ``pip download`` of the sdist would do (run its setup.py on the host) leaves the marker and fails."""
    sdist = pack_sdist(tmp_path / "files", marker)
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    ran = subprocess.run(
        [sys.executable, "setup.py", "--version"],
        cwd=tmp_path / "unpacked" / SDIST_NAME,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 1
    assert "needs the builder's libraries" in ran.stderr
    assert marker.read_text(encoding="utf-8").startswith("setup.py of wheelbarrow-hostile ran outside the builder")


def built_wheel(project: Path) -> dict[str, object]:
    manifest = json.loads((project / "wheelhouse" / "manifest.json").read_text(encoding="utf-8"))
    (entry,) = [w for w in manifest["wheels"] if w["name"] == "wheelbarrow-hostile"]
    assert isinstance(entry, dict)
    return entry


def test_fetch_runs_nothing_from_the_index_on_the_host(wheelbarrow: Runner, tmp_path: Path, marker: Path) -> None:
    sdist = pack_sdist(tmp_path / "index" / "files", marker)
    project = locked_project(tmp_path, sdist)
    with serving_index(sdist) as index:
        out = wheelbarrow("build", "--project", str(project), env=index_env(index))
    assert out.returncode == 0, out.output[-4000:]
    assert not marker.exists(), marker.read_text(encoding="utf-8")
    assert f"downloading {sdist.name} from {index.url.removesuffix('/simple')}/files/{sdist.name}" in out.output
    assert ("/simple/wheelbarrow-hostile/", None) in index.seen
    assert (f"/files/{sdist.name}", None) in index.seen
    # compiled in the builder, from exactly that sdist
    wheel = built_wheel(project)
    assert wheel["origin"] == "built"
    assert wheel["sdist"] == {"file": sdist.name, "sha256": sha256(sdist)}
    assert re.fullmatch(r"wheelbarrow_hostile-1\.0-cp311-cp311-\S*manylinux\S*_x86_64\.whl", str(wheel["file"]))
    # and the C extension works in the runtime base, installed with no index
    output = run_installed(project / "wheelhouse", "hostile", "import hostile_app; print(hostile_app.ANSWER)")
    assert output.strip().endswith("42")


def test_an_index_behind_basic_auth_with_netrc(wheelbarrow: Runner, tmp_path: Path, marker: Path) -> None:
    user, password = "wheelbarrow-ci", f"pw-{uuid.uuid4().hex}"
    sdist = pack_sdist(tmp_path / "index" / "files", marker)
    project = locked_project(tmp_path, sdist)
    netrc = tmp_path / "netrc"
    with serving_index(sdist, (user, password)) as index:
        refused = wheelbarrow(
            "build", "--project", str(project), env={**index_env(index), "NETRC": str(tmp_path / "no-netrc")}
        )
        netrc.write_text(f"machine 127.0.0.1\n  login {user}\n  password {password}\n", encoding="utf-8")
        netrc.chmod(0o600)
        out = wheelbarrow("build", "--project", str(project), env={**index_env(index), "NETRC": str(netrc)})
    # without credentials: a clear error that says where they go
    assert refused.returncode == 5, refused.output[-3000:]
    assert "answered HTTP 401" in refused.output.split("ERROR: ", 1)[1]
    assert "netrc" in next(line for line in refused.output.splitlines() if line.startswith("TIP: "))
    # with them in the netrc: the page and the file it links were both fetched with basic auth
    assert out.returncode == 0, out.output[-4000:]
    authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    assert ("/simple/wheelbarrow-hostile/", authorization) in index.seen
    assert (f"/files/{sdist.name}", authorization) in index.seen
    assert built_wheel(project)["origin"] == "built"
    assert not marker.exists()
    # and the password is nowhere: not in the output, not in any file of the wheelhouse
    assert password not in out.output + refused.output
    leaks = [p for p in (project / "wheelhouse").rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaks == []


def _writes_marker(marker: Path) -> str:
    return f"from pathlib import Path\nwith Path({str(marker)!r}).open('a') as f:\n    f.write('ran on the host\\n')\n"


def test_checking_a_uv_lock_builds_no_sdist_on_the_host(wheelbarrow: Runner, tmp_path: Path, marker: Path) -> None:
    """A locked sdist (a uv path source) whose setup.py runs wherever it is built: uv lock builds it (the
    user's own step), then wheelbarrow's check with a cold uv cache must not; it says why it stops."""
    project = tmp_path / "uv-path"
    sdist_root = tmp_path / "evil-1.0"
    sdist_root.mkdir(parents=True)
    (sdist_root / "setup.py").write_text(_writes_marker(marker) + "from setuptools import setup\nsetup()\n")
    (sdist_root / "setup.cfg").write_text("[metadata]\nname = evil\nversion = 1.0\n")
    (sdist_root / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n")
    (project / "vendor").mkdir(parents=True)
    with tarfile.open(project / "vendor" / "evil-1.0.tar.gz", "w:gz") as archive:
        archive.add(sdist_root, arcname="evil-1.0")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "uv-path"\nversion = "1.0"\nrequires-python = ">=3.11"\ndependencies = ["evil==1.0"]\n\n'
        '[tool.uv.sources]\nevil = { path = "vendor/evil-1.0.tar.gz" }\n\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    uv(project, "lock", env={"UV_CACHE_DIR": str(tmp_path / "uv-lock")})
    assert marker.exists()  # uv lock ran it: the sdist is what it claims to be
    marker.unlink()
    out = wheelbarrow("plan", "--project", str(project), env={"UV_CACHE_DIR": str(tmp_path / "uv-cold")})
    assert out.returncode == 4, out.output[-3000:]
    assert "ERROR: checking uv.lock would build an sdist on the host, and wheelbarrow runs none there" in out.output
    assert "evil" in out.output.split("ERROR: ", 1)[1]
    assert not marker.exists(), marker.read_text()


def test_a_uv_project_with_dynamic_dependencies_is_not_built_on_the_host(
    wheelbarrow: Runner, tmp_path: Path, marker: Path
) -> None:
    """uv learns dynamic dependencies by running the project's build backend (setuptools, from the index):
    wheelbarrow does not check such a lock, and says so."""
    project = tmp_path / "uv-dynamic"
    project.mkdir()
    (project / "setup.py").write_text(_writes_marker(marker) + "from setuptools import setup\nsetup()\n")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "uv-dynamic"\nversion = "1.0"\nrequires-python = ">=3.11"\n'
        'dynamic = ["dependencies"]\n\n[build-system]\nrequires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n'
    )
    uv(project, "lock", env={"UV_CACHE_DIR": str(tmp_path / "uv-lock")})
    marker.unlink(missing_ok=True)
    (project / "setup.py").touch()  # newer than anything uv remembers
    out = wheelbarrow("plan", "--project", str(project), env={"UV_CACHE_DIR": str(tmp_path / "uv-cold")})
    assert out.returncode == 0, out.output[-3000:]
    assert "WARNING: not checking that uv.lock is fresh: pyproject.toml declares dependencies dynamic" in out.output
    assert not marker.exists(), marker.read_text()


def test_poetry_loads_no_project_plugin_on_the_host(wheelbarrow: Runner, tmp_path: Path, marker: Path) -> None:
    """A plugin in the project's .poetry/plugins (where Poetry installs requires-plugins from the index)
    runs whenever Poetry starts there: wheelbarrow checks with --no-plugins and exports from a copy."""
    project = tmp_path / "poetry-plugin"
    plugins = project / ".poetry" / "plugins"
    (plugins / "wbcanary-1.0.dist-info").mkdir(parents=True)
    (plugins / "wbcanary-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wbcanary\nVersion: 1.0\n"
    )
    (plugins / "wbcanary-1.0.dist-info" / "entry_points.txt").write_text(
        "[poetry.application.plugin]\nwbcanary = wbcanary:Canary\n"
    )
    (plugins / "wbcanary.py").write_text(
        "from poetry.plugins.application_plugin import ApplicationPlugin\n\n"
        "class Canary(ApplicationPlugin):\n    def activate(self, application):\n"
        + "".join(f"        {line}\n" for line in _writes_marker(marker).splitlines())
    )
    (project / "src" / "poetry_plugin").mkdir(parents=True)
    (project / "src" / "poetry_plugin" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "poetry-plugin"\nversion = "1.0"\nrequires-python = ">=3.11,<4"\ndependencies = []\n\n'
        '[tool.poetry]\npackages = [{ include = "poetry_plugin", from = "src" }]\n\n'
        '[build-system]\nrequires = ["poetry-core>=2.0.0,<3.0.0"]\nbuild-backend = "poetry.core.masonry.api"\n'
    )
    sh([tool("poetry"), "lock", "--directory", str(project)])
    assert marker.exists()  # Poetry itself loads it: the plugin is real
    marker.unlink()
    out = wheelbarrow("plan", "--project", str(project))
    assert out.returncode == 0, out.output[-3000:]
    assert not marker.exists(), marker.read_text()
